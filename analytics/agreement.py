"""Manual versus automatic labels: agreement at the workflow, frame and segment levels.

Two event selections (`analytics.selection.EventSelection`) are compared, usually
``select(store, source="manual")`` and ``select(store, source="auto")``. Durations are summed
inside DuckDB; only per-category totals (and, for the paired comparison, the events of the
paired scans) reach Python.

Workflow level, unpaired (`paper_correlation`)
    The comparison of Sharma et al. (ISBI 2019, section 3.3): the histogram of durations per
    category of the manually labelled scans against that of the automatically labelled scans,
    which need not be the same scans. For each category, the mean over the scans of a selection
    of the minutes spent in it (0 for a scan without it); then Pearson's r (the paper's
    rho = 0.95, p = 0.0004) and Spearman's rho across the categories, with their p-values
    (``scipy.stats.pearsonr``, ``scipy.stats.spearmanr``). Every requested category is one point,
    also one that neither selection has.
Workflow level, paired (`paired_agreement`)
    On the scans labelled by both: per category, the scan-level minutes manual versus automatic:
    Pearson's r with a 95% CI by Fisher's z (standard error ``1 / sqrt(n - 3)``); Spearman's rho
    with a 95% CI by Fisher's z with the Bonett & Wright (2000) standard error
    ``sqrt((1 + rho**2 / 2) / (n - 3))``; Bland-Altman bias (mean of automatic minus manual
    minutes), SD of the differences (ddof 1) and limits of agreement ``bias +- 1.96 SD``. CIs use
    the normal quantile 1.959964; the limits of agreement Bland & Altman's 1.96.
Frame level (`paired_agreement`)
    Both labellings are sampled at frame centres every `step_s` seconds (`events_to_frames`).
    The confusion matrix (truth = manual rows, automatic columns) and Cohen's kappa use **the
    frames labelled by both** with a category. Frames carry labels of one scan each and are far
    from independent, so the default 95% CI of kappa is a **cluster bootstrap over scans**
    (percentile, scans resampled with replacement, per-scan confusion tables summed);
    ``kappa_ci_method="asymptotic"`` gives kappa +- 1.96 SE with the large-sample SE of Fleiss,
    Cohen & Everitt (1969), the one ``statsmodels.stats.inter_rater.cohens_kappa`` reports, which
    treats frames as independent and is too narrow for video. That SE is always reported.
Segment level (`paired_agreement`)
    `fetal_analytics.segments` (MS-TCN semantics) with manual labels as the ground truth, **scored
    where the manual labels exist**: an automatic frame whose manual frame is unlabelled is made
    unlabelled too, since manual labels are often freeze-centred 5 s clips and not full timelines.
    A manually labelled frame that the automatic labels leave unlabelled counts as wrong. Scores
    are given with all categories as segments and with Bk treated as background.

Labels outside `categories` (default: the 11 classes of the default models,
`fetal_analytics.taxonomy.default_model_codes`) take no part: their minutes are not counted and
their frames count as unlabelled (manual frames so left out are counted in ``n_frames_other``).
Statistics that the data cannot give (too few scans or categories, constant values) are NaN, with
a `DegenerateDataWarning` saying which and why.
"""

from __future__ import annotations

import itertools
import logging
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from analytics.warnings import CoverageWarning, DegenerateDataWarning
from fetal_analytics import taxonomy
from fetal_analytics.checks import check_choice
from fetal_analytics.results import Result, plain
from fetal_analytics.segments import (
    DEFAULT_FRAME_STEP_S,
    SegmentScores,
    frame_centres,
    sample_index,
    segment_scores,
)
from fetal_analytics.taxonomy import BACKGROUND

if TYPE_CHECKING:
    from analytics.selection import EventSelection
    from fetal_analytics.store import Store

__all__ = [
    "KAPPA_CI_METHODS",
    "MIN_MANUAL_COVERAGE",
    "OTHER",
    "CorrelationResult",
    "KappaResult",
    "PairedAgreement",
    "agreement_table",
    "category_minutes",
    "cohens_kappa",
    "concordance",
    "icc_absolute",
    "minutes_agreement",
    "paired_agreement",
    "paper_correlation",
]

log = logging.getLogger(__name__)

COMPOSITION_NOTE = (
    "workflow composition: how alike the two cohorts' mean minutes per category are, not "
    "agreement scan by scan (a fixed timeline that knows nothing of any scan can score high); "
    "the paired measures (correlate --paired) compare scan by scan")
"""What the paper's across-category correlation measures, as every output states it."""

OTHER = "other"
"""The class of the confusion matrix and kappa that holds labels outside the categories and
frames the automatic run leaves unlabelled."""

MIN_MANUAL_COVERAGE = 0.5
"""Below this share of a scan labelled by hand, `paired_agreement` warns that the minutes it
compares are those of the manual spans, not the whole scan's."""

KAPPA_CI_METHODS = ("bootstrap", "asymptotic")
"""Values of `kappa_ci_method`: cluster bootstrap over scans, or the large-sample SE."""

