"""Per-scan workflow features: hand-computed answers on a small cohort, and a cross-check of the
SQL against a plain pandas/Python computation on a random cohort."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from workflow_cohorts import events_frame, manifest_frame, random_cohort

from analytics.features import (
    REFERENCE_ORDER,
    SCAN_FEATURE_COLUMNS,
    categories_in_scope,
    category_times,
    merged_sequences,
    scan_features,
    transitions,
)
from analytics.selection import select
from fetal_analytics import taxonomy
from fetal_analytics.run_writing import ModelRecord, finish_run, start_label_run, write_scan
from fetal_analytics.taxonomy import UnknownLabelError


def levenshtein(a: list[str], b: list[str]) -> int:
    """Textbook dynamic-programming edit distance, independent of DuckDB's."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


# Scan A: background, brain, background, heart, spine, heart again (two adjacent heart events,
# which merge), a 5 s gap, nose and lips.
SCAN_A = [("Bk", 10), ("Br", 30), ("Bk", 10), ("HeD", 60), ("Sp", 20), ("HeD", 30), ("HeD", 10)]
# Scan B: the reference order, then the umbilical cord insertion (a rarer FASP structure).
SCAN_B = [(c, 10) for c in (*REFERENCE_ORDER, "Um")]


@pytest.fixture
def small_store(cohort_store):
    manifest = manifest_frame({"A": ("OP1", "expert"), "B": ("OP2", "trainee"),
                               "C": ("OP2", "trainee")})
    events = pd.concat([
        events_frame({"A": SCAN_A}),
        pd.DataFrame([{"scan_id": "A", "start_s": 175.0, "end_s": 185.0, "label": "NL"}]),
        events_frame({"B": SCAN_B}, start=100.0),
        events_frame({"C": [("Bk", 30), ("Um", 10)]}),
    ], ignore_index=True)
    store = cohort_store(manifest, {"manual": events})
    freezes = pd.DataFrame({
        "scan_id": ["A"] * 5, "t_s": [55.0, 135.0, 12.0, 172.0, 110.0],
        "method": ["diff"] * 5,
    })
    store.insert_frame("freeze_frames", freezes)
    return store


def test_category_times_hand_computed(small_store):
    sel = select(small_store, source="manual")
    ct = category_times(small_store, sel)
    scope = categories_in_scope(small_store, sel)
    # Default scope: the 11 model classes plus the rarer labels present (Um), taxonomy order.
    assert scope == (*taxonomy.default_model_codes(), "Um")
    assert list(ct.columns) == ["scan_id", "operator_id", "group", "label", "duration_s",
                                "duration_min", "share", "n_events", "n_revisits", "n_freezes"]
    assert len(ct) == 3 * len(scope)
    a = ct[ct["scan_id"] == "A"].set_index("label")
    assert list(a.index) == list(scope)
    assert a.loc["HeD", "duration_s"] == 100.0
    assert a.loc["HeD", "duration_min"] == pytest.approx(100 / 60)
    assert a.loc["HeD", "share"] == pytest.approx(100 / 180)  # NL (10 s) counts: 180 s labelled
    assert a.loc["HeD", "n_events"] == 3
    assert a.loc["HeD", "n_revisits"] == 1
    assert a.loc["Bk", "n_revisits"] == 1
    assert a.loc["Br", "n_revisits"] == 0
    assert a.loc["HeD", "n_freezes"] == 2
    assert a.loc["Br", "n_freezes"] == 1
    assert a.loc["Sp", "n_freezes"] == 1  # t = 110 s: the start of Sp (intervals are [start, end))
    assert a.loc["NL", "n_freezes"] == 0  # t = 172 s falls in the gap before NL
    assert a.loc["Fm", ["duration_s", "share", "n_events", "n_revisits", "n_freezes"]].sum() == 0
    assert a["share"].sum() == pytest.approx(1.0)
    assert (a["group"] == "expert").all() and (a["operator_id"] == "OP1").all()
    for column in ("n_events", "n_revisits", "n_freezes"):
        assert ct[column].dtype == np.int64


