"""Temporal decoding on hand-made posteriors whose best path is known."""

from __future__ import annotations

import itertools
import logging
import math
import time

import numpy as np
import pytest

from inference.decoding import (
    DecodingParams,
    Segment,
    background_index,
    decode_path,
    decode_timeline,
    log_transitions,
    viterbi,
)

# An HMM that follows the argmax of each window: no stickiness (self-transition clipped to 0.5),
# sharp emissions, no merging.
FOLLOW = DecodingParams(temperature=0.05, expected_segment_s=1.0, min_duration_s=0.0)


def one_hot_probs(labels: list[int], n_classes: int, p: float = 0.8) -> np.ndarray:
    """Posteriors giving `p` to each window's class and the rest evenly to the others."""
    probs = np.full((len(labels), n_classes), (1 - p) / (n_classes - 1))
    probs[np.arange(len(labels)), labels] = p
    return probs


def spans(segments: list[Segment]) -> list[tuple[float, float, str]]:
    return [(s.start_s, s.end_s, s.label) for s in segments]


# --- viterbi ------------------------------------------------------------------------------------

def brute_force(e: np.ndarray, a: np.ndarray, pi: np.ndarray) -> tuple[int, ...]:
    n_steps, n_states = e.shape
    best, best_path = -math.inf, None
    for path in itertools.product(range(n_states), repeat=n_steps):
        score = pi[path[0]] + sum(e[t, s] for t, s in enumerate(path))
        score += sum(a[path[t - 1], path[t]] for t in range(1, n_steps))
        if score > best:
            best, best_path = score, path
    return best_path


@pytest.mark.parametrize("seed", range(6))
def test_viterbi_finds_the_path_a_brute_force_search_finds(seed):
    rng = np.random.default_rng(seed)
    e = np.log(rng.dirichlet(np.ones(3), size=5))
    a = np.log(rng.dirichlet(np.ones(3), size=3))
    pi = np.log(rng.dirichlet(np.ones(3)))
    assert tuple(viterbi(e, a, pi).tolist()) == brute_force(e, a, pi)


def test_viterbi_on_a_hand_made_case_prefers_staying():
    # Window 2 mildly prefers state 1, but leaving state 0 and coming back costs more.
    e = np.log([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.9, 0.1], [0.9, 0.1]])
    sticky = np.log([[0.9, 0.1], [0.1, 0.9]])
    loose = np.log([[0.5, 0.5], [0.5, 0.5]])
    pi = np.log([0.5, 0.5])
    assert viterbi(e, sticky, pi).tolist() == [0, 0, 0, 0, 0]
    assert viterbi(e, loose, pi).tolist() == [0, 0, 1, 0, 0]


def test_viterbi_handles_one_step_and_no_steps():
    pi = np.log([0.2, 0.3, 0.5])
    e = np.log([[0.6, 0.3, 0.1]])
    a = np.log(np.full((3, 3), 1 / 3))
    assert viterbi(e, a, pi).tolist() == [0]  # 0.12 > 0.09 > 0.05
    assert viterbi(np.zeros((0, 3)), a, pi).tolist() == []


def test_viterbi_rejects_shapes_that_do_not_fit():
    e, a, pi = np.zeros((4, 3)), np.zeros((3, 3)), np.zeros(3)
    with pytest.raises(ValueError, match=r"`log_transitions` must be \(3, 3\)"):
        viterbi(e, np.zeros((2, 2)), pi)
    with pytest.raises(ValueError, match=r"`log_initial` must be \(3,\)"):
        viterbi(e, a, np.zeros(4))
    with pytest.raises(ValueError, match=r"`log_emissions` must be a \(T, C\) array"):
        viterbi(np.zeros(4), a, pi)
    with pytest.raises(ValueError, match="`log_emissions` contains NaN"):
        viterbi(np.full((4, 3), np.nan), a, pi)


def test_viterbi_is_fast_enough_for_a_45_minute_scan():
    rng = np.random.default_rng(0)
    e = np.log(rng.dirichlet(np.ones(11), size=3000))
    a = log_transitions(11, DecodingParams())
    pi = np.full(11, -math.log(11))
    elapsed = []
    for _ in range(3):
        start = time.perf_counter()
        viterbi(e, a, pi)
        elapsed.append(time.perf_counter() - start)
    assert min(elapsed) < 0.25  # ~20 ms measured on 2 busy cores; the bound leaves room