_Z95 = 1.959963984540054          # scipy.stats.norm.ppf(0.975)
_LOA_Z = 1.96                      # Bland & Altman's limits of agreement
_BOOT_CHUNK = 250                  # bootstrap resamples per matrix product


# --- results --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CorrelationResult(Result):
    """The paper's unpaired comparison of per-category durations (see the module docstring).

    Attributes
    ----------
    pearson_r, pearson_p : float
        Pearson's r across categories of the mean minutes per scan, and its two-sided p-value.
    spearman_rho, spearman_p : float
        Spearman's rho across categories and its two-sided p-value.
    n_manual_scans, n_auto_scans : int
        Scans with events in each selection.
    per_category : pandas.DataFrame
        One row per category: ``label``, ``manual_mean_min``, ``auto_mean_min`` (mean minutes
        per scan, scans without the category counting 0).
    categories : tuple of str
        The categories compared, in the order of `per_category`.
    manual_selection, auto_selection : str
        Descriptions of the two selections.
    measures : str
        What the correlation measures, for every output to say: the composition of the
        workflow (how alike the two cohorts' mean minutes per category are), not agreement
        scan by scan. A fixed timeline that knows nothing of any scan scores high on it;
        `paired_agreement` measures agreement.
    """

    pearson_r: float
    pearson_p: float
    spearman_rho: float
    spearman_p: float
    n_manual_scans: int
    n_auto_scans: int
    per_category: pd.DataFrame
    categories: tuple[str, ...]
    manual_selection: str = ""
    auto_selection: str = ""
    measures: str = COMPOSITION_NOTE

    frame_field: ClassVar[str] = "per_category"


@dataclass(frozen=True)
class KappaResult(Result):
    """Cohen's kappa of frame labels, with a 95% CI.

    Attributes
    ----------
    kappa : float
        ``(p_o - p_e) / (1 - p_e)`` from the summed confusion table.
    ci_low, ci_high : float
        95% confidence limits, by `ci_method`.
    ci_method : {'bootstrap', 'asymptotic'}
        ``'bootstrap'``: percentile cluster bootstrap over scans; ``'asymptotic'``:
        kappa +- 1.96 `se_asymptotic`.
    se_asymptotic : float
        Large-sample SE of Fleiss, Cohen & Everitt (1969), frames treated as independent.
    n_frames : int
        Frames in the confusion table.
    n_scans : int
        Scans they come from.
    n_boot : int
        Bootstrap resamples (0 for the asymptotic CI).
    """

    kappa: float
    ci_low: float
    ci_high: float
    ci_method: str
    se_asymptotic: float
    n_frames: int
    n_scans: int
    n_boot: int


