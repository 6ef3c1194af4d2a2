"""Tuning the temporal decoding on validation scans, from stored window probabilities.

A labelling run stores every window's posteriors (table ``window_probs``), so the decoding
parameters (`inference.decoding.DecodingParams`) can be tuned without running the network
again: for each combination of a grid, the stored posteriors of every scan are decoded and the
timeline compared with a reference run (usually a dense manual timeline) by the segment metrics of
`fetal_analytics.segments` (MS-TCN semantics: F1@{10,25,50} from counts summed over scans, edit
score averaged over scans, frame accuracy over frames summed over scans).

What is compared
----------------
Scans
    Those with window probabilities of the `stream` in the automatic run *and* events in the
    reference run; at least one is required.
Timeline
    ``[0, duration_s]`` of each scan, sampled at frame centres every
    `fetal_analytics.segments.DEFAULT_FRAME_STEP_S` seconds.
    ``duration_s`` is the scan's stored duration, or the last window's centre + ``hop_s / 2``
    where it is unknown (or shorter than that).
Reference labels
    A reference label that is not one of the model's classes (e.g. one of the rarer taxonomy
    classes, Um or Fe, for a model of the 11) counts as ``Bk``: the model cannot output it, and
    to the model it is background between the structures it knows
    (`fetal_analytics.events.relabel_others`, as ``ingest labels --others-as`` does). Time the
    reference leaves unlabelled is left out of the accuracy and splits reference segments (see
    `fetal_analytics.segments`). Bk forms segments of its own (``background=()``).
Posteriors
    Each stored row is renormalised to sum to 1. Class priors come from the automatic run's
    ``params_json`` (``"priors"``, or ``"model": {"priors": ...}``) when it records them; without
    them the prior is uniform, `prior_power` has no effect and only the grid's first
    ``prior_power`` is tried.

Each combination of temperature, prior power, expected segment length, background share and
background segment length is decoded by Viterbi once per scan; the minimum durations of the grid
only re-run the cheap merging step. A grid value None (``background_share``,
``background_segment_s``) is that parameter's default: uniform transitions, and Bk's expected
length equal to ``expected_segment_s``. A model without a Bk class tries only the first value
of each background parameter, which has no effect there.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fetal_analytics.checks import check_choice
from fetal_analytics.errors import UserError
from inference.decoding import (
    BACKGROUND,
    BACKGROUND_PARAMS,
    DecodingParams,
    background_index,
    decode_path,
    path_to_segments,
)
from inference.model_file import sidecar_path

if TYPE_CHECKING:
    from fetal_analytics.runs import Run
    from fetal_analytics.store import Store

__all__ = [
    "DEFAULT_GRID",
    "OBJECTIVES",
    "TUNABLE",
    "TuningError",
    "TuningResult",
    "tune_decoding",
    "write_sidecar_decoding",
]

log = logging.getLogger(__name__)

#: The scores a tuning can maximise (fractions in [0, 1], higher is better).
OBJECTIVES = ("f1_10", "f1_25", "f1_50", "edit", "accuracy")
#: The parameters a grid may vary (``hop_s`` is a property of the stored windows).
TUNABLE = ("temperature", "prior_power", "expected_segment_s", "background_share",
           "background_segment_s", "min_duration_s")
#: The default grid: 3 x 2 x 3 x 3 x 3 x 3 = 486 combinations, 162 Viterbi passes per scan (81
#: without priors; 18 and 9 for a model without Bk). None: the parameter's default.
DEFAULT_GRID: dict[str, tuple[float | None, ...]] = {
    "temperature": (0.5, 1.0, 2.0),
    "prior_power": (0.0, 1.0),
    "expected_segment_s": (10.0, 20.0, 40.0),
    "background_share": (None, 0.5, 0.8),
    "background_segment_s": (None, 10.0, 20.0),
    "min_duration_s": (0.0, 2.0, 4.0),
}


class TuningError(UserError, ValueError):
    """The runs, grid or objective do not allow a tuning; the message says what to fix."""


@dataclass(frozen=True)
class TuningResult:
    """The outcome of `tune_decoding`.

    Attributes
    ----------
    best : DecodingParams
        The best combination (``hop_s`` from the automatic run).
    table : list of dict
        One row per combination, best first: the tuned parameters (`TUNABLE`: ``temperature``,
        ``prior_power``, ``expected_segment_s``, ``background_share``, ``background_segment_s``
        (None: the default), ``min_duration_s``) and the scores as fractions in [0, 1]
        (``f1_10``, ``f1_25``, ``f1_50``, ``edit``, ``accuracy``; accuracy None when the
        reference labels no frame).
    scans : tuple of str
        The scans scored.
    objective : str
        The score the table is sorted by (ties: F1@50, F1@25, F1@10, edit, accuracy, then grid
        order).
    classes : tuple of str
        The automatic run's classes, in output order.
    relabelled : dict
        Reference label outside `classes` -> its events in the scans scored, counted as Bk.
    """

    best: DecodingParams
    table: list[dict] = field(repr=False)
    scans: tuple[str, ...]
    objective: str
    classes: tuple[str, ...] = ()
    relabelled: dict[str, int] = field(default_factory=dict)

    def to_dict(self, *, top: int | None = None) -> dict[str, Any]:
        """JSON-ready: ``best`` (all parameters), ``objective``, ``scans`` and ``table`` rows
        (the first `top` only, if given)."""
        return {"best": self.best.to_dict(), "objective": self.objective,
                "scans": list(self.scans), "classes": list(self.classes),
                "relabelled": dict(self.relabelled),
                "n_combinations": len(self.table),
                "table": [dict(row) for row in self.table[:top]]}


@dataclass(frozen=True)
class _Scan:
    scan_id: str
    times_s: np.ndarray       # (T,) window centres
    probs: np.ndarray         # (T, C) posteriors
    duration_s: float
    centres: np.ndarray       # (F,) frame centres of the comparison
    truth: np.ndarray         # (F,) reference labels (object; None where unlabelled)


def _check_objective(objective: str) -> str:
    return check_choice("objective", objective, OBJECTIVES, error=TuningError)


def _check_grid(grid: dict[str, Sequence[float | None]] | None,
                base: DecodingParams) -> dict[str, tuple[float | None, ...]]:
    grid = DEFAULT_GRID if grid is None else grid
    unknown = sorted(set(grid) - set(TUNABLE))
    if unknown:
        raise TuningError(f"the grid names unknown parameter(s) {', '.join(map(repr, unknown))}; "
                          f"it may vary {', '.join(TUNABLE)}")
    out = {}
    for name in TUNABLE:
        values = grid.get(name, (getattr(base, name),))
        values = (values,) if values is None or isinstance(values, int | float) else tuple(values)
        if not values:
            raise TuningError(f"the grid gives no value for {name!r}")
        try:
            for value in values:
                replace(base, **{name: value})
        except ValueError as exc:
            raise TuningError(f"the grid's {name!r}: {exc}") from exc
        out[name] = tuple(dict.fromkeys(None if v is None else float(v) for v in values))
    return out


def _run_params(run: Run, store: Store) -> dict[str, Any]:
    text = store.scalar("SELECT params_json FROM runs WHERE run_id = ?", [run.run_id])
    if not text:
        raise TuningError(f"run {run.run_id} {run.name!r} ({run.source}) records no parameters "
                          f"(params_json): it was not made by the labeller")
    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TuningError(f"run {run.run_id} {run.name!r}: its params_json is not JSON "
                          f"({exc})") from exc
    classes = params.get("classes") if isinstance(params, dict) else None
    if not classes or not all(isinstance(c, str) for c in classes):
        raise TuningError(f"run {run.run_id} {run.name!r}: its params_json lacks the list of "
                          f"\"classes\" (class codes in output order)")
    return params


def _load_windows(store: Store, run: Run, stream: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Window centres (T,) and posteriors (T, C) of each scan of the run, for one stream."""
    frame = store.query_df(
        "SELECT scan_id, t_s, probs FROM window_probs WHERE run_id = ? AND stream = ? "
        "ORDER BY scan_id, t_s", [run.run_id, stream])
    if frame.empty:
        streams = [s for (s,) in store.con.execute(
            "SELECT DISTINCT stream FROM window_probs WHERE run_id = ? ORDER BY 1",
            [run.run_id]).fetchall()]
        have = (f"it has streams {', '.join(streams)}; choose one of them" if streams else
                "label scans with the model to store them (an imported run has none)")
        raise TuningError(f"run {run.run_id} {run.name!r} ({run.source}) has no stored window "
                          f"probabilities of stream {stream!r}: {have}")
    out = {}
    for scan_id, rows in frame.groupby("scan_id", sort=True):
        lengths = {len(p) for p in rows["probs"]}
        if len(lengths) != 1:
            raise TuningError(f"run {run.run_id}, scan {scan_id!r}: window probabilities of "
                              f"different lengths {sorted(lengths)}")
        out[str(scan_id)] = (rows["t_s"].to_numpy(dtype=float),
                             np.stack([np.asarray(p, dtype=float) for p in rows["probs"]]))
    return out