def test_transitions_are_sticky_and_rows_sum_to_one():
    a = np.exp(log_transitions(11, DecodingParams(hop_s=1, expected_segment_s=20)))
    np.testing.assert_allclose(a.sum(axis=1), 1)
    np.testing.assert_allclose(np.diag(a), 0.95)
    np.testing.assert_allclose(a[0, 1:], 0.005)
    assert DecodingParams(expected_segment_s=1.5).self_transition == 0.5  # clipped
    assert DecodingParams(expected_segment_s=1e6).self_transition == 0.9999
    assert log_transitions(1, DecodingParams()).tolist() == [[0.0]]


def uniform_log_transitions(n_classes: int, stay: float) -> np.ndarray:
    """The transition matrix of the first models, written out as they computed it."""
    out = np.full((n_classes, n_classes), math.log((1.0 - stay) / (n_classes - 1)))
    np.fill_diagonal(out, math.log(stay))
    return out


@pytest.mark.parametrize("background", [None, 0, 3])
def test_the_default_transitions_are_exactly_the_old_uniform_ones(background):
    for params in (DecodingParams(), DecodingParams(hop_s=0.5, expected_segment_s=37.0)):
        np.testing.assert_array_equal(
            log_transitions(11, params, background=background),
            uniform_log_transitions(11, params.self_transition))
    # Without a background class, the background parameters change nothing.
    params = DecodingParams(background_share=0.8, background_segment_s=5.0)
    np.testing.assert_array_equal(log_transitions(11, params),
                                  uniform_log_transitions(11, 0.95))


def test_background_transitions_equal_hand_computed_values():
    # HeD, Bk, Br, Sp; a = 1 - 1/20 = 0.95 for the structures, a_b = 1 - 1/5 = 0.8 for Bk.
    params = DecodingParams(expected_segment_s=20.0, background_share=0.8,
                            background_segment_s=5.0)
    a = np.exp(log_transitions(4, params, background=1))
    np.testing.assert_allclose(a, [
        [0.95, 0.8 * 0.05, 0.2 * 0.05 / 2, 0.2 * 0.05 / 2],
        [0.2 / 3, 0.8, 0.2 / 3, 0.2 / 3],
        [0.005, 0.04, 0.95, 0.005],
        [0.005, 0.04, 0.005, 0.95]], rtol=1e-12)
    np.testing.assert_allclose(a.sum(axis=1), 1, rtol=1e-12)
    assert params.background_self_transition == pytest.approx(0.8)
    # Only a background share: Bk's row stays uniform.
    a = np.exp(log_transitions(4, DecodingParams(background_share=0.5), background=0))
    np.testing.assert_allclose(a[0], [0.95, 0.05 / 3, 0.05 / 3, 0.05 / 3], rtol=1e-12)
    np.testing.assert_allclose(a[2], [0.025, 0.0125, 0.95, 0.0125], rtol=1e-12)
    # Only a background length: the structures' rows stay uniform.
    a = np.exp(log_transitions(4, DecodingParams(background_segment_s=2.0), background=3))
    np.testing.assert_allclose(a[3], [0.5 / 3, 0.5 / 3, 0.5 / 3, 0.5], rtol=1e-12)
    np.testing.assert_allclose(a[0], [0.95, 0.05 / 3, 0.05 / 3, 0.05 / 3], rtol=1e-12)


@pytest.mark.parametrize(("n_classes", "background", "share", "expected"), [
    # Two classes, one of them Bk: all of a structure's leaving mass goes to Bk, whatever the
    # share.
    (2, 0, 0.3, [[0.8, 0.2], [0.05, 0.95]]),
    (2, 1, 0.0, [[0.95, 0.05], [0.2, 0.8]]),
    (2, 1, 1.0, [[0.95, 0.05], [0.2, 0.8]]),
    # A share of 0: a structure never goes to Bk; of 1: only to Bk.
    (3, 2, 0.0, [[0.95, 0.05, 0.0], [0.05, 0.95, 0.0], [0.1, 0.1, 0.8]]),
    (3, 2, 1.0, [[0.95, 0.0, 0.05], [0.0, 0.95, 0.05], [0.1, 0.1, 0.8]]),
    (1, 0, 0.5, [[1.0]]),
])
def test_transition_rows_sum_to_one_in_the_edge_cases(n_classes, background, share, expected):
    params = DecodingParams(background_share=share, background_segment_s=5.0)
    a = np.exp(log_transitions(n_classes, params, background=background))
    np.testing.assert_allclose(a, expected, rtol=1e-12, atol=0)
    np.testing.assert_allclose(a.sum(axis=1), 1, rtol=1e-12)


