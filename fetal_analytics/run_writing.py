"""Writing automatic labelling runs to the store: the API every labelling executor shares.

A labelling run is written in steps, each a short read-write use of the database file, so readers
(the dashboard, `fetal-analytics info`) can open it between them:

1. `open_for_write` opens the store, waiting a bounded time while another process holds the file;
2. `start_label_run` registers the model and starts the run, or continues a run of that name
   after checking it was labelled with the same model and settings;
3. `write_scan` replaces one scan's rows of the run (events, window probabilities, freezes, the
   scan's facts) in one transaction, and records when it did (table ``run_scans``); a scan counts
   as finished in the run once this has committed (`finished_scans`);
4. `finish_run` marks the run finished (or failed).

The serial labeller (`inference.labelling.label_scans`) runs these steps; a distributed executor
can run step 3 for many scans from many workers (one writer at a time, each write short) and steps
2 and 4 once. Nothing here imports TensorFlow or Keras.

Examples
--------
>>> store = open_for_write("cohort.duckdb", wait_s=60)          # doctest: +SKIP
>>> try:
...     run = start_label_run(store, "label-v1", model=record, params=params)
...     todo = set(scan_ids) - finished_scans(store, run.run_id)
... finally:
...     store.close()
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fetal_analytics.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

    from fetal_analytics.store import Store

__all__ = [
    "DEFAULT_WRITE_WAIT_S",
    "FREEZE_METHOD",
    "LABEL_RUN_IDENTITY",
    "LabelRun",
    "ModelRecord",
    "RunWritingError",
    "ScanFacts",
    "StoredLabelRun",
    "finish_run",
    "finished_scans",
    "label_run",
    "open_for_write",
    "register_model",
    "start_label_run",
    "stored_videos",
    "write_scan",
]

log = logging.getLogger(__name__)

DEFAULT_WRITE_WAIT_S = 600.0
"""Seconds `open_for_write` waits for a busy database file unless told otherwise."""

FREEZE_METHOD = "detected"
"""``freeze_frames.method`` of the freezes a labelling run detects."""

LABEL_RUN_IDENTITY = ("classes", "decoding", "streams", "hop_s", "size")
"""The keys of a label run's parameters that decide its rows: a continued run must keep them."""

_EVENT_COLUMNS = ("start_s", "end_s", "label")
_WINDOW_COLUMNS = ("t_s", "stream", "probs")
_FREEZE_COLUMNS = ("t_s",)


class RunWritingError(UserError, ValueError):
    """A run that cannot be started or written as asked; the message says why and what to do."""


@dataclass(frozen=True)
class ModelRecord:
    """A model as the store's ``models`` table keeps it.

    Attributes
    ----------
    model_id : str
        Its id: by convention the first 16 hex digits of `sha256`.
    path : Path
        The model file.
    sha256 : str
        Hash of the model file.
    arch : str
        Architecture name.
    input_shape : tuple of int
        One frame's shape (height, width, channels).
    classes : tuple of str
        Taxonomy code of each output, in output order.
    metrics : dict, optional
        Evaluation figures, stored as JSON.
    """

    model_id: str
    path: Path
    sha256: str
    arch: str
    input_shape: tuple[int, ...]
    classes: tuple[str, ...]
    metrics: dict[str, Any] | None = None


@dataclass(frozen=True)
class LabelRun:
    """A label run that `start_label_run` started or continued.

    Attributes
    ----------
    run_id : int
    name : str
    continued : bool
        The run existed before (its finished scans are kept).
    """

    run_id: int
    name: str
    continued: bool


@dataclass(frozen=True)
class ScanFacts:
    """What decoding a scan's video tells the ``scans`` table.

    Attributes
    ----------
    n_frames : int
        Frames decoded.
    duration_s : float
        Length of the video, seconds.
    video_path : Path, optional
        The video labelled; stored only where the scan has no video path yet.
    video_sha256 : str, optional
        The SHA-256 of the video labelled, stored where it is the scan's video: a manifest
        that later gives the scan a video of other content removes the automatic results.
    """

    n_frames: int
    duration_s: float
    video_path: Path | None = None
    video_sha256: str | None = None


def open_for_write(db: str | Path, *, wait_s: float | None = None) -> Store:
    """Open the store read-write, waiting while another process holds the file.

    DuckDB lets no writer in while any other process has the file open, even read-only (a
    dashboard reading between requests). This retries with a growing delay (at most 1 s) until
    the file is free or `wait_s` has passed, logging one warning once the wait gets long.

    Parameters
    ----------
    db : str or Path
        The database file; created (at the current schema) when missing.
    wait_s : float, optional
        Seconds to wait at most (default `DEFAULT_WRITE_WAIT_S`); 0 tries once.

    Returns
    -------
    Store
        Open read-write; close it as soon as the write is done.

    Raises
    ------
    StoreBusyError
        The file was still held by another process after `wait_s` seconds.
    StoreError
        The file cannot be opened or created.
    """
    from fetal_analytics.store import Store, StoreBusyError

    wait_s = DEFAULT_WRITE_WAIT_S if wait_s is None else wait_s
    deadline = time.monotonic() + wait_s
    delay, warned = 0.05, False
    while True:
        try:
            return Store(db)
        except StoreBusyError:
            if time.monotonic() >= deadline:
                raise
            if not warned and delay >= 1.0:
                log.warning("%s is busy; waiting up to %.0f s", db, wait_s)
                warned = True
            time.sleep(min(delay, max(deadline - time.monotonic(), 0.0)))
            delay = min(2 * delay, 1.0)