def _reference_frames(events: Any, centres: np.ndarray) -> np.ndarray:
    from fetal_analytics.segments import sample_index

    events = events.sort_values("start_s", kind="stable")
    labels = events["label"].to_numpy(dtype=object)
    index = sample_index(events["start_s"].to_numpy(dtype=float),
                         events["end_s"].to_numpy(dtype=float), centres)
    out = np.full(len(centres), None, dtype=object)
    out[index >= 0] = labels[index[index >= 0]]
    return out


def _prepare_scans(store: Store, manual: Run, auto: Run, windows: dict, classes: list[str],
                   hop_s: float) -> tuple[list[_Scan], dict[str, int]]:
    """The scans both runs label, and the reference's labels outside `classes` counted as Bk
    (label -> events)."""
    from fetal_analytics.events import relabel_others, run_events
    from fetal_analytics.segments import DEFAULT_FRAME_STEP_S, frame_centres

    events = run_events(store, manual)
    reference = relabel_others(events, classes, code=BACKGROUND).events
    by_scan = dict(tuple(reference.groupby("scan_id", sort=True)))
    shared = sorted(set(windows) & set(by_scan))
    relabelled = relabel_others(events[events["scan_id"].isin(shared)], classes,
                                code=BACKGROUND).relabelled
    if not shared:
        raise TuningError(
            f"no scan has both window probabilities in run {auto.run_id} {auto.name!r} "
            f"({len(windows)} scans) and events in reference run {manual.run_id} "
            f"{manual.name!r} ({len(by_scan)} scans): label the reference scans with the model, "
            f"or pick the matching runs")
    durations = dict(store.con.execute(
        "SELECT scan_id, duration_s FROM scans WHERE scan_id IN (SELECT unnest(?))",
        [shared]).fetchall())
    scans = []
    for scan_id in shared:
        times, probs = windows[scan_id]
        if probs.shape[1] != len(classes):
            raise TuningError(f"run {auto.run_id}, scan {scan_id!r}: window probabilities have "
                              f"{probs.shape[1]} values but the run has {len(classes)} classes")
        if not (np.isfinite(probs).all() and (probs >= 0).all()):
            raise TuningError(f"run {auto.run_id}, scan {scan_id!r}: window probabilities "
                              f"contain NaN or negative values")
        sums = probs.sum(axis=1, keepdims=True)
        if (sums <= 0).any():
            raise TuningError(f"run {auto.run_id}, scan {scan_id!r}: a window's probabilities "
                              f"are all 0")
        if len(times) > 1 and (np.diff(times) <= 0).any():
            raise TuningError(f"run {auto.run_id}, scan {scan_id!r}: two windows share a time; "
                              f"the run's window probabilities are stored twice")
        end = times[-1] + hop_s / 2
        duration = durations.get(scan_id)
        if duration is None or (isinstance(duration, float) and math.isnan(duration)):
            duration = end
        elif duration < times[-1]:
            log.warning("scan %s: stored duration %.1f s ends before its last window (%.1f s); "
                        "using %.1f s", scan_id, duration, times[-1], end)
            duration = end
        centres = frame_centres(0.0, float(duration), DEFAULT_FRAME_STEP_S)
        scans.append(_Scan(scan_id, times, probs / sums, float(duration), centres,
                           _reference_frames(by_scan[scan_id], centres)))
    return scans, relabelled