def test_log_transitions_rejects_a_bad_background_index():
    with pytest.raises(ValueError, match=r"`background` must be a class index in \[0, 3\)"):
        log_transitions(3, DecodingParams(), background=3)
    assert background_index(["HeD", "Bk", "Br"]) == 1
    assert background_index(["HeD", "Br"]) is None


# --- the background class -----------------------------------------------------------------------

# HeD x20, a 3-window dip that favours Bk (0.6 against 0.2 for HeD), Br x20.
BK_DIP = np.array([[0.7, 0.1, 0.1, 0.1]] * 20 + [[0.2, 0.6, 0.1, 0.1]] * 3
                  + [[0.1, 0.1, 0.7, 0.1]] * 20)
BK_CLASSES = ["HeD", "Bk", "Br", "Sp"]


def test_a_short_background_gap_survives_with_background_transitions():
    times = np.arange(43) + 0.5
    uniform = DecodingParams(expected_segment_s=40.0, min_duration_s=0.0)
    # Uniform transitions: the Bk gap costs two changes of ~4.8 nats, more than the dip's
    # evidence (3 x log 3 / 2 = 1.6): it is erased, the windows going to HeD.
    assert decode_path(BK_DIP, params=uniform, background=1).tolist() == [0] * 23 + [2] * 20
    assert spans(decode_timeline(BK_DIP, times, BK_CLASSES, params=uniform)) == [
        (0.0, 23.0, "HeD"), (23.0, 43.0, "Br")]
    # 80% of a structure's leaving mass to Bk and a 5 s Bk: the gap costs ~1 nat and stays.
    background = DecodingParams(expected_segment_s=40.0, min_duration_s=0.0,
                                background_share=0.8, background_segment_s=5.0)
    assert decode_path(BK_DIP, params=background, background=1).tolist() == (
        [0] * 20 + [1] * 3 + [2] * 20)
    assert spans(decode_timeline(BK_DIP, times, BK_CLASSES, params=background)) == [
        (0.0, 20.0, "HeD"), (20.0, 23.0, "Bk"), (23.0, 43.0, "Br")]
    # Either parameter alone is not enough here.
    for alone in ({"background_share": 0.8}, {"background_segment_s": 5.0}):
        params = DecodingParams(expected_segment_s=40.0, min_duration_s=0.0, **alone)
        assert decode_path(BK_DIP, params=params, background=1).tolist() == (
            [0] * 23 + [2] * 20)
    # Without a background index the parameters have no effect.
    assert decode_path(BK_DIP, params=background).tolist() == [0] * 23 + [2] * 20


def test_background_parameters_have_no_effect_without_a_bk_class(caplog):
    times = np.arange(43) + 0.5
    classes = ["HeD", "Fe", "Br", "Sp"]
    background = DecodingParams(expected_segment_s=40.0, min_duration_s=0.0,
                                background_share=0.8, background_segment_s=5.0)
    with caplog.at_level(logging.DEBUG, logger="inference.decoding"):
        segments = decode_timeline(BK_DIP, times, classes, params=background)
    assert spans(segments) == [(0.0, 23.0, "HeD"), (23.0, 43.0, "Br")]
    assert "no background class 'Bk'" in caplog.text


# --- decode_timeline ----------------------------------------------------------------------------

