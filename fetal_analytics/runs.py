"""Runs: every import of labels and every automatic labelling run is one run.

A run's `source` (manual or auto) says where its events come from, so comparing manual with
automatic labels is a join on runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from fetal_analytics.errors import UserError
from fetal_analytics.results import Result

if TYPE_CHECKING:
    from fetal_analytics.store import Store

__all__ = ["LAST", "LATEST", "SOURCES", "Run", "UnknownRunError", "list_runs", "resolve_run"]

SOURCES = ("manual", "auto")
"""Where a run's events come from: a person (imported labels) or a program."""

LATEST = "latest"
"""Run reference meaning, for each scan, the newest finished run that labelled it (so one
analysis may read several runs: one import per batch of scans, a re-labelling of a few)."""

LAST = "last"
"""Run reference meaning the single newest finished run."""


class UnknownRunError(UserError, LookupError):
    """A run reference that matches no run (or more than one)."""


@dataclass(frozen=True)
class Run(Result):
    """One run: a row of the ``runs`` table with its counts.

    Attributes
    ----------
    run_id : int
    name : str
    source : {'manual', 'auto'}
    kind : {'import', 'label'}
        An import of a labels file, or a labelling by a model.
    status : {'running', 'finished', 'failed'}
    started_at, finished_at : datetime
        ``finished_at`` is None while the run is running.
    n_scans, n_events : int
        Scans with events in the run, and its events.
    model_id : str or None
        The model of a labelling run (see the ``models`` table).
    params : dict
        The run's parameters (a labelling run's model, classes, streams and decoding).
    input_path : str or None
        The labels file imported, or the manifest labelled.
    written_at : datetime or None
        When the run last wrote a scan's rows (None before its first).
    """

    run_id: int
    name: str
    source: str
    kind: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    n_scans: int
    n_events: int
    model_id: str | None = None
    params: dict = field(default_factory=dict)
    input_path: str | None = None
    written_at: datetime | None = None


_RUNS_SQL = """
    SELECT r.run_id, r.name, r.source, r.kind, r.status, r.started_at, r.finished_at,
           count(DISTINCT e.scan_id) AS n_scans, count(e.scan_id) AS n_events,
           r.model_id, r.params_json, r.input_path,
           (SELECT max(written_at) FROM run_scans rs WHERE rs.run_id = r.run_id) AS written_at
    FROM runs r LEFT JOIN events e USING (run_id)
    WHERE (? IS NULL OR r.source = ?)
    GROUP BY ALL
    ORDER BY r.run_id
"""


def list_runs(store: Store, *, source: str | None = None) -> list[Run]:
    """All runs, oldest first, optionally only those of one `source` ('manual' or 'auto')."""
    _check_source(source)
    rows = store.con.execute(_RUNS_SQL, [source, source]).fetchall()
    return [Run(*row[:10], json.loads(row[10]) if row[10] else {}, *row[11:]) for row in rows]


def resolve_run(store: Store, ref: str | int = LAST, *, source: str | None = None) -> Run:
    """Find the one run that `ref` names.

    Parameters
    ----------
    store : Store
    ref : str or int
        `LAST` (``"last"``: the finished run, of `source` if given, that wrote its rows last),
        a run id, or a run name. `LATEST` is refused: it names one run per scan, not one run.
    source : {'manual', 'auto'}, optional
        Restrict to runs of this source.

    Raises
    ------
    UnknownRunError
        Nothing matches, a name matches runs of both sources and `source` is not given, or
        `ref` is `LATEST`.
    """
    if str(ref) == LATEST:
        raise UnknownRunError(
            f"{LATEST!r} means each scan's newest run, not one run: give {LAST!r} for the "
            f"newest finished run, or a run id or name")
    runs = list_runs(store, source=source)
    of_source = f" of source {source!r}" if source else ""
    if not runs:
        raise UnknownRunError(
            f"the database has no runs{of_source}: import labels with "
            f"`fetal-analytics ingest labels FILE --db {store.path}`"
        )
    if str(ref) == LAST:
        finished = [r for r in runs if r.status == "finished"]
        if not finished:
            raise UnknownRunError(f"the database has no finished runs{of_source}")
        return max(finished, key=lambda r: (r.written_at or r.finished_at, r.run_id))
    text = str(ref).strip()
    matches = [r for r in runs if str(r.run_id) == text] or [r for r in runs if r.name == text]
    if len(matches) == 1:
        return matches[0]
    listing = ", ".join(f"{r.run_id} ({r.source}, {r.name!r})" for r in runs[-10:])
    if matches:
        raise UnknownRunError(
            f"run name {text!r} is used by runs of both sources: pass --source or a run id "
            f"({listing})"
        )
    raise UnknownRunError(f"no run {text!r}{of_source}; known runs: {listing}")


def _check_source(source: str | None) -> None:
    if source is not None and source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
