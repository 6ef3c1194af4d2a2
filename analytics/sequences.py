"""Sequences of categories: transition matrices and their group test, n-grams and the
directly-follows graph.

Every function reads the merged sequences of `analytics.features.sequence_ctes` (consecutive
events of one label are one segment), so transitions go from one category to another.
Transition matrices are compared between groups by permuting operators, not scans: an
operator's scans are not independent.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from analytics.features import sequence_ctes
from analytics.groups import GroupError, UnknownGroupError, groups_present, resolve_groups
from analytics.warnings import DegenerateDataWarning
from fetal_analytics import taxonomy
from fetal_analytics.checks import check_choice
from fetal_analytics.results import Result

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from analytics.selection import EventSelection
    from fetal_analytics.store import Store

__all__ = [
    "DISTANCES",
    "TransitionTest",
    "directly_follows_graph",
    "ngrams",
    "transition_matrices",
    "transition_permutation_test",
    "write_dfg",
]

log = logging.getLogger(__name__)

DISTANCES = ("total_variation", "frobenius")
"""Distances between transition matrices of `transition_permutation_test`."""

@dataclass(frozen=True)
class TransitionTest(Result):
    """A permutation test of the difference between two groups' transition matrices.

    Attributes
    ----------
    statistic : float
        Distance between the groups' smoothed transition matrices: the mean over rows of the
        total variation distance (half the L1 distance, in [0, 1]) or the Frobenius norm.
    p : float
        ``(1 + #{permuted >= observed}) / (1 + n_perm)``; NaN when a group has fewer than 2
        operators.
    distance : str
        'total_variation' or 'frobenius'.
    groups : tuple of str
        The two groups.
    n_perm : int
        Permutations of the group labels over operators.
    n_operators : dict of str to int
        Operators per group.
    alpha : float
        Laplace smoothing added to each off-diagonal transition count.
    null_distribution : numpy.ndarray
        The statistic of each permutation, shape ``(n_perm,)`` (left out of `to_dict`).
    selection : str
        The events compared (`EventSelection.description`).
    """

    statistic: float
    p: float
    distance: str
    groups: tuple[str, ...]
    n_perm: int
    n_operators: dict[str, int]
    alpha: float
    null_distribution: np.ndarray = field(repr=False, compare=False,
                                          metadata={"serialise": False})
    selection: str = ""


# --- transitions ---------------------------------------------------------------------------------

def _operator_transition_counts(
        store: Store, selection: EventSelection, *, groups: Sequence[str] | None,
        categories: Sequence[str] | None, skip_background: bool,
) -> tuple[pd.DataFrame, tuple[str, ...], np.ndarray]:
    """Per operator (with scans in the selection): its group and its transition counts.

    Returns the operators (``operator_id, group``), the categories and counts of shape
    ``(n_operators, K, K)`` (row: from, column: to).
    """
    import numpy as np

    ctes, params = sequence_ctes(selection, skip_background=skip_background)
    counts = store.query_df(f"""
        WITH {ctes}
        SELECT sc.operator_id, t.from_label, t.to_label, sum(t.n)::BIGINT AS n
        FROM tcount t JOIN scans sc ON sc.scan_id = t.scan_id
        GROUP BY ALL""", params)
    ops = store.query_df(f"""
        WITH {ctes}
        SELECT DISTINCT sc.operator_id, o.grp AS "group"
        FROM merged m JOIN scans sc ON sc.scan_id = m.scan_id
        JOIN operators o ON o.operator_id = sc.operator_id
        ORDER BY o.grp, sc.operator_id""", params)
    if groups is not None:
        ops = ops[ops["group"].isin(list(groups))].reset_index(drop=True)
    if categories is None:
        seen = set(counts["from_label"]) | set(counts["to_label"])
        cats = tuple(c for c in taxonomy.codes() if c in seen)
    else:
        cats = tuple(dict.fromkeys(taxonomy.validate_code(c) for c in categories))
    index = {c: i for i, c in enumerate(cats)}
    op_index = {o: i for i, o in enumerate(ops["operator_id"])}
    tensor = np.zeros((len(ops), len(cats), len(cats)))
    keep = (counts["operator_id"].isin(op_index) & counts["from_label"].isin(index)
            & counts["to_label"].isin(index))
    kept = counts[keep]
    np.add.at(tensor, (kept["operator_id"].map(op_index).to_numpy(dtype=int),
                       kept["from_label"].map(index).to_numpy(dtype=int),
                       kept["to_label"].map(index).to_numpy(dtype=int)),
              kept["n"].to_numpy(dtype=float))
    return ops, cats, tensor


def _smooth(counts: np.ndarray, alpha: float) -> np.ndarray:
    """Row-stochastic matrices from counts (..., K, K): ``alpha`` added off the diagonal.

    Merged sequences never repeat a label, so the diagonal is a structural zero and stays 0.
    Rows without counts (and ``alpha == 0``) are NaN.
    """
    import numpy as np

    k = counts.shape[-1]
    off = 1.0 - np.eye(k)
    smoothed = (counts + alpha) * off
    totals = smoothed.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, smoothed / totals, np.nan)


def transition_matrices(store: Store, selection: EventSelection, *, alpha: float = 1.0,
                        groups: Sequence[str] | None = None,
                        categories: Sequence[str] | None = None,
                        skip_background: bool = False) -> dict[str, pd.DataFrame]:
    """Each group's first-order transition matrix over the merged label sequences.

    Counts of transitions from each category to the next, pooled over the group's scans, with
    Laplace smoothing: ``P[i, j] = (N[i, j] + alpha) / (N[i] + alpha * (K - 1))`` for ``j != i``
    and 0 on the diagonal (a merged sequence never repeats a label).

    Parameters
    ----------
    store : Store
    selection : EventSelection
    alpha : float, optional
        Pseudo-count added to each off-diagonal cell, >= 0.
    groups : sequence of str, optional
        The groups (default: every group present).
    categories : sequence of str, optional
        Rows and columns (default: the labels that occur in the selection's sequences, in
        taxonomy order). Transitions from or to other labels are left out.
    skip_background : bool, optional
        Drop background (``Bk``) events before merging.

    Returns
    -------
    dict of str to pandas.DataFrame
        Group -> K x K row-stochastic matrix (index: from, columns: to). A row without counts
        and ``alpha == 0`` is NaN.

    Raises
    ------
    UnknownGroupError
        A group of `groups` has no scans in the selection.
    ValueError
        `alpha` is negative.
    """
    import pandas as pd

    if not alpha >= 0:
        raise ValueError(f"`alpha` must be >= 0, got {alpha!r}")
    present = groups_present(store, selection)
    if groups is not None:
        wanted = (groups,) if isinstance(groups, str) else tuple(groups)
        absent = [g for g in wanted if g not in present]
        if absent:
            raise UnknownGroupError(
                f"no operator of group(s) {', '.join(map(repr, absent))} has scans in the "
                f"selection; groups present: {', '.join(map(repr, present))}")
    else:
        wanted = tuple(present)
    ops, cats, tensor = _operator_transition_counts(
        store, selection, groups=wanted, categories=categories, skip_background=skip_background)
    matrices = {}
    for g in wanted:
        pooled = tensor[(ops["group"] == g).to_numpy()].sum(axis=0)
        matrix = pd.DataFrame(_smooth(pooled, alpha), index=list(cats), columns=list(cats))
        matrix.index.name, matrix.columns.name = "from_label", "to_label"
        matrices[g] = matrix
    return matrices


def _distance(p: np.ndarray, q: np.ndarray, distance: str) -> np.ndarray:
    """Distance between stacks of matrices (..., K, K), ignoring NaN rows."""
    import numpy as np

    diff = p - q
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if distance == "total_variation":
            return np.nanmean(0.5 * np.abs(diff).sum(axis=-1), axis=-1)
        return np.sqrt(np.nansum(diff ** 2, axis=(-2, -1)))


def transition_permutation_test(
        store: Store, selection: EventSelection, *,
        groups: tuple[str, str] = ("expert", "trainee"), n_perm: int = 1000, seed: int = 0,
        alpha: float = 1.0, distance: str = "total_variation",
        skip_background: bool = False) -> TransitionTest:
    """Do two groups' transition matrices differ? A permutation test over operators.

    The statistic is the distance between the groups' smoothed matrices (see
    `transition_matrices`); its null distribution comes from shuffling the group labels over
    the operators (each operator keeps all their scans), so dependence within an operator is
    respected.

    Parameters
    ----------
    store : Store
    selection : EventSelection
    groups : (str, str), optional
        The two groups.
    n_perm : int, optional
        Permutations.
    seed : int, optional
        Seed of the permutations.
    alpha : float, optional
        Laplace pseudo-count (> 0 keeps every row defined).
    distance : {'total_variation', 'frobenius'}, optional
        Mean over rows of the total variation distance, or the Frobenius norm of the difference.
    skip_background : bool, optional
        Drop background (``Bk``) events before merging.

    Returns
    -------
    TransitionTest

    Raises
    ------
    SingleGroupError, UnknownGroupError
        Not two distinct groups present in the selection.

    Warns
    -----
    DegenerateDataWarning
        A group has fewer than 2 operators: p is NaN.
    """
    import numpy as np

    check_choice("distance", distance, DISTANCES)
    if not alpha >= 0:
        raise ValueError(f"`alpha` must be >= 0, got {alpha!r}")
    if int(n_perm) != n_perm or n_perm < 1:
        raise ValueError(f"`n_perm` must be a positive integer, got {n_perm!r}")
    present = groups_present(store, selection)
    chosen = resolve_groups(present, groups)
    if len(chosen) != 2:
        raise GroupError(f"`groups` must name exactly two groups, got {', '.join(chosen)}")
    ops, _, tensor = _operator_transition_counts(
        store, selection, groups=chosen, categories=None, skip_background=skip_background)
    k = tensor.shape[-1]
    flat = tensor.reshape(len(ops), k * k)
    total = flat.sum(axis=0)
    first = (ops["group"] == chosen[0]).to_numpy(dtype=float)

    def statistic(assign: np.ndarray) -> np.ndarray:
        a = assign @ flat
        shape = (*assign.shape[:-1], k, k)
        return _distance(_smooth(a.reshape(shape), alpha),
                         _smooth((total - a).reshape(shape), alpha), distance)

    observed = float(statistic(first))
    rng = np.random.default_rng(seed)
    perms = rng.permuted(np.tile(first, (int(n_perm), 1)), axis=1)
    null = statistic(perms)
    n_ops = {g: int((ops["group"] == g).sum()) for g in chosen}
    if min(n_ops.values()) < 2:
        warnings.warn(
            f"a permutation test needs at least 2 operators per group, got "
            f"{', '.join(f'{g}: {n}' for g, n in n_ops.items())}: p is NaN",
            DegenerateDataWarning, stacklevel=2)
        p = math.nan
    else:
        p = float((1 + np.sum(null >= observed - 1e-12)) / (1 + len(null)))
    return TransitionTest(statistic=observed, p=p, distance=distance, groups=chosen,
                          n_perm=int(n_perm), n_operators=n_ops, alpha=float(alpha),
                          null_distribution=null, selection=selection.description)


# --- n-grams and directly-follows graphs ---------------------------------------------------

NGRAM_SEPARATOR = " > "
"""Separator of the labels of an n-gram, e.g. ``"Br > HeD"``."""


def ngrams(store: Store, selection: EventSelection, *, n: int = 2, top: int | None = 10,
           by_group: bool = True, skip_background: bool = False) -> pd.DataFrame:
    """The most frequent runs of `n` consecutive categories in the merged sequences.

    Parameters
    ----------
    store : Store
    selection : EventSelection
    n : int, optional
        Length of the n-grams, 1 to 10 (2: transitions, 3: triples).
    top : int or None, optional
        Keep the `top` most frequent per group (None: all).
    by_group : bool, optional
        Count per group; else over the whole selection (``group`` is then ``"all"``).
    skip_background : bool, optional
        Drop background (``Bk``) events before merging.

    Returns
    -------
    pandas.DataFrame
        Columns ``group, ngram`` (labels joined by ``" > "``), ``count`` (occurrences over all
        scans), ``share`` (of all n-grams of the group, in [0, 1]), ``n_scans`` (scans where it
        occurs); sorted by group, then count (descending), then n-gram.
    """
    if int(n) != n or not 1 <= n <= 10:
        raise ValueError(f"`n` must be an integer from 1 to 10, got {n!r}")
    if top is not None and (int(top) != top or top < 1):
        raise ValueError(f"`top` must be a positive integer or None, got {top!r}")
    ctes, params = sequence_ctes(selection, skip_background=skip_background)
    leads = ", ".join(f"lead(label, {k}) OVER w AS l{k}" for k in range(1, n))
    parts = " || ".join(["label", *(f"'{NGRAM_SEPARATOR}' || l{k}" for k in range(1, n))])
    last = f"l{n - 1}" if n > 1 else "label"
    group_sql = "o.grp" if by_group else "'all'"
    sql = f"""
    WITH {ctes},
    grams AS (
        SELECT scan_id, {parts} AS ngram, {last} AS last_label
        FROM (SELECT scan_id, label{', ' + leads if leads else ''} FROM merged
              WINDOW w AS (PARTITION BY scan_id ORDER BY seg_id))
    ),
    counted AS (
        SELECT {group_sql} AS "group", g.ngram, count(*) AS count,
               count(DISTINCT g.scan_id) AS n_scans
        FROM grams g JOIN scans sc ON sc.scan_id = g.scan_id
        JOIN operators o ON o.operator_id = sc.operator_id
        WHERE g.last_label IS NOT NULL
        GROUP BY ALL
    ),
    ranked AS (
        SELECT *, count / sum(count) OVER (PARTITION BY "group") AS share,
               row_number() OVER (PARTITION BY "group" ORDER BY count DESC, ngram) AS rank
        FROM counted
    )
    SELECT "group", ngram, count::BIGINT AS count, share, n_scans::BIGINT AS n_scans
    FROM ranked WHERE ? IS NULL OR rank <= ?
    ORDER BY "group", rank
    """
    return store.query_df(sql, [*params, top, top]).reset_index(drop=True)


def directly_follows_graph(store: Store, selection: EventSelection, *,
                           group: str | None = None,
                           skip_background: bool = False) -> pd.DataFrame:
    """The directly-follows graph of the merged sequences: which category follows which.

    Parameters
    ----------
    store : Store
    selection : EventSelection
    group : str, optional
        Only scans of this group's operators (default: all).
    skip_background : bool, optional
        Drop background (``Bk``) events before merging, so the graph links structures.

    Returns
    -------
    pandas.DataFrame
        One row per edge: ``source, target`` (category codes), ``count`` (transitions over all
        scans), ``n_scans`` (scans with the transition), ``mean_gap_s`` (mean unlabelled time
        between the end of ``source`` and the start of ``target``, seconds); sorted by count,
        descending.

    Raises
    ------
    UnknownGroupError
        `group` has no scans in the selection.
    """
    if group is not None:
        present = groups_present(store, selection)
        if group not in present:
            raise UnknownGroupError(
                f"no operator of group {group!r} has scans in the selection; groups present: "
                f"{', '.join(map(repr, present))}")
    ctes, params = sequence_ctes(selection, skip_background=skip_background)
    sql = f"""
    WITH {ctes},
    pairs AS (
        SELECT scan_id, label AS source,
               lead(label) OVER w AS target, lead(start_s) OVER w - end_s AS gap_s
        FROM merged WINDOW w AS (PARTITION BY scan_id ORDER BY seg_id)
    )
    SELECT p.source, p.target, count(*)::BIGINT AS count,
           count(DISTINCT p.scan_id)::BIGINT AS n_scans, avg(p.gap_s) AS mean_gap_s
    FROM pairs p JOIN scans sc ON sc.scan_id = p.scan_id
    JOIN operators o ON o.operator_id = sc.operator_id
    WHERE p.target IS NOT NULL AND (?::VARCHAR IS NULL OR o.grp = ?::VARCHAR)
    GROUP BY p.source, p.target
    ORDER BY count DESC, p.source, p.target
    """
    return store.query_df(sql, [*params, group, group]).reset_index(drop=True)


DFG_FORMATS = {".dot": "dot", ".gv": "dot", ".json": "json"}
"""File suffixes `write_dfg` understands, and the format each means."""


def write_dfg(dfg: pd.DataFrame, path: str | Path, *, title: str | None = None) -> Path:
    """Write a directly-follows graph as Graphviz DOT (``.dot``, ``.gv``) or JSON (``.json``).

    Parameters
    ----------
    dfg : pandas.DataFrame
        The output of `directly_follows_graph` (``source, target, count`` at least).
    path : str or Path
        The file; its suffix chooses the format. Its folder is created when missing.
    title : str, optional
        Graph label (DOT) or ``title`` field (JSON).

    Returns
    -------
    Path
        `path`.

    Raises
    ------
    OutputFormatError
        The suffix is not one of `DFG_FORMATS`.

    Notes
    -----
    DOT nodes take the taxonomy's colours and names; edge width grows with the count. JSON holds
    ``{"title", "nodes": [{"id", "name", "colour"}], "edges": [{"source", "target", "count",
    ...}]}``.
    """
    from fetal_analytics.checks import check_columns
    from fetal_analytics.tabular import table_format

    path = Path(path)
    check_columns(dfg, "dfg", ("source", "target", "count"))
    fmt = table_format(path, formats=DFG_FORMATS)
    path.parent.mkdir(parents=True, exist_ok=True)
    nodes = list(dict.fromkeys([*dfg["source"], *dfg["target"]]))
    known = set(taxonomy.codes())

    def node_info(code: str) -> dict:
        if code in known:
            c = taxonomy.get(code)
            return {"id": code, "name": c.name, "colour": c.colour}
        return {"id": code, "name": code, "colour": "#cccccc"}

    if fmt == "json":
        edges = json.loads(dfg.to_json(orient="records"))
        payload = {"title": title, "nodes": [node_info(n) for n in nodes], "edges": edges}
        path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        return path

    def quote(text: object) -> str:
        return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'

    def quote_lines(*lines: str) -> str:
        return "\\n".join(quote(line)[1:-1] for line in lines).join('""')

    top = max(float(dfg["count"].max()), 1.0) if len(dfg) else 1.0
    lines = ["digraph dfg {", "  rankdir=LR;",
             '  node [shape=box, style="rounded,filled", fontname="Helvetica"];']
    if title:
        lines.append(f"  label={quote(title)}; labelloc=t;")
    for code in nodes:
        info = node_info(code)
        lines.append(f"  {quote(code)} [label={quote_lines(code, info['name'])}, "
                     f"fillcolor={quote(info['colour'] + '80')}];")
    for row in dfg.itertuples(index=False):
        width = 1 + 4 * float(row.count) / top
        lines.append(f"  {quote(row.source)} -> {quote(row.target)} "
                     f"[label={quote(int(row.count))}, penwidth={width:.2f}];")
    lines.append("}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    log.info("wrote the directly-follows graph (%d edges) to %s", len(dfg), path)
    return path