def test_isolated_flips_are_smoothed_to_the_true_segments():
    classes = ["Br", "Sp", "HeD"]
    truth = [0] * 30 + [1] * 20 + [2] * 30
    noisy = list(truth)
    for t, wrong in ((5, 1), (17, 2), (35, 0), (41, 2), (60, 1), (61, 1), (72, 0)):
        noisy[t] = wrong
    probs = one_hot_probs(noisy, 3, p=0.7)
    times = np.arange(80) + 0.5
    # Argmax alone keeps the flips ...
    assert len(decode_timeline(probs, times, classes, params=FOLLOW)) == 15
    # ... the sticky HMM alone removes them, and boundaries lie halfway between windows.
    params = DecodingParams(min_duration_s=0.0)
    assert spans(decode_timeline(probs, times, classes, params=params)) == [
        (0.0, 30.0, "Br"), (30.0, 50.0, "Sp"), (50.0, 80.0, "HeD")]


def test_defaults_decode_a_clean_sequence_exactly():
    probs = one_hot_probs([1] * 12 + [0] * 8, 2, p=0.9)
    segments = decode_timeline(probs, np.arange(20) + 0.5, ["Bk", "Fm"])
    assert spans(segments) == [(0.0, 12.0, "Fm"), (12.0, 20.0, "Bk")]
    assert [s.confidence for s in segments] == pytest.approx([0.9, 0.9])


def test_a_short_segment_merges_into_the_neighbour_its_windows_favour():
    classes = ["A", "B", "C"]
    times = np.arange(21) + 0.5
    labels = [0] * 10 + [2] + [1] * 10
    probs = one_hot_probs(labels, 3)
    params = DecodingParams(temperature=0.05, expected_segment_s=1.0, min_duration_s=2.0)
    # The C window leans towards B (right) ...
    probs[10] = [0.1, 0.3, 0.6]
    assert spans(decode_timeline(probs, times, classes, params=params)) == [
        (0.0, 10.0, "A"), (10.0, 21.0, "B")]
    # ... or towards A (left).
    probs[10] = [0.3, 0.1, 0.6]
    assert spans(decode_timeline(probs, times, classes, params=params)) == [
        (0.0, 11.0, "A"), (11.0, 21.0, "B")]
    # Without a minimum duration it stays.
    assert len(decode_timeline(probs, times, classes, params=FOLLOW)) == 3


def test_merging_goes_shortest_first_and_joins_equal_neighbours():
    classes = ["A", "B", "C", "D"]
    times = np.arange(23) + 0.5
    params = DecodingParams(temperature=0.05, expected_segment_s=1.0, min_duration_s=3.0)
    # A x10, C x1, D x2, A x10: C (1 s) goes first, into D (which its window favours); D is then
    # 3 s long and stays. Taking D (2 s) first would have merged it into A instead.
    probs = one_hot_probs([0] * 10 + [2] + [3] * 2 + [0] * 10, 4)
    probs[10] = [0.05, 0.05, 0.6, 0.3]
    assert spans(decode_timeline(probs, times, classes, params=params)) == [
        (0.0, 10.0, "A"), (10.0, 13.0, "D"), (13.0, 23.0, "A")]
    # A short segment between two of one label joins them into one segment.
    probs = one_hot_probs([0] * 10 + [1] * 2 + [0] * 11, 4)
    (only,) = decode_timeline(probs, times, classes, params=params)
    assert (only.start_s, only.end_s, only.label) == (0.0, 23.0, "A")
    assert only.confidence == pytest.approx((21 * 0.8 + 2 * 0.2 / 3) / 23)


def test_a_short_first_segment_merges_and_the_timeline_still_starts_at_zero():
    probs = one_hot_probs([1] + [0] * 9, 2)
    params = DecodingParams(temperature=0.05, expected_segment_s=1.0, min_duration_s=2.0)
    assert spans(decode_timeline(probs, np.arange(10) + 0.5, ["A", "B"], params=params)) == [
        (0.0, 10.0, "A")]


def test_boundaries_lie_midway_and_segments_tile_the_scan():
    times = np.array([0.5, 1.5, 3.0, 4.0, 7.0, 8.0])
    probs = one_hot_probs([0, 0, 1, 1, 0, 0], 2)
    segments = decode_timeline(probs, times, ["A", "B"], params=FOLLOW, duration_s=10.0)
    assert spans(segments) == [(0.0, 2.25, "A"), (2.25, 5.5, "B"), (5.5, 10.0, "A")]
    assert segments[0].start_s == 0 and segments[-1].end_s == 10.0
    assert all(a.end_s == b.start_s for a, b in itertools.pairwise(segments))
    # Without a duration, the last window's centre plus half a hop.
    assert decode_timeline(probs, times, ["A", "B"], params=FOLLOW)[-1].end_s == 8.5


