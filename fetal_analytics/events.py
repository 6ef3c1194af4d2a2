"""Events as tables: a run's events out of the store, written to files, relabelled for a model.

An events table has the columns that label import reads (`EVENT_COLUMNS`): ``scan_id``,
``start_s``, ``end_s`` (seconds from the start of the video), ``label`` (a taxonomy code) and
``confidence``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from fetal_analytics import taxonomy
from fetal_analytics.results import Result
from fetal_analytics.runs import LAST, Run, resolve_run
from fetal_analytics.tabular import write_table

if TYPE_CHECKING:
    import pandas as pd

    from fetal_analytics.store import Store

__all__ = ["EVENT_COLUMNS", "EventsExport", "RelabelledEvents", "export_events", "relabel_others",
           "run_events"]

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


@dataclass(frozen=True)
class RelabelledEvents(Result):
    """Events whose labels outside a model's classes were given one code (`relabel_others`).

    Attributes
    ----------
    events : pandas.DataFrame
        The input rows, in the input order and with the input columns, with ``label`` replaced
        by `code` where it was not one of `classes`.
    classes : tuple of str
        The classes kept as they are (e.g. a model's output codes).
    code : str
        The code the other labels were given (e.g. ``"Bk"``).
    relabelled : dict
        Original label -> number of events given `code`, sorted by label; empty when every
        label was one of `classes`.
    """

    events: pd.DataFrame
    classes: tuple[str, ...]
    code: str
    relabelled: dict[str, int]

    frame_field: ClassVar[str] = "events"

    @property
    def n_events(self) -> int:
        """Number of events relabelled (0 when none was)."""
        return sum(self.relabelled.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary: ``code``, ``classes``, ``n_events`` and ``relabelled``."""
        return {"code": self.code, "classes": list(self.classes), "n_events": self.n_events,
                "relabelled": dict(self.relabelled)}


def relabel_others(events: pd.DataFrame, classes: Sequence[str], *,
                   code: str) -> RelabelledEvents:
    """Give every label outside `classes` the label `code` (e.g. Bk, background).

    A model can output only its classes; to it, the time a person labelled with another class
    (one of the rarer taxonomy classes, say) is background between the structures it knows. So
    reference labels are compared with, trained on, or imported for such a model after this
    mapping. Each event stays one row (neighbouring events that end up with the same label are
    not merged), so times and row counts are unchanged.

    Parameters
    ----------
    events : pandas.DataFrame
        Any columns including ``label`` (taxonomy codes), e.g. `EVENT_COLUMNS`. Not modified.
    classes : sequence of str
        Taxonomy codes kept as they are, e.g. a model's output codes
        (`inference.model_file.ModelInfo.output_codes`).
    code : str
        Taxonomy code given to the other labels; usually one of `classes`.

    Returns
    -------
    RelabelledEvents
        The relabelled copy of `events` and how many events of which labels were relabelled.

    Raises
    ------
    ValueError
        `events` has no ``label`` column, or `classes` is empty.
    fetal_analytics.taxonomy.UnknownLabelError
        `code` or one of `classes` is not a taxonomy code.
    """
    if "label" not in events.columns:
        raise ValueError(f"`events` must have a label column, got columns {list(events.columns)}")
    classes = tuple(classes)
    if not classes:
        raise ValueError("`classes` must name at least one taxonomy code")
    for c in (*classes, code):
        taxonomy.validate_code(c)
    other = ~events["label"].isin(classes)
    counts = Counter(str(label) for label in events.loc[other, "label"])
    out = events.copy()
    out.loc[other, "label"] = code
    return RelabelledEvents(events=out, classes=classes, code=code,
                            relabelled=dict(sorted(counts.items())))
