"""The workflow model: operators, and the timeline of events and freezes of one scan.

A scan's timeline is contiguous: anatomy visits separated by background search (Bk), from 0 to
the end of the scan. Freezes lie inside events (mostly anatomy visits, a few during background
search), away from their edges, so a frozen image shows one class; successive freezes are at
least one labelling clip apart, so the paper's freeze-centred clips never overlap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fetal_analytics import taxonomy
from fetal_analytics.synth.config import GroupProfile, WorkflowConfig

__all__ = ["Event", "Freeze", "Operator", "ScanTimeline", "make_operator", "simulate_scan"]

MIN_FREEZE_S = 0.6  # shortest freeze drawn: freeze detection needs >= 0.5 s of static image


@dataclass(frozen=True)
class Operator:
    """A simulated operator.

    Attributes
    ----------
    operator_id : str
    group : str
        A key of `WorkflowConfig.groups`.
    years_experience : float
    speed : float
        Multiplier of all the operator's durations (log-normal around 1).
    habitual_order : tuple of str
        The order this operator usually scans in.
    """

    operator_id: str
    group: str
    years_experience: float
    speed: float
    habitual_order: tuple[str, ...]


@dataclass(frozen=True)
class Event:
    """One event of a timeline: `label` over ``[start_s, end_s)``, seconds from the scan start."""

    label: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Freeze:
    """A frozen span ``[start_s, end_s)`` inside an event of class `label`; `calipers` if
    measured."""

    start_s: float
    end_s: float
    label: str
    calipers: bool


@dataclass(frozen=True)
class ScanTimeline:
    """The ground truth of one simulated scan.

    Attributes
    ----------
    scan_id, operator_id : str
    duration_s : float
        The scan's length; `events` cover ``[0, duration_s)`` without gaps.
    events : tuple of Event
    freezes : tuple of Freeze
        In time order.
    """

    scan_id: str
    operator_id: str
    duration_s: float
    events: tuple[Event, ...]
    freezes: tuple[Freeze, ...]


def _lognormal(rng: np.random.Generator, mean: float, cv: float) -> float:
    sigma2 = math.log1p(cv * cv)
    return float(rng.lognormal(math.log(mean) - sigma2 / 2, math.sqrt(sigma2)))


def _swap_adjacent(order: list[str], swaps: int, rng: np.random.Generator) -> list[str]:
    order = list(order)
    for _ in range(swaps):
        if len(order) < 2:
            break
        i = int(rng.integers(len(order) - 1))
        order[i], order[i + 1] = order[i + 1], order[i]
    return order


def make_operator(operator_id: str, group: str, *, config: WorkflowConfig,
                  rng: np.random.Generator) -> Operator:
    """Draw an operator of `group`: speed, experience and habitual order."""
    profile = config.groups[group]
    years = float(rng.uniform(5, 20) if group == "expert" else rng.uniform(0, 2))
    return Operator(
        operator_id, group, round(years, 1),
        speed=float(np.exp(rng.normal(0.0, profile.operator_speed_sd))),
        habitual_order=tuple(_swap_adjacent(list(config.habitual_order), profile.habit_swaps,
                                            rng)),
    )


def _plan_visits(operator: Operator, profile: GroupProfile, config: WorkflowConfig,
                 rng: np.random.Generator) -> list[tuple[str, bool]]:
    """The scan's sequence of (class, is_revisit) visits."""
    order = _swap_adjacent(list(operator.habitual_order),
                           int(rng.poisson(profile.order_swaps_per_scan)), rng)
    draw, cumulative = rng.random(), 0.0
    for code, probability in config.first_structure.items():
        cumulative += probability
        if draw < cumulative:
            order.remove(code)
            order.insert(0, code)
            break
    required = set(taxonomy.fasp_required_codes())
    visits = []
    for code in order:
        presence = config.classes[code].presence
        if code in required:
            presence *= 1 - profile.miss_probability
        if rng.random() < presence:
            visits.append((code, False))
    for code, _ in list(visits):
        while rng.random() < profile.revisit_probability:
            first = next(i for i, (c, _) in enumerate(visits) if c == code)
            slots = [j for j in range(first + 2, len(visits) + 1)
                     if visits[j - 1][0] != code and (j == len(visits) or visits[j][0] != code)]
            if not slots:
                break
            visits.insert(int(rng.choice(slots)), (code, True))
    return visits


