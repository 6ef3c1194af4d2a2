"""The read layer: what a command, a dashboard view or a report shows of the store.

Every face of the package (the CLI, the dashboard, the reports) reads the store through these
functions and the analyses of `analytics`; none holds SQL of its own. Each function takes an
open `Store` (read-only is enough), reads one thing and returns a DataFrame or a result object
with named fields. Times are seconds from the start of the video, as in the store.

Examples
--------
>>> with Store("cohort.duckdb", read_only=True) as store:        # doctest: +SKIP
...     scans = list_scans(store, groups=["trainee"])
...     events = scan_events(store, scans.scan_id[0])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from fetal_analytics.errors import UserError
from fetal_analytics.results import Result
from fetal_analytics.runs import SOURCES, Run, list_runs, resolve_run

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from fetal_analytics.store import Store

__all__ = [
    "SCAN_COLUMNS",
    "Overview",
    "ScanFilter",
    "ScanTimeline",
    "UnknownScanError",
    "WindowProbabilities",
    "list_models",
    "list_scans",
    "newest_runs_of_scan",
    "overview",
    "run_pairs",
    "scan_events",
    "scan_freezes",
    "scan_timeline",
    "window_probabilities",
]

SCAN_COLUMNS = ("scan_id", "operator_id", "group", "years_experience", "acquired_at",
                "duration_s", "fps", "n_frames", "video_path", "video_present", "manual_runs",
                "auto_runs")
"""Columns of `list_scans`."""


class UnknownScanError(UserError, LookupError):
    """A scan id that is not in the store."""


@dataclass(frozen=True)
class Overview(Result):
    """What a database holds, in counts.

    Attributes
    ----------
    db : str
        The database file.
    schema_version : int
    operators, scans, runs, events : int
        Rows of those tables.
    manual_events, auto_events : int
        Events of manual and of automatic runs.
    scans_with_video : int
        Scans whose video file is on disk.
    groups : dict of str to int
        Operators per group.
    first_scan, last_scan : datetime or None
        Dates of the earliest and latest scan (None where no scan has a date).
    """

    db: str
    schema_version: int
    operators: int
    scans: int
    runs: int
    events: int
    manual_events: int
    auto_events: int
    scans_with_video: int
    groups: dict[str, int]
    first_scan: datetime | None
    last_scan: datetime | None


def overview(store: Store) -> Overview:
    """Counts of what the store holds (the ``info`` command, the dashboard's landing numbers)."""
    counts = store.counts()
    runs = list_runs(store)
    by_source = {s: sum(r.n_events for r in runs if r.source == s) for s in SOURCES}
    groups = dict(store.con.execute(
        "SELECT grp, count(*) FROM operators GROUP BY grp ORDER BY grp").fetchall())
    first, last = store.con.execute("SELECT min(acquired_at), max(acquired_at) FROM scans"
                                    ).fetchone()
    paths = [row[0] for row in store.con.execute(
        "SELECT video_path FROM scans WHERE video_path IS NOT NULL").fetchall()]
    return Overview(
        db=str(store.path), schema_version=store.schema_version, **counts,
        manual_events=by_source["manual"], auto_events=by_source["auto"],
        scans_with_video=sum(Path(p).is_file() for p in paths), groups=groups,
        first_scan=first, last_scan=last)


def _as_tuple(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return (value,) if isinstance(value, str) else tuple(value)


def _as_date(value: date | datetime | str | None) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ValueError(f"a date must be YYYY-MM-DD, got {value!r}") from None


@dataclass(frozen=True)
class ScanFilter:
    """Which scans to keep: by the operator's group, the operator and the date.

    Attributes
    ----------
    groups, operators : tuple of str or None
        Only scans of operators of these groups, or of these operators (None: all).
    date_from, date_to : date or None
        Only scans acquired on or after `date_from` and on or before `date_to`, whole days.
        Scans without a date are left out when either is given.

    Examples
    --------
    >>> ScanFilter.of(groups="expert", date_from="2024-01-08").describe()
    'group expert, from 2024-01-08'
    """

    groups: tuple[str, ...] | None = None
    operators: tuple[str, ...] | None = None
    date_from: date | None = None
    date_to: date | None = None

    @classmethod
    def of(cls, *, groups: str | Sequence[str] | None = None,
           operators: str | Sequence[str] | None = None,
           date_from: date | datetime | str | None = None,
           date_to: date | datetime | str | None = None) -> ScanFilter:
        """A filter from loose values: a single string or a sequence; dates as ISO strings.

        Raises
        ------
        ValueError
            A date that is not ``YYYY-MM-DD``.
        """
        return cls(_as_tuple(groups), _as_tuple(operators), _as_date(date_from),
                   _as_date(date_to))

    @property
    def empty(self) -> bool:
        """True when the filter keeps every scan."""
        return self == ScanFilter()

    def where(self, scan: str = "s", operator: str = "o") -> tuple[str, list]:
        """SQL condition on the aliases of ``scans`` (`scan`) and ``operators`` (`operator`),
        and its parameters."""
        return (
            f"""(?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], {operator}.grp))
            AND (?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], {scan}.operator_id))
            AND (?::DATE IS NULL OR {scan}.acquired_at >= ?::DATE)
            AND (?::DATE IS NULL OR {scan}.acquired_at < ?::DATE + INTERVAL 1 DAY)""",
            [*[list(self.groups) if self.groups is not None else None] * 2,
             *[list(self.operators) if self.operators is not None else None] * 2,
             *[self.date_from] * 2, *[self.date_to] * 2])

    def describe(self) -> str:
        """For people: ``"group expert, operator OP01, from 2024-01-08 to 2024-02-01"``."""
        parts = []
        if self.groups is not None:
            parts.append(f"group {', '.join(self.groups)}")
        if self.operators is not None:
            parts.append(f"operator {', '.join(self.operators)}")
        dates = [f"{word} {day.isoformat()}" for word, day in
                 (("from", self.date_from), ("to", self.date_to)) if day is not None]
        if dates:
            parts.append(" ".join(dates))
        return ", ".join(parts)


def list_scans(store: Store, *, groups: str | Sequence[str] | None = None,
               operators: str | Sequence[str] | None = None,
               date_from: date | datetime | str | None = None,
               date_to: date | datetime | str | None = None) -> pd.DataFrame:
    """The scans, with their operator, group, date, duration, video and labelling runs.

    Parameters
    ----------
    store : Store
    groups, operators : str or sequence of str, optional
        Only scans of operators of these groups, or of these operators.
    date_from, date_to : date, datetime or ISO string, optional
        Only scans acquired on or after `date_from` and on or before `date_to` (whole days:
        a date includes the day). Scans without a date are left out when either is given.

    Returns
    -------
    pandas.DataFrame
        One row per scan, sorted by date then scan id, with the columns `SCAN_COLUMNS`:
        ``duration_s`` (seconds; NaN until a video is decoded or labels give it),
        ``video_present`` (the video file exists on this machine), ``manual_runs`` and
        ``auto_runs`` (names of the finished runs with events of the scan, oldest first).
    """
    import pandas as pd

    where, params = ScanFilter.of(groups=groups, operators=operators, date_from=date_from,
                                  date_to=date_to).where()
    frame = store.query_df(
        f"""
        WITH labelled AS (
            SELECT e.scan_id, r.source, r.run_id, r.name
            FROM events e JOIN runs r USING (run_id)
            WHERE r.status = 'finished'
            GROUP BY ALL
        )
        SELECT s.scan_id, s.operator_id, o.grp AS "group", o.years_experience, s.acquired_at,
               s.duration_s, s.fps, s.n_frames, s.video_path,
               coalesce(list(l.name ORDER BY l.run_id) FILTER (WHERE l.source = 'manual'), [])
                 AS manual_runs,
               coalesce(list(l.name ORDER BY l.run_id) FILTER (WHERE l.source = 'auto'), [])
                 AS auto_runs
        FROM scans s
        JOIN operators o USING (operator_id)
        LEFT JOIN labelled l USING (scan_id)
        WHERE {where}
        GROUP BY ALL
        ORDER BY s.acquired_at NULLS LAST, s.scan_id
        """, params)
    frame["video_present"] = pd.Series(
        [bool(p) and Path(p).is_file() for p in frame["video_path"].fillna("")],
        index=frame.index, dtype=bool)
    for column in ("manual_runs", "auto_runs"):
        frame[column] = frame[column].map(list)
    return frame[list(SCAN_COLUMNS)].reset_index(drop=True)


def _check_scan(store: Store, scan_id: str) -> None:
    if not store.scalar("SELECT count(*) FROM scans WHERE scan_id = ?", [scan_id]):
        raise UnknownScanError(f"no scan {scan_id!r} in {store.path}")


def newest_runs_of_scan(store: Store, scan_id: str) -> list[Run]:
    """The newest finished manual run and the newest finished automatic run with events of
    the scan (those that exist), manual first: the default rows of a scan's timeline. Newest
    means the run that wrote the scan's rows last."""
    _check_scan(store, scan_id)
    rows = store.con.execute(
        """SELECT r.source, rs.run_id FROM run_scans rs JOIN runs r USING (run_id)
           WHERE rs.scan_id = ? AND r.status = 'finished'
             AND EXISTS (SELECT 1 FROM events e WHERE e.run_id = rs.run_id
                         AND e.scan_id = rs.scan_id)
           QUALIFY row_number() OVER (PARTITION BY r.source
                                      ORDER BY rs.written_at DESC, rs.run_id DESC) = 1""",
        [scan_id]).fetchall()
    newest = dict(rows)
    by_id = {r.run_id: r for r in list_runs(store)}
    return [by_id[newest[s]] for s in SOURCES if s in newest]


def _runs(store: Store, scan_id: str, runs: Sequence[Run | str | int] | None) -> list[Run]:
    if runs is None:
        return newest_runs_of_scan(store, scan_id)
    return [r if isinstance(r, Run) else resolve_run(store, r) for r in runs]


def scan_events(store: Store, scan_id: str, runs: Sequence[Run | str | int] | None = None
                ) -> pd.DataFrame:
    """One scan's events in chosen runs, run by run.

    Parameters
    ----------
    store : Store
    scan_id : str
    runs : sequence of Run, run id or run name, optional
        Default: `newest_runs_of_scan` (the newest finished manual and automatic runs).

    Returns
    -------
    pandas.DataFrame
        Columns ``run_id, run_name, source, start_s, end_s, label, confidence``, in the order
        of `runs`, then by start time. A run without events of the scan has no rows.

    Raises
    ------
    UnknownScanError, UnknownRunError
    """
    _check_scan(store, scan_id)
    chosen = _runs(store, scan_id, runs)
    frame = store.query_df(
        """SELECT e.run_id, r.name AS run_name, r.source, e.start_s, e.end_s, e.label,
                  e.confidence
           FROM events e JOIN runs r USING (run_id)
           WHERE e.scan_id = ? AND list_contains(?::INTEGER[], e.run_id)
           ORDER BY list_position(?::INTEGER[], e.run_id), e.start_s, e.end_s""",
        [scan_id, *[[r.run_id for r in chosen]] * 2])
    return frame.reset_index(drop=True)


@dataclass(frozen=True)
class WindowProbabilities(Result):
    """A labelling run's stored window probabilities for one scan.

    Attributes
    ----------
    run_id : int
    scan_id : str
    classes : tuple of str
        Taxonomy codes of the probability columns (the run's model classes).
    times_s : (n_windows,) ndarray
        Window centres, seconds, increasing.
    probs : dict of str to (n_windows, n_classes) ndarray
        Per stream (``fused``, ``fr4``, ``2d``, ...), the probabilities at `times_s`.
    """

    run_id: int
    scan_id: str
    classes: tuple[str, ...]
    times_s: np.ndarray
    probs: dict[str, np.ndarray]

    frame_field: ClassVar[str | None] = None

    def to_frame(self, stream: str | None = None) -> pd.DataFrame:
        """Long table ``stream, t_s, label, prob`` (one stream, or all)."""
        import numpy as np
        import pandas as pd

        parts = [pd.DataFrame({"stream": name, "t_s": np.repeat(self.times_s, len(self.classes)),
                               "label": np.tile(self.classes, len(self.times_s)),
                               "prob": values.reshape(-1)})
                 for name, values in self.probs.items() if stream in (None, name)]
        return (pd.concat(parts, ignore_index=True) if parts else
                pd.DataFrame(columns=["stream", "t_s", "label", "prob"]))


def window_probabilities(store: Store, scan_id: str, run: Run | str | int) -> WindowProbabilities:
    """The window probabilities a labelling run stored for a scan (empty when none).

    Raises
    ------
    UnknownScanError, UnknownRunError
    """
    import numpy as np

    _check_scan(store, scan_id)
    chosen = run if isinstance(run, Run) else resolve_run(store, run)
    classes = chosen.params.get("classes")
    if classes is None and chosen.model_id is not None:
        classes = store.scalar("SELECT classes FROM models WHERE model_id = ?",
                               [chosen.model_id])
    frame = store.query_df(
        "SELECT stream, t_s, probs FROM window_probs WHERE run_id = ? AND scan_id = ? "
        "ORDER BY stream, t_s", [chosen.run_id, scan_id])
    probs = {name: np.stack(part["probs"].to_numpy()).astype(np.float32)
             for name, part in frame.groupby("stream", sort=True)}
    times = (frame.loc[frame["stream"] == next(iter(probs)), "t_s"].to_numpy(dtype=float)
             if probs else np.zeros(0))
    return WindowProbabilities(run_id=chosen.run_id, scan_id=scan_id,
                               classes=tuple(classes or ()), times_s=times, probs=probs)


def scan_freezes(store: Store, scan_id: str, run: Run | str | int | None = None
                 ) -> pd.DataFrame:
    """The freeze frames stored for a scan, by one run.

    Parameters
    ----------
    store : Store
    scan_id : str
    run : Run, run id or run name, optional
        The labelling run whose freezes to read. Default: the newest finished run that looked
        for freezes in the scan (as the workflow features count them), else freezes stored
        without a run.

    Returns
    -------
    pandas.DataFrame
        Columns ``run_id, t_s, end_s, frame, method``, by time: where the image was frozen
        (seconds; ``end_s`` where known), the frame index and how the freeze was found.
    """
    _check_scan(store, scan_id)
    if run is not None:
        chosen = run if isinstance(run, Run) else resolve_run(store, run)
        owner = chosen.run_id
    else:
        owner = store.scalar(
            """SELECT rs.run_id FROM run_scans rs JOIN runs r USING (run_id)
               WHERE rs.scan_id = ? AND rs.freezes_detected AND r.status = 'finished'
               ORDER BY rs.written_at DESC, rs.run_id DESC LIMIT 1""", [scan_id])
    return store.query_df(
        "SELECT run_id, t_s, end_s, frame, method FROM freeze_frames "
        "WHERE scan_id = ? AND run_id IS NOT DISTINCT FROM ? ORDER BY t_s",
        [scan_id, owner]).reset_index(drop=True)


def list_models(store: Store) -> pd.DataFrame:
    """The models registered by labelling runs.

    Returns
    -------
    pandas.DataFrame
        Columns ``model_id, path, sha256, arch, input_shape, classes, metrics_json,
        created_at, n_runs``, oldest first.
    """
    return store.query_df(
        """SELECT m.model_id, m.path, m.sha256, m.arch, m.input_shape, m.classes,
                  m.metrics_json, m.created_at, count(r.run_id) AS n_runs
           FROM models m LEFT JOIN runs r USING (model_id)
           GROUP BY ALL ORDER BY m.created_at, m.model_id""").reset_index(drop=True)


def run_pairs(store: Store) -> pd.DataFrame:
    """Every pair of a finished manual run and a finished automatic run, with the scans both
    label: the candidates for a manual-vs-automatic comparison.

    Returns
    -------
    pandas.DataFrame
        Columns ``manual_run_id, manual_run, auto_run_id, auto_run, n_scans`` (scans with
        events in both runs), pairs sharing no scan left out; most shared scans first, then the
        newer runs first.
    """
    return store.query_df(
        """WITH labelled AS (
               SELECT DISTINCT e.run_id, r.name, r.source, e.scan_id
               FROM events e JOIN runs r USING (run_id) WHERE r.status = 'finished')
           SELECT m.run_id AS manual_run_id, m.name AS manual_run,
                  a.run_id AS auto_run_id, a.name AS auto_run, count(*) AS n_scans
           FROM labelled m JOIN labelled a
             ON a.scan_id = m.scan_id AND m.source = 'manual' AND a.source = 'auto'
           GROUP BY ALL
           ORDER BY n_scans DESC, manual_run_id DESC, auto_run_id DESC""").reset_index(drop=True)


@dataclass(frozen=True)
class ScanTimeline(Result):
    """One scan's timeline, one row per run: what the paper's figure 1 draws.

    Attributes
    ----------
    scan_id : str
    events : pandas.DataFrame
        `scan_events` with a ``row`` column naming the run: ``"run 3 'truth' (manual)"``.
    rows : list of str
        The rows, top first (in the order of the runs).
    freezes : pandas.DataFrame
        `scan_freezes` (default run): ``run_id, t_s, end_s, frame, method``.
    """

    scan_id: str
    events: pd.DataFrame
    rows: list[str]
    freezes: pd.DataFrame

    frame_field: ClassVar[str] = "events"


def scan_timeline(store: Store, scan_id: str, runs: Sequence[Run | str | int] | None = None
                  ) -> ScanTimeline:
    """The events of a scan in chosen runs, a row per run, and its freezes.

    Parameters
    ----------
    store : Store
    scan_id : str
    runs : sequence of Run, run id or run name, optional
        Default: `newest_runs_of_scan` (the newest finished manual and automatic runs).

    Raises
    ------
    UnknownScanError, UnknownRunError
    UserError
        No run has events of the scan.
    """
    _check_scan(store, scan_id)
    chosen = _runs(store, scan_id, runs)
    if not chosen:
        raise UnknownScanError(f"no finished run has events of scan {scan_id!r} in "
                               f"{store.path}: import labels or label its video first")
    events = scan_events(store, scan_id, chosen)
    names = {r.run_id: f"run {r.run_id} {r.name!r} ({r.source})" for r in chosen}
    events["row"] = events["run_id"].map(names)
    return ScanTimeline(scan_id=scan_id, events=events, rows=list(names.values()),
                        freezes=scan_freezes(store, scan_id))
