"""The simulator's workflow model, checked on the cohorts it writes (no video)."""

import dataclasses
import itertools
import math

import numpy as np
import pandas as pd
import pytest

from fetal_analytics import taxonomy
from fetal_analytics.ingest import ingest_labels, ingest_manifest
from fetal_analytics.store import Store
from fetal_analytics.synth import default_config, manual_label_clips, simulate_cohort, write_cohort


@pytest.fixture(scope="module")
def big():
    """A cohort large enough for group statistics (events only: fast)."""
    return simulate_cohort(scans=1200, operators=40, seed=7)


def frames(cohort):
    events = cohort.events()
    groups = cohort.manifest().set_index("scan_id")["group"]
    return events.assign(d=events.end_s - events.start_s, grp=events.scan_id.map(groups))


def test_the_same_seed_gives_the_same_cohort_and_another_seed_another():
    a = simulate_cohort(scans=6, operators=3, seed=3)
    b = simulate_cohort(scans=6, operators=3, seed=3)
    c = simulate_cohort(scans=6, operators=3, seed=4)
    pd.testing.assert_frame_equal(a.events(), b.events())
    pd.testing.assert_frame_equal(a.freezes(), b.freezes())
    assert not a.events().equals(c.events())


def test_a_scan_does_not_depend_on_how_many_scans_are_simulated():
    few = simulate_cohort(scans=2, operators=2, seed=5)
    many = simulate_cohort(scans=50, operators=2, seed=5)
    assert few.scans == many.scans[:2]


def test_timelines_are_contiguous_valid_and_freezes_lie_inside_anatomy(big):
    codes = set(taxonomy.codes())
    for scan in big.scans[:200]:
        starts = [e.start_s for e in scan.events]
        ends = [e.end_s for e in scan.events]
        assert starts[0] == 0 and ends[-1] == scan.duration_s
        assert starts[1:] == ends[:-1]
        assert all(e.end_s > e.start_s and e.label in codes for e in scan.events)
        labels = [e.label for e in scan.events]
        assert all(a != b for a, b in itertools.pairwise(labels))
        onsets = [f.start_s for f in scan.freezes]
        assert np.all(np.diff(onsets) >= big.config.clip_s - 1e-9)
        for freeze in scan.freezes:
            event = next(e for e in scan.events if e.start_s <= freeze.start_s < e.end_s)
            assert event.label == freeze.label
            assert freeze.end_s <= event.end_s and freeze.end_s - freeze.start_s >= 0.6
            assert freeze.end_s - freeze.start_s <= big.config.freeze_max_s


def test_manual_clips_follow_the_two_thirds_one_third_rule(big):
    config = big.config
    for scan in big.scans[:100]:
        clips = manual_label_clips(scan, config=config)
        assert len(clips) == len(scan.freezes)
        for (start, end, label), freeze in zip(clips, scan.freezes, strict=True):
            assert label == freeze.label
            assert math.isclose(freeze.start_s - start, min(freeze.start_s, 10 / 3), abs_tol=2e-3)
            assert math.isclose(end - freeze.start_s, 5 / 3, abs_tol=2e-3)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(clips))


def test_scan_lengths_are_realistic_and_trainees_take_longer(big):
    minutes = frames(big).groupby(["grp", "scan_id"]).end_s.max().div(60).groupby("grp").mean()
    assert 25 <= (minutes["expert"] + minutes["trainee"]) / 2 <= 45
    assert minutes["trainee"] > 1.15 * minutes["expert"]


def test_trainees_spend_about_a_quarter_longer_on_biometry(big):
    events = frames(big)
    biometry = events[events.label.isin(["Br", "Ab", "Fm"])]
    per_scan = biometry.groupby(["grp", "scan_id"]).d.sum().groupby("grp").mean()
    assert 1.15 < per_scan["trainee"] / per_scan["expert"] < 1.6


def test_trainees_search_revisit_and_miss_more(big):
    events = frames(big)
    bk_share = (events[events.label == "Bk"].groupby("grp").d.sum()
                / events.groupby("grp").d.sum())
    assert bk_share["trainee"] > bk_share["expert"]
    anatomy = events[events.label != "Bk"]
    visits = anatomy.groupby(["grp", "scan_id", "label"]).size()
    revisits = (visits - 1).groupby("grp").sum() / visits.groupby("grp").size()
    assert revisits["trainee"] > 1.3 * revisits["expert"]
    required = taxonomy.fasp_required_codes()
    seen = anatomy[anatomy.label.isin(required)].groupby(["grp", "scan_id"]).label.nunique()
    assert seen.groupby("grp").mean()["trainee"] < seen.groupby("grp").mean()["expert"]