def register_model(store: Store, model: ModelRecord) -> bool:
    """Add a model to the ``models`` table unless its id is there already.

    Returns
    -------
    bool
        True when the model was added.
    """
    if store.scalar("SELECT count(*) FROM models WHERE model_id = ?", [model.model_id]):
        return False
    store.con.execute(
        "INSERT INTO models (model_id, path, sha256, arch, input_shape, classes, metrics_json) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [model.model_id, str(Path(model.path).resolve()), model.sha256, model.arch,
         list(model.input_shape), list(model.classes),
         None if model.metrics is None else json.dumps(model.metrics)])
    return True


def start_label_run(store: Store, name: str, *, model: ModelRecord, params: Mapping[str, Any],
                    input_path: str | Path | None = None) -> LabelRun:
    """Register the model and start a label run, or continue the label run of that name.

    Both happen in one transaction: a refused run leaves no trace.

    Parameters
    ----------
    store : Store
        Open read-write, outside a transaction.
    name : str
        The run's name (source ``auto``).
    model : ModelRecord
        The model that labels.
    params : mapping
        The run's parameters, stored as ``params_json``; a continued run must have the same
        `LABEL_RUN_IDENTITY` entries and the same model.
    input_path : str or Path, optional
        What was labelled (a manifest), stored as ``input_path`` of a new run.

    Returns
    -------
    LabelRun
        A continued run is marked ``running`` again.

    Raises
    ------
    RunWritingError
        The name belongs to an import of labels, or to a run of another model or other settings.
    """
    with store.transaction():
        register_model(store, model)
        existing = label_run(store, name, model=model, params=params)
        if existing is None:
            run_id = store.scalar(
                "INSERT INTO runs (name, source, kind, model_id, params_json, input_path, status) "
                "VALUES (?, 'auto', 'label', ?, ?, ?, 'running') RETURNING run_id",
                [name, model.model_id, json.dumps(dict(params)),
                 None if input_path is None else str(Path(input_path).resolve())])
            return LabelRun(run_id, name, continued=False)
        store.con.execute(
            "UPDATE runs SET status = 'running', finished_at = NULL WHERE run_id = ?",
            [existing.run_id])
    return LabelRun(existing.run_id, name, continued=True)


@dataclass(frozen=True)
class StoredLabelRun:
    """A label run as stored: its id and status (``running``, ``finished``, ``failed``)."""

    run_id: int
    status: str


def label_run(store: Store, name: str, *, model: ModelRecord,
              params: Mapping[str, Any]) -> StoredLabelRun | None:
    """The label run of this name that `model` and `params` may continue, without writing.

    Returns
    -------
    StoredLabelRun or None
        None: no run of this name.

    Raises
    ------
    RunWritingError
        The name belongs to an import of labels, or to a run of another model or other settings.
    """
    row = store.con.execute(
        "SELECT run_id, kind, model_id, params_json, status FROM runs "
        "WHERE source = 'auto' AND name = ?", [name]).fetchone()
    if row is None:
        return None
    run_id, kind, model_id, params_json, status = row
    if kind != "label":
        raise RunWritingError(
            f"run name {name!r} belongs to an import of labels (run {run_id}); choose "
            f"another --run-name")
    before = json.loads(params_json or "{}")
    changed = [key for key in LABEL_RUN_IDENTITY if before.get(key) != params.get(key)]
    if model_id != model.model_id:
        changed.insert(0, "model")
    if changed:
        raise RunWritingError(
            f"run {name!r} (run {run_id}) was labelled with another {', '.join(changed)}; "
            f"continue it with the same model and settings, or choose another --run-name")
    return StoredLabelRun(run_id, status)


def stored_videos(store: Store, scan_ids: Iterable[str]) -> dict[str, Path | None]:
    """The video path stored for each of `scan_ids` that is in the store (None: no video)."""
    rows = store.con.execute(
        "SELECT scan_id, video_path FROM scans WHERE list_contains(?, scan_id)",
        [list(scan_ids)]).fetchall()
    return {scan_id: None if path is None else Path(path) for scan_id, path in rows}


def finished_scans(store: Store, run_id: int) -> frozenset[str]:
    """The scans whose rows the run has written (and committed)."""
    return frozenset(scan_id for (scan_id,) in store.con.execute(
        "SELECT scan_id FROM run_scans WHERE run_id = ?", [run_id]).fetchall())


