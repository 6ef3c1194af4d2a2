"""Per-scan workflow features, computed inside DuckDB.

Every function reads the events of an `EventSelection` and returns a tidy DataFrame. The work is
done by one SQL query per function (window functions for sequences, aggregates for durations), so
a cohort of 10,000 scans with 60 events each is summarised in a fraction of a second.

Definitions shared by the functions
-----------------------------------
scan
    A scan with at least one event in the selection.
labelled time
    The sum of the durations of a scan's events (gaps between events are not labelled time).
merged sequence
    A scan's events in order of start time, with consecutive events of the same label merged into
    one segment, whatever the gap between them: unlabelled time is no category, so the operator
    did not leave the category. The merged sequence has no self-transitions.
revisit
    A return to a category after leaving it: a category with *k* segments in the merged sequence
    has ``max(k - 1, 0)`` revisits.
categories in scope
    `taxonomy.default_model_codes()` (the paper's 11 classes) plus any other label present in the
    selection, in taxonomy order, unless given explicitly.
freezes of a scan
    The freeze frames of one run, never a mix: those of the scan's run in the selection where
    that run recorded the scan's freezes (``run_scans.freezes_detected``, even if it found
    none); else those of the newest finished run that recorded them (the run that wrote the
    scan last, ties by run id), as for manual labels, which record no freezes; else freezes
    stored without a run (kept from before runs owned their freezes); else none.

Sums of seconds are taken in a fixed order (``sum(... ORDER BY ...)``): DuckDB's parallel
aggregation would otherwise add in a varying order, and the last bits of a sum would differ
between two runs on the same database (reports must not).

Times in the store are seconds; durations in the results are minutes (``*_min``) unless the
column says seconds (``*_s``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from fetal_analytics import taxonomy
from fetal_analytics.taxonomy import BACKGROUND

if TYPE_CHECKING:
    import pandas as pd

    from analytics.selection import EventSelection
    from fetal_analytics.store import Store

__all__ = [
    "CATEGORY_TIME_COLUMNS",
    "REFERENCE_ORDER",
    "SCAN_FEATURE_COLUMNS",
    "SCAN_FEATURE_NUMERIC",
    "categories_in_scope",
    "category_times",
    "merged_sequences",
    "scan_features",
    "sequence_ctes",
    "transitions",
]

log = logging.getLogger(__name__)

REFERENCE_ORDER: tuple[str, ...] = ("Br", "NL", "Fa", "Sp", "HeD", "Ab", "Ki", "Fm")
"""A FASP-like head-to-toe reference order of structures, for `scan_features`' edit distance.