@dataclass(frozen=True)
class PairedAgreement(Result):
    """Agreement of manual and automatic labels on the scans labelled by both.

    Attributes
    ----------
    n_scans : int
        Scans with events in both selections.
    scan_ids : tuple of str
        Those scans, sorted.
    categories : tuple of str
        The categories compared.
    per_category : pandas.DataFrame
        One row per category, the minutes of each scan **inside its manually labelled spans**
        (the automatic labels are cut to the spans the manual labels cover, so freeze clips are
        compared with the same seconds of the automatic timeline): ``label``, ``n_scans``,
        ``manual_mean_min``, ``auto_mean_min``; ``pearson_r`` with ``pearson_p``,
        ``pearson_ci_low``, ``pearson_ci_high`` (on log(1 + minutes), where Fisher's z holds for
        skewed durations); ``spearman_rho``, ``spearman_p``, ``spearman_ci_low``,
        ``spearman_ci_high``; the agreement of the minutes themselves: Lin's concordance
        ``ccc`` and ``icc`` (ICC(A,1), two-way, absolute agreement, single measure); and
        Bland-Altman ``bias_min`` (mean of automatic minus manual minutes) with
        ``bias_ci_low, bias_ci_high``, ``sd_min``, the limits ``loa_low_min, loa_high_min``
        and their 95% CIs ``loa_low_ci_low, loa_low_ci_high, loa_high_ci_low,
        loa_high_ci_high`` (Bland & Altman, 1999).
    manual_coverage : pandas.DataFrame
        Per scan: ``scan_id``, ``manual_s`` (seconds manually labelled), ``scan_s`` (the scan's
        length: its stored duration, else the end of its last event) and ``manual_coverage``
        (their ratio, in [0, 1]).
    confusion : pandas.DataFrame
        Frame counts of every manually labelled frame: manual (truth) labels as rows (index
        ``truth``) and automatic labels as columns, the `categories` then ``other``: labels
        outside the categories and, as a column, frames the automatic run leaves unlabelled.
    per_class : pandas.DataFrame
        Per category: ``label``, ``n_manual`` and ``n_auto`` (frames), ``sensitivity`` (of the
        manual frames of the class, the share the automatic run gives it) and ``ppv`` (of the
        automatic frames of the class within manual spans, the share that are right).
    kappa : KappaResult
        Cohen's kappa of `confusion`, ``other`` included: automatic gaps count as disagreement.
    auto_coverage : float
        Share of the manually labelled frames that the automatic run labels with a category.
    segments : SegmentScores
        Frame accuracy, edit score and F1@{10,25,50}, every category a segment class, with
        95% intervals from a bootstrap over scans (`SegmentScores.ci`).
    segments_bk_as_background : SegmentScores or None
        The same with Bk as background; None when Bk is not a category.
    step_s : float
        Frame spacing used for the frame and segment metrics, in seconds.
    n_frames_manual : int
        Frames manually labelled (the frames of `confusion`).
    n_frames_both : int
        Frames labelled with a category by both.
    n_frames_other : int
        Manually labelled frames whose label is not a category (the ``other`` row).
    manual_selection, auto_selection : str
        Descriptions of the two selections.
    """

    n_scans: int
    scan_ids: tuple[str, ...]
    categories: tuple[str, ...]
    per_category: pd.DataFrame
    manual_coverage: pd.DataFrame
    confusion: pd.DataFrame
    per_class: pd.DataFrame
    kappa: KappaResult
    auto_coverage: float
    segments: SegmentScores
    segments_bk_as_background: SegmentScores | None
    step_s: float
    n_frames_manual: int
    n_frames_both: int
    n_frames_other: int
    manual_selection: str = ""
    auto_selection: str = ""

    frame_field: ClassVar[str] = "per_category"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values; the confusion matrix as rows ``{"truth": label, ...}``."""
        out = super().to_dict()
        out["confusion"] = plain(self.confusion.reset_index())
        return out


def agreement_table(correlation: CorrelationResult,
                    paired: PairedAgreement | None = None) -> pd.DataFrame:
    """One row per category: the paper's unpaired mean minutes and, where given, the paired
    statistics beside them (columns prefixed ``paired_``)."""
    table = correlation.per_category.copy()
    if paired is None:
        return table
    extra = paired.per_category.drop(columns=["manual_mean_min", "auto_mean_min"])
    extra = extra.add_prefix("paired_").rename(columns={"paired_label": "label"})
    return table.merge(extra, on="label", how="left")


# --- validation and SQL helpers -------------------------------------------------------------------

def _check_categories(categories: Sequence[str] | None) -> tuple[str, ...]:
    if categories is None:
        return taxonomy.default_model_codes()
    if isinstance(categories, str):
        raise ValueError(f"`categories` must be a collection of label codes such as "
                         f"('HeD', 'Br'), got the string {categories!r}")
    cats = tuple(taxonomy.validate_code(c) for c in categories)
    if not cats:
        raise ValueError("`categories` must name at least one label code")
    duplicated = sorted({c for c in cats if cats.count(c) > 1})
    if duplicated:
        raise ValueError(f"`categories` names {', '.join(duplicated)} more than once")
    return cats


def _cats_cte(cats: tuple[str, ...]) -> tuple[str, list]:
    rows = ", ".join(f"(?::VARCHAR, {i})" for i in range(len(cats)))
    return f"cats(label, pos) AS (VALUES {rows})", list(cats)


def _ctes(*parts: tuple[str, list]) -> tuple[str, list]:
    sql = "WITH " + ",\n".join(p[0] for p in parts)
    return sql, [x for p in parts for x in p[1]]


# --- workflow level -------------------------------------------------------------------------------

def category_minutes(store: Store, selection: EventSelection, *,
                     categories: Sequence[str] | None = None) -> pd.DataFrame:
    """Minutes each selected scan spends in each category.

    Parameters
    ----------
    store : Store
    selection : EventSelection
        The events, e.g. ``select(store, source="manual")``.
    categories : sequence of str, optional
        Label codes; default: the 11 classes of the default models.

    Returns
    -------
    pandas.DataFrame
        Columns ``scan_id``, ``label``, ``minutes``: one row for every scan with events in the
        selection and every category (0 where the scan has none), sorted by scan and then in
        the order of `categories`.
    """
    cats = _check_categories(categories)
    head, params = _ctes(selection.cte("sel"), _cats_cte(cats))
    return store.query_df(f"""{head},
        scans AS (SELECT DISTINCT scan_id FROM sel),
        totals AS (SELECT scan_id, label, sum(end_s - start_s) AS seconds FROM sel GROUP BY ALL)
        SELECT s.scan_id, c.label, coalesce(t.seconds, 0) / 60.0 AS minutes
        FROM scans s CROSS JOIN cats c
        LEFT JOIN totals t ON t.scan_id = s.scan_id AND t.label = c.label
        ORDER BY s.scan_id, c.pos""", params)


def _mean_minutes(store: Store, manual: EventSelection, auto: EventSelection,
                  cats: tuple[str, ...]) -> tuple[pd.DataFrame, int, int]:
    head, params = _ctes(manual.cte("m"), auto.cte("a"), _cats_cte(cats))
    n_manual, n_auto = store.con.execute(
        f"{head} SELECT (SELECT count(DISTINCT scan_id) FROM m), "
        f"(SELECT count(DISTINCT scan_id) FROM a)", params).fetchone()
    table = store.query_df(f"""{head},
        mt AS (SELECT label, sum(end_s - start_s) AS seconds FROM m GROUP BY label),
        at_ AS (SELECT label, sum(end_s - start_s) AS seconds FROM a GROUP BY label)
        SELECT c.label,
               coalesce(mt.seconds, 0) / 60.0 / nullif(?, 0) AS manual_mean_min,
               coalesce(at_.seconds, 0) / 60.0 / nullif(?, 0) AS auto_mean_min
        FROM cats c LEFT JOIN mt USING (label) LEFT JOIN at_ USING (label)
        ORDER BY c.pos""", [*params, n_manual, n_auto])
    table[["manual_mean_min", "auto_mean_min"]] = table[
        ["manual_mean_min", "auto_mean_min"]].astype(float)
    return table, int(n_manual), int(n_auto)


def paper_correlation(store: Store, manual: EventSelection, auto: EventSelection, *,
                      categories: Sequence[str] | None = None) -> CorrelationResult:
    """Correlate the mean minutes per category of manually and automatically labelled scans.

    The scans of the two selections need not be the same (the paper compared ten automatically
    labelled scans with a manually labelled cohort).

    Parameters
    ----------
    store : Store
    manual, auto : EventSelection
        The manual and the automatic events.
    categories : sequence of str, optional
        The categories (points of the correlation); default: the 11 classes of the default
        models, `fetal_analytics.taxonomy.default_model_codes`.

    Returns
    -------
    CorrelationResult
        Pearson's r and Spearman's rho with p-values across categories; NaN, with a
        `DegenerateDataWarning`, when a selection has no scans, fewer than 3 categories have
        time in either selection, or one side is constant.
    """
    from scipy import stats

    cats = _check_categories(categories)
    table, n_manual, n_auto = _mean_minutes(store, manual, auto, cats)
    x = table["manual_mean_min"].to_numpy(float)
    y = table["auto_mean_min"].to_numpy(float)
    reason = None
    with_data = int(np.count_nonzero((np.nan_to_num(x) > 0) | (np.nan_to_num(y) > 0)))
    if n_manual == 0 or n_auto == 0:
        reason = (f"the {'manual' if n_manual == 0 else 'automatic'} selection has no scans "
                  f"({(manual if n_manual == 0 else auto).description})")
    elif with_data < 3:
        reason = (f"only {with_data} of the {len(cats)} categories have labelled time; a "
                  f"correlation across categories needs at least 3")
    elif np.ptp(x) == 0 or np.ptp(y) == 0:
        reason = (f"the {'manual' if np.ptp(x) == 0 else 'automatic'} mean minutes are the same "
                  f"in every category")
    if reason is not None:
        warnings.warn(f"paper correlation is NaN: {reason}", DegenerateDataWarning, stacklevel=2)
        r = p = rho = rho_p = math.nan
    else:
        pearson = stats.pearsonr(x, y)
        spearman = stats.spearmanr(x, y)
        r, p = float(pearson.statistic), float(pearson.pvalue)
        rho, rho_p = float(spearman.statistic), float(spearman.pvalue)
    log.info("paper correlation over %d categories (%d manual, %d automatic scans): r = %.3f, "
             "p = %.3g", len(cats), n_manual, n_auto, r, p)
    return CorrelationResult(
        pearson_r=r, pearson_p=p, spearman_rho=rho, spearman_p=rho_p,
        n_manual_scans=n_manual, n_auto_scans=n_auto, per_category=table, categories=cats,
        manual_selection=manual.description, auto_selection=auto.description)


def _fisher_ci(r: float, n: int, *, se: float) -> tuple[float, float]:
    if n <= 3 or not math.isfinite(r):
        return math.nan, math.nan
    with np.errstate(divide="ignore"):
        z = np.arctanh(r)
    return float(np.tanh(z - _Z95 * se)), float(np.tanh(z + _Z95 * se))


def concordance(x: np.ndarray, y: np.ndarray) -> float:
    """Lin's concordance correlation coefficient of paired values (population moments):
    ``2 s_xy / (s_x**2 + s_y**2 + (mean_x - mean_y)**2)``; NaN with fewer than 2 pairs or
    no variation in either."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2:
        return math.nan
    sxy = float(np.mean((x - x.mean()) * (y - y.mean())))
    denominator = float(x.var() + y.var() + (x.mean() - y.mean()) ** 2)
    return 2 * sxy / denominator if denominator > 0 else math.nan


