"""Group comparisons: tests against scipy/statsmodels on the same operator-level values, power on
a cohort with a real difference, error rate on null cohorts, and the degenerate cases."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.tools.sm_exceptions import ConvergenceWarning
from workflow_cohorts import build, events_frame, manifest_frame, random_cohort

from analytics.features import category_times
from analytics.groups import (
    GroupComparison,
    SingleGroupError,
    UnknownGroupError,
    compare_groups,
    mixed_model_durations,
    mixed_model_fit,
)
from analytics.selection import select
from analytics.sequences import transition_permutation_test
from analytics.warnings import DegenerateDataWarning

HEART = "duration_min:HeD"




def operator_heart(store, sel) -> pd.DataFrame:
    ct = category_times(store, sel)
    heart = ct[ct["label"] == "HeD"]
    return heart.groupby(["operator_id", "group"])["duration_min"].mean().reset_index()


def test_two_groups_match_scipy_and_detect_the_difference(strong):
    store, sel = strong
    result = compare_groups(store, sel)
    assert isinstance(result, GroupComparison)
    assert result.groups == ("expert", "trainee")
    assert result.n_operators == {"expert": 8, "trainee": 8}
    assert result.correction == "holm"
    table = result.table
    for column in ("feature", "mean_expert", "sd_expert", "n_expert", "mean_trainee", "test",
                   "statistic", "p", "p_adjusted", "effect", "effect_size", "effect_ci_low",
                   "effect_ci_high"):
        assert column in table.columns
    assert set(table["test"]) == {"welch", "mann-whitney"}

    ops = operator_heart(store, sel)
    expert = ops.loc[ops["group"] == "expert", "duration_min"].to_numpy()
    trainee = ops.loc[ops["group"] == "trainee", "duration_min"].to_numpy()
    rows = table[table["feature"] == HEART].set_index("test")
    welch = stats.ttest_ind(trainee, expert, equal_var=False)
    assert rows.loc["welch", "statistic"] == pytest.approx(welch.statistic)
    assert rows.loc["welch", "p"] == pytest.approx(welch.pvalue)
    mwu = stats.mannwhitneyu(trainee, expert, alternative="two-sided")
    assert rows.loc["mann-whitney", "statistic"] == pytest.approx(mwu.statistic)
    assert rows.loc["mann-whitney", "p"] == pytest.approx(mwu.pvalue)
    assert rows.loc["welch", "mean_trainee"] == pytest.approx(trainee.mean())
    assert rows.loc["welch", "sd_expert"] == pytest.approx(expert.std(ddof=1))
    assert rows.loc["welch", "n_trainee"] == 8

    # Hedges' g of trainee - expert, by the textbook formula.
    n1, n2 = len(expert), len(trainee)
    sp = math.sqrt(((n1 - 1) * expert.var(ddof=1) + (n2 - 1) * trainee.var(ddof=1))
                   / (n1 + n2 - 2))
    g = (1 - 3 / (4 * (n1 + n2) - 9)) * (trainee.mean() - expert.mean()) / sp
    assert rows.loc["welch", "effect_size"] == pytest.approx(g)
    assert rows.loc["welch", "effect_ci_low"] < g < rows.loc["welch", "effect_ci_high"]

    # Holm over the features, separately per test, exactly as statsmodels does it.
    for test, part in table.groupby("test"):
        expected = multipletests(part["p"].to_numpy(), method="holm")[1]
        assert np.allclose(part["p_adjusted"].to_numpy(), expected), test

    assert rows.loc["welch", "p_adjusted"] < 0.01
    assert rows.loc["mann-whitney", "p_adjusted"] < 0.05
    assert rows.loc["welch", "effect_size"] > 1


def test_fdr_correction_and_feature_choice(strong):
    store, sel = strong
    result = compare_groups(store, sel, correction="fdr_bh",
                            features=[HEART, "total_min", "duration_min:Br"])
    table = result.table
    assert list(pd.unique(table["feature"])) == [HEART, "total_min", "duration_min:Br"]
    welch = table[table["test"] == "welch"]
    assert np.allclose(welch["p_adjusted"], multipletests(welch["p"], method="fdr_bh")[1])
    with pytest.raises(ValueError, match="did you mean 'duration_min:HeD'"):
        compare_groups(store, sel, features=["duration_min:Hed"])
    with pytest.raises(ValueError, match="did you mean 'holm'"):
        compare_groups(store, sel, correction="hlm")


def test_null_cohorts_keep_the_false_positive_rate(cohort_store):
    positives = 0
    for seed in range(20):
        store, sel = build(cohort_store, 100 + seed, operators_per_group=6, scans_per_operator=2)
        table = compare_groups(store, sel, features=[HEART, "total_min"]).table
        row = table[(table["feature"] == HEART) & (table["test"] == "welch")].iloc[0]
        positives += row["p_adjusted"] < 0.05
    assert positives / 20 <= 0.15


def test_three_groups(cohort_store):
    store, sel = build(cohort_store, 5, groups=("expert", "fellow", "trainee"),
                       operators_per_group=4, scans_per_operator=2,
                       factors={"trainee": {"HeD": 2.0}})
    result = compare_groups(store, sel, features=[HEART])
    assert result.groups == ("expert", "fellow", "trainee")
    rows = result.table.set_index("test")
    assert set(rows.index) == {"welch-anova", "kruskal-wallis"}
    ops = operator_heart(store, sel)
    samples = [ops.loc[ops["group"] == g, "duration_min"].to_numpy() for g in result.groups]
    anova = stats.f_oneway(*samples, equal_var=False)
    assert rows.loc["welch-anova", "statistic"] == pytest.approx(anova.statistic)
    assert rows.loc["welch-anova", "p"] == pytest.approx(anova.pvalue)
    kw = stats.kruskal(*samples)
    assert rows.loc["kruskal-wallis", "p"] == pytest.approx(kw.pvalue)
    assert rows.loc["kruskal-wallis", "effect_size"] == pytest.approx(
        kw.statistic / (sum(map(len, samples)) - 1))
    assert (rows["effect"] == "epsilon_squared").all()
    # Post-hoc: each pair of groups, Holm over the 3 pairs of the feature, per test.
    pairwise = result.pairwise.set_index(["group_a", "group_b", "test"])
    assert len(pairwise) == 6
    welch_p = [stats.ttest_ind(samples[j], samples[i], equal_var=False).pvalue
               for i, j in ((0, 1), (0, 2), (1, 2))]
    assert [pairwise.loc[(a, b, "welch"), "p"] for a, b in (
        ("expert", "fellow"), ("expert", "trainee"), ("fellow", "trainee"))] == pytest.approx(
        welch_p)
    assert [pairwise.loc[(a, b, "welch"), "p_adjusted"] for a, b in (
        ("expert", "fellow"), ("expert", "trainee"), ("fellow", "trainee"))] == pytest.approx(
        multipletests(welch_p, method="holm")[1])
    assert "pairwise: holm over the 3 pairs" in result.family
    assert result.to_dict()["pairwise"][0]["group_a"] == "expert"
    # Two of the three groups, the second as reference.
    pair = compare_groups(store, sel, groups=["trainee", "expert"], features=[HEART])
    assert pair.groups == ("trainee", "expert")
    assert set(pair.table["test"]) == {"welch", "mann-whitney"}
    assert pair.table["effect_size"].iloc[0] < 0  # expert - trainee
    assert pair.pairwise.empty and "pairwise" not in pair.family


def test_scans_behind_the_operator_means_and_no_censored_feature(strong):
    store, sel = strong
    result = compare_groups(store, sel)
    assert "time_to_full_coverage_min" not in set(result.table["feature"])
    heart = result.table[result.table["feature"] == HEART].iloc[0]
    ops = operator_heart(store, sel)
    for group in result.groups:
        assert heart[f"n_{group}"] == (ops["group"] == group).sum()
        assert heart[f"scans_{group}"] == 3 * heart[f"n_{group}"]  # 3 scans per operator
    assert result.family.startswith("p_adjusted: holm over the ")


def test_group_errors(cohort_store):
    manifest = manifest_frame({"A": ("OP1", "expert"), "B": ("OP2", "expert")})
    events = events_frame({"A": [("HeD", 60)], "B": [("HeD", 30)]})
    store = cohort_store(manifest, {"manual": events})
    sel = select(store, source="manual")
    with pytest.raises(SingleGroupError, match="groups present: 'expert'"):
        compare_groups(store, sel)
    with pytest.raises(UnknownGroupError, match=r"'trainee'.*groups present: 'expert'"):
        compare_groups(store, sel, groups=["expert", "trainee"])
    with pytest.raises(SingleGroupError):
        mixed_model_durations(store, sel)
    with pytest.raises(ValueError):  # both errors are ValueErrors
        transition_permutation_test(store, sel)


def test_one_operator_in_a_group_gives_nan_and_a_warning(cohort_store):
    manifest, events = random_cohort(2, operators_per_group=3, scans_per_operator=2)
    keep = manifest["operator_id"].isin(["EXP00", "EXP01", "EXP02", "TRA00"])
    manifest = manifest[keep]
    events = events[events["scan_id"].isin(manifest["scan_id"])]
    store = cohort_store(manifest, {"manual": events})
    sel = select(store, source="manual")
    with pytest.warns(DegenerateDataWarning, match="fewer than 2 operators"):
        result = compare_groups(store, sel, features=[HEART])
    assert result.table[["statistic", "p", "p_adjusted", "effect_size"]].isna().all().all()
    assert (result.table["n_trainee"] == 1).all()


def test_mixed_model_matches_statsmodels(strong):
    store, sel = strong
    table = mixed_model_durations(store, sel).table
    assert list(table["label"].iloc[:2]) == ["HeD", "3Dm"]
    heart = table.set_index("label").loc["HeD"]
    assert heart["group"] == "trainee" and heart["reference"] == "expert"
    assert heart["converged"]
    assert heart["p"] < 0.01
    assert heart["ratio"] == pytest.approx(math.exp(heart["coef"]))
    assert heart["ratio_ci_low"] < 2.0 < heart["ratio_ci_high"]
    assert heart["n_operators"] == 16

    ct = category_times(store, sel)
    data = ct[(ct["label"] == "HeD") & (ct["duration_s"] > 0)].assign(
        log_d=lambda d: np.log(d["duration_s"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # "MLE on the boundary"
        fit = smf.mixedlm("log_d ~ C(group, Treatment('expert'))", data,
                          groups=data["operator_id"]).fit(reml=True)
    name = "C(group, Treatment('expert'))[T.trainee]"
    assert heart["coef"] == pytest.approx(fit.params[name], rel=1e-4)
    # A t reference with operator-level degrees of freedom (16 operators - 2 fixed effects),
    # not the Wald z statsmodels prints.
    assert heart["df"] == 14
    t_value = fit.params[name] / fit.bse[name]
    assert heart["p"] == pytest.approx(2 * stats.t.sf(abs(t_value), 14), rel=1e-3)
    assert heart["p"] > fit.pvalues[name]
    half = stats.t.ppf(0.975, 14) * fit.bse[name]
    assert (heart["ci_low"], heart["ci_high"]) == pytest.approx(
        (fit.params[name] - half, fit.params[name] + half), rel=1e-3)
    assert heart["optimiser"] == "bfgs" and heart["converged"]
    assert heart["n_scans"] == len(data)


def test_mixed_model_is_not_fooled_by_an_optimiser_stuck_at_its_start():
    """Regression: L-BFGS from statsmodels' default start returned its start values (slope -2.8,
    p 1.0) as a converged fit on this cohort; statsmodels' default fit finds the estimate."""
    rng = np.random.default_rng(1)
    rows = []
    for g, group in enumerate(("expert", "trainee")):
        for o in range(12):
            u = rng.normal(0, math.sqrt(0.3))
            for s in range(int(rng.integers(2, 7))):
                rows.append((f"{group}{o}-{s}", f"{group}{o}", group,
                             0.8 * g + u + rng.normal(0, math.sqrt(0.7))))
    scans = pd.DataFrame(rows, columns=["scan_id", "operator_id", "group", "y"])
    times = scans.assign(label="HeD", duration_s=60 * np.exp(scans["y"]))
    row = mixed_model_fit(times, groups=("expert", "trainee")).table.iloc[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference = smf.mixedlm("y ~ C(group)", scans, groups=scans["operator_id"]).fit(reml=True)
    assert row["coef"] == pytest.approx(reference.params.iloc[1], rel=1e-4)
    assert row["p"] < 0.01 and row["converged"]


def test_mixed_model_reports_categories_it_cannot_fit(cohort_store):
    manifest = manifest_frame({f"S{i}": (f"OP{i}", "expert" if i < 4 else "trainee")
                               for i in range(8)})
    events = events_frame({f"S{i}": [("HeD", 50 + 7 * i), ("Br", 20 + i)]
                           + ([("Fm", 10)] if i < 4 else []) for i in range(8)})
    store = cohort_store(manifest, {"manual": events})
    table = mixed_model_durations(store, select(store, source="manual")).table.set_index("label")
    assert table.loc["Fm", "reason"] == "no scan of trainee has Fm"
    assert math.isnan(table.loc["Fm", "coef"])
    assert "no scan of the reference group" in table.loc["Sp", "reason"]
    assert table.loc["HeD", "reason"] is None and not math.isnan(table.loc["HeD", "coef"])


def test_constant_features_are_left_out_or_warned_about(strong):
    store, sel = strong
    default = compare_groups(store, sel)
    assert "n_freezes" not in set(default.table["feature"])  # no freeze frames: constant 0
    with pytest.warns(DegenerateDataWarning, match="n_freezes .no variation between operators"):
        asked = compare_groups(store, sel, features=["n_freezes", HEART])
    freezes = asked.table[asked.table["feature"] == "n_freezes"]
    assert freezes["p"].isna().all() and freezes["p_adjusted"].isna().all()
    heart = asked.table[asked.table["feature"] == HEART]
    # The NaN row does not count towards the correction: Holm over one test leaves p as is.
    assert np.allclose(heart["p_adjusted"], heart["p"])