def test_a_random_timeline_tiles_the_scan_and_confidences_are_mean_posteriors():
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(5) * 0.5, size=400)
    times = np.arange(400) * 1.0 + 0.5
    segments = decode_timeline(probs, times, list("abcde"), duration_s=401.0)
    assert segments[0].start_s == 0 and segments[-1].end_s == 401.0
    assert all(a.end_s == b.start_s and a.label != b.label
               for a, b in itertools.pairwise(segments))
    assert all(s.duration_s >= 2.0 for s in segments)
    for s in segments:
        inside = (times >= s.start_s) & (times < s.end_s)
        assert s.confidence == pytest.approx(probs[inside, "abcde".index(s.label)].mean())


def test_one_window_gives_one_segment():
    (only,) = decode_timeline(np.array([[0.2, 0.7, 0.1]]), np.array([3.0]), ["A", "B", "C"])
    assert (only.start_s, only.end_s, only.label) == (0.0, 3.5, "B")
    assert only.confidence == pytest.approx(0.7)


def test_one_class_throughout_gives_one_segment():
    probs = one_hot_probs([2] * 50, 3, p=0.6)
    (only,) = decode_timeline(probs, np.arange(50) + 0.5, ["A", "B", "C"], duration_s=50.2)
    assert (only.start_s, only.end_s, only.label) == (0.0, 50.2, "C")
    assert only.confidence == pytest.approx(0.6)


def test_priors_divide_the_posteriors_when_prior_power_is_set():
    probs = np.tile([0.6, 0.4], (10, 1))
    priors = np.array([0.9, 0.1])
    plain = decode_timeline(probs, np.arange(10) + 0.5, ["Bk", "Ki"], priors=priors)
    scaled = decode_timeline(probs, np.arange(10) + 0.5, ["Bk", "Ki"], priors=priors,
                             params=DecodingParams(prior_power=1.0))
    assert [s.label for s in plain] == ["Bk"]
    assert [s.label for s in scaled] == ["Ki"]  # 0.4 / 0.1 > 0.6 / 0.9


@pytest.mark.parametrize(("change", "message"), [
    (lambda p, t: (p[:, :2], t), r"`probs` has 2 columns but `classes` names 3 classes"),
    (lambda p, t: (np.where(np.arange(3) == 1, np.nan, p), t),
     r"`probs` contains NaN or infinite values \(first at window 0, class 'B'\)"),
    (lambda p, t: (p * np.array([1, 1, -1]), t), r"`probs` contains negative values"),
    (lambda p, t: (p * 2, t), r"`probs` rows must sum to 1"),
    (lambda p, t: (p, t[::-1]), r"`times_s` must be strictly ascending; window 1"),
    (lambda p, t: (p, t[:3]), r"`times_s` must have one time per window \(4\)"),
    (lambda p, t: (p, t - 1), r"`times_s` must be seconds from the start of the video"),
    (lambda p, t: (p[0], t), r"`probs` must be a \(T, C\) array"),
    (lambda p, t: (p[:0], t[:0]), r"`probs` has no windows"),
])
def test_invalid_inputs_are_named(change, message):
    probs = one_hot_probs([0, 1, 2, 2], 3)
    times = np.arange(4) + 0.5
    p, t = change(probs, times)
    with pytest.raises(ValueError, match=message):
        decode_timeline(p, t, ["A", "B", "C"])


def test_invalid_priors_duration_and_classes_are_named():
    probs, times = one_hot_probs([0, 1], 2), np.array([0.5, 1.5])
    with pytest.raises(ValueError, match=r"`priors` must have one value per class \(2\)"):
        decode_timeline(probs, times, ["A", "B"], priors=np.ones(3))
    with pytest.raises(ValueError, match=r"`priors` must be positive"):
        decode_timeline(probs, times, ["A", "B"], priors=np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"`duration_s` \(1.0\) must not be before"):
        decode_timeline(probs, times, ["A", "B"], duration_s=1.0)
    with pytest.raises(ValueError, match="`classes` must be distinct"):
        decode_timeline(probs, times, ["A", "A"])


