"""Time to full FASP coverage as a censored outcome, checked against scipy's log-rank test and a
Kaplan-Meier estimate computed by hand."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats
from workflow_cohorts import events_frame, manifest_frame

from analytics.coverage import coverage_times
from analytics.groups import UnknownGroupError
from analytics.selection import select
from analytics.warnings import DegenerateDataWarning
from fetal_analytics import taxonomy

REQUIRED = list(taxonomy.FASP_REQUIRED)


def scan_sequence(rng: np.random.Generator, reach: bool) -> list[tuple[str, float]]:
    """Background, then the required structures (all of them, or all but the last)."""
    labels = REQUIRED if reach else REQUIRED[:-1]
    return [("Bk", float(rng.integers(5, 60)))] + [(c, float(rng.integers(10, 90)))
                                                    for c in labels]


@pytest.fixture
def cohort(cohort_store):
    rng = np.random.default_rng(11)
    scans, sequences = {}, {}
    for group, p_reach in (("expert", 0.9), ("trainee", 0.5)):
        for o in range(5):
            for s in range(3):
                scan_id = f"{group[0]}{o}-{s}"
                scans[scan_id] = (f"{group}{o}", group)
                sequences[scan_id] = scan_sequence(rng, bool(rng.random() < p_reach))
    store = cohort_store(manifest_frame(scans), {"manual": events_frame(sequences)})
    return store, select(store, source="manual"), sequences


def kaplan_meier_median(time: np.ndarray, event: np.ndarray) -> float:
    """The smallest time at which the product-limit estimate falls to 0.5 or below."""
    survival = 1.0
    for t in np.unique(time[event]):
        at_risk = np.count_nonzero(time >= t)
        survival *= 1 - np.count_nonzero((time == t) & event) / at_risk
        if survival <= 0.5:
            return float(t)
    return math.nan


def test_censored_times_match_the_scans(cohort):
    store, sel, sequences = cohort
    result = coverage_times(store, sel)
    scans = result.scans.set_index("scan_id")
    for scan_id, sequence in sequences.items():
        durations = [d for _, d in sequence]
        reached = len(sequence) == len(REQUIRED) + 1
        assert scans.loc[scan_id, "reached"] == reached
        # From the first event: when the last required structure begins, or (censored) the
        # end of the labelled span.
        expected = sum(durations[:-1]) if reached else sum(durations)
        assert scans.loc[scan_id, "time_min"] == pytest.approx(expected / 60)


def test_group_figures_and_tests_match_scipy_and_hand_computations(cohort):
    store, sel, _ = cohort
    result = coverage_times(store, sel, n_perm=199)
    assert result.groups == ("expert", "trainee") and result.cluster == "operator"
    table = result.table.set_index("group")
    for group in result.groups:
        part = result.scans[result.scans["group"] == group]
        time, event = part["time_min"].to_numpy(), part["reached"].to_numpy(bool)
        row = table.loc[group]
        assert (row["n_scans"], row["n_operators"], row["n_reached"]) == (15, 5, event.sum())
        assert row["share_reached"] == pytest.approx(event.mean())
        assert row["share_ci_low"] <= row["share_reached"] <= row["share_ci_high"]
        median = kaplan_meier_median(time, event)
        if math.isnan(median):
            assert math.isnan(row["median_min"])
        else:
            assert row["median_min"] == pytest.approx(median)
            assert row["median_ci_low"] <= median <= row["median_ci_high"]
    expert = result.scans[result.scans["group"] == "expert"]
    trainee = result.scans[result.scans["group"] == "trainee"]
    reference = stats.logrank(
        stats.CensoredData(uncensored=expert.time_min[expert.reached],
                           right=expert.time_min[~expert.reached]),
        stats.CensoredData(uncensored=trainee.time_min[trainee.reached],
                           right=trainee.time_min[~trainee.reached]))
    assert result.logrank_statistic == pytest.approx(reference.statistic ** 2, rel=1e-6)
    # The p-value permutes whole operators: the same labelling reshuffled by hand.
    operators = result.scans.groupby("operator_id")["group"].first()
    rng = np.random.default_rng(0)
    null = []
    for _ in range(result.n_perm):
        shuffled = dict(zip(operators.index, rng.permutation(operators.to_numpy()),
                            strict=True))
        relabelled = result.scans["operator_id"].map(shuffled)
        a, b = (result.scans[relabelled == g] for g in ("expert", "trainee"))
        null.append(stats.logrank(
            stats.CensoredData(uncensored=a.time_min[a.reached], right=a.time_min[~a.reached]),
            stats.CensoredData(uncensored=b.time_min[b.reached], right=b.time_min[~b.reached])
        ).statistic ** 2)
    expected = (1 + np.count_nonzero(np.array(null) >= result.logrank_statistic - 1e-9)) / (
        1 + result.n_perm)
    assert result.logrank_p == pytest.approx(expected)
    assert result.hazard_ratio_ci_low < result.hazard_ratio < result.hazard_ratio_ci_high
    assert 0 < result.cox_p < 1
    record = result.to_dict()
    assert record["cluster"] == "operator" and len(record["table"]) == 2


def test_one_group_and_unknown_groups(cohort):
    store, sel, _ = cohort
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)
        single = coverage_times(store, sel, groups=["trainee"])
    assert single.groups == ("trainee",)
    assert math.isnan(single.logrank_p) and math.isnan(single.hazard_ratio)
    with pytest.raises(UnknownGroupError, match="groups present"):
        coverage_times(store, sel, groups=["fellow"])
