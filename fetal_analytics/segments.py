"""Segment-level agreement of two labellings of a video: frame accuracy, edit score, F1@k.

The metrics of the action-segmentation literature, with the semantics of its reference evaluation,
``eval.py`` of MS-TCN (Farha & Gall, CVPR 2019), which later work (ASFormer, C2F-TCN, ...) reuses.
Both inference (model evaluation) and analytics (manual versus automatic labels) use this module.

Frames
    A labelling is a sequence of frame labels, one per frame; `events_to_frames` samples a
    timeline of events at frame centres. A frame may be *unlabelled* (``None`` or NaN): manual
    labels are often 5 s clips around freeze frames, not full timelines.
Segments
    Maximal runs of equal labels, ``(label, start, end)`` in frame indices with ``end`` exclusive
    (a change of label at frame ``i`` ends the segment before it at ``i``). Frames of a background
    class (MS-TCN's ``bg_class``, the `background` argument) form no segment. **An unlabelled frame
    is treated like a background frame**: it ends the segment before it and is not itself a
    segment, so a gap in the labels splits a segment in two.
Every score is a fraction in [0, 1] (MS-TCN prints percent: multiply by 100 to compare).

Frame accuracy
    Frames with equal labels / frames labelled in the ground truth. **Frames unlabelled in the
    ground truth are left out**; a labelled ground-truth frame whose prediction is unlabelled
    counts as wrong. Background frames count, as in MS-TCN. Over several videos the frames are
    summed (correct and total), as in MS-TCN.
Edit score
    ``1 - D / max(len(P), len(Y))``, where ``D`` is the Levenshtein distance between the
    predicted and true sequences of segment labels ``P`` and ``Y``. Computed per video and averaged
    over videos. A video where neither labelling has a segment scores 1 (MS-TCN divides 0 by 0
    there and returns NaN).
F1@k
    The predicted segments are taken in temporal order; each is compared with the true segment of
    the same label of highest IoU (the first on ties). It is a true positive if that IoU is at least
    ``k / 100`` and that true segment has not been used yet (it then is), and a false positive
    otherwise. False negatives are the true segments left unused. The matching is greedy: a
    prediction whose best true segment is already taken is a false positive even when another
    true segment of its label would pass the threshold. TP, FP and FN are **summed over videos**
    and precision, recall and F1 computed from the sums; F1 is 0 where it is undefined (no true
    positive), as MS-TCN's ``nan_to_num`` makes it.

Background
    Reports give the segment scores twice, **with and without Bk treated as background**
    (``background=()`` and ``background=("Bk",)``): Bk (background search or transition) is the
    least compact class, and as background it no longer forms segments of its own, as
    ``bg_class`` does in the action-segmentation benchmarks. Frame accuracy is the same either way.

The last segment's end (`last_end`)
    MS-TCN's ``get_labels_start_end_time`` closes the last segment of a video at the index of the
    last frame, ``n - 1``, not at ``n`` (``ends.append(i)`` after its loop), so the final segment is
    one frame short when IoUs are computed (and a final one-frame segment has length 0 and never
    matches). The default, ``last_end="exclusive"``, ends every segment exclusively, the last one
    at ``n``. ``last_end="ms-tcn"`` reproduces ``eval.py`` to the digit, for comparison with
    published numbers. Edit score and frame accuracy do not depend on it.

Examples
--------
>>> truth = ["a", "a", "a", "b", "b", "b"]
>>> pred = ["a", "a", "b", "b", "b", "b"]
>>> segments(pred)
[('a', 0, 2), ('b', 2, 6)]
>>> edit_score(pred, truth), f1_at(pred, truth, 0.5)
(1.0, (2, 0, 0))
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Collection, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fetal_analytics.checks import check_choice

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_FRAME_STEP_S",
    "LAST_END_CHOICES",
    "Segment",
    "SegmentScores",
    "edit_score",
    "events_to_frames",
    "f1_at",
    "frame_accuracy",
    "frame_centres",
    "sample_index",
    "segment_scores",
    "segments",
]

log = logging.getLogger(__name__)

DEFAULT_FRAME_STEP_S = 1.0
"""Seconds between the frames at which timelines are compared: one default for the paired
agreement (`correlate`), the decoding tuner (`tune-decoding`) and the quality benchmark."""

LAST_END_CHOICES = ("exclusive", "ms-tcn")
"""Values of `last_end`: where the last segment of a video ends (see the module docstring)."""

Segment = tuple[Hashable, int, int]
"""``(label, start, end)``: frame indices, `end` exclusive."""

# Rows of the IoU matrix computed at once in `_best_matches`, bounding its memory.
_MAX_IOU_CELLS = 1_000_000


# --- validation ---------------------------------------------------------------------------------

def _check_last_end(last_end: str) -> str:
    return check_choice("last_end", last_end, LAST_END_CHOICES)


def _check_background(background: Hashable | Collection[Hashable]) -> frozenset:
    if isinstance(background, str):  # one label, not a collection of characters
        return frozenset((background,))
    return frozenset(background)  # type: ignore[arg-type]


def _check_overlap(overlap: float, argument: str = "overlap") -> float:
    value = float(overlap)
    if not 0 < value <= 1:
        raise ValueError(f"`{argument}` must be an IoU threshold in (0, 1], got {overlap!r}")
    return value


def _missing(values: np.ndarray) -> np.ndarray:
    """Boolean mask of unlabelled entries (None, NaN, pandas NA) of an object array."""
    import pandas as pd

    return np.asarray(pd.isna(values), dtype=bool)


def _as_frames(frames: Sequence[Any] | np.ndarray, argument: str) -> np.ndarray:
    """`frames` as a 1-D object array whose unlabelled entries are all None."""
    arr = np.asarray(frames, dtype=object)
    if arr.ndim != 1:
        raise ValueError(f"`{argument}` must be a 1-D sequence of frame labels, got shape "
                         f"{arr.shape}")
    missing = _missing(arr)
    if missing.any():
        arr = arr.copy()
        arr[missing] = None
    return arr


def _as_pair(pred: Sequence[Any] | np.ndarray,
             truth: Sequence[Any] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, y = _as_frames(pred, "pred"), _as_frames(truth, "truth")
    if len(p) != len(y):
        raise ValueError(f"`pred` and `truth` must have the same number of frames, got {len(p)} "
                         f"and {len(y)}")
    return p, y


# --- frames -------------------------------------------------------------------------------------

def events_to_frames(events_df: pd.DataFrame, *, step_s: float = DEFAULT_FRAME_STEP_S,
                     start_s: float = 0.0, end_s: float | None = None,
                     fill: Any = None) -> np.ndarray:
    """Sample a timeline of events at frame centres.

    Frame ``k`` covers ``[start_s + k * step_s, start_s + (k + 1) * step_s)`` and takes the label
    of the event containing its centre ``start_s + (k + 0.5) * step_s`` (events are half-open,
    ``[start_s, end_s)``). The frames are those whose centre lies before `end_s`.

    Parameters
    ----------
    events_df : pandas.DataFrame
        Events of one scan in one run, with columns ``start_s``, ``end_s`` (seconds) and
        ``label``. Events must not overlap; they may leave gaps. A ``scan_id`` column, if
        present, must hold one scan.
    step_s : float, optional
        Frame spacing in seconds (default 1 s).
    start_s : float, optional
        Time of the start of frame 0, in seconds (default 0).
    end_s : float, optional
        End of the timeline, in seconds; default: the end of the last event (no frames if there
        are no events).
    fill : object, optional
        The label of frames no event covers (default None: unlabelled).

    Returns
    -------
    labels : (n_frames,) ndarray of object
        Frame labels, `fill` where unlabelled.

    Raises
    ------
    ValueError
        Missing columns, several scans, overlapping events, a non-positive `step_s`, or
        `end_s` before `start_s`.
    """
    missing = [c for c in ("start_s", "end_s", "label") if c not in events_df.columns]
    if missing:
        raise ValueError(f"`events_df` lacks the column(s) {', '.join(missing)}; it has "
                         f"{', '.join(map(str, events_df.columns))}")
    if "scan_id" in events_df.columns and events_df["scan_id"].nunique() > 1:
        raise ValueError(f"`events_df` must hold the events of one scan, got "
                         f"{events_df['scan_id'].nunique()} scans: sample each scan separately")
    if not (math.isfinite(step_s) and step_s > 0):
        raise ValueError(f"`step_s` must be a positive number of seconds, got {step_s!r}")
    ordered = events_df.sort_values("start_s", kind="stable")
    starts = ordered["start_s"].to_numpy(dtype=float)
    ends = ordered["end_s"].to_numpy(dtype=float)
    labels = ordered["label"].to_numpy(dtype=object)
    overlapping = np.flatnonzero(ends[:-1] > starts[1:])
    if len(overlapping):
        i = overlapping[0]
        raise ValueError(
            f"`events_df` has overlapping events: [{starts[i]:g}, {ends[i]:g}) {labels[i]} and "
            f"[{starts[i + 1]:g}, {ends[i + 1]:g}) {labels[i + 1]}")
    if end_s is None:
        end_s = float(ends.max()) if len(ends) else start_s
    if end_s < start_s:
        raise ValueError(f"`end_s` ({end_s:g}) must not be before `start_s` ({start_s:g})")
    centres = frame_centres(start_s, end_s, step_s)
    out = np.full(len(centres), fill, dtype=object)
    index = sample_index(starts, ends, centres)
    covered = index >= 0
    out[covered] = labels[index[covered]]
    return out


def frame_centres(start_s: float, end_s: float, step_s: float) -> np.ndarray:
    """Centres ``start_s + (k + 0.5) * step_s`` of the frames whose centre lies before `end_s`."""
    n = max(0, math.ceil((end_s - start_s) / step_s - 0.5))
    while n > 0 and start_s + (n - 0.5) * step_s >= end_s:
        n -= 1
    while start_s + (n + 0.5) * step_s < end_s:
        n += 1
    return start_s + (np.arange(n) + 0.5) * step_s


def sample_index(starts: np.ndarray, ends: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Index of the event ``[starts[i], ends[i])`` holding each time, -1 where none does.

    `starts` must be sorted and the events must not overlap.
    """
    index = np.searchsorted(starts, times, side="right") - 1
    inside = index >= 0
    inside[inside] = times[inside] < ends[index[inside]]
    index[~inside] = -1
    return index