def test_category_times_explicit_categories(small_store):
    sel = select(small_store, source="manual")
    ct = category_times(small_store, sel, categories=["Um", "HeD", "Um"])
    assert list(ct["label"].unique()) == ["Um", "HeD"]
    a = ct[ct["scan_id"] == "A"].set_index("label")
    # Shares stay shares of all labelled time, whatever the categories shown.
    assert a.loc["HeD", "share"] == pytest.approx(100 / 180)
    assert a.loc["Um", "duration_s"] == 0
    with pytest.raises(UnknownLabelError, match="did you mean 'HeD'"):
        category_times(small_store, sel, categories=["heart"])
    with pytest.raises(ValueError, match="at least one"):
        category_times(small_store, sel, categories=[])


def test_scan_features_hand_computed(small_store):
    sel = select(small_store, source="manual")
    sf = scan_features(small_store, sel).set_index("scan_id")
    assert list(sf.reset_index().columns) == list(SCAN_FEATURE_COLUMNS)
    a, b, c = sf.loc["A"], sf.loc["B"], sf.loc["C"]

    assert a["total_min"] == pytest.approx(180 / 60)
    assert a["span_min"] == pytest.approx(185 / 60)
    assert a["n_events"] == 8
    assert a["n_freezes"] == 5
    assert a["first_label"] == "Br"
    assert a["n_revisits"] == 1  # HeD; background returns are not revisits of a structure
    assert a["n_transitions"] == 6  # Bk Br Bk HeD Sp HeD NL
    assert a["bk_share"] == pytest.approx(20 / 180)
    # FASP-required among the 11 classes: HeD Br Sp Ab NL Ki Fm, whatever else is labelled.
    assert a["fasp_coverage"] == pytest.approx(4 / 7)
    assert a["n_rare_required_seen"] == 0
    assert math.isnan(a["time_to_full_coverage_min"])
    seen = ["Br", "HeD", "Sp", "NL"]
    assert a["order_edit_distance"] == pytest.approx(
        levenshtein(seen, list(REFERENCE_ORDER)) / len(REFERENCE_ORDER))
    # Transitions out of Bk: Br, HeD (1 bit); out of HeD: Sp, NL (1 bit); Br, Sp: certain.
    assert a["transition_entropy_rate"] == pytest.approx(2 / 6 * 1 + 2 / 6 * 1)

    assert b["fasp_coverage"] == 1.0
    assert b["time_to_full_coverage_min"] == pytest.approx(70 / 60)  # Fm begins at 100 + 70 s
    assert b["n_rare_required_seen"] == 1  # Um: reported apart, not in the coverage
    assert b["order_edit_distance"] == 0.0  # Um is outside the reference and ignored
    assert b["transition_entropy_rate"] == 0.0
    assert b["bk_share"] == 0.0
    assert b["n_freezes"] == 0

    assert c["first_label"] == "Um"
    assert c["n_transitions"] == 1
    assert math.isnan(c["transition_entropy_rate"])  # fewer than 2 transitions
    assert c["fasp_coverage"] == 0.0
    assert c["n_rare_required_seen"] == 1
    assert c["order_edit_distance"] == 1.0  # no reference structure seen at all
    assert c["bk_share"] == pytest.approx(30 / 40)


def test_fasp_coverage_does_not_depend_on_the_rest_of_the_cohort(cohort_store):
    """Regression: the required set grew with any rare required label anywhere in the cohort."""
    manifest = manifest_frame({"A": ("OP1", "expert"), "C": ("OP2", "trainee")})
    alone = cohort_store(manifest, {"manual": events_frame({"A": SCAN_A})})
    a_alone = scan_features(alone, select(alone, source="manual")).set_index("scan_id").loc["A"]
    with_rare = cohort_store(manifest, {"manual": events_frame(
        {"A": SCAN_A, "C": [("Bk", 30), ("Um", 10), ("BlD", 5)]})})
    features = scan_features(with_rare, select(with_rare, source="manual")).set_index("scan_id")
    assert features.loc["A", "fasp_coverage"] == a_alone["fasp_coverage"] == pytest.approx(3 / 7)
    assert features.loc["C", "n_rare_required_seen"] == 2
    assert set(taxonomy.FASP_REQUIRED) <= set(taxonomy.fasp_required_codes())
    assert set(taxonomy.FASP_REQUIRED) == (set(taxonomy.fasp_required_codes())
                                           & set(taxonomy.default_model_codes()))
    assert set(taxonomy.FASP_REQUIRED_RARE) == (set(taxonomy.fasp_required_codes())
                                                - set(taxonomy.FASP_REQUIRED))


