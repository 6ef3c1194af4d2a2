"""Segment metrics: known answers worked by hand, and agreement with MS-TCN's ``eval.py``."""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd
import pytest

from fetal_analytics.segments import (
    SegmentScores,
    edit_score,
    events_to_frames,
    f1_at,
    frame_accuracy,
    segment_scores,
    segments,
)

# --- MS-TCN's eval.py (Farha & Gall 2019), reproduced as published ------------------------------
# Kept as close to the reference as possible (names, loops, the last `ends.append(i)`, the
# label-masked IoU and its argmax), so that the module is checked against the reference's
# behaviour, not against a second reading of the paper. Only the mutable default arguments
# became tuples.


def get_labels_start_end_time(frame_wise_labels, bg_class=("background",)):
    labels = []
    starts = []
    ends = []
    last_label = frame_wise_labels[0]
    if frame_wise_labels[0] not in bg_class:
        labels.append(frame_wise_labels[0])
        starts.append(0)
    for i in range(len(frame_wise_labels)):
        if frame_wise_labels[i] != last_label:
            if frame_wise_labels[i] not in bg_class:
                labels.append(frame_wise_labels[i])
                starts.append(i)
            if last_label not in bg_class:
                ends.append(i)
            last_label = frame_wise_labels[i]
    if last_label not in bg_class:
        ends.append(i)
    return labels, starts, ends


def levenstein(p, y, norm=False):
    m_row = len(p)
    n_col = len(y)
    D = np.zeros([m_row + 1, n_col + 1], np.float64)
    for i in range(m_row + 1):
        D[i, 0] = i
    for i in range(n_col + 1):
        D[0, i] = i

    for j in range(1, n_col + 1):
        for i in range(1, m_row + 1):
            if y[j - 1] == p[i - 1]:
                D[i, j] = D[i - 1, j - 1]
            else:
                D[i, j] = min(D[i - 1, j] + 1, D[i, j - 1] + 1, D[i - 1, j - 1] + 1)

    if norm:  # noqa: SIM108 (as in the reference)
        score = (1 - D[-1, -1] / max(m_row, n_col)) * 100
    else:
        score = D[-1, -1]

    return score


def ref_edit_score(recognized, ground_truth, norm=True, bg_class=("background",)):
    P, _, _ = get_labels_start_end_time(recognized, bg_class)
    Y, _, _ = get_labels_start_end_time(ground_truth, bg_class)
    return levenstein(P, Y, norm)


def f_score(recognized, ground_truth, overlap, bg_class=("background",)):
    p_label, p_start, p_end = get_labels_start_end_time(recognized, bg_class)
    y_label, y_start, y_end = get_labels_start_end_time(ground_truth, bg_class)

    tp = 0
    fp = 0

    hits = np.zeros(len(y_label))

    for j in range(len(p_label)):
        intersection = np.minimum(p_end[j], y_end) - np.maximum(p_start[j], y_start)
        union = np.maximum(p_end[j], y_end) - np.minimum(p_start[j], y_start)
        IoU = (1.0 * intersection / union) * (
            [p_label[j] == y_label[x] for x in range(len(y_label))])
        # Get the best scoring segment
        idx = np.array(IoU).argmax()

        if IoU[idx] >= overlap and not hits[idx]:
            tp += 1
            hits[idx] = 1
        else:
            fp += 1
    fn = len(y_label) - sum(hits)
    return float(tp), float(fp), float(fn)


