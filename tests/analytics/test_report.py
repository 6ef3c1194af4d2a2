"""Every number of an operator report (`analytics.report`) against the analytics API it reuses,
and the degenerate cases: one scan, one group, no automatic labels, an unknown operator."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from workflow_cohorts import events_frame, manifest_frame

from analytics.features import category_times, scan_features
from analytics.groups import operator_values
from analytics.operators import UnknownOperatorError, operator_profile, trends_of
from analytics.report import (
    REPORT_FEATURES,
    THRESHOLDS,
    TREND_FEATURES,
    operator_report,
    report_inputs,
)
from analytics.selection import select

FULL = [("Br", 60), ("NL", 20), ("Sp", 30), ("HeD", 100), ("Ab", 30), ("Ki", 20), ("Fm", 10)]


@pytest.fixture
def cohort(cohort_store):
    """Four experts E1-E4 (E1 with three dated scans, slower each time), trainee T1 with two
    scans (twice as long on everything), trainee T2 with one scan that misses the femur, and
    trainee T3 with manual labels only."""
    scans = {"E1a": ("E1", "expert"), "E1b": ("E1", "expert"), "E1c": ("E1", "expert"),
             "E2a": ("E2", "expert"), "E3a": ("E3", "expert"), "E4a": ("E4", "expert"),
             "T1a": ("T1", "trainee"), "T1b": ("T1", "trainee"), "T2a": ("T2", "trainee"),
             "T3a": ("T3", "trainee")}
    manifest = manifest_frame(scans)
    manifest["acquired_at"] = ["2024-01-01", "2024-01-11", "2024-01-21", "2024-01-02",
                               "2024-01-03", "2024-01-04", "2024-02-01", "2024-02-11",
                               "2024-02-12", "2024-02-13"]
    seqs = {s: FULL for s in scans if s != "T3a"}
    seqs["E1b"] = [(label, 1.2 * sec) for label, sec in FULL]
    seqs["E1c"] = [(label, 1.5 * sec) for label, sec in FULL]
    seqs["E3a"] = [(label, 0.8 * sec) for label, sec in FULL]
    seqs["E4a"] = [(label, 1.1 * sec) for label, sec in FULL] + [("Bk", 30), ("HeD", 20)]
    seqs["T1a"] = [(label, 2 * sec) for label, sec in FULL]
    seqs["T1b"] = [(label, 2 * sec) for label, sec in FULL] + [("Bk", 40), ("Br", 10)]
    seqs["T2a"] = FULL[:-1]
    manual = events_frame({"T3a": FULL, "E1a": FULL[:3]})
    return cohort_store(manifest, {"auto": events_frame(seqs), "manual": manual})


@pytest.fixture
def inputs(cohort):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return report_inputs(cohort, select(cohort, source="auto"), skill=False)


def test_the_profile_is_the_operator_profile_of_the_analytics_api(cohort, inputs):
    report = operator_report(cohort, None, "T1", inputs=inputs)
    api = operator_profile(cohort, select(cohort, source="auto"), "T1").table.set_index(
        "feature")
    mine = report.profile.set_index("feature")
    assert list(mine.index) == list(REPORT_FEATURES)
    for column in ("value", "n_scans", "reference_mean", "reference_sd", "reference_n", "z",
                   "percentile", "reference_min", "reference_max"):
        pd.testing.assert_series_equal(mine[column], api.loc[mine.index, column],
                                       check_names=False)
    assert report.n_reference_operators == 4
    assert mine.loc["span_min", "percentile"] == 1.0  # longer than every expert


def test_an_expert_is_compared_with_the_other_experts_only(cohort, inputs):
    report = operator_report(cohort, None, "E1", inputs=inputs)
    assert report.n_reference_operators == 3
    assert (report.profile["reference_n"] == 3).all()
    assert (report.categories["reference_n"] == 3).all()


def test_category_minutes_carry_a_t_interval_over_the_operators_scans(cohort, inputs):
    report = operator_report(cohort, None, "E1", inputs=inputs)
    heart = report.categories.set_index("label").loc["HeD"]
    minutes = np.array([100, 120, 150]) / 60
    half = stats.t.ppf(0.975, 2) * minutes.std(ddof=1) / math.sqrt(3)
    assert heart["mean_min"] == pytest.approx(minutes.mean())
    assert heart["ci_low_min"] == pytest.approx(minutes.mean() - half)
    assert heart["ci_high_min"] == pytest.approx(minutes.mean() + half)
    times = category_times(cohort, select(cohort, source="auto"))
    refs = (times[times["operator_id"].isin(["E2", "E3", "E4"]) & (times["label"] == "HeD")]
            .groupby("operator_id")["duration_min"].mean())
    assert heart["reference_min_min"] == pytest.approx(refs.min())
    assert heart["reference_max_min"] == pytest.approx(refs.max())
    assert heart["reference_mean_min"] == pytest.approx(refs.mean())


def test_coverage_and_trend_come_from_the_library(cohort, inputs):
    report = operator_report(cohort, None, "E1", inputs=inputs)
    selection = select(cohort, source="auto")
    trends = trends_of(scan_features(cohort, selection), features=TREND_FEATURES).slopes
    api = trends[trends["operator_id"] == "E1"].set_index("feature")
    mine = report.trends.set_index("feature")
    for column in ("slope_per_30_days", "slope_per_30_days_ci_low", "intercept"):
        assert mine.loc["span_min", column] == pytest.approx(api.loc["span_min", column])
    # Slower each time: 20 s, 10 s later by 10 days each -> per 30 days.
    days = np.array([0, 10, 20])
    spans = np.array([1.0, 1.2, 1.5]) * sum(sec for _, sec in FULL) / 60
    fit = stats.linregress(days / 30, spans)
    assert mine.loc["span_min", "slope_per_30_days"] == pytest.approx(fit.slope)
    assert mine.loc["span_min", "intercept"] == pytest.approx(fit.intercept)
    assert mine.loc["span_min", "line_start_value"] == pytest.approx(fit.intercept)
    assert mine.loc["span_min", "line_end_value"] == pytest.approx(
        fit.intercept + fit.slope * 20 / 30)
    assert str(mine.loc["span_min", "line_end_at"])[:10] == "2024-01-21"
    t2 = operator_report(cohort, None, "T2", inputs=inputs).coverage.set_index("label")
    assert t2.loc["Fm", ["n_scans", "n_seen"]].tolist() == [1, 0]
    assert t2.loc["HeD", "reference_share_seen"] == 1.0


def test_findings_state_their_thresholds(cohort, inputs):
    report = operator_report(cohort, None, "T1", inputs=inputs)
    texts = " ".join(report.findings["text"])
    assert "Scan duration" in texts and "higher than all 4 expert" in texts
    features = report.findings[report.findings["kind"] == "feature"]
    assert (features["threshold"] == "at or beyond the 90% / 10% percentiles of the reference "
                                     "operators' means").all()
    assert THRESHOLDS["high_percentile"] == 0.9


def test_one_scan_gives_no_interval_and_no_trend_and_says_so(cohort, inputs):
    report = operator_report(cohort, None, "T2", inputs=inputs)
    assert report.n_scans == 1
    assert report.categories["ci_low_min"].isna().all()
    assert report.trends["slope_per_30_days"].isna().all()
    assert any("one scan" in n for n in report.notes)
    assert report.to_dict()["categories"][0]["ci_low_min"] is None  # JSON null


def test_an_operator_without_automatic_labels_is_reported_with_what_cannot_be_compared(
        cohort, inputs):
    report = operator_report(cohort, None, "T3", inputs=inputs)
    assert report.n_scans == 0 and report.n_scans_in_database == 1
    assert report.profile.empty
    assert any("no scans with events in auto labels" in n for n in report.notes)
    assert report.timeline_rows == ["T3a manual"]  # the manual labels still drawn


def test_a_cohort_of_one_group_says_there_is_no_reference(cohort_store):
    store = cohort_store(manifest_frame({"a": ("T1", "trainee"), "b": ("T2", "trainee")}),
                         {"auto": events_frame({"a": FULL, "b": FULL})})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = operator_report(store, select(store), "T1")
    assert report.n_reference_operators == 0
    assert report.profile["percentile"].isna().all()
    assert not report.skill["available"]
    notes = " ".join(report.notes)
    assert "no other operator of group 'expert'" in notes and "skill" in notes


def test_the_skill_estimate_is_the_analytics_skill_estimate(cohort_store):
    from analytics.skill import skill_estimate

    scans = {f"{op}{i}": (op, grp) for op, grp in (("E1", "expert"), ("E2", "expert"),
                                                   ("T1", "trainee"), ("T2", "trainee"))
             for i in range(2)}
    seqs = {s: [(lab, sec * (2 if s.startswith("T") else 1) + int(s[-1]))
                for lab, sec in FULL] for s in scans}
    store = cohort_store(manifest_frame(scans), {"auto": events_frame(seqs)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = operator_report(store, select(store), "T1")
        estimate = skill_estimate(store, select(store))
    row = estimate.operators.set_index("operator_id").loc["T1"]
    assert report.skill["available"]
    assert report.skill["probability"] == pytest.approx(row["probability"])
    metrics = {m["metric"]: m["value"] for m in report.skill["metrics"]}
    api = estimate.metrics[estimate.metrics["level"] == "operator"].set_index("metric")
    assert metrics["balanced_accuracy"] == pytest.approx(api.loc["balanced_accuracy", "value"])
    assert "not a verdict" in " ".join(report.findings["text"])


def test_an_unknown_operator_is_one_clear_error(cohort, inputs):
    with pytest.raises(UnknownOperatorError, match="no operator 'X9' in the database; "
                                                   "operators: E1, E2"):
        operator_report(cohort, None, "X9", inputs=inputs)


def test_operator_values_reach_the_report_unchanged(cohort, inputs):
    values = operator_values(cohort, select(cohort, source="auto"))
    pd.testing.assert_frame_equal(values, inputs.operator_values)