def test_scan_features_options(small_store):
    sel = select(small_store, source="manual")
    sf = scan_features(small_store, sel, reference_order=["HeD", "Br"]).set_index("scan_id")
    assert sf.loc["A", "order_edit_distance"] == 1.0  # Br then HeD against HeD then Br
    with pytest.raises(ValueError, match="repeats"):
        scan_features(small_store, sel, reference_order=["Br", "Br"])
    with pytest.raises(ValueError, match="at least one"):
        scan_features(small_store, sel, reference_order=[])
    with pytest.raises(UnknownLabelError):
        scan_features(small_store, sel, reference_order=["Brain!"])


def test_scan_with_only_background_has_no_first_label(cohort_store):
    store = cohort_store(manifest_frame({"X": ("OP1", "expert")}),
                         {"manual": events_frame({"X": [("Bk", 5)]})})
    sf = scan_features(store, select(store, source="manual"))
    assert sf.loc[0, "first_label"] is None or pd.isna(sf.loc[0, "first_label"])
    assert sf.loc[0, "n_transitions"] == 0 and sf.loc[0, "bk_share"] == 1.0


def test_transitions_and_merged_sequences(small_store):
    sel = select(small_store, source="manual")
    tr = transitions(small_store, sel)
    a = tr[tr["scan_id"] == "A"]
    assert sorted(zip(a["from_label"], a["to_label"], a["n"], strict=True)) == sorted([
        ("Bk", "Br", 1), ("Br", "Bk", 1), ("Bk", "HeD", 1), ("HeD", "Sp", 1), ("Sp", "HeD", 1),
        ("HeD", "NL", 1)])
    assert (tr["from_label"] != tr["to_label"]).all()
    seq = merged_sequences(small_store, sel)
    a = seq[seq["scan_id"] == "A"]
    assert list(a["label"]) == ["Bk", "Br", "Bk", "HeD", "Sp", "HeD", "NL"]
    assert list(a["seg_id"]) == list(range(1, 8))
    second_heart = a.iloc[5]
    assert (second_heart["start_s"], second_heart["end_s"]) == (130.0, 170.0)
    no_bk = merged_sequences(small_store, sel, skip_background=True)
    assert list(no_bk[no_bk["scan_id"] == "A"]["label"]) == ["Br", "HeD", "Sp", "HeD", "NL"]
    tr_no_bk = transitions(small_store, sel, skip_background=True)
    assert "Bk" not in set(tr_no_bk["from_label"]) | set(tr_no_bk["to_label"])


def test_selection_decides_the_events(cohort_store):
    manifest = manifest_frame({"X": ("OP1", "expert")})
    manual = events_frame({"X": [("HeD", 60), ("Br", 60)]})
    auto = events_frame({"X": [("HeD", 30), ("Sp", 90)]})
    store = cohort_store(manifest, {"manual": manual, "auto": auto})
    for source, heart in (("manual", 60.0), ("auto", 30.0)):
        ct = category_times(store, select(store, source=source)).set_index("label")
        assert ct.loc["HeD", "duration_s"] == heart