The UK Fetal Anomaly Screening Programme lists the structures to be seen but prescribes no order
in which to see them: this order (brain, nose and lips, face, spine, heart, abdomen, kidneys,
femur) is a convention used to measure how systematic a scan is, not a standard to conform to.
"""

CATEGORY_TIME_COLUMNS = (
    "scan_id", "operator_id", "group", "label", "duration_s", "duration_min", "share", "n_events",
    "n_revisits", "n_freezes",
)
"""Columns of `category_times`."""

SCAN_FEATURE_NUMERIC = (
    "total_min", "span_min", "n_events", "n_freezes", "n_revisits", "n_transitions", "bk_share",
    "fasp_coverage", "time_to_full_coverage_min", "order_edit_distance",
    "transition_entropy_rate", "n_rare_required_seen",
)
"""The numeric columns of `scan_features`, in order."""

SCAN_FEATURE_COLUMNS = ("scan_id", "operator_id", "group", "acquired_at",
                        *SCAN_FEATURE_NUMERIC[:4], "first_label", *SCAN_FEATURE_NUMERIC[4:])
"""Columns of `scan_features`."""

# Events in scan order (one window pass): a flag where a segment of the merged sequence begins,
# and the next event's label and start.
_EVENTS_SQL = """
ev AS (
    SELECT scan_id, start_s, end_s, label, end_s - start_s AS dur_s,
           CASE WHEN label IS DISTINCT FROM lag(label) OVER w THEN 1 ELSE 0 END AS new_seg,
           lead(label) OVER w AS next_label, lead(start_s) OVER w AS next_start
    FROM sel {where}
    WINDOW w AS (PARTITION BY scan_id ORDER BY start_s, end_s)
)"""

# The freezes of each scan of the selection (see "freezes of a scan" in the module docstring):
# fz_owner picks the run whose freezes count, fzs holds them (scan_id, t_s).
_FREEZES_SQL = """
fz_newest AS (
    SELECT rs.scan_id, rs.run_id
    FROM run_scans rs JOIN runs r USING (run_id)
    WHERE rs.freezes_detected AND r.status = 'finished'
    QUALIFY row_number() OVER (PARTITION BY rs.scan_id
                               ORDER BY rs.written_at DESC, rs.run_id DESC) = 1
),
fz_owner AS (
    SELECT s.scan_id, CASE WHEN own.freezes_detected THEN s.run_id ELSE n.run_id END AS run_id
    FROM (SELECT DISTINCT scan_id, run_id FROM sel) s
    LEFT JOIN run_scans own ON own.run_id = s.run_id AND own.scan_id = s.scan_id
    LEFT JOIN fz_newest n ON n.scan_id = s.scan_id
),
fzs AS (
    SELECT f.scan_id, f.t_s
    FROM freeze_frames f
    JOIN fz_owner o ON f.scan_id = o.scan_id AND f.run_id IS NOT DISTINCT FROM o.run_id
)"""

# Transitions (the last event of a segment, followed by another label) and the merged sequence:
# one row per segment, numbered in order within the scan (DuckDB skips CTEs a query leaves
# unused, so `merged` costs nothing where only `tcount` is read).
_MERGED_SQL = """
tcount AS (
    SELECT scan_id, label AS from_label, next_label AS to_label, count(*) AS n
    FROM ev WHERE next_label IS NOT NULL AND next_label <> label
    GROUP BY scan_id, label, next_label
),
bounds AS (
    SELECT scan_id, start_s, end_s, label, new_seg
    FROM ev WHERE new_seg = 1 OR next_label IS DISTINCT FROM label
),
merged AS (
    SELECT scan_id, seg_id, label, start_s, end_s
    FROM (SELECT scan_id, label, start_s, new_seg,
                 CASE WHEN lead(new_seg) OVER w = 0 THEN lead(end_s) OVER w ELSE end_s END
                   AS end_s,
                 sum(new_seg) OVER (PARTITION BY scan_id ORDER BY start_s, end_s
                                    ROWS UNBOUNDED PRECEDING) AS seg_id
          FROM bounds
          WINDOW w AS (PARTITION BY scan_id ORDER BY start_s, end_s))
    WHERE new_seg = 1
)"""


def categories_in_scope(store: Store, selection: EventSelection,
                        categories: Sequence[str] | None = None) -> tuple[str, ...]:
    """The categories an analysis reports on.

    Parameters
    ----------
    store : Store
    selection : EventSelection
    categories : sequence of str, optional
        Taxonomy codes; checked and returned in the order given, without duplicates.

    Returns
    -------
    tuple of str
        `categories`, or else the default model's codes plus every other label present in the
        selection, in taxonomy order.

    Raises
    ------
    UnknownLabelError
        A code of `categories` is not in the taxonomy.
    ValueError
        `categories` is empty.
    """
    if categories is not None:
        if isinstance(categories, str):
            categories = [categories]
        chosen = tuple(dict.fromkeys(taxonomy.validate_code(c) for c in categories))
        if not chosen:
            raise ValueError("`categories` must name at least one taxonomy code")
        return chosen
    cte, params = selection.cte()
    present = {row[0] for row in store.con.execute(
        f"WITH {cte} SELECT DISTINCT label FROM sel", params).fetchall()}
    default = set(taxonomy.default_model_codes())
    return tuple(c for c in taxonomy.codes() if c in default or c in present)


def category_times(store: Store, selection: EventSelection, *,
                   categories: Sequence[str] | None = None) -> pd.DataFrame:
    """Time spent on each category in each scan: one row per scan and category in scope.

    Parameters
    ----------
    store : Store
    selection : EventSelection
        The events to read (see `analytics.selection.select`).
    categories : sequence of str, optional
        Taxonomy codes to report (default: see "categories in scope" in the module docstring).
        Labels outside them still count towards a scan's labelled time.

    Returns
    -------
    pandas.DataFrame
        Sorted by scan and category, with columns

        ``scan_id, operator_id, group``
            The scan, its operator and the operator's group.
        ``label``
            The category (taxonomy code).
        ``duration_s, duration_min``
            Total duration of the category's events in the scan (seconds, minutes); 0 where the
            category is absent.
        ``share``
            ``duration_s`` over the scan's labelled time (all labels), in [0, 1].
        ``n_events``
            Number of events of the category, as stored (not merged).
        ``n_revisits``
            Returns to the category after leaving it (segments in the merged sequence - 1, at
            least 0).
        ``n_freezes``
            Freezes of the scan (see "freezes of a scan" in the module docstring) that start
            (``freeze_frames.t_s``) inside an event of the category.

    Raises
    ------
    UnknownLabelError
        A code of `categories` is not in the taxonomy.
    """
    cats = list(categories_in_scope(store, selection, categories))
    cte, params = selection.cte()
    sql = f"""
    WITH {cte},
    {_EVENTS_SQL.format(where='')},
    per AS (
        SELECT scan_id, label, sum(dur_s ORDER BY start_s, end_s) AS duration_s,
               count(*) AS n_events,
               sum(new_seg) AS n_segments
        FROM ev GROUP BY scan_id, label
    ),
    tot AS (SELECT scan_id, sum(duration_s ORDER BY label) AS labelled_s
            FROM per GROUP BY scan_id),
    {_FREEZES_SQL},
    fz AS (
        SELECT e.scan_id, e.label, count(*) AS n_freezes
        FROM sel e JOIN fzs f
          ON f.scan_id = e.scan_id AND f.t_s >= e.start_s AND f.t_s < e.end_s
        GROUP BY e.scan_id, e.label
    ),
    cats AS (SELECT * FROM unnest(?::VARCHAR[]) WITH ORDINALITY AS c(label, ord))
    SELECT t.scan_id, sc.operator_id, o.grp AS "group", c.label,
           coalesce(p.duration_s, 0.0) AS duration_s,
           coalesce(p.duration_s, 0.0) / 60.0 AS duration_min,
           coalesce(p.duration_s, 0.0) / t.labelled_s AS share,
           coalesce(p.n_events, 0)::BIGINT AS n_events,
           greatest(coalesce(p.n_segments, 0) - 1, 0)::BIGINT AS n_revisits,
           coalesce(fz.n_freezes, 0)::BIGINT AS n_freezes
    FROM tot t
    JOIN scans sc ON sc.scan_id = t.scan_id
    JOIN operators o ON o.operator_id = sc.operator_id
    CROSS JOIN cats c
    LEFT JOIN per p ON p.scan_id = t.scan_id AND p.label = c.label
    LEFT JOIN fz ON fz.scan_id = t.scan_id AND fz.label = c.label
    ORDER BY t.scan_id, c.ord
    """
    frame = store.query_df(sql, [*params, cats])
    log.debug("category_times: %d scans x %d categories", frame["scan_id"].nunique(), len(cats))
    return frame.reset_index(drop=True)


def scan_features(store: Store, selection: EventSelection, *,
                  reference_order: Sequence[str] | None = None) -> pd.DataFrame:
    """Workflow features of each scan: time, sequence, protocol coverage and order.

    Parameters
    ----------
    store : Store
    selection : EventSelection
        The events to read.
    reference_order : sequence of str, optional
        Taxonomy codes in the order a systematic scan would first see them (default
        `REFERENCE_ORDER`; FASP itself prescribes no order).

    Returns
    -------
    pandas.DataFrame
        One row per scan, sorted by scan, with columns

        ``scan_id, operator_id, group, acquired_at``
            The scan, its operator, the operator's group and the scan's date (NaT if unknown).
        ``total_min``
            Labelled time (minutes).
        ``span_min``
            End of the last event minus start of the first (minutes).
        ``n_events``
            Number of events, as stored.
        ``n_freezes``
            Number of freezes of the scan (see "freezes of a scan" in the module docstring).
        ``first_label``
            Label of the first event that is not background (``Bk``); missing if all are.
        ``n_revisits``
            Revisits (see the module docstring) summed over the categories other than ``Bk``.
        ``n_transitions``
            Label changes in the merged sequence (its length - 1).
        ``bk_share``
            Share of labelled time that is background search, in [0, 1].
        ``fasp_coverage``
            Share of the FASP-required structures among the paper's 11 classes
            (`taxonomy.FASP_REQUIRED`: HeD, Br, Sp, Ab, NL, Ki, Fm) that occur in the scan, in
            [0, 1]. The denominator is fixed: it does not depend on the other scans or labels
            of the cohort.
        ``time_to_full_coverage_min``
            Minutes from the start of the first event until the first event of the last
            structure of `taxonomy.FASP_REQUIRED` to be seen begins; NaN if the scan never
            covers them all (a censored time: see the statistics of the groups).
        ``n_rare_required_seen``
            How many of the rarely labelled FASP-required structures
            (`taxonomy.FASP_REQUIRED_RARE`: Um, BlD, Fe, Ha, Ar, Le) occur in the scan; reported
            apart from the coverage, which they never change.
        ``order_edit_distance``
            Levenshtein distance between the order in which the scan first sees the categories
            of the reference order and the reference order itself, divided by the longer of the
            two, in [0, 1]. Categories outside the reference (``Bk``, ``3Dm``, ``MaD``, ...) are
            ignored; reference categories never seen count as deletions.
        ``transition_entropy_rate``
            Entropy rate (bits per transition) of the first-order Markov chain estimated from the
            scan's merged sequence: ``-sum_i pi_i sum_j P_ij log2 P_ij`` with ``P`` the empirical
            transition matrix and ``pi_i`` the share of transitions leaving ``i``. 0 for a
            perfectly predictable sequence; NaN with fewer than 2 transitions.

    Raises
    ------
    UnknownLabelError
        A code of `reference_order` is not in the taxonomy.
    ValueError
        `reference_order` is empty or repeats a code.
    """
    reference = REFERENCE_ORDER if reference_order is None else tuple(reference_order)
    for code in reference:
        taxonomy.validate_code(code)
    if not reference:
        raise ValueError("`reference_order` must name at least one taxonomy code")
    if len(set(reference)) != len(reference):
        raise ValueError(f"`reference_order` repeats a code: {', '.join(reference)}")
    if len(reference) > 26:
        raise ValueError("`reference_order` may hold at most 26 codes")
    required = list(taxonomy.FASP_REQUIRED)
    ref_string = "".join(chr(65 + i) for i in range(len(reference)))
    ctes, params = sequence_ctes(selection)
    sql = f"""
    WITH {ctes},
    base AS (
        SELECT scan_id, sum(dur_s ORDER BY start_s, end_s) AS labelled_s,
               min(start_s) AS first_start,
               max(end_s) AS last_end, count(*) AS n_events,
               coalesce(sum(dur_s ORDER BY start_s, end_s)
                        FILTER (WHERE label = '{BACKGROUND}'), 0.0) AS bk_s,
               arg_min(label, start_s) FILTER (WHERE label <> '{BACKGROUND}') AS first_label,
               sum(new_seg) AS n_segments,
               coalesce(sum(new_seg) FILTER (WHERE label <> '{BACKGROUND}'), 0)
                 AS n_segments_nonbk
        FROM ev GROUP BY scan_id
    ),
    -- Entropy rate H = sum_ij (n_ij / N) log2(n_i / n_ij)
    --                = (sum_i n_i log2 n_i - sum_ij n_ij log2 n_ij) / N.
    ent AS (SELECT scan_id, sum(n * log2(n) ORDER BY from_label, to_label) AS nlogn_ij
            FROM tcount GROUP BY scan_id),
    firsts AS (
        SELECT scan_id, label, min(start_s) AS first_s,
               count(*) FILTER (WHERE next_label <> label) AS n_out,
               list_contains(?::VARCHAR[], label) AS required,
               list_contains(?::VARCHAR[], label) AS rare_required,
               list_position(?::VARCHAR[], label) AS ref_pos
        FROM ev GROUP BY scan_id, label
    ),
    lab AS (
        SELECT scan_id,
               count(*) FILTER (WHERE label <> '{BACKGROUND}') AS n_labels_nonbk,
               count(*) FILTER (WHERE required) AS n_seen,
               count(*) FILTER (WHERE rare_required) AS n_rare_seen,
               max(first_s) FILTER (WHERE required) AS last_first_s,
               sum(n_out) AS n_trans,
               sum(n_out * log2(n_out) ORDER BY label) FILTER (WHERE n_out > 0) AS nlogn_i,
               coalesce(string_agg(chr(64 + ref_pos), '' ORDER BY first_s)
                          FILTER (WHERE ref_pos IS NOT NULL), '') AS seq
        FROM firsts GROUP BY scan_id
    ),
    {_FREEZES_SQL},
    fz AS (SELECT scan_id, count(*) AS n_freezes FROM fzs GROUP BY scan_id)
    SELECT b.scan_id, sc.operator_id, o.grp AS "group", sc.acquired_at,
           b.labelled_s / 60.0 AS total_min,
           (b.last_end - b.first_start) / 60.0 AS span_min,
           b.n_events::BIGINT AS n_events,
           coalesce(fz.n_freezes, 0)::BIGINT AS n_freezes,
           b.first_label,
           (b.n_segments_nonbk - lab.n_labels_nonbk)::BIGINT AS n_revisits,
           (b.n_segments - 1)::BIGINT AS n_transitions,
           b.bk_s / b.labelled_s AS bk_share,
           lab.n_seen / ?::INTEGER AS fasp_coverage,
           CASE WHEN lab.n_seen = ?::INTEGER
                THEN (lab.last_first_s - b.first_start) / 60.0 END
             AS time_to_full_coverage_min,
           levenshtein(lab.seq, ?) / greatest(length(lab.seq), length(?))::DOUBLE
             AS order_edit_distance,
           CASE WHEN lab.n_trans >= 2
                THEN greatest((lab.nlogn_i - ent.nlogn_ij) / lab.n_trans, 0.0) END
             AS transition_entropy_rate,
           lab.n_rare_seen::BIGINT AS n_rare_required_seen
    FROM base b
    JOIN scans sc ON sc.scan_id = b.scan_id
    JOIN operators o ON o.operator_id = sc.operator_id
    JOIN lab ON lab.scan_id = b.scan_id
    LEFT JOIN ent ON ent.scan_id = b.scan_id
    LEFT JOIN fz ON fz.scan_id = b.scan_id
    ORDER BY b.scan_id
    """
    n_req = len(required)
    frame = store.query_df(sql, [
        *params, required, list(taxonomy.FASP_REQUIRED_RARE), list(reference),
        n_req, n_req, ref_string, ref_string,
    ])
    for column in ("fasp_coverage", "time_to_full_coverage_min", "transition_entropy_rate"):
        frame[column] = frame[column].astype("float64")
    log.debug("scan_features: %d scans", len(frame))
    return frame.reset_index(drop=True)


def sequence_ctes(selection: EventSelection, *, skip_background: bool = False
                  ) -> tuple[str, list]:
    """SQL common table expressions of the merged sequences, and their parameters.

    Prefix a query with ``WITH`` and the returned text to read ``sel`` (the selection), ``ev``
    (events in order, with ``dur_s``, ``new_seg`` (1 where a segment of the merged sequence
    begins), ``next_label`` and ``next_start``), ``merged`` (``scan_id, seg_id, label,
    start_s, end_s``: one row per segment) and ``tcount`` (``scan_id, from_label, to_label,
    n``).

    Parameters
    ----------
    selection : EventSelection
    skip_background : bool, optional
        Drop background (``Bk``) events before merging, so ``HeD, Bk, HeD`` becomes one ``HeD``
        segment and transitions go from structure to structure.
    """
    cte, params = selection.cte()
    where = f"WHERE label <> '{BACKGROUND}'" if skip_background else ""
    return f"{cte},\n{_EVENTS_SQL.format(where=where)},\n{_MERGED_SQL}", params


def transitions(store: Store, selection: EventSelection, *,
                skip_background: bool = False) -> pd.DataFrame:
    """Counts of transitions between categories in each scan's merged sequence.

    Parameters
    ----------
    store : Store
    selection : EventSelection
    skip_background : bool, optional
        Drop background (``Bk``) events before merging (see `sequence_ctes`).

    Returns
    -------
    pandas.DataFrame
        Columns ``scan_id, operator_id, group, from_label, to_label, n``: how often the merged
        sequence of the scan goes from ``from_label`` straight to ``to_label`` (never equal).
        Scans with a single segment have no rows.
    """
    ctes, params = sequence_ctes(selection, skip_background=skip_background)
    sql = f"""
    WITH {ctes}
    SELECT t.scan_id, sc.operator_id, o.grp AS "group", t.from_label, t.to_label, t.n::BIGINT AS n
    FROM tcount t
    JOIN scans sc ON sc.scan_id = t.scan_id
    JOIN operators o ON o.operator_id = sc.operator_id
    ORDER BY t.scan_id, t.from_label, t.to_label
    """
    return store.query_df(sql, params).reset_index(drop=True)


def merged_sequences(store: Store, selection: EventSelection, *,
                     skip_background: bool = False) -> pd.DataFrame:
    """Each scan's merged sequence, one row per segment.

    Parameters
    ----------
    store : Store
    selection : EventSelection
    skip_background : bool, optional
        Drop background (``Bk``) events before merging (see `sequence_ctes`).

    Returns
    -------
    pandas.DataFrame
        Columns ``scan_id, operator_id, group, seg_id`` (1, 2, ... within the scan), ``label``,
        ``start_s, end_s`` (seconds: start of the segment's first event, end of its last).
    """
    ctes, params = sequence_ctes(selection, skip_background=skip_background)
    sql = f"""
    WITH {ctes}
    SELECT m.scan_id, sc.operator_id, o.grp AS "group", m.seg_id::BIGINT AS seg_id, m.label,
           m.start_s, m.end_s
    FROM merged m
    JOIN scans sc ON sc.scan_id = m.scan_id
    JOIN operators o ON o.operator_id = sc.operator_id
    ORDER BY m.scan_id, m.seg_id
    """
    return store.query_df(sql, params).reset_index(drop=True)
