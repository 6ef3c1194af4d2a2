"""Descriptive statistics: means, SDs and CIs checked against scipy on the same unit values."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from workflow_cohorts import events_frame, manifest_frame, random_cohort

from analytics.features import category_times, scan_features
from analytics.selection import select
from analytics.summary import Summary, summarise, summarise_features
from analytics.warnings import DegenerateDataWarning


@pytest.fixture
def cohort(cohort_store):
    manifest, events = random_cohort(3, operators_per_group=4, scans_per_operator=3,
                                     factors={"trainee": {"HeD": 1.5}})
    store = cohort_store(manifest, {"manual": events})
    sel = select(store, source="manual")
    return category_times(store, sel), scan_features(store, sel)


def t_interval(x: np.ndarray) -> tuple[float, float]:
    return stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))


def cr2_interval(y: np.ndarray, clusters: np.ndarray) -> tuple[float, float]:
    """The CR2 sandwich of an intercept-only OLS by its matrix definition (Bell & McCaffrey),
    with t(G - 1): independent of the closed form the package uses."""
    n = len(y)
    x = np.ones((n, 1))
    bread = np.linalg.inv(x.T @ x)
    hat = x @ bread @ x.T
    resid = y - y.mean()
    meat = np.zeros((1, 1))
    groups = pd.unique(clusters)
    for g in groups:
        idx = np.flatnonzero(clusters == g)
        values, vectors = np.linalg.eigh(np.eye(len(idx)) - hat[np.ix_(idx, idx)])
        adjust = vectors @ np.diag(values ** -0.5) @ vectors.T
        u = x[idx].T @ adjust @ resid[idx]
        meat += np.outer(u, u)
    se = math.sqrt((bread @ meat @ bread)[0, 0])
    return stats.t.interval(0.95, len(groups) - 1, loc=y.mean(), scale=se)


def test_by_scan_matches_scipy(cohort):
    ct, _ = cohort
    summary = summarise(ct, by="scan")
    assert isinstance(summary, Summary)
    assert (summary.by, summary.unit, summary.ci_method, summary.ci) == ("scan", "scan", "t", 0.95)
    table = summary.table
    assert summary.cluster == "operator"
    assert list(table.columns) == ["label", "n", "n_scans", "n_operators", "mean_min", "sd_min",
                                   "ci_low_min", "ci_high_min", "mean_share", "share_ci_low",
                                   "share_ci_high"]
    assert list(table["label"]) == list(pd.unique(ct["label"]))
    row = table.set_index("label").loc["HeD"]
    heart = ct[ct["label"] == "HeD"]
    x = heart["duration_min"].to_numpy()
    assert (row["n"], row["n_scans"], row["n_operators"]) == (24, 24, 8)
    assert row["mean_min"] == pytest.approx(x.mean())
    assert row["sd_min"] == pytest.approx(x.std(ddof=1))
    ops = heart["operator_id"].to_numpy()
    assert (row["ci_low_min"], row["ci_high_min"]) == pytest.approx(cr2_interval(x, ops))
    share = heart["share"].to_numpy()
    assert row["mean_share"] == pytest.approx(share.mean())
    assert (row["share_ci_low"], row["share_ci_high"]) == pytest.approx(cr2_interval(share, ops))


def test_by_operator_and_group_aggregate_to_the_operator_first(cohort):
    ct, _ = cohort
    per_op = (ct[ct["label"] == "Br"].groupby(["operator_id", "group"])["duration_min"].mean()
              .reset_index())
    op_row = summarise(ct, by="operator").table.set_index("label").loc["Br"]
    assert op_row["n"] == 8
    assert op_row["mean_min"] == pytest.approx(per_op["duration_min"].mean())
    assert op_row["sd_min"] == pytest.approx(per_op["duration_min"].std(ddof=1))
    assert (op_row["ci_low_min"], op_row["ci_high_min"]) == pytest.approx(
        t_interval(per_op["duration_min"].to_numpy()))

    summary = summarise(ct, by="group")
    assert summary.unit == "operator"
    table = summary.table
    assert list(table.columns[:5]) == ["group", "label", "n", "n_scans", "n_operators"]
    assert list(table["group"].unique()) == ["expert", "trainee"]
    for grp, part in per_op.groupby("group"):
        row = table[(table["group"] == grp) & (table["label"] == "Br")].iloc[0]
        x = part["duration_min"].to_numpy()
        assert (row["n"], row["n_scans"], row["n_operators"]) == (4, 12, 4)
        assert row["mean_min"] == pytest.approx(x.mean())
        assert (row["ci_low_min"], row["ci_high_min"]) == pytest.approx(t_interval(x))


def test_bootstrap_is_seeded_and_brackets_the_mean(cohort):
    ct, _ = cohort
    with pytest.warns(DegenerateDataWarning, match="4 in expert, 4 in trainee"):
        a = summarise(ct, by="group", ci_method="bootstrap", n_boot=500, seed=1)
    with pytest.warns(DegenerateDataWarning):
        b = summarise(ct, by="group", ci_method="bootstrap", n_boot=500, seed=1)
        c = summarise(ct, by="group", ci_method="bootstrap", n_boot=500, seed=2)
    assert (a.ci_method, a.n_boot, a.seed) == ("bootstrap", 500, 1)
    pd.testing.assert_frame_equal(a.table, b.table)
    assert not a.table["ci_low_min"].equals(c.table["ci_low_min"])
    t = a.table
    varying = t["sd_min"] > 0
    assert (t.loc[varying, "ci_low_min"] < t.loc[varying, "mean_min"]).all()
    assert (t.loc[varying, "mean_min"] < t.loc[varying, "ci_high_min"]).all()
    # The bootstrap-t is not held inside the range of the operator means, as a percentile
    # interval from 4 operators would be: it is about as wide as the t interval, or wider.
    t_width = summarise(ct, by="group").table.eval("ci_high_min - ci_low_min")
    width = t.eval("ci_high_min - ci_low_min")
    assert (width[varying] > 0.7 * t_width[varying]).all()


def test_clustered_intervals_widen_when_operators_differ(cohort_store):
    # Strong operator effects, little scan noise: scans of one operator are alike, so treating
    # scans as independent understates the uncertainty of the scan-level mean.
    manifest, events = random_cohort(11, operators_per_group=4, scans_per_operator=6,
                                     operator_sd=0.8, scan_sd=0.05)
    store = cohort_store(manifest, {"manual": events})
    ct = category_times(store, select(store, source="manual"))
    structures = ["HeD", "Br", "Sp", "Ab"]
    naive = {c: np.diff(t_interval(ct.loc[ct["label"] == c, "duration_min"].to_numpy()))[0]
             for c in structures}
    for method in ("t", "bootstrap"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DegenerateDataWarning)  # 8 operators: approximate
            table = summarise(ct, by="scan", ci_method=method, n_boot=1000).table
        width = table.set_index("label").eval("ci_high_min - ci_low_min")
        assert all(width[c] > 1.3 * naive[c] for c in structures), method


def test_summarise_features(cohort):
    _, sf = cohort
    sf = sf.copy()
    sf.loc[sf.index[:5], "time_to_full_coverage_min"] = np.nan
    summary = summarise_features(sf, by="group")
    table = summary.table
    assert list(table.columns) == ["group", "feature", "n", "n_scans", "n_operators", "mean",
                                   "sd", "ci_low", "ci_high"]
    assert "first_label" not in set(table["feature"])
    per_op = sf.groupby(["group", "operator_id"])["time_to_full_coverage_min"].mean()
    for grp, values in per_op.groupby("group"):
        row = table[(table["group"] == grp)
                    & (table["feature"] == "time_to_full_coverage_min")].iloc[0]
        x = values.dropna().to_numpy()
        assert row["n"] == len(x)
        assert row["mean"] == pytest.approx(x.mean())
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(t_interval(x))
    by_scan = summarise_features(sf, features=["total_min"]).table
    assert list(by_scan["feature"]) == ["total_min"]
    assert by_scan.loc[0, "n"] == len(sf)
    assert by_scan.loc[0, "mean"] == pytest.approx(sf["total_min"].mean())
    with pytest.raises(ValueError, match="did you mean 'total_min'"):
        summarise_features(sf, features=["total_mins"])


def test_one_scan_gives_nan_and_a_warning(cohort_store):
    store = cohort_store(manifest_frame({"X": ("OP1", "expert")}),
                         {"manual": events_frame({"X": [("HeD", 60), ("Br", 30)]})})
    ct = category_times(store, select(store, source="manual"))
    for method in ("t", "bootstrap"):
        with pytest.warns(DegenerateDataWarning, match="fewer than 3 operators for HeD"):
            table = summarise(ct, by="scan", ci_method=method).table
        row = table.set_index("label").loc["HeD"]
        assert row["n"] == 1 and row["mean_min"] == 1.0
        assert math.isnan(row["sd_min"]) and math.isnan(row["ci_low_min"])
        assert math.isnan(row["share_ci_high"])


def test_a_group_with_one_operator_is_nan_only_there(cohort):
    ct, _ = cohort
    keep = (ct["group"] == "expert") | (ct["operator_id"] == ct.loc[ct["group"] == "trainee",
                                                                   "operator_id"].iloc[0])
    with pytest.warns(DegenerateDataWarning, match="trainee/HeD"):
        table = summarise(ct[keep], by="group").table
    assert table.loc[table["group"] == "trainee", "ci_low_min"].isna().all()
    assert table.loc[table["group"] == "expert", "ci_low_min"].notna().all()


def test_invalid_options(cohort):
    ct, _ = cohort
    with pytest.raises(ValueError, match="did you mean 'operator'"):
        summarise(ct, by="operater")
    with pytest.raises(ValueError, match="`ci_method` must be one of"):
        summarise(ct, ci_method="jackknife")
    with pytest.raises(ValueError, match=r"`ci` must be a confidence level in \(0, 1\)"):
        summarise(ct, ci=95)
    with pytest.raises(ValueError, match="lacks the column"):
        summarise(ct.drop(columns="share"))
    with pytest.raises(ValueError, match="empty"):
        summarise(ct.iloc[:0])


def test_summary_is_frozen(cohort):
    summary = summarise(cohort[0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        summary.ci_method = "bootstrap"  # type: ignore[misc]