def test_sql_matches_pandas_on_a_random_cohort(cohort_store):
    manifest, events = random_cohort(7, operators_per_group=3, scans_per_operator=2)
    # Gaps between some events, and a few adjacent repeats, to exercise the merging.
    rng = np.random.default_rng(7)
    events = events.sort_values(["scan_id", "start_s"]).reset_index(drop=True)
    offset = pd.Series(rng.uniform(0, 2, len(events))).groupby(events["scan_id"]).cumsum()
    events["start_s"] += offset
    events["end_s"] += offset
    repeat = rng.random(len(events)) < 0.1
    events.loc[repeat, "label"] = events["label"].shift().fillna("Bk")[repeat]
    store = cohort_store(manifest, {"manual": events})
    sel = select(store, source="manual")
    stored = store.query_df("SELECT scan_id, start_s, end_s, label FROM events "
                            "ORDER BY scan_id, start_s")
    ct = category_times(store, sel)
    sf = scan_features(store, sel).set_index("scan_id")

    stored["dur"] = stored["end_s"] - stored["start_s"]
    expected = stored.groupby(["scan_id", "label"])["dur"].sum()
    got = ct.set_index(["scan_id", "label"])["duration_s"]
    assert np.allclose(got[expected.index], expected)
    assert got.drop(expected.index).eq(0).all()

    for scan_id, ev in stored.groupby("scan_id"):
        labels = list(ev["label"])
        merged = [x for i, x in enumerate(labels) if i == 0 or labels[i - 1] != x]
        assert sf.loc[scan_id, "n_transitions"] == len(merged) - 1
        nonbk = [x for x in merged if x != "Bk"]
        assert sf.loc[scan_id, "n_revisits"] == len(nonbk) - len(set(nonbk))
        pairs = list(itertools.pairwise(merged))
        counts = pd.Series(pairs).value_counts()
        out = pd.Series([p[0] for p in pairs]).value_counts()
        h = -sum(n / len(pairs) * math.log2(n / out[p[0]]) for p, n in counts.items())
        assert sf.loc[scan_id, "transition_entropy_rate"] == pytest.approx(h)
        rows = ct[ct["scan_id"] == scan_id].set_index("label")
        for label in set(labels):
            assert rows.loc[label, "n_revisits"] == merged.count(label) - 1
            assert rows.loc[label, "n_events"] == labels.count(label)
        firsts = list(dict.fromkeys(x for x in labels if x in REFERENCE_ORDER))
        assert sf.loc[scan_id, "order_edit_distance"] == pytest.approx(
            levenshtein(firsts, list(REFERENCE_ORDER))
            / max(len(firsts), len(REFERENCE_ORDER)))
        assert sf.loc[scan_id, "first_label"] == next(x for x in labels if x != "Bk")


def test_freezes_come_from_one_run_per_scan_never_a_mix(cohort_store):
    # Scans S1-S3 with manual labels; label runs a and b (finished) and c (still running)
    # record freezes through the run-writing API, each run its own.
    manifest = manifest_frame({s: ("OP1", "expert") for s in ("S1", "S2", "S3")})
    store = cohort_store(manifest, {"manual": events_frame(
        {s: [("HeD", 30), ("Br", 30)] for s in ("S1", "S2", "S3")})})
    record = ModelRecord("m" * 16, "m.keras", "m" * 64, "sononet", (32, 32, 1), ("HeD", "Br"))
    params = {"classes": ["HeD", "Br"], "hop_s": 1.0}
    windows = pd.DataFrame({"t_s": [1.0], "stream": ["fused"], "probs": [[0.5, 0.5]]})
    events = events_frame({"-": [("HeD", 30), ("Br", 30)]}).drop(columns="scan_id")

    def label(name, freezes_by_scan, *, finish=True):
        run_id = start_label_run(store, name, model=record, params=params).run_id
        for scan_id, starts in freezes_by_scan.items():
            freezes = None if starts is None else pd.DataFrame({"t_s": starts}, dtype=float)
            write_scan(store, run_id, scan_id, events=events, window_probs=windows,
                       freezes=freezes)
        if finish:
            finish_run(store, run_id)

    label("a", {"S1": [10, 40], "S2": [10, 20, 40]})
    label("b", {"S1": [5, 10, 35, 50], "S2": None})  # S2 without freeze detection
    label("c", {"S3": [10, 20]}, finish=False)

    def freezes(**selection):
        sel = select(store, **selection)
        per_scan = scan_features(store, sel).set_index("scan_id")["n_freezes"].to_dict()
        times = category_times(store, sel).pivot(index="scan_id", columns="label",
                                                 values="n_freezes")
        assert times.sum(axis=1).to_dict() == per_scan  # the same freezes, split by category
        return per_scan, times

    # Newest automatic run per scan is b: S1 counts b's 4, S2 a's 3 (b recorded none of S2).
    per_scan, times = freezes(source="auto")
    assert per_scan == {"S1": 4, "S2": 3}
    assert times.loc["S1", ["HeD", "Br"]].tolist() == [2, 2]
    assert freezes(run="a")[0] == {"S1": 2, "S2": 3}
    # Manual labels record no freezes: each scan takes its newest finished run's that did; the
    # running run c does not count.
    assert freezes(source="manual")[0] == {"S1": 4, "S2": 3, "S3": 0}
    assert freezes(run="c")[0] == {"S3": 2}
