"""Temporal decoding: from per-window class posteriors to a timeline of events.

The labeller classifies overlapping windows of a scan every ``hop_s`` seconds (1 s by default)
and fuses its streams into one posterior ``p(c | x_t)`` per window. Taken window by window these
posteriors flicker; this module turns them into a timeline of segments with a *hybrid HMM*
(Bourlard & Morgan's hybrid of a neural network and an HMM), decoded by Viterbi, followed by
the merging of segments too short to be real.

The model
---------
States
    One state per class of the model (e.g. the paper's 11); the hidden state at window ``t`` is
    the structure being scanned.
Emissions (scaled likelihoods, tempered)
    ``log b_t(c) = (log p(c | x_t) - prior_power * log prior(c)) / temperature``. Dividing the
    posterior by the class prior gives a quantity proportional to the likelihood ``p(x_t | c)``
    that an HMM needs (the *scaled likelihood*). The models are trained with balanced class
    weights, so their posteriors are already roughly prior-free: the default ``prior_power``
    is 0 (with ``priors=None``, a uniform prior, it has no effect at all). ``temperature > 1``
    flattens the emissions: consecutive windows overlap (a 12-frame clip at FR/8 spans 3.2 s,
    three hops) and their errors are correlated, so each window is less than one independent
    observation (the design's ``beta = 1 / temperature``).
Transitions (sticky, with a background class)
    A scan follows the pattern structure -> background search (Bk, the operator looking for the
    next structure; median ~8 s, often 1-10 s) -> structure. The transition matrix can say so.
    With ``C`` classes, ``b`` the background class (`BACKGROUND`, "Bk") and
    ``a = 1 - hop_s / expected_segment_s``, clipped to [0.5, 0.9999] (a geometric duration of
    mean ``hop_s / (1 - a)``, i.e. ``expected_segment_s`` seconds), the rows are:

    * a class ``i != b``: ``A[i, i] = a``; with ``background_share = s`` (a share in [0, 1]),
      ``A[i, b] = s (1 - a)`` and ``A[i, j] = (1 - s) (1 - a) / (C - 2)`` for every other class
      ``j`` (with ``C = 2`` all of ``1 - a`` goes to ``b``); with ``background_share=None``
      (the default), ``A[i, j] = (1 - a) / (C - 1)`` for every ``j != i``, ``b`` included;
    * the background class: ``A[b, b] = a_b = 1 - hop_s / background_segment_s`` (same
      clipping; ``background_segment_s=None``, the default, is ``expected_segment_s``, so
      ``a_b = a``) and ``A[b, j] = (1 - a_b) / (C - 1)`` for every ``j != b``.

    With both defaults (or a model without a Bk class) every row is the uniform
    ``[a on the diagonal, (1 - a) / (C - 1) off it]``, and a change of segment costs about
    ``log(a (C - 1) / (1 - a))`` nats (5.3 for ``a = 0.95`` and 11 classes), weighed against
    the tempered evidence of the windows. A short Bk gap between two structures then costs two
    such changes, and with one long expected length (tuned ~40 s) the decoder erases it: the
    structures on either side merge (same class) or their boundary moves. Giving Bk a large
    share of each structure's leaving mass makes ``structure -> Bk`` cheap, and a short
    ``background_segment_s`` makes leaving Bk cheap (what it gains on held-out scans:
    BENCHMARKS.md, "Labelling quality").
Initial distribution
    Uniform.
Minimum duration
    After Viterbi, segments shorter than ``min_duration_s`` are merged, shortest first, into
    the neighbour (left or right) whose class has the higher mean posterior over the short
    segment's windows, until none is short or only one segment is left.

Times
-----
Window ``t`` is centred at ``times_s[t]``. Segments tile ``[0, duration_s]``: a boundary lies
at the midpoint between two consecutive windows whose labels differ, the first segment starts at
0 and the last ends at ``duration_s`` (default: the last window's centre plus ``hop_s / 2``).

Defaults
--------
Chosen for a small CNN labelling 1 s windows of a 25-45 minute scan, where events last ~5-300 s
(median ~20 s) and background (Bk) between structures ~10 s: ``hop_s=1``, ``temperature=2``
(the middle of the design's beta 0.3-0.5 ... 1), ``prior_power=0`` (balanced class weights),
``expected_segment_s=20`` (self-transition 0.95), ``min_duration_s=2``, and the uniform
transitions of the first models (``background_share=None``, ``background_segment_s=None``).
Tune them on validation scans with `inference.tuning.tune_decoding` (``fetal-analytics
tune-decoding``); the tuned values go into the model's sidecar under ``"decoding"``.

Examples
--------
>>> import numpy as np
>>> probs = np.array([[0.9, 0.1]] * 4 + [[0.2, 0.8]] + [[0.9, 0.1]] * 3 + [[0.1, 0.9]] * 6)
>>> segs = decode_timeline(probs, np.arange(14) + 0.5, ["Br", "Sp"])
>>> [(s.start_s, s.end_s, s.label) for s in segs]
[(0.0, 8.0, 'Br'), (8.0, 14.0, 'Sp')]
"""