def icc_absolute(x: np.ndarray, y: np.ndarray) -> float:
    """ICC(A,1) of McGraw & Wong (1996): two-way model, absolute agreement, single measure,
    of two raters (here manual and automatic) on n subjects (scans):
    ``(MSR - MSE) / (MSR + MSE + 2 (MSC - MSE) / n)``; NaN with fewer than 2 subjects."""
    data = np.column_stack([x, y]).astype(float)
    n, k = data.shape
    if n < 2:
        return math.nan
    grand = data.mean()
    ss_rows = k * float(((data.mean(axis=1) - grand) ** 2).sum())
    ss_cols = n * float(((data.mean(axis=0) - grand) ** 2).sum())
    ss_error = float(((data - grand) ** 2).sum()) - ss_rows - ss_cols
    msr, msc = ss_rows / (n - 1), ss_cols / (k - 1)
    mse = ss_error / ((n - 1) * (k - 1))
    denominator = msr + (k - 1) * mse + k * (msc - mse) / n
    return (msr - mse) / denominator if denominator > 0 else math.nan


def minutes_agreement(manual: np.ndarray, auto: np.ndarray) -> tuple[dict[str, float],
                                                                   str | None]:
    """Correlations, agreement and Bland-Altman of paired minutes (one category, one value
    per scan), the columns of `PairedAgreement.per_category`; and why they are NaN, if so."""
    from scipy import stats

    n = len(manual)
    diff = auto - manual
    bias = float(diff.mean()) if n else math.nan
    sd = float(diff.std(ddof=1)) if n >= 2 else math.nan
    row = {"n_scans": n, "manual_mean_min": float(manual.mean()) if n else math.nan,
           "auto_mean_min": float(auto.mean()) if n else math.nan}
    reason = None
    if n < 3:
        reason = f"{n} scan(s), correlations need at least 3"
    elif np.ptp(manual) == 0 and np.ptp(auto) == 0:
        reason = "constant minutes in both labellings" + (
            " (never labelled)" if not manual.any() and not auto.any() else "")
    elif np.ptp(manual) == 0 or np.ptp(auto) == 0:
        reason = f"constant {'manual' if np.ptp(manual) == 0 else 'automatic'} minutes"
    if reason is None:
        # Minutes are skewed; on log(1 + minutes) Fisher's z interval covers as it should.
        pearson = stats.pearsonr(np.log1p(manual), np.log1p(auto))
        spearman = stats.spearmanr(manual, auto)
        r, rho = float(pearson.statistic), float(spearman.statistic)
        r_p, rho_p = float(pearson.pvalue), float(spearman.pvalue)
    else:
        r = rho = r_p = rho_p = math.nan
    se_r = 1 / math.sqrt(n - 3) if n > 3 else math.nan
    se_rho = math.sqrt((1 + rho ** 2 / 2) / (n - 3)) if n > 3 else math.nan
    r_ci, rho_ci = _fisher_ci(r, n, se=se_r), _fisher_ci(rho, n, se=se_rho)
    # Bland & Altman (1999): SE of the bias s / sqrt(n), of each limit s sqrt(1/n + z^2 / 2(n-1)).
    t = float(stats.t.ppf(0.975, n - 1)) if n >= 2 else math.nan
    se_bias = sd / math.sqrt(n) if n >= 2 else math.nan
    se_loa = sd * math.sqrt(1 / n + _LOA_Z ** 2 / (2 * (n - 1))) if n >= 2 else math.nan
    loa_low, loa_high = bias - _LOA_Z * sd, bias + _LOA_Z * sd
    row.update({
        "pearson_r": r, "pearson_p": r_p, "pearson_ci_low": r_ci[0], "pearson_ci_high": r_ci[1],
        "spearman_rho": rho, "spearman_p": rho_p,
        "spearman_ci_low": rho_ci[0], "spearman_ci_high": rho_ci[1],
        "ccc": concordance(manual, auto) if reason is None else math.nan,
        "icc": icc_absolute(manual, auto) if reason is None else math.nan,
        "bias_min": bias, "bias_ci_low": bias - t * se_bias, "bias_ci_high": bias + t * se_bias,
        "sd_min": sd, "loa_low_min": loa_low, "loa_high_min": loa_high,
        "loa_low_ci_low": loa_low - t * se_loa, "loa_low_ci_high": loa_low + t * se_loa,
        "loa_high_ci_low": loa_high - t * se_loa, "loa_high_ci_high": loa_high + t * se_loa,
    })
    return row, reason


