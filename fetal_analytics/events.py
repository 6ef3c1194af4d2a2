"""Reading a run's events out of the store, in the columns that label import reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fetal_analytics.results import Result
from fetal_analytics.runs import LAST, Run, resolve_run
from fetal_analytics.tabular import write_table

if TYPE_CHECKING:
    import pandas as pd

    from fetal_analytics.store import Store

__all__ = ["EVENT_COLUMNS", "EventsExport", "export_events", "run_events"]

EVENT_COLUMNS = ("scan_id", "start_s", "end_s", "label", "confidence")


def run_events(store: Store, run: Run) -> pd.DataFrame:
    """The events of one run, sorted by scan and start time.

    Returns
    -------
    pandas.DataFrame
        Columns ``scan_id, start_s, end_s, label, confidence`` (seconds from the start of the
        video; confidence is NaN for manual labels).
    """
    return store.query_df(
        f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE run_id = ? "
        "ORDER BY scan_id, start_s", [run.run_id])


@dataclass(frozen=True)
class EventsExport(Result):
    """What `export_events` wrote: the run, the file, and how many events of how many scans."""

    run: Run
    path: Path
    n_events: int
    n_scans: int


def export_events(store: Store, out: str | Path, *, run: str | int = LAST,
                  source: str | None = None, fmt: str | None = None) -> EventsExport:
    """Write one run's events to CSV or Parquet (the format from `fmt` or the suffix).

    Parameters
    ----------
    store : Store
    out : str or Path
        The file; its folder is created when missing.
    run : str or int, optional
        `LAST` (the newest finished run, of `source` if given), a run id or a run name.
    source : {'manual', 'auto'}, optional
    fmt : {'csv', 'parquet'}, optional

    Raises
    ------
    UnknownRunError, OutputFormatError
    """
    chosen = resolve_run(store, run, source=source)
    events = run_events(store, chosen)
    path = write_table(events, out, fmt=fmt)
    return EventsExport(run=chosen, path=path, n_events=len(events),
                        n_scans=int(events["scan_id"].nunique()))