# --- segments -----------------------------------------------------------------------------------

def _segments(arr: np.ndarray, background: frozenset, last_end: str) -> list[Segment]:
    n = len(arr)
    if n == 0:
        return []
    change = np.flatnonzero(arr[1:] != arr[:-1]) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [n]))
    out = [(label, int(s), int(e)) for label, s, e in zip(arr[starts], starts, ends, strict=True)
           if label is not None and label not in background]
    if last_end == "ms-tcn" and out and out[-1][2] == n:
        label, s, _ = out[-1]
        out[-1] = (label, s, n - 1)
    return out


def segments(frames: Sequence[Any] | np.ndarray, *,
             background: Hashable | Collection[Hashable] = (),
             last_end: str = "exclusive") -> list[Segment]:
    """Split frame labels into segments: maximal runs of one label.

    Parameters
    ----------
    frames : (n_frames,) sequence
        Frame labels; None or NaN where unlabelled.
    background : label or collection of labels, optional
        Labels that form no segment (MS-TCN's ``bg_class``), e.g. ``("Bk",)``.
    last_end : {'exclusive', 'ms-tcn'}, optional
        ``'exclusive'``: a segment reaching the last frame ends at ``n_frames``; ``'ms-tcn'``:
        at ``n_frames - 1``, as the reference code does.

    Returns
    -------
    list of (label, start, end)
        In temporal order; frame indices, `end` exclusive. Unlabelled and background frames end
        a segment and belong to none.
    """
    return _segments(_as_frames(frames, "frames"), _check_background(background),
                     _check_last_end(last_end))