from __future__ import annotations

import heapq
import logging
import math
import numbers
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from fetal_analytics.taxonomy import BACKGROUND

__all__ = [
    "BACKGROUND",
    "BACKGROUND_PARAMS",
    "LEGACY_KEYS",
    "DecodingParams",
    "Segment",
    "background_index",
    "decode_path",
    "decode_timeline",
    "log_emissions",
    "log_transitions",
    "path_to_segments",
    "viterbi",
]

log = logging.getLogger(__name__)

#: Keys of the first sidecars' ``"decoding"`` entry that `DecodingParams.from_dict` maps.
LEGACY_KEYS = ("beta",)

# Self-transition bounds: below 0.5 the HMM no longer prefers to stay; 0.9999 keeps log(1 - a)
# finite and a change still possible.
_SELF_MIN, _SELF_MAX = 0.5, 0.9999
# Posteriors are floored before the log (float32 softmax outputs can be exactly 0).
_FLOOR = 1e-12


#: The parameters whose default is None (the even transitions; left out of
#: `DecodingParams.to_dict` while None).
BACKGROUND_PARAMS = ("background_share", "background_segment_s")


def _log(x: float) -> float:
    return math.log(x) if x > 0 else -math.inf


def _stay(hop_s: float, segment_s: float) -> float:
    return float(np.clip(1.0 - hop_s / segment_s, _SELF_MIN, _SELF_MAX))


