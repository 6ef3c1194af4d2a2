"""Group comparisons: tests against scipy/statsmodels on the same operator-level values, power on
a cohort with a real difference, error rate on null cohorts, and the degenerate cases."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.tools.sm_exceptions import ConvergenceWarning
from workflow_cohorts import events_frame, manifest_frame, random_cohort

from analytics.features import REFERENCE_ORDER, category_times
from analytics.groups import (
    GroupComparison,
    SingleGroupError,
    UnknownGroupError,
    compare_groups,
    directly_follows_graph,
    mixed_model_durations,
    ngrams,
    transition_matrices,
    transition_permutation_test,
    write_dfg,
)
from analytics.selection import select
from analytics.warnings import DegenerateDataWarning

HEART = "duration_min:HeD"


def build(cohort_store, seed: int, **kwargs):
    manifest, events = random_cohort(seed, **kwargs)
    store = cohort_store(manifest, {"manual": events})
    return store, select(store, source="manual")


@pytest.fixture
def strong(cohort_store):
    """Trainees spend twice as long on the heart; 8 operators per group, 3 scans each."""
    return build(cohort_store, 1, factors={"trainee": {"HeD": 2.0}}, revisit_p=0.0)


def operator_heart(store, sel) -> pd.DataFrame:
    ct = category_times(store, sel)
    heart = ct[ct["label"] == "HeD"]
    return heart.groupby(["operator_id", "grp"])["duration_min"].mean().reset_index()


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
    expert = ops.loc[ops["grp"] == "expert", "duration_min"].to_numpy()
    trainee = ops.loc[ops["grp"] == "trainee", "duration_min"].to_numpy()
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
    samples = [ops.loc[ops["grp"] == g, "duration_min"].to_numpy() for g in result.groups]
    anova = stats.f_oneway(*samples, equal_var=False)
    assert rows.loc["welch-anova", "statistic"] == pytest.approx(anova.statistic)
    assert rows.loc["welch-anova", "p"] == pytest.approx(anova.pvalue)
    kw = stats.kruskal(*samples)
    assert rows.loc["kruskal-wallis", "p"] == pytest.approx(kw.pvalue)
    assert rows.loc["kruskal-wallis", "effect_size"] == pytest.approx(
        kw.statistic / (sum(map(len, samples)) - 1))
    assert (rows["effect"] == "epsilon_squared").all()
    # Two of the three groups, the second as reference.
    pair = compare_groups(store, sel, groups=["trainee", "expert"], features=[HEART])
    assert pair.groups == ("trainee", "expert")
    assert set(pair.table["test"]) == {"welch", "mann-whitney"}
    assert pair.table["effect_size"].iloc[0] < 0  # expert - trainee


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
    table = mixed_model_durations(store, sel)
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
        fit = smf.mixedlm("log_d ~ C(grp, Treatment('expert'))", data,
                          groups=data["operator_id"]).fit(reml=True)
    name = "C(grp, Treatment('expert'))[T.trainee]"
    assert heart["coef"] == pytest.approx(fit.params[name], rel=1e-4)
    assert heart["p"] == pytest.approx(fit.pvalues[name], rel=1e-3)
    assert heart["n_scans"] == len(data)


def test_mixed_model_reports_categories_it_cannot_fit(cohort_store):
    manifest = manifest_frame({f"S{i}": (f"OP{i}", "expert" if i < 4 else "trainee")
                               for i in range(8)})
    events = events_frame({f"S{i}": [("HeD", 50 + 7 * i), ("Br", 20 + i)]
                           + ([("Fm", 10)] if i < 4 else []) for i in range(8)})
    store = cohort_store(manifest, {"manual": events})
    table = mixed_model_durations(store, select(store, source="manual")).set_index("label")
    assert table.loc["Fm", "reason"] == "no scan of trainee has Fm"
    assert math.isnan(table.loc["Fm", "coef"])
    assert "no scan of the reference group" in table.loc["Sp", "reason"]
    assert table.loc["HeD", "reason"] is None and not math.isnan(table.loc["HeD", "coef"])


@pytest.fixture
def order_cohort(cohort_store):
    """Experts scan head to toe, trainees toe to head (no background): 5 operators each."""
    rng = np.random.default_rng(4)
    scans, sequences = {}, {}
    for grp in ("expert", "trainee"):
        for o in range(5):
            for s in range(2):
                scan_id = f"{grp}{o}-{s}"
                scans[scan_id] = (f"{grp}{o}", grp)
                order = list(REFERENCE_ORDER)
                i = int(rng.integers(0, len(order) - 1))
                order[i], order[i + 1] = order[i + 1], order[i]
                if grp == "trainee":
                    order.reverse()
                sequences[scan_id] = [(c, 10.0) for c in order]
    store = cohort_store(manifest_frame(scans), {"manual": events_frame(sequences, gap=2.0)})
    return store, select(store, source="manual")


def test_transition_matrices(order_cohort):
    store, sel = order_cohort
    matrices = transition_matrices(store, sel, alpha=1.0)
    assert set(matrices) == {"expert", "trainee"}
    expert = matrices["expert"]
    assert list(expert.index) == list(expert.columns)
    assert np.allclose(expert.sum(axis=1), 1.0)
    assert np.allclose(np.diag(expert), 0.0)
    counts = {}
    sequences = store.query_df(
        "SELECT e.scan_id, e.label FROM events e JOIN scans s USING (scan_id) "
        "JOIN operators o USING (operator_id) WHERE o.grp = 'expert' ORDER BY scan_id, start_s")
    for _, seq in sequences.groupby("scan_id"):
        labels = list(seq["label"])
        for a, b in itertools.pairwise(labels):
            counts[a, b] = counts.get((a, b), 0) + 1
    k = len(expert)
    out_br = sum(n for (a, _), n in counts.items() if a == "Br")
    assert expert.loc["Br", "NL"] == pytest.approx(
        (counts.get(("Br", "NL"), 0) + 1) / (out_br + (k - 1)))
    raw = transition_matrices(store, sel, alpha=0.0, groups=["expert"])
    assert set(raw) == {"expert"}
    assert raw["expert"].loc["Br", "NL"] == pytest.approx(counts[("Br", "NL")] / out_br)
    # A category never seen: no counts, so a NaN row unsmoothed and a uniform row smoothed.
    cats = [*REFERENCE_ORDER, "Um"]
    raw = transition_matrices(store, sel, alpha=0.0, categories=cats)["expert"]
    smooth = transition_matrices(store, sel, alpha=0.5, categories=cats)["expert"]
    assert list(raw.index) == cats
    assert raw.loc["Um"].isna().all()
    assert np.allclose(smooth.loc["Um"].drop("Um"), 1 / (len(cats) - 1))
    with pytest.raises(UnknownGroupError):
        transition_matrices(store, sel, groups=["fellow"])
    with pytest.raises(ValueError, match="`alpha` must be >= 0"):
        transition_matrices(store, sel, alpha=-1)


def test_transition_permutation_test(order_cohort, strong):
    store, sel = order_cohort
    result = transition_permutation_test(store, sel, n_perm=500, seed=0)
    assert result.groups == ("expert", "trainee")
    assert result.n_operators == {"expert": 5, "trainee": 5}
    assert 0 < result.statistic <= 1
    # Only the 2 of 252 splits of 10 operators into 5 + 5 that keep the groups reach the
    # observed distance: p is about 1/126.
    assert result.p < 0.02
    assert result.null_distribution.shape == (500,)
    again = transition_permutation_test(store, sel, n_perm=500, seed=0)
    assert again.p == result.p and again.statistic == result.statistic
    frob = transition_permutation_test(store, sel, n_perm=200, distance="frobenius")
    assert frob.distance == "frobenius" and frob.p < 0.05
    with pytest.raises(ValueError, match="did you mean 'frobenius'"):
        transition_permutation_test(store, sel, distance="frobenious")
    # No difference in order between the groups of the other cohort: no small p.
    store, sel = strong
    null = transition_permutation_test(store, sel, n_perm=200, skip_background=True)
    assert null.p > 0.01
    with pytest.raises(dataclasses.FrozenInstanceError):
        null.p = 0.0  # type: ignore[misc]


def test_ngrams(order_cohort):
    store, sel = order_cohort
    bigrams = ngrams(store, sel, n=2, top=3)
    assert list(bigrams.columns) == ["grp", "ngram", "count", "share", "n_scans"]
    assert list(bigrams["grp"]) == ["expert"] * 3 + ["trainee"] * 3
    for _, part in bigrams.groupby("grp"):
        assert list(part["count"]) == sorted(part["count"], reverse=True)
    # 10 expert scans, 8 structures each: 7 bigrams per scan, 70 in all.
    full = ngrams(store, sel, n=2, top=None)
    expert = full[full["grp"] == "expert"]
    assert expert["count"].sum() == 70
    assert expert["share"].sum() == pytest.approx(1.0)
    assert expert["ngram"].str.count(" > ").eq(1).all()
    trigrams = ngrams(store, sel, n=3, top=None, by_group=False)
    assert set(trigrams["grp"]) == {"all"}
    assert trigrams["count"].sum() == 20 * 6
    top = trigrams.iloc[0]
    assert top["ngram"].count(" > ") == 2
    with pytest.raises(ValueError, match="`n` must be an integer from 1 to 10"):
        ngrams(store, sel, n=0)


def test_directly_follows_graph_and_files(order_cohort, tmp_path):
    store, sel = order_cohort
    dfg = directly_follows_graph(store, sel, group="expert")
    assert list(dfg.columns) == ["source", "target", "count", "n_scans", "mean_gap_s"]
    assert dfg["count"].sum() == 70
    assert np.allclose(dfg["mean_gap_s"], 2.0)
    assert list(dfg["count"]) == sorted(dfg["count"], reverse=True)
    everyone = directly_follows_graph(store, sel)
    assert everyone["count"].sum() == 140
    with pytest.raises(UnknownGroupError, match="groups present"):
        directly_follows_graph(store, sel, group="fellow")

    dot = write_dfg(dfg, tmp_path / "expert.dot", title="Experts")
    text = dot.read_text()
    assert text.startswith("digraph dfg {") and text.rstrip().endswith("}")
    assert '"Br" -> "NL"' in text
    assert '"HeD" [label="HeD\\nHeart incl. Doppler"' in text
    payload = json.loads(write_dfg(dfg, tmp_path / "expert.json").read_text())
    assert {n["id"] for n in payload["nodes"]} == set(dfg["source"]) | set(dfg["target"])
    assert sum(e["count"] for e in payload["edges"]) == 70
    with pytest.raises(ValueError, match=r"\.dot, \.gv, \.json"):
        write_dfg(dfg, tmp_path / "expert.png")


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