# --- edit score ---------------------------------------------------------------------------------

def _levenshtein(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Levenshtein distance between two label sequences, one numpy row per element of `a`."""
    m, n = len(a), len(b)
    if m == 0 or n == 0:
        return max(m, n)
    codes: dict[Hashable, int] = {}
    a_codes = np.array([codes.setdefault(x, len(codes)) for x in a])
    b_codes = np.array([codes.setdefault(x, len(codes)) for x in b])
    cols = np.arange(n + 1)
    prev = cols.copy()
    row = np.empty(n + 1, dtype=np.int64)
    for i in range(1, m + 1):
        row[0] = i
        np.minimum(prev[1:] + 1, prev[:-1] + (b_codes != a_codes[i - 1]), out=row[1:])
        # Insertions within the row: row[j] = min(row[j], row[j-1] + 1), i.e.
        # row[j] - j = min over k <= j of (row[k] - k).
        prev = np.minimum.accumulate(row - cols) + cols
    return int(prev[-1])


def _edit(p_labels: Sequence[Hashable], y_labels: Sequence[Hashable]) -> float:
    longest = max(len(p_labels), len(y_labels))
    if longest == 0:
        return 1.0
    return 1 - _levenshtein(p_labels, y_labels) / longest


def edit_score(pred: Sequence[Any] | np.ndarray, truth: Sequence[Any] | np.ndarray, *,
               background: Hashable | Collection[Hashable] = ()) -> float:
    """Segmental edit score of one video, a fraction in [0, 1].

    Parameters
    ----------
    pred, truth : (n_frames,) sequence
        Predicted and true frame labels; None or NaN where unlabelled.
    background : label or collection of labels, optional
        Labels that form no segment.

    Returns
    -------
    float
        ``1 - Levenshtein(P, Y) / max(len(P), len(Y))`` over the segment label sequences
        ``P`` and ``Y``; 1 when neither has a segment.
    """
    p, y = _as_pair(pred, truth)
    bg = _check_background(background)
    return _edit([s[0] for s in _segments(p, bg, "exclusive")],
                 [s[0] for s in _segments(y, bg, "exclusive")])


# --- F1@k ---------------------------------------------------------------------------------------

def _best_matches(p_segs: list[Segment],
                  y_segs: list[Segment]) -> tuple[np.ndarray, np.ndarray]:
    """For each predicted segment, the true segment MS-TCN matches it with and their IoU.

    As in MS-TCN's ``f_score``: IoU against every true segment, times 1 where the labels are
    equal and 0 elsewhere, then the first argmax (NaN, from two zero-length segments, wins).
    """
    y_label = np.array([s[0] for s in y_segs], dtype=object)
    y_start = np.array([s[1] for s in y_segs], dtype=np.int64)
    y_end = np.array([s[2] for s in y_segs], dtype=np.int64)
    p_label = np.array([s[0] for s in p_segs], dtype=object)
    p_start = np.array([s[1] for s in p_segs], dtype=np.int64)[:, None]
    p_end = np.array([s[2] for s in p_segs], dtype=np.int64)[:, None]
    best = np.empty(len(p_segs), dtype=np.int64)
    best_iou = np.empty(len(p_segs), dtype=float)
    block = max(1, _MAX_IOU_CELLS // len(y_segs))
    with np.errstate(divide="ignore", invalid="ignore"):
        for lo in range(0, len(p_segs), block):
            hi = lo + block
            intersection = np.minimum(p_end[lo:hi], y_end) - np.maximum(p_start[lo:hi], y_start)
            union = np.maximum(p_end[lo:hi], y_end) - np.minimum(p_start[lo:hi], y_start)
            same = p_label[lo:hi, None] == y_label[None, :]
            iou = (1.0 * intersection / union) * same
            best[lo:hi] = np.argmax(iou, axis=1)
            best_iou[lo:hi] = iou[np.arange(len(iou)), best[lo:hi]]
    return best, best_iou


def _f1_counts(best: np.ndarray, best_iou: np.ndarray, n_true: int,
               overlap: float) -> tuple[int, int, int]:
    """Greedy matching in temporal order: (TP, FP, FN)."""
    if n_true == 0:
        return 0, len(best), 0
    hits = np.zeros(n_true, dtype=bool)
    tp = fp = 0
    for idx, iou in zip(best.tolist(), best_iou.tolist(), strict=True):
        if iou >= overlap and not hits[idx]:
            tp += 1
            hits[idx] = True
        else:
            fp += 1
    return tp, fp, n_true - int(hits.sum())


def f1_at(pred: Sequence[Any] | np.ndarray, truth: Sequence[Any] | np.ndarray,
          overlap: float, *, background: Hashable | Collection[Hashable] = (),
          last_end: str = "exclusive") -> tuple[int, int, int]:
    """True positives, false positives and false negatives of one video at an IoU threshold.

    Parameters
    ----------
    pred, truth : (n_frames,) sequence
        Predicted and true frame labels; None or NaN where unlabelled.
    overlap : float
        IoU threshold in (0, 1], e.g. 0.5 for F1@50.
    background : label or collection of labels, optional
        Labels that form no segment.
    last_end : {'exclusive', 'ms-tcn'}, optional
        Where the last segment ends (see the module docstring).

    Returns
    -------
    (tp, fp, fn) : tuple of int
        Counts of segments; sum them over videos before computing F1 (`segment_scores`).
    """
    p, y = _as_pair(pred, truth)
    overlap = _check_overlap(overlap)
    bg, last_end = _check_background(background), _check_last_end(last_end)
    p_segs, y_segs = _segments(p, bg, last_end), _segments(y, bg, last_end)
    if not y_segs or not p_segs:
        return 0, len(p_segs), len(y_segs)
    return _f1_counts(*_best_matches(p_segs, y_segs), len(y_segs), overlap)


# --- frame accuracy -----------------------------------------------------------------------------

def _accuracy_counts(p: np.ndarray, y: np.ndarray) -> tuple[int, int]:
    labelled = np.not_equal(y, None).astype(bool)
    correct = int(np.count_nonzero(np.equal(p, y).astype(bool) & labelled))
    return correct, int(np.count_nonzero(labelled))


def _fraction_or_nan(correct: int, total: int) -> float:
    if total == 0:
        warnings.warn("no frame is labelled in the ground truth: frame accuracy is NaN",
                      RuntimeWarning, stacklevel=3)
        return math.nan
    return float(correct) / total


def frame_accuracy(pred: Sequence[Any] | np.ndarray,
                   truth: Sequence[Any] | np.ndarray) -> float:
    """Share of frames with equal labels, in [0, 1], over the frames labelled in `truth`.

    Parameters
    ----------
    pred, truth : (n_frames,) sequence
        Predicted and true frame labels; None or NaN where unlabelled. Frames unlabelled in
        `truth` are left out; an unlabelled prediction of a labelled frame is wrong.

    Returns
    -------
    float
        Accuracy, a fraction; NaN, with a RuntimeWarning, when no frame of `truth` is labelled.
    """
    return _fraction_or_nan(*_accuracy_counts(*_as_pair(pred, truth)))


# --- over videos --------------------------------------------------------------------------------

@dataclass(frozen=True)
class SegmentScores:
    """Segment-level agreement over a set of videos, aggregated as MS-TCN's ``eval.py`` does.

    Attributes
    ----------
    frame_accuracy : float
        Share of frames labelled in the ground truth with equal labels, in [0, 1], frames summed
        over videos; NaN if no frame is labelled.
    edit : float
        Edit score in [0, 1], averaged over videos.
    f1 : dict of int to float
        F1 in [0, 1] by IoU threshold in percent (``{10: ..., 25: ..., 50: ...}``, the keys
        of F1@10, F1@25, F1@50), from TP, FP and FN summed over videos.
    n_videos : int
        Number of videos (pairs of labellings).
    n_frames : int
        Frames labelled in the ground truth, over all videos.
    counts : dict of int to (int, int, int)
        ``(tp, fp, fn)`` summed over videos, by threshold.
    background : tuple
        The labels treated as background.
    last_end : {'exclusive', 'ms-tcn'}
        Where the last segment of a video ends.
    ci : dict
        Percentile intervals from a bootstrap over videos (videos, not frames, are the
        independent units), ``{"frame_accuracy": (low, high), "edit": (low, high), "f1": {10:
        (low, high), ...}}``; empty when no bootstrap was asked for (``n_boot=0``).
    ci_level : float or None
        Confidence level of `ci`.
    """

    frame_accuracy: float
    edit: float
    f1: dict[int, float]
    n_videos: int
    n_frames: int
    counts: dict[int, tuple[int, int, int]]
    background: tuple = ()
    last_end: str = "exclusive"
    ci: dict = field(default_factory=dict)
    ci_level: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values: keys of `f1` and `counts` as strings, NaN as None."""
        def number(x: float) -> float | None:
            return float(x) if math.isfinite(x) else None

        return {
            "frame_accuracy": number(self.frame_accuracy),
            "edit": number(self.edit),
            "f1": {str(k): number(v) for k, v in self.f1.items()},
            "n_videos": self.n_videos,
            "n_frames": self.n_frames,
            "counts": {str(k): {"tp": tp, "fp": fp, "fn": fn}
                       for k, (tp, fp, fn) in self.counts.items()},
            "background": [str(b) for b in self.background],
            "last_end": self.last_end,
            "ci": {name: ({str(k): [number(x) for x in v] for k, v in value.items()}
                          if isinstance(value, dict) else [number(x) for x in value])
                   for name, value in self.ci.items()},
            "ci_level": self.ci_level,
        }


def _f1(tp: int, fp: int, fn: int) -> float:
    """F1 in [0, 1] from summed counts, 0 where undefined (MS-TCN's ``nan_to_num``)."""
    if tp == 0:
        return 0.0
    precision = tp / float(tp + fp)
    recall = tp / float(tp + fn)
    return 2.0 * (precision * recall) / (precision + recall)


def segment_scores(pairs: Iterable[tuple[Sequence[Any] | np.ndarray, Sequence[Any] | np.ndarray]],
                   *, overlaps: Sequence[float] = (0.1, 0.25, 0.5),
                   background: Hashable | Collection[Hashable] = (),
                   last_end: str = "exclusive", n_boot: int = 0, ci: float = 0.95,
                   seed: int = 0) -> SegmentScores:
    """Frame accuracy, edit score and F1@k over videos, aggregated as MS-TCN does.

    Parameters
    ----------
    pairs : iterable of (pred, truth)
        One pair of equally long frame-label sequences per video; None or NaN where unlabelled.
    overlaps : sequence of float, optional
        IoU thresholds in (0, 1] (default 0.1, 0.25, 0.5).
    background : label or collection of labels, optional
        Labels that form no segment, e.g. ``("Bk",)``.
    last_end : {'exclusive', 'ms-tcn'}, optional
        Where the last segment of a video ends (see the module docstring).
    n_boot : int, optional
        Bootstrap resamples of the videos for the intervals of `SegmentScores.ci` (0: none).
        Each resample draws videos with replacement and aggregates them as above.
    ci : float, optional
        Confidence level of those intervals.
    seed : int, optional
        Seed of the bootstrap.

    Returns
    -------
    SegmentScores
        Frame accuracy from frames summed over videos, edit score averaged over videos, F1 from
        TP, FP, FN summed over videos; all fractions in [0, 1].

    Raises
    ------
    ValueError
        No pairs, a pair of unequal lengths, or a threshold outside (0, 1].
    """
    thresholds = [_check_overlap(o, "overlaps") for o in overlaps]
    keys = [round(o * 100) for o in thresholds]
    if len(set(keys)) != len(keys):
        raise ValueError(f"`overlaps` must be distinct thresholds, got {list(overlaps)!r}")
    bg, last_end = _check_background(background), _check_last_end(last_end)
    per_video: list[tuple[int, int, float, list[int]]] = []  # correct, total, edit, tp/fp/fn
    for i, pair in enumerate(pairs):
        try:
            pred, truth = pair
            p, y = _as_pair(pred, truth)
        except ValueError as exc:
            raise ValueError(f"pair {i} of `pairs`: {exc}") from exc
        c, t = _accuracy_counts(p, y)
        p_segs, y_segs = _segments(p, bg, last_end), _segments(y, bg, last_end)
        edit = _edit([s[0] for s in p_segs], [s[0] for s in y_segs])
        if p_segs and y_segs:
            best, best_iou = _best_matches(p_segs, y_segs)
        counts: list[int] = []
        for overlap in thresholds:
            counts += (_f1_counts(best, best_iou, len(y_segs), overlap) if p_segs and y_segs
                       else (0, len(p_segs), len(y_segs)))
        per_video.append((c, t, edit, counts))
    if not per_video:
        raise ValueError("`pairs` must hold at least one (pred, truth) pair")
    if int(n_boot) != n_boot or n_boot < 0:
        raise ValueError(f"`n_boot` must be a non-negative integer, got {n_boot!r}")
    table = np.array([[c, t, e, *counts] for c, t, e, counts in per_video], dtype=float)
    scores = _aggregate(table, keys)
    total = int(table[:, 1].sum())
    log.debug("segment scores over %d videos, %d labelled frames", len(per_video), total)
    intervals: dict = {}
    if n_boot:
        rng = np.random.default_rng(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a draw without labelled frames
            draws = [_aggregate(table[rng.integers(0, len(table), len(table))], keys)
                     for _ in range(int(n_boot))]
        q = [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100]

        def bounds(values: list[float]) -> tuple[float, float]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: no labelled frame
                low, high = np.nanpercentile(np.asarray(values, dtype=float), q)
            return float(low), float(high)

        intervals = {"frame_accuracy": bounds([d[0] for d in draws]),
                     "edit": bounds([d[1] for d in draws]),
                     "f1": {k: bounds([d[2][k] for d in draws]) for k in keys}}
    totals = table[:, 3:].sum(axis=0).astype(int).reshape(len(keys), 3)
    return SegmentScores(
        frame_accuracy=scores[0],
        edit=scores[1],
        f1=scores[2],
        n_videos=len(per_video),
        n_frames=total,
        counts={k: (int(tp), int(fp), int(fn)) for k, (tp, fp, fn) in zip(keys, totals,
                                                                          strict=True)},
        background=tuple(sorted(bg, key=str)),
        last_end=last_end,
        ci=intervals,
        ci_level=ci if n_boot else None,
    )


def _aggregate(table: np.ndarray, keys: list[int]) -> tuple[float, float, dict[int, float]]:
    """Frame accuracy, edit and F1 by threshold of videos given as rows ``correct, total, edit,
    tp, fp, fn, tp, fp, fn, ...``, aggregated as MS-TCN does."""
    sums = table.sum(axis=0)
    counts = sums[3:].reshape(len(keys), 3)
    return (_fraction_or_nan(int(sums[0]), int(sums[1])), float(table[:, 2].mean()),
            {k: _f1(int(tp), int(fp), int(fn)) for k, (tp, fp, fn) in zip(keys, counts,
                                                                          strict=True)})