# --- DecodingParams -----------------------------------------------------------------------------

def test_params_round_trip_and_tolerate_missing_keys():
    params = DecodingParams(temperature=1.5, expected_segment_s=30, min_duration_s=4)
    assert DecodingParams.from_dict(params.to_dict()) == params
    assert set(params.to_dict()) == {"hop_s", "temperature", "prior_power",
                                     "expected_segment_s", "min_duration_s"}
    assert DecodingParams.from_dict({"min_duration_s": 3}) == DecodingParams(min_duration_s=3)
    assert DecodingParams.from_dict({}) == DecodingParams()
    assert DecodingParams(temperature=np.float32(1.5)).temperature == 1.5
    background = DecodingParams(background_share=np.float64(0.8), background_segment_s=8)
    assert background.to_dict() == {**DecodingParams().to_dict(), "background_share": 0.8,
                                     "background_segment_s": 8.0}
    assert DecodingParams.from_dict(background.to_dict()) == background
    assert type(background.background_segment_s) is float
    # None (the default) is left out of the dict and read back as None.
    only_share = DecodingParams(background_share=0.0)
    assert "background_segment_s" not in only_share.to_dict()
    assert DecodingParams.from_dict(only_share.to_dict()) == only_share
    assert DecodingParams.from_dict({"background_share": None}) == DecodingParams()


def test_an_old_sidecar_without_background_keys_decodes_as_before():
    old = {"hop_s": 1.0, "temperature": 2.0, "prior_power": 0.0, "expected_segment_s": 40.0,
           "min_duration_s": 2.0}
    params = DecodingParams.from_dict(old)
    assert params.background_share is None and params.background_segment_s is None
    assert params.to_dict() == old
    np.testing.assert_array_equal(log_transitions(4, params, background=1),
                                  uniform_log_transitions(4, 0.975))


def test_unknown_keys_are_named():
    with pytest.raises(ValueError, match=r"unknown decoding parameter\(s\) 'betta', 'hop'"):
        DecodingParams.from_dict({"hop": 1, "betta": 0.4, "temperature": 1})


def test_the_legacy_sidecar_maps_beta_to_a_temperature(caplog):
    legacy = DecodingParams.from_dict({"beta": 0.4, "min_duration_s": 2.0, "hop_s": 1.0})
    assert legacy == DecodingParams(temperature=2.5, min_duration_s=2.0, hop_s=1.0)
    with caplog.at_level(logging.WARNING, logger="inference.decoding"):
        both = DecodingParams.from_dict({"beta": 0.4, "temperature": 1.0})
    assert both.temperature == 1.0 and "'beta' is ignored" in caplog.text
    with pytest.raises(ValueError, match="'beta' must be a positive number"):
        DecodingParams.from_dict({"beta": 0})


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"temperature": 0}, "`temperature` must be a positive finite number"),
    ({"hop_s": -1}, "`hop_s` must be a positive"),
    ({"min_duration_s": -2}, "`min_duration_s` must be a non-negative"),
    ({"expected_segment_s": math.inf}, "`expected_segment_s` must be a positive finite"),
    ({"prior_power": "1"}, "`prior_power` must be a number"),
    ({"background_share": 1.5}, r"`background_share` must be a number in \[0, 1\] or None"),
    ({"background_share": -0.1}, r"`background_share` must be a number in \[0, 1\]"),
    ({"background_share": math.nan}, r"`background_share` must be a number in \[0, 1\]"),
    ({"background_share": "0.5"}, r"`background_share` must be a number in \[0, 1\]"),
    ({"background_share": True}, r"`background_share` must be a number in \[0, 1\]"),
    ({"background_segment_s": 0}, "`background_segment_s` must be a positive finite number or "
                                  "None"),
    ({"background_segment_s": -5.0}, "`background_segment_s` must be a positive finite"),
    ({"background_segment_s": math.inf}, "`background_segment_s` must be a positive finite"),
])
def test_bad_parameter_values_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DecodingParams(**kwargs)
    with pytest.raises(ValueError, match=message):
        DecodingParams.from_dict(kwargs)