# --- frame level ----------------------------------------------------------------------------------

def _kappa_of(tables: np.ndarray) -> np.ndarray:
    """Cohen's kappa of each (..., K, K) table; NaN where empty or chance agreement is 1."""
    n = tables.sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        observed = np.trace(tables, axis1=-2, axis2=-1) / n
        rows, cols = tables.sum(axis=-1) / n[..., None], tables.sum(axis=-2) / n[..., None]
        expected = (rows * cols).sum(axis=-1)
        kappa = (observed - expected) / (1 - expected)
    return np.where((n > 0) & (expected < 1), kappa, np.nan)


def _kappa_se(table: np.ndarray, kappa: float) -> float:
    """Large-sample SE of kappa (Fleiss, Cohen & Everitt 1969), frames independent."""
    n = table.sum()
    if n == 0 or not math.isfinite(kappa):
        return math.nan
    p = table / n
    rows, cols = p.sum(axis=1), p.sum(axis=0)
    expected = float(rows @ cols)
    diag = np.diag(p)
    term_a = float((diag * (1 - (rows + cols) * (1 - kappa)) ** 2).sum())
    off = p * (cols[:, None] + rows[None, :]) ** 2
    np.fill_diagonal(off, 0)
    term_b = (1 - kappa) ** 2 * float(off.sum())
    term_c = (kappa - expected * (1 - kappa)) ** 2
    var = (term_a + term_b - term_c) / (1 - expected) ** 2 / n
    return math.sqrt(var) if var >= 0 else math.nan