def _run_priors(params: dict[str, Any], n_classes: int, run: Run) -> np.ndarray | None:
    priors = params.get("priors")
    if priors is None and isinstance(params.get("model"), dict):
        priors = params["model"].get("priors")
    if priors is None:
        return None
    arr = np.asarray(priors, dtype=float)
    if arr.shape != (n_classes,) or not np.isfinite(arr).all() or (arr <= 0).any():
        raise TuningError(f"run {run.run_id} {run.name!r}: its priors must be {n_classes} "
                          f"positive numbers, got {priors!r}")
    return arr / arr.sum()


def _predicted_frames(segments: list, centres: np.ndarray) -> np.ndarray:
    from fetal_analytics.segments import sample_index

    starts = np.array([s.start_s for s in segments])
    ends = np.array([s.end_s for s in segments])
    labels = np.array([s.label for s in segments], dtype=object)
    index = sample_index(starts, ends, centres)
    out = np.full(len(centres), None, dtype=object)
    out[index >= 0] = labels[index[index >= 0]]
    return out


def _sort_key(objective: str):
    order = [objective, *(k for k in ("f1_50", "f1_25", "f1_10", "edit", "accuracy")
                          if k != objective)]

    def key(item: tuple[int, dict]) -> tuple:
        i, row = item
        values = [row[k] if row[k] is not None and not math.isnan(row[k]) else -math.inf
                  for k in order]
        return (*(-v for v in values), i)

    return key