def _place_freezes(start: float, end: float, n: int, config: WorkflowConfig,
                   rng: np.random.Generator, *, not_before: float) -> list[tuple[float, float]]:
    """Up to `n` freezes inside ``[start, end)``, with onsets at least one clip apart and not
    before `not_before` (one clip after the previous event's last onset)."""
    margin = min(1.0, 0.15 * (end - start))
    lo, hi = start + margin, end - margin
    spans: list[tuple[float, float]] = []
    t = max(lo, not_before)
    for k in range(n):
        rest = n - k - 1
        latest = hi - MIN_FREEZE_S - rest * config.clip_s
        if latest < t:
            break
        onset = float(rng.uniform(t, t + (latest - t) / (rest + 1)))
        room = hi - onset - rest * config.clip_s
        length = min(float(rng.uniform(config.freeze_min_s, config.freeze_max_s)), room)
        if length < MIN_FREEZE_S:
            break
        spans.append((onset, onset + length))
        t = onset + max(config.clip_s + 1e-3, length + 0.5)
    return spans


def simulate_scan(scan_id: str, operator: Operator, *, config: WorkflowConfig,
                  rng: np.random.Generator, minutes: float | None = None) -> ScanTimeline:
    """Simulate the timeline of one scan by `operator`.

    Parameters
    ----------
    scan_id : str
    operator : Operator
    config : WorkflowConfig
    rng : numpy.random.Generator
        The scan's own generator (the cohort derives one per scan from the seed).
    minutes : float, optional
        Scale the timeline to last exactly this long (short scans for tests); freezes keep
        their natural 1-10 s, limited by the shorter events. Default: the model's length.

    Returns
    -------
    ScanTimeline
    """
    profile = config.groups[operator.group]
    visits = _plan_visits(operator, profile, config, rng)
    labels: list[str] = []
    durations: list[float] = []
    for i, (code, revisit) in enumerate(visits):
        search_mean = config.opening_search_s if i == 0 else config.search_mean_s
        labels.append("Bk")
        durations.append(_lognormal(rng, search_mean * profile.search_time_factor * operator.speed,
                                    config.search_cv))
        factor = (profile.biometry_time_factor if code in config.biometry
                  else profile.other_time_factor)
        mean = config.classes[code].visit_mean_s * factor * operator.speed
        if revisit:
            mean *= config.revisit_time_factor
        labels.append(code)
        durations.append(_lognormal(rng, mean, profile.visit_cv))
    labels.append("Bk")
    durations.append(_lognormal(rng, config.search_mean_s * profile.search_time_factor,
                                config.search_cv))
    bounds = np.concatenate([[0.0], np.cumsum(durations)])
    if minutes is not None:
        bounds *= minutes * 60.0 / bounds[-1]
    bounds = np.round(bounds, 3)
    events, freezes = [], []
    for label, natural_s, start, end in zip(labels, durations, bounds[:-1], bounds[1:],
                                            strict=True):
        if end <= start:  # a visit shorter than the 1 ms resolution
            continue
        event = Event(label, float(start), float(end))
        events.append(event)
        # The number of freezes follows the natural duration: a shortened scan (`minutes`)
        # keeps as many as fit.
        if label == "Bk":
            rate, caliper_probability = config.search_freezes_per_min, 0.0
        else:
            rate = config.classes[label].freezes_per_min
            caliper_probability = config.classes[label].caliper_probability
        n = int(rng.poisson(rate * natural_s / 60.0))
        not_before = freezes[-1].start_s + config.clip_s + 1e-3 if freezes else 0.0
        for onset, freeze_end in _place_freezes(event.start_s, event.end_s, n, config, rng,
                                                not_before=not_before):
            calipers = bool(rng.random() < caliper_probability)
            freezes.append(Freeze(round(onset, 3), round(freeze_end, 3), label, calipers))
    return ScanTimeline(scan_id, operator.operator_id, float(bounds[-1]), tuple(events),
                        tuple(freezes))


def excerpt(scan: ScanTimeline, start_s: float, length_s: float) -> ScanTimeline:
    """The part ``[start_s, start_s + length_s)`` of a scan, as a scan starting at 0.

    Events are cut to the excerpt; freezes are kept only when they lie wholly inside it. Short
    excerpts of natural-length scans keep realistic event durations (unlike `simulate_scan`'s
    `minutes`, which compresses the whole workflow).
    """
    if length_s <= 0 or start_s < 0:
        raise ValueError(f"excerpt needs start_s >= 0 and length_s > 0, got {start_s}, {length_s}")
    end_s = min(scan.duration_s, start_s + length_s)
    events = tuple(
        Event(e.label, round(max(e.start_s, start_s) - start_s, 3),
              round(min(e.end_s, end_s) - start_s, 3))
        for e in scan.events
        if min(e.end_s, end_s) - max(e.start_s, start_s) >= 1e-3)
    freezes = tuple(
        Freeze(round(f.start_s - start_s, 3), round(f.end_s - start_s, 3), f.label, f.calipers)
        for f in scan.freezes if f.start_s >= start_s and f.end_s <= end_s)
    return ScanTimeline(scan.scan_id, scan.operator_id, round(end_s - start_s, 3), events,
                        freezes)