def ref_evaluate(pairs, bg_class=("background",)):
    """The main loop of eval.py over videos: accuracy, edit, F1@{10,25,50}, all in percent."""
    overlap = [0.1, 0.25, 0.5]
    tp, fp, fn = np.zeros(3), np.zeros(3), np.zeros(3)
    correct = 0
    total = 0
    edit = 0
    for recog_content, gt_content in pairs:
        for i in range(len(gt_content)):
            total += 1
            if gt_content[i] == recog_content[i]:
                correct += 1
        edit += ref_edit_score(recog_content, gt_content, bg_class=bg_class)
        for s in range(len(overlap)):
            tp1, fp1, fn1 = f_score(recog_content, gt_content, overlap[s], bg_class=bg_class)
            tp[s] += tp1
            fp[s] += fp1
            fn[s] += fn1
    acc = 100 * float(correct) / total
    edit = (1.0 * edit) / len(pairs)
    f1s = []
    for s in range(len(overlap)):
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = tp[s] / float(tp[s] + fp[s])
            recall = tp[s] / float(tp[s] + fn[s])
            f1 = 2.0 * (precision * recall) / (precision + recall)
        f1s.append(np.nan_to_num(f1) * 100)
    return acc, edit, f1s


# --- random labellings ---------------------------------------------------------------------------

def random_runs(rng: random.Random, n: int, alphabet: list[str]) -> list[str]:
    frames: list[str] = []
    while len(frames) < n:
        frames += [rng.choice(alphabet)] * rng.randint(1, 8)
    return frames[:n]


def random_pairs(seed: int, count: int, alphabet: list[str], *,
                 needs_segment: str | None = None) -> list[tuple[list[str], list[str]]]:
    """Pairs of equally long labellings: half independent, half a perturbed copy of the truth."""
    rng = random.Random(seed)
    pairs = []
    while len(pairs) < count:
        n = rng.randint(1, 60)
        truth = random_runs(rng, n, alphabet)
        if needs_segment is not None and all(x == needs_segment for x in truth):
            continue  # the reference's f_score fails on a truth without segments
        if rng.random() < 0.5:
            pred = random_runs(rng, n, alphabet)
        else:
            pred = list(truth)
            for _ in range(rng.randint(0, 4)):
                i = rng.randrange(n)
                width = rng.randint(1, 5)
                pred[i:i + width] = [rng.choice(alphabet)] * len(pred[i:i + width])
        pairs.append((pred, truth))
    return pairs


ALPHABET = ["a", "b", "c", "background"]


@pytest.mark.parametrize("background", [(), ("background",)])
def test_per_video_metrics_match_the_reference_on_200_random_pairs(background):
    for pred, truth in random_pairs(7, 200, ALPHABET, needs_segment="background"):
        # The reference prints percent; ours are fractions.
        assert 100 * edit_score(pred, truth, background=background) == pytest.approx(
            ref_edit_score(pred, truth, bg_class=background), abs=1e-12)
        for overlap in (0.1, 0.25, 0.5, 0.75):
            with np.errstate(invalid="ignore"):  # the reference's 0/0 IoU
                expected = f_score(pred, truth, overlap, bg_class=background)
            assert f1_at(pred, truth, overlap, background=background,
                         last_end="ms-tcn") == expected, (pred, truth, overlap)


@pytest.mark.parametrize("background", [(), ("background",)])
def test_aggregate_scores_match_the_reference_on_200_random_pairs(background):
    pairs = random_pairs(11, 200, ALPHABET, needs_segment="background")
    with np.errstate(invalid="ignore"):
        acc, edit, f1s = ref_evaluate(pairs, bg_class=background)
    scores = segment_scores(pairs, background=background, last_end="ms-tcn")
    assert scores.n_videos == 200
    assert 100 * scores.frame_accuracy == pytest.approx(acc, abs=1e-12)
    assert 100 * scores.edit == pytest.approx(edit, abs=1e-12)
    assert [100 * scores.f1[k] for k in (10, 25, 50)] == pytest.approx(f1s, abs=1e-12)


def test_exclusive_ends_differ_from_the_reference_only_in_the_last_end(monkeypatch):
    """The default ends the last segment at n; the reference with that one change agrees."""
    original = get_labels_start_end_time

    def fixed_ends(frame_wise_labels, bg_class=("background",)):
        labels, starts, ends = original(frame_wise_labels, bg_class)
        if labels and frame_wise_labels[-1] not in bg_class:
            ends[-1] = len(frame_wise_labels)
        return labels, starts, ends

    monkeypatch.setitem(globals(), "get_labels_start_end_time", fixed_ends)
    for pred, truth in random_pairs(3, 200, ALPHABET, needs_segment="background"):
        for overlap in (0.1, 0.5, 0.75):
            assert f1_at(pred, truth, overlap, background=("background",)) == f_score(
                pred, truth, overlap), (pred, truth, overlap)