def tune_decoding(store: Store, manual_ref: str | int, auto_ref: str | int, *,
                  grid: dict[str, Sequence[float]] | None = None, objective: str = "f1_25",
                  stream: str = "fused") -> TuningResult:
    """Grid-search the decoding parameters against a reference run, from stored posteriors.

    Parameters
    ----------
    store : Store
        Open (read-only is enough).
    manual_ref : str or int
        The reference run (source manual): id, name or ``"latest"``; usually a dense
        ground-truth timeline of validation scans.
    auto_ref : str or int
        The automatic labelling run (source auto) whose window probabilities are decoded; its
        ``params_json`` gives the classes (``"classes"``), the window spacing
        (``"decoding": {"hop_s": ...}``; else the median spacing of the windows) and, if
        recorded, the class priors.
    grid : dict of str to sequence of float, optional
        Values to try per parameter of `TUNABLE`; a parameter left out keeps the run's value.
        ``background_share`` and ``background_segment_s`` also take None (their default).
        Default `DEFAULT_GRID`.
    objective : {'f1_10', 'f1_25', 'f1_50', 'edit', 'accuracy'}, optional
        The score to maximise (default F1@25).
    stream : str, optional
        The stream of ``window_probs`` to decode (default the late-fused ``'fused'``).

    Returns
    -------
    TuningResult

    Raises
    ------
    TuningError
        An unknown objective or grid parameter, a bad grid value, an automatic run without
        window probabilities of `stream` or without classes, or no scan in both runs.
    UnknownRunError
        A run reference that matches no run.
    """
    from fetal_analytics.runs import resolve_run
    from fetal_analytics.segments import segment_scores

    objective = _check_objective(objective)
    manual = resolve_run(store, manual_ref, source="manual")
    auto = resolve_run(store, auto_ref, source="auto")
    windows = _load_windows(store, auto, stream)
    params = _run_params(auto, store)
    classes = list(params["classes"])
    decoding = params.get("decoding") or {}
    try:
        base = DecodingParams.from_dict(decoding)
    except ValueError as exc:
        raise TuningError(f"run {auto.run_id} {auto.name!r}: its decoding parameters: "
                          f"{exc}") from exc
    if "hop_s" not in decoding:
        spacing = [np.diff(t) for t, _ in windows.values() if len(t) > 1]
        if spacing:
            base = replace(base, hop_s=float(np.median(np.concatenate(spacing))))
    values = _check_grid(grid, base)
    priors = _run_priors(params, len(classes), auto)
    if priors is None and len(values["prior_power"]) > 1:
        log.info("run %d records no class priors: prior_power has no effect, trying %g only",
                 auto.run_id, values["prior_power"][0])
        values["prior_power"] = values["prior_power"][:1]
    background = background_index(classes)
    for name in BACKGROUND_PARAMS:
        if background is None and len(values[name]) > 1:
            log.info("run %d has no background class %r: %s has no effect, trying %s only",
                     auto.run_id, BACKGROUND, name, values[name][0])
            values[name] = values[name][:1]
    scans, relabelled = _prepare_scans(store, manual, auto, windows, classes, base.hop_s)
    log.info("tuning decoding on %d scans (%d windows), %d combinations", len(scans),
             sum(len(s.times_s) for s in scans), math.prod(len(v) for v in values.values()))

    rows: list[dict] = []
    viterbi_names = [name for name in TUNABLE if name != "min_duration_s"]
    for combination in itertools.product(*(values[name] for name in viterbi_names)):
        hmm = replace(base, **dict(zip(viterbi_names, combination, strict=True)))
        paths = [decode_path(s.probs, params=hmm, priors=priors, background=background)
                 for s in scans]
        for min_duration in values["min_duration_s"]:
            pairs = []
            for scan, path in zip(scans, paths, strict=True):
                segments = path_to_segments(path, scan.probs, scan.times_s, classes,
                                            min_duration_s=min_duration,
                                            duration_s=scan.duration_s)
                pairs.append((_predicted_frames(segments, scan.centres), scan.truth))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # no labelled frame: NaN
                scores = segment_scores(pairs, overlaps=(0.1, 0.25, 0.5))
            accuracy = scores.frame_accuracy
            rows.append({**{name: getattr(hmm, name) for name in viterbi_names},
                         "min_duration_s": min_duration,
                         "f1_10": scores.f1[10], "f1_25": scores.f1[25], "f1_50": scores.f1[50],
                         "edit": scores.edit,
                         "accuracy": None if math.isnan(accuracy) else accuracy})
    table = [row for _, row in sorted(enumerate(rows), key=_sort_key(objective))]
    best = replace(base, **{name: table[0][name] for name in TUNABLE})
    log.info("best %s %.2f with %s", objective, table[0][objective] or math.nan, best)
    return TuningResult(best=best, table=table, scans=tuple(s.scan_id for s in scans),
                        objective=objective, classes=tuple(classes), relabelled=relabelled)


