"""Manual versus automatic agreement, checked against numpy, scipy and statsmodels."""

from __future__ import annotations

import itertools
import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analytics.agreement import (
    category_minutes,
    cohens_kappa,
    paired_agreement,
    paper_correlation,
)
from analytics.selection import select
from analytics.warnings import CoverageWarning, DegenerateDataWarning
from fetal_analytics import taxonomy
from fetal_analytics.segments import events_to_frames, segment_scores


def manifest(*scan_ids: str) -> pd.DataFrame:
    return pd.DataFrame({"scan_id": list(scan_ids), "operator_id": "OP1", "group": "expert"})


def events(*rows: tuple[str, float, float, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["scan_id", "start_s", "end_s", "label"])


def selections(store):
    return select(store, source="manual"), select(store, source="auto")


# --- unpaired: the paper's correlation ------------------------------------------------------------

CATS = ("HeD", "Br", "Sp", "Bk")
MANUAL = events(
    ("M1", 0, 120, "HeD"), ("M1", 120, 180, "Br"),                        # HeD 2, Br 1
    ("M2", 0, 240, "HeD"), ("M2", 240, 300, "Sp"), ("M2", 300, 360, "Um"),  # HeD 4, Sp 1
)
AUTO = events(
    ("A1", 0, 300, "HeD"), ("A1", 300, 360, "Bk"),                        # HeD 5, Bk 1
    ("A2", 0, 60, "Br"), ("A2", 60, 120, "HeD"),                          # Br 1, HeD 1
    ("A3", 0, 90, "Sp"),                                                  # Sp 1.5
)


@pytest.fixture
def unpaired(cohort_store):
    return cohort_store(manifest("M1", "M2", "A1", "A2", "A3"), {"manual": MANUAL, "auto": AUTO})


def test_category_minutes_has_every_scan_and_category(unpaired):
    manual, _ = selections(unpaired)
    table = category_minutes(unpaired, manual, categories=CATS)
    assert list(table.columns) == ["scan_id", "label", "minutes"]
    assert list(table["scan_id"]) == ["M1"] * 4 + ["M2"] * 4
    assert list(table["label"]) == list(CATS) * 2
    assert table["minutes"].tolist() == pytest.approx([2, 1, 0, 0, 4, 0, 1, 0])
    default = category_minutes(unpaired, manual)
    assert len(default) == 2 * 11
    assert tuple(default["label"][:11]) == taxonomy.default_model_codes()


def test_paper_correlation_of_per_category_means(unpaired):
    manual, auto = selections(unpaired)
    result = paper_correlation(unpaired, manual, auto, categories=CATS)
    x = np.array([3, 0.5, 0.5, 0])          # manual means: HeD (2+4)/2, Br 1/2, Sp 1/2, Bk 0
    y = np.array([2, 1 / 3, 0.5, 1 / 3])    # auto means: HeD (5+1)/3, Br 1/3, Sp 1.5/3, Bk 1/3
    assert result.per_category["label"].tolist() == list(CATS)
    assert result.per_category["manual_mean_min"].to_numpy() == pytest.approx(x)
    assert result.per_category["auto_mean_min"].to_numpy() == pytest.approx(y)
    assert (result.n_manual_scans, result.n_auto_scans) == (2, 3)

    r = np.corrcoef(x, y)[0, 1]
    t = r * math.sqrt((len(x) - 2) / (1 - r ** 2))
    assert result.pearson_r == pytest.approx(r)
    assert result.pearson_p == pytest.approx(2 * stats.t.sf(abs(t), len(x) - 2))
    rho = np.corrcoef(stats.rankdata(x), stats.rankdata(y))[0, 1]
    assert result.spearman_rho == pytest.approx(rho)
    assert result.spearman_p == pytest.approx(stats.spearmanr(x, y).pvalue)

    plain = result.to_dict()
    assert json.loads(json.dumps(plain, allow_nan=False)) == plain
    assert plain["per_category"][0] == {"label": "HeD", "manual_mean_min": pytest.approx(3),
                                        "auto_mean_min": pytest.approx(2)}


def test_paper_correlation_defaults_to_the_eleven_model_classes(unpaired):
    result = paper_correlation(unpaired, *selections(unpaired))
    assert result.categories == taxonomy.default_model_codes()
    assert len(result.per_category) == 11
    assert math.isfinite(result.pearson_r)


def test_paper_correlation_is_nan_with_a_warning_when_degenerate(unpaired):
    manual, auto = selections(unpaired)
    with pytest.warns(DegenerateDataWarning, match="only 2 of the 3 categories"):
        result = paper_correlation(unpaired, manual, auto, categories=("HeD", "Br", "Fm"))
    assert math.isnan(result.pearson_r) and math.isnan(result.spearman_p)
    assert json.dumps(result.to_dict(), allow_nan=False)  # NaN became null


def test_paper_correlation_is_nan_for_constant_means(cohort_store):
    store = cohort_store(manifest("S1", "S2"), {
        "manual": events(("S1", 0, 60, "HeD"), ("S1", 60, 120, "Br"), ("S1", 120, 180, "Sp")),
        "auto": events(("S2", 0, 60, "HeD"), ("S2", 60, 180, "Br"), ("S2", 180, 190, "Sp")),
    })
    with pytest.warns(DegenerateDataWarning, match="manual mean minutes are the same"):
        result = paper_correlation(store, *selections(store), categories=("HeD", "Br", "Sp"))
    assert math.isnan(result.pearson_r)


def test_unpaired_cohorts_have_no_paired_agreement(unpaired):
    assert paired_agreement(unpaired, *selections(unpaired)) is None


def test_categories_are_validated(unpaired):
    manual, auto = selections(unpaired)
    with pytest.raises(taxonomy.UnknownLabelError, match="did you mean 'HeD'"):
        paper_correlation(unpaired, manual, auto, categories=("heart", "Br", "Sp"))
    with pytest.raises(ValueError, match="got the string 'HeD'"):
        category_minutes(unpaired, manual, categories="HeD")
    with pytest.raises(ValueError, match="more than once"):
        category_minutes(unpaired, manual, categories=("HeD", "HeD"))


# --- paired ---------------------------------------------------------------------------------------

PAIRED_CATS = ("HeD", "Br", "Sp", "Bk", "Ab")


def paired_cohort(rng: np.random.Generator, n_scans: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Full timelines of random segments; the automatic one shifts boundaries and swaps labels."""
    labels = list(PAIRED_CATS)
    manual_rows, auto_rows = [], []
    for s in range(n_scans):
        scan, t = f"S{s:02d}", 0.0
        for _ in range(rng.integers(4, 9)):
            length = float(rng.integers(10, 120))
            label = str(rng.choice(labels))
            manual_rows.append((scan, t, t + length, label))
            t += length
        cuts = sorted({0.0, t, *(row[2] + rng.integers(-5, 6) for row in manual_rows
                                 if row[0] == scan and row[2] < t)})
        for lo, hi in itertools.pairwise(cuts):
            if hi <= lo:
                continue
            mid = next(r[3] for r in manual_rows if r[0] == scan and r[1] <= lo < r[2])
            label = mid if rng.random() < 0.75 else str(rng.choice(labels))
            auto_rows.append((scan, lo, hi, label))
    return events(*manual_rows), events(*auto_rows)


@pytest.fixture
def paired(cohort_store):
    manual, auto = paired_cohort(np.random.default_rng(5), 12)
    scan_ids = sorted(set(manual["scan_id"]))
    return cohort_store(manifest(*scan_ids, "X1"), {
        "manual": manual, "auto": pd.concat([auto, events(("X1", 0, 30, "HeD"))])})


def test_per_category_statistics_match_scipy_and_numpy(paired):
    manual, auto = selections(paired)
    cats = PAIRED_CATS
    result = paired_agreement(paired, manual, auto, categories=cats)
    assert result.n_scans == 12 and "X1" not in result.scan_ids
    m = category_minutes(paired, manual, categories=cats)
    a = category_minutes(paired, auto, categories=cats)
    both = m.merge(a, on=["scan_id", "label"], suffixes=("_m", "_a"))
    for row in result.per_category.itertuples():
        x = both.loc[both["label"] == row.label, "minutes_m"].to_numpy()
        y = both.loc[both["label"] == row.label, "minutes_a"].to_numpy()
        n = len(x)
        assert row.n_scans == n == 12
        assert row.manual_mean_min == pytest.approx(x.mean())
        # Pearson on log(1 + minutes), where Fisher's z holds for skewed durations.
        assert row.pearson_r == pytest.approx(np.corrcoef(np.log1p(x), np.log1p(y))[0, 1])
        assert row.pearson_p == pytest.approx(stats.pearsonr(np.log1p(x), np.log1p(y)).pvalue)
        z, se = np.arctanh(row.pearson_r), 1 / math.sqrt(n - 3)
        assert (row.pearson_ci_low, row.pearson_ci_high) == pytest.approx(
            (np.tanh(z - stats.norm.ppf(0.975) * se), np.tanh(z + stats.norm.ppf(0.975) * se)))
        assert row.spearman_rho == pytest.approx(stats.spearmanr(x, y).statistic)
        z, se = np.arctanh(row.spearman_rho), math.sqrt((1 + row.spearman_rho ** 2 / 2) / (n - 3))
        assert row.spearman_ci_low == pytest.approx(np.tanh(z - stats.norm.ppf(0.975) * se))
        diff = y - x
        assert row.bias_min == pytest.approx(diff.mean())
        assert row.sd_min == pytest.approx(np.std(diff, ddof=1))
        assert row.loa_low_min == pytest.approx(diff.mean() - 1.96 * np.std(diff, ddof=1))
        assert row.loa_high_min == pytest.approx(diff.mean() + 1.96 * np.std(diff, ddof=1))
        # Bland & Altman (1999): t intervals for the bias and for each limit.
        sd, t = np.std(diff, ddof=1), stats.t.ppf(0.975, n - 1)
        assert (row.bias_ci_low, row.bias_ci_high) == pytest.approx(
            stats.t.interval(0.95, n - 1, loc=diff.mean(), scale=sd / math.sqrt(n)))
        half = t * sd * math.sqrt(1 / n + 1.96 ** 2 / (2 * (n - 1)))
        assert (row.loa_high_ci_low, row.loa_high_ci_high) == pytest.approx(
            (row.loa_high_min - half, row.loa_high_min + half))
        # Lin's CCC by its other form, r times the bias correction factor.
        v, u = x.std() / y.std(), (x.mean() - y.mean()) / math.sqrt(x.std() * y.std())
        assert row.ccc == pytest.approx(np.corrcoef(x, y)[0, 1] * 2 / (v + 1 / v + u ** 2))
        assert row.icc == pytest.approx(icc_from_anova(x, y))


def icc_from_anova(x: np.ndarray, y: np.ndarray) -> float:
    """ICC(A,1) from the mean squares of a two-way ANOVA fitted by statsmodels."""
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    n = len(x)
    long = pd.DataFrame({"value": np.concatenate([x, y]), "scan": np.tile(np.arange(n), 2),
                         "rater": np.repeat(["manual", "auto"], n)})
    table = anova_lm(smf.ols("value ~ C(scan) + C(rater)", long).fit())
    ms = table["sum_sq"] / table["df"]
    msr, msc, mse = ms["C(scan)"], ms["C(rater)"], ms["Residual"]
    return (msr - mse) / (msr + mse + 2 * (msc - mse) / n)


def test_kappa_matches_statsmodels_and_a_hand_computation(paired):
    from statsmodels.stats.inter_rater import cohens_kappa as sm_kappa

    result = paired_agreement(paired, *selections(paired), categories=PAIRED_CATS,
                              kappa_ci_method="asymptotic")
    table = result.confusion.to_numpy()
    assert table.sum() == result.n_frames_manual == result.kappa.n_frames
    assert table[:-1, :-1].sum() == result.n_frames_both
    n = table.sum()
    p_o = np.trace(table) / n
    p_e = (table.sum(axis=1) * table.sum(axis=0)).sum() / n ** 2
    assert result.kappa.kappa == pytest.approx((p_o - p_e) / (1 - p_e))
    reference = sm_kappa(table)
    assert result.kappa.kappa == pytest.approx(reference.kappa)
    assert result.kappa.se_asymptotic == pytest.approx(reference.std_kappa)
    assert (result.kappa.ci_low, result.kappa.ci_high) == pytest.approx(
        (reference.kappa_low, reference.kappa_upp))


def test_kappa_bootstrap_ci_is_reproducible_and_wider_than_asymptotic(paired):
    manual, auto = selections(paired)
    first = paired_agreement(paired, manual, auto, categories=PAIRED_CATS, n_boot=500,
                             seed=1).kappa
    again = paired_agreement(paired, manual, auto, categories=PAIRED_CATS, n_boot=500,
                             seed=1).kappa
    assert first == again and first.ci_method == "bootstrap" and first.n_boot == 500
    assert first.ci_low < first.kappa < first.ci_high
    assert first.ci_high - first.ci_low > 2 * 1.96 * first.se_asymptotic


def test_cohens_kappa_of_one_table_and_degenerate_tables():
    table = np.array([[20, 5], [10, 15]])
    result = cohens_kappa(table, ci_method="asymptotic")
    assert result.kappa == pytest.approx((35 / 50 - (25 * 30 + 25 * 20) / 50 ** 2)
                                         / (1 - (25 * 30 + 25 * 20) / 50 ** 2))
    with pytest.warns(DegenerateDataWarning, match="at least 2 scans"):
        assert math.isnan(cohens_kappa(table).ci_low)
    with pytest.warns(DegenerateDataWarning, match="one category"):
        assert math.isnan(cohens_kappa(np.array([[[5, 0], [0, 0]]] * 3)).kappa)
    with pytest.raises(ValueError, match="did you mean 'bootstrap'"):
        cohens_kappa(table, ci_method="bootstrp")


def test_confusion_segments_and_gaps_on_a_hand_made_scan(cohort_store):
    # S1: full timelines. S2: a freeze-centred manual clip [10, 15) in a full automatic timeline.
    manual = events(("S1", 0, 4, "HeD"), ("S1", 4, 6, "Br"), ("S2", 10, 15, "HeD"),
                    ("S2", 15, 16, "Um"))
    auto = events(("S1", 0, 3, "HeD"), ("S1", 3, 6, "Br"),
                  ("S2", 0, 8, "Bk"), ("S2", 8, 16, "HeD"), ("S2", 16, 20, "Bk"))
    store = cohort_store(manifest("S1", "S2"), {"manual": manual, "auto": auto})
    with pytest.warns(DegenerateDataWarning, match="2 scan"), \
            pytest.warns(CoverageWarning, match="1 of the 2 paired scans"):
        result = paired_agreement(store, *selections(store), categories=("HeD", "Br", "Bk"))
    # S1 frames: truth H H H H B B, pred H H H B B B; S2: frames 10-14 H/H, frame 15 Um/H.
    assert list(result.confusion.columns) == ["HeD", "Br", "Bk", "other"]
    assert result.confusion.loc["HeD"].tolist() == [8, 1, 0, 0]
    assert result.confusion.loc["Br"].tolist() == [0, 2, 0, 0]
    assert result.confusion.loc["other"].tolist() == [1, 0, 0, 0]
    assert result.confusion.index.name == "truth"
    assert (result.n_frames_manual, result.n_frames_both, result.n_frames_other) == (12, 11, 1)
    assert result.auto_coverage == 1.0
    per_class = result.per_class.set_index("label")
    assert per_class.loc["HeD", "sensitivity"] == pytest.approx(8 / 9)
    assert per_class.loc["HeD", "ppv"] == pytest.approx(8 / 9)  # one is Um's frame
    assert per_class.loc["Br", "sensitivity"] == 1.0
    # Minutes inside the manual spans: S2's automatic HeD counts on [10, 16) only (6 s, not 8).
    coverage = result.manual_coverage.set_index("scan_id")
    assert coverage.loc["S2", "manual_coverage"] == pytest.approx(6 / 20)
    assert coverage.loc["S1", "manual_coverage"] == 1.0
    heart = result.per_category.set_index("label").loc["HeD"]
    assert heart["auto_mean_min"] == pytest.approx((3 + 6) / 60 / 2)
    # Scored where the manual labels exist, the automatic Bk of S2 is out of play.
    assert result.segments.frame_accuracy == pytest.approx(10 / 11)
    assert result.segments.counts[50] == (3, 0, 0)
    assert result.segments.n_videos == 2
    expected = segment_scores([
        (events_to_frames(auto[auto.scan_id == "S1"]), events_to_frames(manual[:2])),
        (["HeD"] * 5, ["HeD"] * 5),
    ])
    assert result.segments.f1 == expected.f1 and result.segments.edit == expected.edit
    assert result.segments_bk_as_background.background == ("Bk",)
    plain = result.to_dict()
    assert json.loads(json.dumps(plain, allow_nan=False)) == plain
    assert plain["confusion"][0] == {"truth": "HeD", "HeD": 8, "Br": 1, "Bk": 0, "other": 0}
    assert plain["manual_coverage"][1]["scan_id"] == "S2"
    assert plain["segments"]["f1"]["50"] == pytest.approx(1.0)


def test_gaps_in_the_automatic_labels_count_against_kappa(cohort_store):
    """Regression: automatic labels that left out exactly the frames they would get wrong
    scored kappa 1 (CI 1 to 1), because frames they left unlabelled were dropped."""
    scans = [f"S{i}" for i in range(4)]
    manual = events(*[(s, 60 * j, 60 * j + 60, label) for s in scans
                      for j, label in enumerate(("HeD", "Br", "Sp", "Ab", "Ki"))])
    # Right on HeD, Br, Sp and Ab, silent on Ki (which the model would have got wrong).
    auto = events(*[(s, 60 * j, 60 * j + 60, label) for s in scans
                    for j, label in enumerate(("HeD", "Br", "Sp", "Ab"))])
    store = cohort_store(manifest(*scans), {"manual": manual, "auto": auto})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)  # constant minutes
        result = paired_agreement(store, *selections(store), n_boot=200)
    assert result.auto_coverage == pytest.approx(0.8)
    assert result.confusion.loc["Ki", "other"] == 4 * 60
    assert result.kappa.kappa < 0.8 and result.kappa.ci_high < 1
    assert result.segments.frame_accuracy == pytest.approx(0.8)


def test_exact_labels_against_freeze_clips_show_no_bias(cohort_store):
    """Regression: freeze-clip manual labels against the exact full timeline showed a bias of
    minutes, because the clips were compared with whole timelines."""
    rng = np.random.default_rng(3)
    truth_rows, clip_rows = [], []
    for s in range(6):
        t = 0.0
        for _ in range(12):
            length, label = float(rng.integers(20, 200)), str(rng.choice(PAIRED_CATS))
            truth_rows.append((f"S{s}", t, t + length, label))
            centre = t + length / 2
            clip_rows.append((f"S{s}", centre - 2.5, centre + 2.5, label))
            t += length
    store = cohort_store(manifest(*[f"S{s}" for s in range(6)]),
                         {"manual": events(*clip_rows), "auto": events(*truth_rows)})
    with pytest.warns(CoverageWarning, match="not on the scans' whole workflow"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)
        result = paired_agreement(store, *selections(store), categories=PAIRED_CATS)
    assert np.allclose(result.per_category["bias_min"].fillna(0), 0)
    assert result.kappa.kappa == pytest.approx(1.0)
    assert (result.manual_coverage["manual_coverage"] < 0.2).all()


def test_paired_agreement_on_too_few_scans_warns_and_gives_nan(cohort_store):
    store = cohort_store(manifest("S1"), {"manual": events(("S1", 0, 60, "HeD")),
                                          "auto": events(("S1", 0, 50, "HeD"))})
    with pytest.warns(DegenerateDataWarning) as caught:
        result = paired_agreement(store, *selections(store), categories=("HeD", "Br", "Sp"))
    messages = " ".join(str(w.message) for w in caught)
    assert "1 scan(s), correlations need at least 3" in messages
    assert "no CI for Cohen's kappa" in messages
    heart = result.per_category.set_index("label").loc["HeD"]
    assert math.isnan(heart["pearson_r"]) and math.isnan(heart["sd_min"])
    assert heart["bias_min"] == pytest.approx(-10 / 60)
    # The automatic run leaves 10 of the 60 manual frames unlabelled: every frame is HeD by
    # hand, so its agreement is no better than chance.
    assert result.kappa.kappa == pytest.approx(0.0, abs=1e-12)
    assert result.auto_coverage == pytest.approx(50 / 60)
    assert result.segments_bk_as_background is None
    assert json.dumps(result.to_dict(), allow_nan=False)


def test_bad_options_are_refused(paired):
    manual, auto = selections(paired)
    with pytest.raises(ValueError, match="did you mean 'asymptotic'"):
        paired_agreement(paired, manual, auto, kappa_ci_method="asymptotc")
    with pytest.raises(ValueError, match="`step_s` must be a positive"):
        paired_agreement(paired, manual, auto, step_s=0)
