"""Runs: every import of labels and every automatic labelling run is one run.

A run's `source` (manual or auto) says where its events come from, so comparing manual with
automatic labels is a join on runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from fetal_analytics.errors import UserError

if TYPE_CHECKING:
    from fetal_analytics.store import Store

__all__ = ["SOURCES", "Run", "UnknownRunError", "list_runs", "resolve_run"]

SOURCES = ("manual", "auto")


class UnknownRunError(UserError, LookupError):
    """A run reference that matches no run (or more than one)."""


@dataclass(frozen=True)
class Run:
    """One row of the ``runs`` table."""

    run_id: int
    name: str
    source: str
    kind: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    n_scans: int
    n_events: int


_RUNS_SQL = """
    SELECT r.run_id, r.name, r.source, r.kind, r.status, r.started_at, r.finished_at,
           count(DISTINCT e.scan_id) AS n_scans, count(e.scan_id) AS n_events
    FROM runs r LEFT JOIN events e USING (run_id)
    WHERE (? IS NULL OR r.source = ?)
    GROUP BY ALL
    ORDER BY r.run_id
"""


def list_runs(store: Store, *, source: str | None = None) -> list[Run]:
    """All runs, oldest first, optionally only those of one `source` ('manual' or 'auto')."""
    _check_source(source)
    rows = store.con.execute(_RUNS_SQL, [source, source]).fetchall()
    return [Run(*row) for row in rows]


def resolve_run(store: Store, ref: str | int = "latest", *, source: str | None = None) -> Run:
    """Find the run that `ref` names.

    Parameters
    ----------
    store : Store
    ref : str or int
        ``"latest"`` (the newest finished run, of `source` if given), a run id, or a run name.
    source : {'manual', 'auto'}, optional
        Restrict to runs of this source.

    Raises
    ------
    UnknownRunError
        Nothing matches, or a name matches runs of both sources and `source` is not given.
    """
    runs = list_runs(store, source=source)
    of_source = f" of source {source!r}" if source else ""
    if not runs:
        raise UnknownRunError(
            f"the database has no runs{of_source}: import labels with "
            f"`fetal-analytics ingest labels FILE --db {store.path}`"
        )
    if str(ref) == "latest":
        finished = [r for r in runs if r.status == "finished"]
        if not finished:
            raise UnknownRunError(f"the database has no finished runs{of_source}")
        return finished[-1]
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