def write_sidecar_decoding(model_path: str | Path, params: DecodingParams, *,
                           classes: Sequence[str] | None = None) -> Path:
    """Write `params` into a model's JSON sidecar under ``"decoding"``, keeping all else.

    The sidecar is ``MODEL.json`` beside ``MODEL.keras`` (`inference.model_file.sidecar_path`).
    The file is replaced atomically; its other entries (classes, preprocessing, the model file's
    sha256, ...) are unchanged. When `classes` (the tuned run's) differ from the sidecar's
    output codes (its ``"codes"``, each once: classes that share a code are one output), a
    warning is logged: the parameters were tuned on another model's output.

    Returns
    -------
    Path
        The sidecar written.

    Raises
    ------
    TuningError
        No sidecar beside the model, or one that is not a JSON object.
    """
    path = sidecar_path(model_path)
    if not path.is_file():
        raise TuningError(f"no sidecar {path} beside the model {model_path}: pass the .keras "
                          f"file of a trained model")
    try:
        sidecar = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TuningError(f"{path} is not valid JSON ({exc})") from exc
    if not isinstance(sidecar, dict):
        raise TuningError(f"{path} is not a model sidecar (a JSON object)")
    codes = sidecar.get("codes")
    if codes is not None:
        codes = list(dict.fromkeys(codes))
    if classes is not None and codes is not None and codes != list(classes):
        log.warning("%s: the model's classes %s differ from the tuned run's %s", path,
                    ",".join(map(str, codes)), ",".join(classes))
    sidecar["decoding"] = params.to_dict()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    log.info("wrote decoding parameters %s to %s", params, path)
    return path
