"""Reading a run's events out of the store, in the columns that label import reads."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from fetal_analytics.runs import Run
    from fetal_analytics.store import Store

__all__ = ["EVENT_COLUMNS", "EXPORT_FORMATS", "run_events", "write_events"]

EVENT_COLUMNS = ("scan_id", "start_s", "end_s", "label", "confidence")
EXPORT_FORMATS = ("csv", "parquet")


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


def write_events(events: pd.DataFrame, out: str | Path, *, fmt: str | None = None) -> Path:
    """Write events to CSV or Parquet; `fmt` defaults to the file's suffix, else CSV.

    CSV floats are written with all their digits, so importing the file back gives the same times.
    """
    out = Path(out)
    fmt = fmt or ("parquet" if out.suffix.lower() == ".parquet" else "csv")
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
    if fmt == "parquet":
        events.to_parquet(out, index=False)
    else:
        events.to_csv(out, index=False)
    return out