@dataclass(frozen=True)
class DecodingParams:
    """Parameters of the temporal decoding (see the module docstring).

    Attributes
    ----------
    hop_s : float
        Spacing of the labeller's windows, in seconds (> 0).
    temperature : float
        Emissions are ``log p / temperature`` (> 0); above 1 flattens them (correlated windows).
    prior_power : float
        Scaled likelihood ``p(c | x) / prior(c) ** prior_power`` (>= 0); 0 ignores the prior.
    expected_segment_s : float
        Mean segment length in seconds (> 0), giving the self-transition
        ``1 - hop_s / expected_segment_s`` (clipped to [0.5, 0.9999]).
    min_duration_s : float
        Segments shorter than this, in seconds (>= 0), are merged into a neighbour; 0 merges
        nothing.
    background_share : float or None
        Share, in [0, 1], of a non-background class's leaving mass ``1 - a`` that goes to the
        background class `BACKGROUND`; the rest is spread uniformly over the other classes.
        None (default): all of ``1 - a`` is spread uniformly, Bk included.
    background_segment_s : float or None
        Mean length of a background segment in seconds (> 0), giving Bk its own
        self-transition ``1 - hop_s / background_segment_s`` (same clipping). None (default):
        ``expected_segment_s``.

    Both background parameters have no effect when the model has no Bk class.
    """

    hop_s: float = 1.0
    temperature: float = 2.0
    prior_power: float = 0.0
    expected_segment_s: float = 20.0
    min_duration_s: float = 2.0
    background_share: float | None = None
    background_segment_s: float | None = None

    def __post_init__(self) -> None:
        for name, positive in (("hop_s", True), ("temperature", True), ("prior_power", False),
                               ("expected_segment_s", True), ("min_duration_s", False)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"`{name}` must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0 or (positive and value == 0):
                need = "a positive" if positive else "a non-negative"
                raise ValueError(f"`{name}` must be {need} finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        for name, need, ok in (
                ("background_share", "a number in [0, 1]", lambda v: 0 <= v <= 1),
                ("background_segment_s", "a positive finite number",
                 lambda v: 0 < v < math.inf)):
            value = getattr(self, name)
            if value is None:
                continue
            if (isinstance(value, bool) or not isinstance(value, numbers.Real)
                    or math.isnan(value) or not ok(value)):
                raise ValueError(f"`{name}` must be {need} or None, got {value!r}")
            object.__setattr__(self, name, float(value))

    @property
    def self_transition(self) -> float:
        """The self-transition probability ``1 - hop_s / expected_segment_s``, clipped."""
        return _stay(self.hop_s, self.expected_segment_s)

    @property
    def background_self_transition(self) -> float:
        """The background class's self-transition ``1 - hop_s / background_segment_s``,
        clipped (`self_transition` when ``background_segment_s`` is None)."""
        if self.background_segment_s is None:
            return self.self_transition
        return _stay(self.hop_s, self.background_segment_s)

    def to_dict(self) -> dict[str, float]:
        """The parameters as a plain dict (what the model sidecar stores under "decoding").

        The background parameters are left out while None (their default; `from_dict` reads
        a missing key as None), so that a sidecar with the uniform transitions reads as before,
        also by versions that do not know them.
        """
        return {k: v for k, v in asdict(self).items()
                if v is not None or k not in BACKGROUND_PARAMS}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DecodingParams:
        """Parameters from a dict such as a sidecar's ``"decoding"`` entry.

        Missing keys take their defaults (None for the background parameters, i.e. the
        uniform transitions of the sidecars written before them). The first sidecars stored
        ``{"beta": ..., "min_duration_s": ..., "hop_s": ...}`` with emissions
        ``beta * log p``: ``beta`` is read as ``temperature = 1 / beta`` (an explicit
        ``temperature`` wins, with a logged warning).

        Raises
        ------
        ValueError
            A key that is not a parameter (all such keys are named), or a bad value.
        """
        if not isinstance(d, dict):
            raise ValueError(f"decoding parameters must be a dict, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known - set(LEGACY_KEYS))
        if unknown:
            raise ValueError(f"unknown decoding parameter(s) {', '.join(map(repr, unknown))}; "
                             f"known: {', '.join(sorted(known))}")
        values = {k: v for k, v in d.items() if k in known}
        if "beta" in d:
            beta = d["beta"]
            if "temperature" in d:
                log.warning("decoding parameters give both 'beta' (legacy) and 'temperature': "
                            "'beta' is ignored")
            elif isinstance(beta, numbers.Real) and not isinstance(beta, bool) and beta > 0:
                values["temperature"] = 1.0 / float(beta)
            else:
                raise ValueError(f"legacy decoding parameter 'beta' must be a positive number, "
                                 f"got {beta!r}")
        return cls(**values)


@dataclass(frozen=True)
class Segment:
    """One decoded event.

    Attributes
    ----------
    start_s, end_s : float
        Start and end in seconds from the start of the video (half-open ``[start, end)``).
    label : str
        The class code.
    confidence : float
        Mean posterior of `label` over the segment's windows, in [0, 1].
    """

    start_s: float
    end_s: float
    label: str
    confidence: float

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return self.end_s - self.start_s

    def to_dict(self) -> dict[str, Any]:
        """Plain values, in the columns of the ``events`` table."""
        return asdict(self)


# --- the HMM ------------------------------------------------------------------------------------

def viterbi(log_emissions: np.ndarray, log_transitions: np.ndarray,
            log_initial: np.ndarray) -> np.ndarray:
    """The most probable state path of an HMM.

    Parameters
    ----------
    log_emissions : (T, C) array
        Log emission score of each state at each step (any real numbers; -inf allowed).
    log_transitions : (C, C) array
        ``log_transitions[i, j]``: log probability of going from state i to state j.
    log_initial : (C,) array
        Log probability of each state at step 0.

    Returns
    -------
    path : (T,) ndarray of int
        The states maximising ``log_initial[s0] + sum_t log_emissions[t, s_t] +
        sum_t log_transitions[s_{t-1}, s_t]``; ties go to the lower state index. Empty for
        ``T == 0``.

    Raises
    ------
    ValueError
        Shapes that do not fit each other, or NaN.
    """
    e = np.asarray(log_emissions, dtype=float)
    a = np.asarray(log_transitions, dtype=float)
    pi = np.asarray(log_initial, dtype=float)
    if e.ndim != 2:
        raise ValueError(f"`log_emissions` must be a (T, C) array, got shape {e.shape}")
    n_steps, n_states = e.shape
    if n_states == 0:
        raise ValueError("`log_emissions` must have at least one state (column)")
    if a.shape != (n_states, n_states):
        raise ValueError(f"`log_transitions` must be ({n_states}, {n_states}) to fit "
                         f"`log_emissions`, got shape {a.shape}")
    if pi.shape != (n_states,):
        raise ValueError(f"`log_initial` must be ({n_states},) to fit `log_emissions`, got "
                         f"shape {pi.shape}")
    for name, arr in (("log_emissions", e), ("log_transitions", a), ("log_initial", pi)):
        if np.isnan(arr).any():
            raise ValueError(f"`{name}` contains NaN")
    if n_steps == 0:
        return np.zeros(0, dtype=np.int64)
    back = np.empty((n_steps, n_states), dtype=np.intp)
    scores = np.empty((n_states, n_states))
    cols = np.arange(n_states)
    delta = pi + e[0]
    for t in range(1, n_steps):
        np.add(delta[:, None], a, out=scores)        # scores[i, j]: come from i, go to j
        best = scores.argmax(axis=0)
        back[t] = best
        delta = scores[best, cols] + e[t]
    path = np.empty(n_steps, dtype=np.int64)
    state = int(delta.argmax())
    path[-1] = state
    for t in range(n_steps - 1, 0, -1):
        state = int(back[t, state])
        path[t - 1] = state
    return path


def background_index(classes: Sequence[str]) -> int | None:
    """The column of the background class `BACKGROUND` ("Bk") in `classes`, or None."""
    classes = list(classes)
    return classes.index(BACKGROUND) if BACKGROUND in classes else None


def log_transitions(n_classes: int, params: DecodingParams, *,
                    background: int | None = None) -> np.ndarray:
    """The log transition matrix of the HMM (rows as in the module docstring).

    Parameters
    ----------
    n_classes : int
        The number of classes C (>= 1).
    params : DecodingParams
        ``hop_s``, ``expected_segment_s``, ``background_share`` and ``background_segment_s``
        are used.
    background : int, optional
        Index of the background class (see `background_index`); None, when the model has no
        Bk class, ignores the background parameters.

    Returns
    -------
    (C, C) ndarray of float
        ``out[i, j]``: log probability of going from class i to class j; each row's
        probabilities sum to 1 (``-inf`` where a probability is 0: with ``background_share``
        0 or 1). With the default parameters, or no background, ``log a`` on the diagonal and
        ``log((1 - a) / (C - 1))`` off it. With one class, ``[[0]]``.

    Raises
    ------
    ValueError
        `n_classes` < 1, or `background` not a class index.
    """
    if n_classes < 1:
        raise ValueError(f"`n_classes` must be at least 1, got {n_classes}")
    if background is not None and not 0 <= background < n_classes:
        raise ValueError(f"`background` must be a class index in [0, {n_classes}), got "
                         f"{background!r}")
    if n_classes == 1:
        return np.zeros((1, 1))
    stay = params.self_transition
    out = np.full((n_classes, n_classes), math.log((1.0 - stay) / (n_classes - 1)))
    np.fill_diagonal(out, math.log(stay))
    share, bk_segment = params.background_share, params.background_segment_s
    if background is None:
        if share is not None or bk_segment is not None:
            log.debug("no background class %r: background_share and background_segment_s "
                      "have no effect", BACKGROUND)
        return out
    b = background
    if share is not None:
        leave, n_other = 1.0 - stay, n_classes - 2  # other non-background classes
        structures = np.flatnonzero(np.arange(n_classes) != b)
        out[structures] = _log(leave * (1.0 - share) / n_other) if n_other else -math.inf
        out[structures, b] = _log(leave * share) if n_other else math.log(leave)
        out[structures, structures] = math.log(stay)
    if bk_segment is not None:
        stay_b = params.background_self_transition
        out[b] = math.log((1.0 - stay_b) / (n_classes - 1))
        out[b, b] = math.log(stay_b)
    return out


def log_emissions(probs: np.ndarray, params: DecodingParams,
                  priors: np.ndarray | None = None) -> np.ndarray:
    """Tempered scaled log-likelihoods ``(log p - prior_power * log prior) / temperature``.

    Parameters
    ----------
    probs : (T, C) array
        Posteriors (validated by `decode_timeline`); floored at 1e-12 before the log.
    params : DecodingParams
    priors : (C,) array, optional
        Class priors; None is uniform (no effect).

    Returns
    -------
    (T, C) ndarray of float
    """
    scores = np.log(np.maximum(np.asarray(probs, dtype=float), _FLOOR))
    if priors is not None and params.prior_power:
        scores = scores - params.prior_power * np.log(np.maximum(priors, _FLOOR))
    return scores / params.temperature


def decode_path(probs: np.ndarray, *, params: DecodingParams | None = None,
                priors: np.ndarray | None = None, background: int | None = None) -> np.ndarray:
    """The Viterbi class path of a (T, C) array of posteriors, before minimum-duration merging.

    Parameters
    ----------
    probs : (T, C) array
        Posteriors per window; validate them first (`decode_timeline` does).
    params : DecodingParams, optional
        Default: ``DecodingParams()``.
    priors : (C,) array, optional
        Class priors of the training data; None is uniform.
    background : int, optional
        Column of the background class Bk (`background_index` of the classes); None, for
        a model without one, ignores ``params.background_share`` and
        ``params.background_segment_s``.

    Returns
    -------
    (T,) ndarray of int
        Class index per window.
    """
    params = params or DecodingParams()
    n_classes = probs.shape[1]
    return viterbi(log_emissions(probs, params, priors),
                   log_transitions(n_classes, params, background=background),
                   np.full(n_classes, -math.log(n_classes)))


# --- segments -----------------------------------------------------------------------------------

def _check_inputs(probs: Any, times_s: Any, classes: Sequence[str], priors: Any,
                  duration_s: float | None,
                  hop_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, float]:
    p = np.asarray(probs, dtype=float)
    t = np.asarray(times_s, dtype=float)
    classes = list(classes)
    if p.ndim != 2:
        raise ValueError(f"`probs` must be a (T, C) array of posteriors, got shape {p.shape}")
    if p.shape[0] == 0:
        raise ValueError("`probs` has no windows (0 rows)")
    if len(classes) == 0 or len(set(classes)) != len(classes):
        raise ValueError(f"`classes` must be distinct class codes, got {classes!r}")
    if p.shape[1] != len(classes):
        raise ValueError(f"`probs` has {p.shape[1]} columns but `classes` names {len(classes)} "
                         f"classes")
    if not np.isfinite(p).all():
        bad = np.argwhere(~np.isfinite(p))[0]
        raise ValueError(f"`probs` contains NaN or infinite values (first at window {bad[0]}, "
                         f"class {classes[bad[1]]!r})")
    if (p < 0).any():
        bad = np.argwhere(p < 0)[0]
        raise ValueError(f"`probs` contains negative values (first at window {bad[0]}, class "
                         f"{classes[bad[1]]!r}: {p[tuple(bad)]:g})")
    sums = p.sum(axis=1)
    off = np.flatnonzero(np.abs(sums - 1) > 1e-3)
    if len(off):
        raise ValueError(f"`probs` rows must sum to 1 (softmax posteriors); window {off[0]} "
                         f"sums to {sums[off[0]]:g} ({len(off)} such rows)")
    if t.shape != (p.shape[0],):
        raise ValueError(f"`times_s` must have one time per window ({p.shape[0]}), got shape "
                         f"{t.shape}")
    if not np.isfinite(t).all():
        raise ValueError("`times_s` contains NaN or infinite values")
    if t[0] < 0:
        raise ValueError(f"`times_s` must be seconds from the start of the video (>= 0), got "
                         f"{t[0]:g}")
    steps = np.flatnonzero(np.diff(t) <= 0)
    if len(steps):
        i = steps[0]
        raise ValueError(f"`times_s` must be strictly ascending; window {i + 1} ({t[i + 1]:g} s) "
                         f"does not come after window {i} ({t[i]:g} s)")
    if priors is not None:
        priors = np.asarray(priors, dtype=float)
        if priors.shape != (len(classes),):
            raise ValueError(f"`priors` must have one value per class ({len(classes)}), got "
                             f"shape {priors.shape}")
        if not np.isfinite(priors).all() or (priors <= 0).any():
            raise ValueError(f"`priors` must be positive finite numbers, got {priors.tolist()}")
        priors = priors / priors.sum()
    if duration_s is None:
        duration_s = float(t[-1] + hop_s / 2)
    elif not (math.isfinite(duration_s) and duration_s >= t[-1]):
        raise ValueError(f"`duration_s` ({duration_s!r}) must not be before the last window's "
                         f"centre ({t[-1]:g} s)")
    return p, t, priors, float(duration_s)


def path_to_segments(path: np.ndarray, probs: np.ndarray, times_s: np.ndarray,
                     classes: Sequence[str], *, min_duration_s: float = 0.0,
                     duration_s: float) -> list[Segment]:
    """Cut a class path into segments and merge those shorter than `min_duration_s`.

    Parameters
    ----------
    path : (T,) array of int
        Class index per window (e.g. from `decode_path`).
    probs : (T, C) array
        The posteriors, for choosing merge targets and for the confidences.
    times_s : (T,) array
        Window centres in seconds, strictly ascending.
    classes : sequence of str
        Class codes in column order.
    min_duration_s : float, optional
        Segments shorter than this (seconds) are merged into the neighbour whose class has the
        higher mean posterior over their windows (ties: the longer neighbour, then the left),
        shortest first (ties: the earliest), until none is short or one segment is left.
    duration_s : float
        End of the last segment, in seconds.

    Returns
    -------
    list of Segment
        Tiling ``[0, duration_s]`` in order; neighbours always differ in label.
    """
    path = np.asarray(path)
    times_s = np.asarray(times_s, dtype=float)
    n = len(path)
    # Mean posterior of class c over windows lo..hi-1: (total[hi, c] - total[lo, c]) / (hi - lo).
    total = np.zeros((n + 1, probs.shape[1]))
    np.cumsum(probs, axis=0, out=total[1:])

    def mean_posterior(c: int, lo: int, hi: int) -> float:
        return float((total[hi, c] - total[lo, c]) / (hi - lo))
    change = np.flatnonzero(path[1:] != path[:-1]) + 1
    first = np.concatenate(([0], change)).tolist()        # first window of each segment
    stop = np.concatenate((change, [n])).tolist()          # one past its last window
    label = path[first].tolist()
    bounds = np.concatenate(([0.0], (times_s[change - 1] + times_s[change]) / 2, [duration_s]))
    start, end = bounds[:-1].tolist(), bounds[1:].tolist()
    k = len(first)
    left = list(range(-1, k - 1))
    right = [*range(1, k), -1]
    alive = [True] * k
    version = [0] * k
    live = k

    if min_duration_s > 0 and k > 1:
        heap = [(end[i] - start[i], i, 0) for i in range(k)]
        heapq.heapify(heap)
        while heap and live > 1:
            length, i, ver = heapq.heappop(heap)
            if not alive[i] or ver != version[i]:
                continue  # stale entry
            if length >= min_duration_s - 1e-9:  # float midpoints: 2.9999999 is 3
                break
            lo, hi = first[i], stop[i]
            candidates = [j for j in (left[i], right[i]) if j >= 0]

            def preference(j: int, lo: int = lo, hi: int = hi) -> tuple[float, float, int]:
                support = round(mean_posterior(label[j], lo, hi), 9)  # ties despite rounding
                return support, end[j] - start[j], -j

            target = max(candidates, key=preference)
            # Segment i joins `target`; then `target` may touch a segment of its own label.
            if target == left[i]:
                end[target], stop[target] = end[i], stop[i]
            else:
                start[target], first[target] = start[i], first[i]
            _unlink(i, left, right)
            alive[i] = False
            live -= 1
            for j in (left[target], right[target]):
                if j >= 0 and label[j] == label[target]:
                    a, b = (j, target) if j == left[target] else (target, j)
                    end[a], stop[a] = end[b], stop[b]
                    _unlink(b, left, right)
                    alive[b] = False
                    live -= 1
                    if b == target:
                        target = a
                    break
            version[target] += 1
            heapq.heappush(heap, (end[target] - start[target], target, version[target]))

    out = []
    i = alive.index(True)  # the first live segment: the others follow by `right`
    while i >= 0:
        lo, hi = first[i], stop[i]
        conf = min(1.0, max(0.0, mean_posterior(label[i], lo, hi)))
        out.append(Segment(start[i], end[i], classes[label[i]], conf))
        i = right[i]
    return out


def _unlink(i: int, left: list[int], right: list[int]) -> None:
    l, r = left[i], right[i]  # noqa: E741
    if l >= 0:
        right[l] = r
    if r >= 0:
        left[r] = l


def decode_timeline(probs: np.ndarray, times_s: np.ndarray, classes: Sequence[str], *,
                    params: DecodingParams | None = None, priors: np.ndarray | None = None,
                    duration_s: float | None = None) -> list[Segment]:
    """Decode fused window posteriors into a timeline of events.

    Parameters
    ----------
    probs : (T, C) array
        Fused softmax posterior per window, columns in the order of `classes`; non-negative,
        rows summing to 1 (within 1e-3).
    times_s : (T,) array
        Window centres in seconds from the start of the video, strictly ascending, >= 0.
    classes : sequence of str
        The C class codes, in output order.
    params : DecodingParams, optional
        Default: ``DecodingParams()``.
    priors : (C,) array, optional
        Class priors of the data the posteriors are calibrated to (normalised here); None is
        uniform. Used with ``params.prior_power``.
    duration_s : float, optional
        End of the timeline in seconds (>= the last window's centre); default: the last
        window's centre + ``hop_s / 2``.

    Returns
    -------
    list of Segment
        In temporal order, tiling ``[0, duration_s]``; consecutive segments differ in label.
        Boundaries lie at the midpoints between consecutive windows of different decoded labels
        (before merging). One window, or one class throughout, gives one segment.

    Raises
    ------
    ValueError
        Wrong shapes, NaN or negative posteriors, rows not summing to 1, a width that does not
        match `classes`, times not ascending, bad priors or a `duration_s` before the last window.
    """
    params = params or DecodingParams()
    p, t, priors, duration_s = _check_inputs(probs, times_s, classes, priors, duration_s,
                                             params.hop_s)
    path = decode_path(p, params=params, priors=priors, background=background_index(classes))
    segments = path_to_segments(path, p, t, classes, min_duration_s=params.min_duration_s,
                                duration_s=duration_s)
    log.debug("decoded %d windows into %d segments (%s)", len(t), len(segments), params)
    return segments