def write_scan(store: Store, run_id: int, scan_id: str, *, events: pd.DataFrame,
               window_probs: pd.DataFrame, freezes: pd.DataFrame | None = None,
               facts: ScanFacts | None = None) -> None:
    """Replace one scan's rows of a label run, in one transaction.

    The run's events and window probabilities of the scan (and its freezes, when `freezes` is
    given) are deleted and the new ones inserted, the scan's facts updated, and ``run_scans``
    records the time of the write: the scan is then finished in the run. Rows of other runs are
    left alone. An error rolls everything back.

    Parameters
    ----------
    store : Store
        Open read-write, outside a transaction.
    run_id : int
        A label run (`start_label_run`).
    scan_id : str
        A scan in the store.
    events : pandas.DataFrame
        ``start_s, end_s`` (seconds), ``label`` (a taxonomy code) and optionally
        ``confidence`` in [0, 1]; one row per event, ``end_s > start_s >= 0``.
    window_probs : pandas.DataFrame
        ``t_s`` (window centre, seconds), ``stream`` (e.g. ``'fr4'``, ``'fused'``) and ``probs``
        (a float array per row, in the run's class order).
    freezes : pandas.DataFrame, optional
        The freezes detected in the scan: ``t_s`` (start, seconds) and optionally ``end_s``,
        ``frame`` (first frame), ``text``; stored with method `FREEZE_METHOD`. An empty frame
        records that none were found; None leaves the run's stored freezes of the scan as they
        are.
    facts : ScanFacts, optional
        Frame count and duration of the decoded video (``fps`` and ``video_path`` are filled
        where empty).

    Raises
    ------
    RunWritingError
        `run_id` is not a label run.
    ValueError
        A frame lacks a required column.
    """
    _require(events, _EVENT_COLUMNS, "events")
    _require(window_probs, _WINDOW_COLUMNS, "window_probs")
    if freezes is not None:
        _require(freezes, _FREEZE_COLUMNS, "freezes")
    kind = store.scalar("SELECT kind FROM runs WHERE run_id = ?", [run_id])
    if kind != "label":
        raise RunWritingError(
            f"run {run_id} of {store.path} is {'not a run' if kind is None else 'an import'}; "
            f"scans are written to label runs (start one with `start_label_run`)")
    keys = {"run_id": run_id, "scan_id": scan_id}
    with store.transaction():
        if facts is not None:
            fps = facts.n_frames / facts.duration_s if facts.duration_s > 0 else None
            video = None if facts.video_path is None else str(Path(facts.video_path).resolve())
            store.con.execute(
                "UPDATE scans SET n_frames = ?, duration_s = ?, fps = coalesce(fps, ?), "
                "video_sha256 = CASE WHEN coalesce(video_path, ?) = ? "
                "THEN coalesce(?, video_sha256) ELSE video_sha256 END, "
                "video_path = coalesce(video_path, ?) WHERE scan_id = ?",
                [facts.n_frames, facts.duration_s, fps, video, video, facts.video_sha256,
                 video, scan_id])
        for table in ("events", "window_probs"):
            store.con.execute(f"DELETE FROM {table} WHERE run_id = ? AND scan_id = ?",
                              [run_id, scan_id])
        store.insert_frame("events", events.assign(**keys))
        store.insert_frame("window_probs", window_probs.assign(**keys))
        if freezes is not None:
            store.con.execute("DELETE FROM freeze_frames WHERE run_id = ? AND scan_id = ?",
                              [run_id, scan_id])
            store.insert_frame("freeze_frames", freezes.assign(**keys, method=FREEZE_METHOD))
        store.con.execute(
            "INSERT INTO run_scans (run_id, scan_id, written_at, freezes_detected) "
            "VALUES (?, ?, current_timestamp, ?) ON CONFLICT (run_id, scan_id) DO UPDATE SET "
            "written_at = excluded.written_at, "
            "freezes_detected = run_scans.freezes_detected OR excluded.freezes_detected",
            [run_id, scan_id, freezes is not None])


def finish_run(store: Store, run_id: int, *, status: str | None = None) -> str:
    """Mark a run finished, or failed, and stamp ``finished_at``.

    Parameters
    ----------
    store : Store
        Open read-write.
    run_id : int
    status : {'finished', 'failed'}, optional
        Default: ``finished`` when the run has written at least one scan, else ``failed``.

    Returns
    -------
    str
        The status stored.
    """
    if status not in (None, "finished", "failed"):
        raise ValueError(f"`status` must be 'finished' or 'failed', got {status!r}")
    if status is None:
        status = "finished" if finished_scans(store, run_id) else "failed"
    store.con.execute(
        "UPDATE runs SET status = ?, finished_at = current_timestamp WHERE run_id = ?",
        [status, run_id])
    return status


def _require(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"`{name}` lacks the column(s) {', '.join(missing)}; it has "
                         f"{', '.join(map(str, frame.columns)) or 'none'}")