def cohens_kappa(tables: np.ndarray, *, ci_method: str = "bootstrap", n_boot: int = 2000,
                 seed: int = 0) -> KappaResult:
    """Cohen's kappa of per-scan confusion tables, with a 95% CI.

    Parameters
    ----------
    tables : (n_scans, K, K) array_like of int
        Frame counts per scan, truth rows and predicted columns; a single (K, K) table is one
        scan.
    ci_method : {'bootstrap', 'asymptotic'}, optional
        ``'bootstrap'``: percentile CI of a cluster bootstrap, scans resampled with replacement;
        ``'asymptotic'``: kappa +- 1.96 SE, the large-sample SE of Fleiss, Cohen & Everitt (1969).
    n_boot : int, optional
        Bootstrap resamples.
    seed : int, optional
        Seed of the bootstrap.

    Returns
    -------
    KappaResult
        NaN, with a `DegenerateDataWarning`, where the table is empty, all frames fall in one
        category of both labellings, or (bootstrap) fewer than 2 scans.
    """
    check_choice("ci_method", ci_method, KAPPA_CI_METHODS)
    tables = np.asarray(tables, dtype=float)
    if tables.ndim == 2:
        tables = tables[None]
    if tables.ndim != 3 or tables.shape[1] != tables.shape[2]:
        raise ValueError(f"`tables` must have shape (n_scans, K, K), got {tables.shape}")
    if ci_method == "bootstrap" and n_boot < 1:
        raise ValueError(f"`n_boot` must be at least 1, got {n_boot}")
    total = tables.sum(axis=0)
    kappa = float(_kappa_of(total))
    se = _kappa_se(total, kappa)
    n_scans = int(np.count_nonzero(tables.sum(axis=(1, 2))))
    if not math.isfinite(kappa):
        warnings.warn(
            "Cohen's kappa is NaN: " + ("no frame is labelled by both" if not total.sum() else
                                        "all frames fall in one category in both labellings"),
            DegenerateDataWarning, stacklevel=2)
    if ci_method == "asymptotic":
        low, high = kappa - _Z95 * se, kappa + _Z95 * se
        n_boot = 0
    elif not math.isfinite(kappa):
        low = high = math.nan
    elif n_scans < 2:
        warnings.warn("no CI for Cohen's kappa: the bootstrap over scans needs at least 2 scans "
                      "with frames", DegenerateDataWarning, stacklevel=2)
        low = high = math.nan
    else:
        used = tables[tables.sum(axis=(1, 2)) > 0]
        flat = used.reshape(len(used), -1)
        rng = np.random.default_rng(seed)
        draws = []
        for start in range(0, n_boot, _BOOT_CHUNK):
            size = min(_BOOT_CHUNK, n_boot - start)
            weights = rng.multinomial(len(used), np.full(len(used), 1 / len(used)), size=size)
            draws.append(_kappa_of((weights @ flat).reshape(size, *used.shape[1:])))
        boot = np.concatenate(draws)
        low, high = (float(v) for v in np.nanpercentile(boot, [2.5, 97.5]))
    return KappaResult(kappa=kappa, ci_low=float(low), ci_high=float(high), ci_method=ci_method,
                       se_asymptotic=se, n_frames=int(total.sum()), n_scans=n_scans,
                       n_boot=n_boot)


# --- paired comparison ----------------------------------------------------------------------------

def _paired_events(store: Store, head: str, params: list, side: str) -> pd.DataFrame:
    return store.query_df(
        f"{head} SELECT scan_id, start_s, end_s, label FROM {side} "
        f"WHERE scan_id IN (SELECT scan_id FROM paired) ORDER BY scan_id, start_s", params)


def _per_scan(events: pd.DataFrame, cats: tuple[str, ...]) -> dict[str, tuple[np.ndarray, ...]]:
    """Per scan: sorted starts, ends and label codes (0..K-1 categories, K any other label)."""
    codes = pd.Index(cats).get_indexer(events["label"]).astype(np.int64)
    codes[codes < 0] = len(cats)
    ids = events["scan_id"].to_numpy(dtype=object)
    starts, ends = events["start_s"].to_numpy(float), events["end_s"].to_numpy(float)
    bounds = np.concatenate(([0], np.flatnonzero(ids[1:] != ids[:-1]) + 1, [len(ids)]))
    return {ids[lo]: (starts[lo:hi], ends[lo:hi], codes[lo:hi])
            for lo, hi in itertools.pairwise(bounds.tolist()) if hi > lo}