def test_experts_are_more_consistent_from_scan_to_scan(big):
    scan_minutes = frames(big).groupby(["grp", "scan_id"]).end_s.max() / 60
    cv = scan_minutes.groupby("grp").std() / scan_minutes.groupby("grp").mean()
    assert cv["expert"] < cv["trainee"]


def test_most_scans_start_with_brain_spine_or_heart(big):
    events = frames(big)
    first = events[events.label != "Bk"].groupby("scan_id").label.first()
    assert first.isin(["Br", "Sp", "HeD"]).mean() > 0.8


def test_visit_durations_follow_the_configured_log_normal():
    config = default_config()
    expert = dataclasses.replace(config.groups["expert"], revisit_probability=0.0,
                                 operator_speed_sd=0.0)
    config = dataclasses.replace(config, groups={"expert": expert})
    cohort = simulate_cohort(scans=600, operators=10, seed=11, config=config)
    events = frames(cohort)
    for code in ("HeD", "Sp", "Fm"):
        durations = events.loc[events.label == code, "d"].to_numpy()
        expected = config.classes[code].visit_mean_s
        assert abs(durations.mean() / expected - 1) < 0.06, code
        sigma = math.sqrt(math.log1p(expert.visit_cv ** 2))
        assert abs(np.log(durations).std() / sigma - 1) < 0.1, code


def test_minutes_fixes_every_scans_length():
    cohort = simulate_cohort(scans=4, operators=2, minutes=2, seed=1)
    assert [s.duration_s for s in cohort.scans] == [120.0] * 4
    assert all(len(s.freezes) >= 3 for s in cohort.scans)


def test_an_excerpt_keeps_natural_event_durations():
    natural = simulate_cohort(scans=6, operators=2, seed=5)
    cut = simulate_cohort(scans=6, operators=2, seed=5, excerpt_minutes=3)
    for whole, part in zip(natural.scans, cut.scans, strict=True):
        assert part.duration_s == 180.0
        assert part.events[0].start_s == 0 and part.events[-1].end_s == 180.0
        assert all(a.end_s == b.start_s for a, b in itertools.pairwise(part.events))
        # Every event inside the excerpt is a natural event shifted in time: same label and
        # duration (only the two cut at the ends are shorter).
        natural_spans = {(e.label, round(e.end_s - e.start_s, 3)) for e in whole.events}
        inner = part.events[1:-1]
        assert all((e.label, round(e.end_s - e.start_s, 3)) in natural_spans for e in inner)
        assert all(0 <= f.start_s < f.end_s <= 180.0 for f in part.freezes)
    assert {s.scan_id for s in cut.scans} == {s.scan_id for s in natural.scans}
    with pytest.raises(ValueError, match="not both"):
        simulate_cohort(minutes=2, excerpt_minutes=2)


def test_manual_fraction_chooses_scans():
    cohort = simulate_cohort(scans=10, operators=2, seed=2, manual_fraction=0.3)
    assert len(cohort.manual_scan_ids) == 3
    assert set(cohort.manual_labels().scan_id) == cohort.manual_scan_ids


def test_written_files_ingest_unchanged(tmp_path):
    cohort = simulate_cohort(scans=4, operators=2, minutes=2, seed=1)
    out = write_cohort(cohort, tmp_path / "sim", video=False)
    with Store(tmp_path / "sim.duckdb") as store:
        assert ingest_manifest(store, out / "manifest.csv").scans_added == 4
        manual = ingest_labels(store, out / "manual_labels.csv")
        truth = ingest_labels(store, out / "truth" / "events.csv", source="auto")
        assert manual.n_events == len(cohort.freezes())
        assert truth.n_events == sum(len(s.events) for s in cohort.scans)
    freezes = pd.read_csv(out / "truth" / "freezes.csv")
    assert list(freezes.columns) == ["scan_id", "start_s", "end_s", "calipers"]


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="manual_fraction must be in"):
        simulate_cohort(manual_fraction=1.5)
    with pytest.raises(ValueError, match="not a simulated taxonomy code"):
        dataclasses.replace(default_config(), first_structure={"Heart": 0.5})