# --- known answers, worked by hand ----------------------------------------------------------------

def test_segments_have_exclusive_ends_and_skip_background_and_gaps():
    frames = ["a", "a", None, "a", "Bk", "b", float("nan"), "b", "b"]
    assert segments(frames) == [("a", 0, 2), ("a", 3, 4), ("Bk", 4, 5), ("b", 5, 6),
                                ("b", 7, 9)]
    assert segments(frames, background=("Bk",)) == [("a", 0, 2), ("a", 3, 4), ("b", 5, 6),
                                                    ("b", 7, 9)]
    assert segments(frames, background="Bk") == segments(frames, background=["Bk"])
    assert segments(frames, last_end="ms-tcn")[-1] == ("b", 7, 8)
    assert segments([]) == []
    assert segments([None, "Bk"], background=("Bk",)) == []


def test_greedy_temporal_matching_differs_from_optimal_matching():
    # truth: A[0,10) B[10,12) A[12,20); pred: A[0,6) C[6,7) A[7,14) D[14,20)
    truth = ["A"] * 10 + ["B"] * 2 + ["A"] * 8
    pred = ["A"] * 6 + ["C"] + ["A"] * 7 + ["D"] * 6
    # A[0,6) -> A[0,10), IoU 6/10: TP. A[7,14): IoU 3/14 with A[0,10) (taken) beats 2/13 with
    # A[12,20), so it is a FP although an optimal matching would pair it with A[12,20) at 0.1.
    assert f1_at(pred, truth, 0.1) == (1, 3, 2)
    assert f1_at(pred, truth, 0.5) == (1, 3, 2)
    # P = [A C A D], Y = [A B A]: one substitution and one insertion -> 1 - 2/4.
    assert edit_score(pred, truth) == 0.5
    assert frame_accuracy(pred, truth) == 0.55  # 6 + 3 + 2 of 20 frames
    scores = segment_scores([(pred, truth)])
    precision, recall = 1 / 4, 1 / 3
    assert scores.f1[10] == pytest.approx(2 * precision * recall / (precision + recall))
    assert scores.f1[10] == pytest.approx(2 / 7)


def test_background_classes_form_no_segments():
    truth = ["bg", "bg", "A", "A", "A", "bg", "B", "B"]
    pred = ["bg", "A", "A", "A", "A", "B", "B", "B"]
    # With bg as background: [A B] vs [A B]; A[1,5) vs A[2,5) IoU 3/4, B[5,8) vs B[6,8) 2/3.
    assert edit_score(pred, truth, background=("bg",)) == 1.0
    assert f1_at(pred, truth, 0.5, background=("bg",)) == (2, 0, 0)
    # Without: [bg A B] vs [bg A bg B]: one deletion -> 1 - 1/4; bg[0,1) vs bg[0,2) IoU 1/2
    # passes 0.5, the second true bg segment is missed.
    assert edit_score(pred, truth) == 0.75
    assert f1_at(pred, truth, 0.5) == (3, 0, 1)
    # Background frames still count for accuracy: 6 of 8 frames agree either way.
    assert frame_accuracy(pred, truth) == 0.75
    with_bg = segment_scores([(pred, truth)], background=("bg",))
    assert with_bg.frame_accuracy == 0.75
    assert with_bg.f1 == {10: 1.0, 25: 1.0, 50: 1.0}
    assert with_bg.background == ("bg",)