def _sample_codes(scan: tuple[np.ndarray, ...], times: np.ndarray) -> np.ndarray:
    starts, ends, codes = scan
    index = sample_index(starts, ends, times)
    return np.where(index >= 0, codes[np.maximum(index, 0)], -1)


def paired_agreement(store: Store, manual: EventSelection, auto: EventSelection, *,
                     categories: Sequence[str] | None = None,
                     step_s: float = DEFAULT_FRAME_STEP_S,
                     kappa_ci_method: str = "bootstrap", n_boot: int = 2000,
                     seed: int = 0) -> PairedAgreement | None:
    """Agreement of manual and automatic labels on the scans that have both.

    Parameters
    ----------
    store : Store
    manual, auto : EventSelection
        The manual events (the ground truth) and the automatic ones.
    categories : sequence of str, optional
        Label codes compared; default: the 11 classes of the default models. Other labels count
        as unlabelled (see the module docstring).
    step_s : float, optional
        Frame spacing, in seconds, of the frame and segment metrics (default 1 s).
    kappa_ci_method : {'bootstrap', 'asymptotic'}, optional
        CI of Cohen's kappa: cluster bootstrap over scans (default) or large-sample SE.
    n_boot : int, optional
        Bootstrap resamples (default 2000).
    seed : int, optional
        Seed of the bootstrap, for reproducible CIs.

    Returns
    -------
    PairedAgreement or None
        None when no scan has events in both selections (the caller says so).
    """
    check_choice("kappa_ci_method", kappa_ci_method, KAPPA_CI_METHODS)
    if not (math.isfinite(step_s) and step_s > 0):
        raise ValueError(f"`step_s` must be a positive number of seconds, got {step_s!r}")
    cats = _check_categories(categories)
    k = len(cats)
    head, params = _ctes(manual.cte("m"), auto.cte("a"), _cats_cte(cats),
                         ("paired AS (SELECT scan_id FROM m INTERSECT SELECT scan_id FROM a)", []))
    scan_ids = tuple(store.query_df(
        f"{head} SELECT scan_id FROM paired ORDER BY scan_id", params)["scan_id"])
    if not scan_ids:
        log.info("no scan has both %s and %s", manual.description, auto.description)
        return None

    # Workflow level: scan-level minutes per category, summed in DuckDB; the automatic events
    # cut to the manually labelled spans (manual events of one run never overlap).
    minutes = store.query_df(f"""{head},
        msum AS (SELECT scan_id, label, sum(end_s - start_s) AS seconds FROM m
                 WHERE scan_id IN (SELECT scan_id FROM paired) GROUP BY ALL),
        asum AS (SELECT a.scan_id, a.label,
                        sum(least(a.end_s, m.end_s) - greatest(a.start_s, m.start_s))
                          AS seconds
                 FROM a JOIN m ON a.scan_id = m.scan_id
                   AND a.start_s < m.end_s AND m.start_s < a.end_s
                 WHERE a.scan_id IN (SELECT scan_id FROM paired) GROUP BY ALL)
        SELECT c.label, p.scan_id,
               coalesce(msum.seconds, 0) / 60.0 AS manual_min,
               coalesce(asum.seconds, 0) / 60.0 AS auto_min
        FROM paired p CROSS JOIN cats c
        LEFT JOIN msum ON msum.scan_id = p.scan_id AND msum.label = c.label
        LEFT JOIN asum ON asum.scan_id = p.scan_id AND asum.label = c.label
        ORDER BY c.pos, p.scan_id""", params)
    rows, reasons = [], {}
    n = len(scan_ids)
    manual_min = minutes["manual_min"].to_numpy(float).reshape(k, n)
    auto_min = minutes["auto_min"].to_numpy(float).reshape(k, n)
    for i, label in enumerate(cats):
        row, reason = minutes_agreement(manual_min[i], auto_min[i])
        rows.append({"label": label, **row})
        if reason is not None:
            reasons[label] = reason
    if reasons:
        listing = "; ".join(f"{label}: {why}" for label, why in reasons.items())
        warnings.warn(f"per-category correlations are NaN for {len(reasons)} of {k} categories "
                      f"({listing})", DegenerateDataWarning, stacklevel=2)
    per_category = pd.DataFrame(rows)
    coverage = _manual_coverage(store, head, params)

    # Frame level: sample both labellings per scan as category codes (-1 unlabelled).
    m_scans = _per_scan(_paired_events(store, head, params, "m"), cats)
    a_scans = _per_scan(_paired_events(store, head, params, "a"), cats)
    # Every manually labelled frame counts; labels outside the categories and automatic gaps
    # form one class `other` (code k), so leaving out hard frames cannot raise kappa.
    tables = np.zeros((n, k + 1, k + 1), dtype=np.int64)
    frames: list[tuple[np.ndarray, np.ndarray]] = []
    for j, scan_id in enumerate(scan_ids):
        m_scan, a_scan = m_scans[scan_id], a_scans[scan_id]
        end = max(m_scan[1].max(), a_scan[1].max())
        times = frame_centres(0.0, float(end), step_s)
        truth, pred = _sample_codes(m_scan, times), _sample_codes(a_scan, times)
        manual_frames = truth >= 0
        other_pred = np.where(pred < 0, k, pred)
        tables[j] = np.bincount(truth[manual_frames] * (k + 1) + other_pred[manual_frames],
                                minlength=(k + 1) ** 2).reshape(k + 1, k + 1)
        # Segments: the categories only, scored where the manual labels have one.
        truth[truth == k] = -1
        pred[(pred == k) | (truth < 0)] = -1
        frames.append((pred.astype(np.int16), truth.astype(np.int16)))
    total = tables.sum(axis=0)
    n_manual = int(total.sum())
    n_other = int(total[k].sum())
    labels = pd.Index([*cats, OTHER])
    confusion = pd.DataFrame(total, index=labels.rename("truth"),
                             columns=labels.rename("predicted"))
    kappa = cohens_kappa(tables, ci_method=kappa_ci_method, n_boot=n_boot, seed=seed)
    in_categories = int(total[:, :k].sum())
    auto_coverage = in_categories / n_manual if n_manual else math.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = pd.DataFrame({
            "label": list(cats), "n_manual": total[:k].sum(axis=1),
            "n_auto": total[:, :k].sum(axis=0),
            "sensitivity": np.diag(total)[:k] / total[:k].sum(axis=1),
            "ppv": np.diag(total)[:k] / total[:, :k].sum(axis=0)})

    # Segment level, manual labels as the truth, scored where they exist.
    lookup = np.array([*cats, None], dtype=object)  # code -1 -> None

    def pairs() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for pred, truth in frames:
            yield lookup[pred], lookup[truth]

    if n_manual == 0:
        warnings.warn("no frame of the paired scans is manually labelled with a category: "
                      "frame accuracy is NaN", DegenerateDataWarning, stacklevel=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        seg_all = segment_scores(pairs(), n_boot=n_boot, seed=seed)
        seg_bk = (segment_scores(pairs(), background=(BACKGROUND,), n_boot=n_boot, seed=seed)
                  if BACKGROUND in cats else None)
    _warn_low_coverage(coverage)
    log.info("paired agreement on %d scans: kappa %.3f, frame accuracy %.3f, edit %.3f",
             n, kappa.kappa, seg_all.frame_accuracy, seg_all.edit)
    return PairedAgreement(
        n_scans=n, scan_ids=scan_ids, categories=cats, per_category=per_category,
        manual_coverage=coverage, confusion=confusion, per_class=per_class, kappa=kappa,
        auto_coverage=auto_coverage, segments=seg_all, segments_bk_as_background=seg_bk,
        step_s=float(step_s), n_frames_manual=n_manual,
        n_frames_both=int(total[:k, :k].sum()), n_frames_other=n_other,
        manual_selection=manual.description, auto_selection=auto.description)


def _manual_coverage(store: Store, head: str, params: list) -> pd.DataFrame:
    """Per paired scan: seconds manually labelled, the scan's length and their ratio."""
    return store.query_df(f"""{head},
        ends AS (SELECT scan_id, max(end_s) AS end_s FROM
                   (SELECT scan_id, end_s FROM m UNION ALL SELECT scan_id, end_s FROM a)
                 GROUP BY scan_id),
        labelled AS (SELECT scan_id, sum(end_s - start_s) AS manual_s FROM m GROUP BY scan_id)
        SELECT p.scan_id, l.manual_s,
               greatest(coalesce(sc.duration_s, e.end_s), e.end_s) AS scan_s,
               l.manual_s / greatest(coalesce(sc.duration_s, e.end_s), e.end_s)
                 AS manual_coverage
        FROM paired p JOIN labelled l USING (scan_id) JOIN ends e USING (scan_id)
        JOIN scans sc USING (scan_id)
        ORDER BY p.scan_id""", params).reset_index(drop=True)


def _warn_low_coverage(coverage: pd.DataFrame) -> None:
    low = coverage[coverage["manual_coverage"] < MIN_MANUAL_COVERAGE]
    if low.empty:
        return
    warnings.warn(
        f"manual labels cover less than {MIN_MANUAL_COVERAGE:.0%} of {len(low)} of the "
        f"{len(coverage)} paired scans (median "
        f"{coverage['manual_coverage'].median():.0%}): the per-category minutes compare the "
        f"automatic labels inside the manually labelled spans only, so they measure agreement "
        f"on those seconds, not on the scans' whole workflow", CoverageWarning, stacklevel=3)
