"""Which events an analysis reads: one labelling of the cohort, chosen by source or by run.

A cohort's labels may come from several runs (one import per batch of scans, a re-labelling of a
few scans). An analysis of a *source* therefore reads, for every scan, the events of the newest
finished run of that source that labelled the scan; an analysis of a *run* reads that run only.
The newest run of a scan is the one that wrote the scan's rows last (``run_scans.written_at``;
ties by run id), so a run imported again under its name becomes the newest.
The selection becomes a SQL common table expression, so every analysis runs inside DuckDB.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fetal_analytics.errors import UserError
from fetal_analytics.queries import ScanFilter
from fetal_analytics.runs import LATEST, SOURCES, list_runs, resolve_run

if TYPE_CHECKING:
    from fetal_analytics.store import Store

__all__ = ["EmptySelectionError", "EventSelection", "default_source", "select"]


class EmptySelectionError(UserError, LookupError):
    """A selection that holds no events (an empty database, a source never imported)."""


@dataclass(frozen=True)
class EventSelection:
    """A choice of events: all scans' newest runs of a source, or one run.

    Attributes
    ----------
    source : {'manual', 'auto'} or None
        The source of the events.
    run_id : int or None
        One run; None means "per scan, the newest finished run of `source`".
    description : str
        For people: "manual labels (newest run per scan)" or "run 3 'labels.csv' (auto)",
        followed by the scan filter where there is one ("...; group expert, from 2024-01-08").
    scans : ScanFilter
        Only the events of these scans (by group, operator and date; default: every scan).
    """

    source: str | None
    run_id: int | None
    description: str
    scans: ScanFilter = field(default_factory=ScanFilter)

    def cte(self, name: str = "sel") -> tuple[str, list]:
        """SQL ``name AS (...)`` selecting ``run_id, scan_id, start_s, end_s, label, confidence``
        of the chosen events, and its parameters. Prefix it with ``WITH``."""
        columns = "e.run_id, e.scan_id, e.start_s, e.end_s, e.label, e.confidence"
        if self.scans.empty:
            scan_filter, filter_params = "", []
        else:
            where, filter_params = self.scans.where("fs", "fo")
            scan_filter = (f"AND e.scan_id IN (SELECT fs.scan_id FROM scans fs JOIN operators fo "
                           f"ON fo.operator_id = fs.operator_id WHERE {where})")
        if self.run_id is not None:
            return (f"{name} AS (SELECT {columns} FROM events e WHERE e.run_id = ? "
                    f"{scan_filter})", [self.run_id, *filter_params])
        return (
            f"""{name} AS (
                SELECT {columns}
                FROM events e
                JOIN (SELECT rs.scan_id, rs.run_id
                      FROM run_scans rs JOIN runs r USING (run_id)
                      WHERE r.source = ? AND r.status = 'finished'
                      QUALIFY row_number() OVER (PARTITION BY rs.scan_id
                                                 ORDER BY rs.written_at DESC, rs.run_id DESC) = 1
                     ) newest
                  ON e.scan_id = newest.scan_id AND e.run_id = newest.run_id
                WHERE TRUE {scan_filter}
            )""",
            [self.source, *filter_params],
        )


def default_source(store: Store) -> str:
    """The source analyses read unless told otherwise: ``"auto"`` where a finished automatic
    run has events (full timelines), else ``"manual"``.

    A run still being written (``running``) or one that failed does not count, so a labelling
    job in progress never hides the manual labels. The CLI and the dashboard share this rule.
    """
    finished_auto = any(r.status == "finished" and r.n_events
                        for r in list_runs(store, source="auto"))
    return "auto" if finished_auto else "manual"


def select(store: Store, *, source: str | None = None, run: str | int | None = None,
           scans: ScanFilter | None = None, require_events: bool = True) -> EventSelection:
    """Choose the events to analyse.

    Parameters
    ----------
    store : Store
    source : {'manual', 'auto'}, optional
        Per scan, the newest finished run of this source (default: `default_source`). Also
        restricts `run`.
    run : str or int, optional
        `LATEST` (``"latest"``, the default when None: per scan, the newest finished run of
        `source`), `LAST` (``"last"``: the single newest finished run), a run id or a run name
        (of any source unless `source` is given).
    scans : ScanFilter, optional
        Only the events of the scans it keeps (by group, operator, date; default: all scans).
    require_events : bool, optional
        Raise `EmptySelectionError` when the selection holds no events.

    Raises
    ------
    UnknownRunError
        `run` names no run.
    EmptySelectionError
        Nothing to analyse, with what to do.
    ValueError
        An unknown source.
    """
    if source is not None and source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    if run is not None and str(run) != LATEST:
        chosen = resolve_run(store, run, source=source)
        selection = EventSelection(
            chosen.source, chosen.run_id,
            f"run {chosen.run_id} {chosen.name!r} ({chosen.source})")
    else:
        source = source or default_source(store)
        selection = EventSelection(source, None, f"{source} labels (newest run per scan)")
    if scans is not None and not scans.empty:
        selection = EventSelection(selection.source, selection.run_id,
                                   f"{selection.description}; {scans.describe()}", scans)
    if require_events:
        cte, params = selection.cte()
        if not store.scalar(f"WITH {cte} SELECT count(*) FROM sel", params):
            raise EmptySelectionError(_empty_message(store, selection))
    return selection


def _empty_message(store: Store, selection: EventSelection) -> str:
    """Why a selection holds no events, and what to do."""
    if selection.run_id is not None or not selection.scans.empty:
        return f"{selection.description} has no events in {store.path}"
    runs = list_runs(store, source=selection.source)
    unfinished = [r for r in runs if r.status != "finished" and r.n_events]
    if unfinished:
        listing = ", ".join(f"{r.run_id} {r.name!r} ({r.status})" for r in unfinished)
        return (f"no finished {selection.source} run has events in {store.path} (runs "
                f"{listing}): wait for a running run to finish, or resume it")
    hint = (f"label videos with `fetal-analytics label --db {store.path} ...`"
            if selection.source == "auto" else
            f"import some with `fetal-analytics ingest labels FILE --db {store.path}`")
    return f"no events for {selection.description} in {store.path}: {hint}"