def test_counts_are_summed_over_videos_not_f1_averaged():
    video1 = (["A", "A", "A"], ["A", "A", "A"])            # 1 TP: F1 1, edit 1
    video2 = (["A", "A", "C", "D"], ["B", "B", "B", "B"])  # 3 FP, 1 FN: F1 0, edit 0
    scores = segment_scores([video1, video2])
    # Summed: TP 1, FP 3, FN 1 -> precision 1/4, recall 1/2, F1 1/3 (averaging would give 1/2).
    assert scores.counts[50] == (1, 3, 1)
    assert scores.f1[50] == pytest.approx(1 / 3)
    # Edit is averaged over videos; accuracy sums frames: 3 of 7 (averaging would give 1/2).
    assert scores.edit == 0.5
    assert scores.frame_accuracy == pytest.approx(3 / 7)
    assert scores.n_videos == 2 and scores.n_frames == 7


def test_unlabelled_truth_frames_are_left_out_of_accuracy_and_split_segments():
    truth = ["A", "A", None, None, "A", "A"]
    pred = ["A"] * 6
    assert frame_accuracy(pred, truth) == 1.0
    assert frame_accuracy(["A", None, None, None, None, "B"], truth) == 0.25
    # Y = [A A] (the gap splits it), P = [A]; A[0,6) has IoU 2/6 with both, the first wins.
    assert edit_score(pred, truth) == 0.5
    assert f1_at(pred, truth, 0.5) == (0, 1, 2)
    assert f1_at(pred, truth, 0.25) == (1, 0, 1)
    # Scoring only where the truth is labelled gives full agreement.
    masked = [p if t is not None else None for p, t in zip(pred, truth, strict=True)]
    assert f1_at(masked, truth, 0.5) == (2, 0, 0)


def test_the_reference_last_end_shortens_the_final_segment():
    assert f1_at(["A", "A", "B"], ["A", "A", "B"], 0.5) == (2, 0, 0)
    # ms-tcn: both final B segments are [2, 2), IoU 0/0 = NaN, never a match.
    assert f1_at(["A", "A", "B"], ["A", "A", "B"], 0.5, last_end="ms-tcn") == (1, 1, 1)
    pred, truth = ["A", "A", "A", "B", "B"], ["A", "A", "B", "B", "B"]
    assert f1_at(pred, truth, 0.6) == (2, 0, 0)                        # B: 2/3
    assert f1_at(pred, truth, 0.6, last_end="ms-tcn") == (1, 1, 1)     # B: 1/2


def test_edge_cases_without_segments():
    assert edit_score(["Bk", None], ["Bk", "Bk"], background=("Bk",)) == 1.0
    assert edit_score(["A"], ["Bk"], background=("Bk",)) == 0.0
    assert f1_at(["A", "B"], ["Bk", "Bk"], 0.5, background=("Bk",)) == (0, 2, 0)
    assert f1_at(["Bk", "Bk"], ["A", "B"], 0.5, background=("Bk",)) == (0, 0, 2)
    scores = segment_scores([(["Bk"], ["Bk"])], background=("Bk",))
    assert scores.f1 == {10: 0.0, 25: 0.0, 50: 0.0}  # undefined F1 is 0, as in MS-TCN
    assert scores.edit == 1.0


def test_frame_accuracy_without_labelled_truth_is_nan_with_a_warning():
    with pytest.warns(RuntimeWarning, match="no frame is labelled"):
        assert math.isnan(frame_accuracy(["A"], [None]))


def test_to_dict_is_plain_json():
    import json

    scores = segment_scores([(["A", "B"], ["A", "A"])], overlaps=(0.5,))
    plain = scores.to_dict()
    assert json.loads(json.dumps(plain)) == plain
    assert plain["f1"] == {"50": pytest.approx(scores.f1[50])}
    assert plain["counts"] == {"50": {"tp": 1, "fp": 1, "fn": 0}}
    assert isinstance(scores, SegmentScores)


# --- validation -------------------------------------------------------------------------------

def test_unequal_lengths_are_refused():
    with pytest.raises(ValueError, match="`pred` and `truth` must have the same number of frames"):
        edit_score(["A"], ["A", "B"])
    with pytest.raises(ValueError, match="pair 1 of `pairs`"):
        segment_scores([(["A"], ["A"]), (["A"], [])])


