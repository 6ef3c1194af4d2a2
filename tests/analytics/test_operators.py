"""One operator at a time (`analytics.operators`) and the scan filter of selections."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from workflow_cohorts import events_frame, manifest_frame

from analytics.features import scan_features
from analytics.operators import (
    UnknownOperatorError,
    operator_profile,
    operator_trends,
    structure_coverage,
)
from analytics.selection import EmptySelectionError, select
from fetal_analytics.queries import ScanFilter, list_scans

FULL = [("Br", 60), ("NL", 20), ("Sp", 30), ("HeD", 100), ("Ab", 30), ("Ki", 20), ("Fm", 10)]


@pytest.fixture
def four_operators(cohort_store):
    """E1 (3 scans over 3 weeks, the last one missing the kidneys and femur), E2, E3 experts;
    T1 trainee with 2 scans, slower each time."""
    scans = {"E1a": ("E1", "expert"), "E1b": ("E1", "expert"), "E1c": ("E1", "expert"),
             "E2a": ("E2", "expert"), "E3a": ("E3", "expert"),
             "T1a": ("T1", "trainee"), "T1b": ("T1", "trainee")}
    manifest = manifest_frame(scans)
    manifest["acquired_at"] = ["2024-01-01", "2024-01-08", "2024-01-15", "2024-01-02",
                               "2024-01-03", "2024-02-01", "2024-02-11"]
    sequences = {s: FULL for s in scans}
    sequences["E1c"] = FULL[:5]
    sequences["E2a"] = [(label, 2 * sec) for label, sec in FULL]
    sequences["E3a"] = [(label, 3 * sec) for label, sec in FULL]
    sequences["T1b"] = [(label, 2 * sec) for label, sec in FULL]
    return cohort_store(manifest, {"auto": events_frame(sequences)})


def test_structure_coverage_counts_the_scans_in_which_each_operator_saw_each_structure(
        four_operators):
    table = structure_coverage(four_operators, select(four_operators))
    e1 = table[table["operator_id"] == "E1"].set_index("label")
    assert list(e1.index) == ["HeD", "Br", "Sp", "Ab", "NL", "Ki", "Fm"]
    assert e1.loc["Ki", ["n_scans", "n_seen"]].tolist() == [3, 2]
    assert e1.loc["Ki", "share_seen"] == pytest.approx(2 / 3)
    assert e1.loc["HeD", "share_seen"] == 1.0
    assert list(table["operator_id"].unique()) == ["E1", "E2", "E3", "T1"]


def test_operator_profile_compares_with_the_reference_operators_leaving_the_operator_out(
        four_operators):
    profile = operator_profile(four_operators, select(four_operators), "T1")
    total = profile.table.set_index("feature").loc["total_min"]
    minutes = sum(sec for _, sec in FULL) / 60
    # T1's mean over 1x and 2x; E1's mean over two full and one shorter scan; E2 2x; E3 3x.
    e1 = (2 * minutes + sum(sec for _, sec in FULL[:5]) / 60) / 3
    reference = np.array([e1, 2 * minutes, 3 * minutes])
    assert total["value"] == pytest.approx(1.5 * minutes)
    assert total["reference_mean"] == pytest.approx(reference.mean())
    assert total["reference_sd"] == pytest.approx(reference.std(ddof=1))
    assert total["z"] == pytest.approx((1.5 * minutes - reference.mean())
                                       / reference.std(ddof=1))
    assert total["percentile"] == pytest.approx(1 / 3)
    assert (profile.group, profile.reference) == ("trainee", "expert")
    own = operator_profile(four_operators, select(four_operators), "E2")
    assert own.table.set_index("feature").loc["total_min", "reference_n"] == 2


def test_operator_profile_names_the_operators_present_for_an_unknown_one(four_operators):
    with pytest.raises(UnknownOperatorError, match="operators present: E1, E2, E3, T1"):
        operator_profile(four_operators, select(four_operators), "X9")


def test_operator_trends_give_the_slopes_t_interval_and_the_fitted_line(four_operators):
    from scipy import stats

    trends = operator_trends(four_operators, select(four_operators))
    e1 = trends.slopes.set_index(["operator_id", "feature"]).loc[("E1", "total_min")]
    points = trends.points[(trends.points["operator_id"] == "E1")
                           & (trends.points["feature"] == "total_min")]
    days = (points["acquired_at"] - points["acquired_at"].min()).dt.days.to_numpy()
    fit = stats.linregress(days / 30, points["value"])
    half = stats.t.ppf(0.975, len(days) - 2) * fit.stderr
    assert e1["slope_per_30_days_ci_low"] == pytest.approx(fit.slope - half)
    assert e1["slope_per_30_days_ci_high"] == pytest.approx(fit.slope + half)
    assert e1["slope_per_30_days_p"] == pytest.approx(fit.pvalue)
    assert e1["intercept"] == pytest.approx(fit.intercept)
    t1 = trends.slopes.set_index(["operator_id", "feature"]).loc[("T1", "total_min")]
    assert np.isnan(t1["slope_per_30_days_ci_low"])  # two scans: a line, but no interval
    assert not np.isnan(t1["intercept"])


def test_operator_trends_are_least_squares_slopes_over_scan_number_and_date(four_operators):
    trends = operator_trends(four_operators, select(four_operators))
    slopes = trends.slopes.set_index(["operator_id", "feature"])
    minutes = sum(sec for _, sec in FULL) / 60
    # T1: 1x then 2x the minutes, 10 days apart.
    assert slopes.loc[("T1", "total_min"), "slope"] == pytest.approx(minutes)
    assert slopes.loc[("T1", "total_min"), "slope_per_30_days"] == pytest.approx(3 * minutes)
    # E1's coverage: 1, 1, 5/7 over scans 1-3: slope -(2/7)/2.
    assert slopes.loc[("E1", "fasp_coverage"), "slope"] == pytest.approx(-1 / 7)
    assert np.isnan(slopes.loc[("E2", "total_min"), "slope"])
    points = trends.points[(trends.points["operator_id"] == "E1")
                           & (trends.points["feature"] == "fasp_coverage")]
    assert points["scan_number"].tolist() == [1, 2, 3]
    assert points["value"].tolist() == pytest.approx([1, 1, 5 / 7])


def test_operator_trends_refuses_an_unknown_feature(four_operators):
    with pytest.raises(ValueError, match=r"unknown feature.*'speed'.*total_min"):
        operator_trends(four_operators, select(four_operators), features=["speed"])


def test_a_scan_filter_restricts_every_analysis_to_its_scans(four_operators):
    store = four_operators
    scans = ScanFilter.of(groups="expert", date_from="2024-01-02", date_to="2024-01-08")
    selection = select(store, scans=scans)
    assert selection.description.endswith("; group expert, from 2024-01-02 to 2024-01-08")
    assert scan_features(store, selection)["scan_id"].tolist() == ["E1b", "E2a", "E3a"]
    assert list_scans(store, groups="expert", date_from="2024-01-02",
                      date_to="2024-01-08")["scan_id"].tolist() == ["E2a", "E3a", "E1b"]
    by_run = select(store, run="last", scans=ScanFilter.of(operators=["T1"]))
    assert scan_features(store, by_run)["scan_id"].tolist() == ["T1a", "T1b"]


def test_a_scan_filter_that_keeps_no_labelled_scan_says_so(four_operators):
    with pytest.raises(EmptySelectionError, match="from 2025-01-01 has no events"):
        select(four_operators, scans=ScanFilter.of(date_from=pd.Timestamp("2025-01-01")))
    with pytest.raises(ValueError, match="a date must be YYYY-MM-DD, got 'soon'"):
        ScanFilter.of(date_to="soon")


def test_the_functions_on_frames_at_hand_give_what_the_store_functions_give(four_operators):
    from analytics.features import category_times
    from analytics.groups import compare_groups, compare_groups_of, operator_values_of
    from analytics.operators import profile_of, structure_coverage_of, trends_of

    store = four_operators
    selection = select(store)
    scans, cats = scan_features(store, selection), category_times(store, selection)
    values = operator_values_of(scans, cats)
    pd.testing.assert_frame_equal(structure_coverage_of(cats),
                                  structure_coverage(store, selection))
    pd.testing.assert_frame_equal(compare_groups_of(values).table,
                                  compare_groups(store, selection).table)
    pd.testing.assert_frame_equal(profile_of(values, "T1").table,
                                  operator_profile(store, selection, "T1").table)
    pd.testing.assert_frame_equal(trends_of(scans).slopes,
                                  operator_trends(store, selection).slopes)