def test_bad_options_are_refused_with_the_argument_named():
    with pytest.raises(ValueError, match=r"`overlap` must be an IoU threshold in \(0, 1\]"):
        f1_at(["A"], ["A"], 0)
    with pytest.raises(ValueError, match="did you mean 'ms-tcn'"):
        segments(["A"], last_end="mstcn")
    with pytest.raises(ValueError, match="`overlaps` must be distinct"):
        segment_scores([(["A"], ["A"])], overlaps=(0.5, 0.5))
    with pytest.raises(ValueError, match="at least one"):
        segment_scores([])
    with pytest.raises(ValueError, match="1-D"):
        segments([["A"]])


# --- events_to_frames -------------------------------------------------------------------------

EVENTS = pd.DataFrame({"start_s": [3.0, 0.0], "end_s": [5.0, 2.5], "label": ["B", "A"]})


def test_events_are_sampled_at_frame_centres():
    # centres 0.5 1.5 2.5 3.5 4.5; 2.5 lies in the gap (events are half-open).
    assert list(events_to_frames(EVENTS)) == ["A", "A", None, "B", "B"]
    assert list(events_to_frames(EVENTS, fill="Bk")) == ["A", "A", "Bk", "B", "B"]
    assert list(events_to_frames(EVENTS, end_s=7)) == ["A", "A", None, "B", "B", None, None]
    assert list(events_to_frames(EVENTS, start_s=1.0)) == ["A", None, "B", "B"]
    assert list(events_to_frames(EVENTS, step_s=2.0)) == ["A", "B"]      # centres 1, 3
    assert list(events_to_frames(EVENTS, step_s=0.5))[4:7] == ["A", None, "B"]
    assert len(events_to_frames(EVENTS.iloc[:0])) == 0
    # Frames are those whose centre lies before end_s.
    assert len(events_to_frames(EVENTS, end_s=0.3, step_s=0.1)) == 3


def test_events_to_frames_refuses_bad_input():
    with pytest.raises(ValueError, match="overlapping events"):
        events_to_frames(pd.DataFrame({"start_s": [0, 1], "end_s": [2, 3], "label": ["A", "B"]}))
    with pytest.raises(ValueError, match="one scan"):
        events_to_frames(EVENTS.assign(scan_id=["S1", "S2"]))
    with pytest.raises(ValueError, match="lacks the column"):
        events_to_frames(EVENTS.drop(columns="label"))
    with pytest.raises(ValueError, match="`step_s` must be a positive"):
        events_to_frames(EVENTS, step_s=0)
    with pytest.raises(ValueError, match="`end_s`"):
        events_to_frames(EVENTS, start_s=3, end_s=1)


def test_bootstrap_intervals_resample_whole_videos():
    pairs = random_pairs(3, 12, ALPHABET, needs_segment="background")
    scores = segment_scores(pairs, n_boot=200, seed=5)
    assert scores.ci_level == 0.95 and segment_scores(pairs).ci == {}
    # The same resamples drawn by hand: whole videos, aggregated as MS-TCN does.
    rng = np.random.default_rng(5)
    draws = [segment_scores([pairs[i] for i in rng.integers(0, 12, 12)]) for _ in range(200)]
    for name in ("frame_accuracy", "edit"):
        expected = np.percentile([getattr(d, name) for d in draws], [2.5, 97.5])
        assert scores.ci[name] == pytest.approx(tuple(expected))
        low, high = scores.ci[name]
        assert low <= getattr(scores, name) <= high
    f1_25 = np.percentile([d.f1[25] for d in draws], [2.5, 97.5])
    assert scores.ci["f1"][25] == pytest.approx(tuple(f1_25))
    assert scores.to_dict()["ci"]["f1"]["25"] == pytest.approx(list(f1_25))
    identical = segment_scores([pairs[0]] * 5, n_boot=50)
    assert identical.ci["edit"] == pytest.approx((identical.edit, identical.edit))
