"""Comparing groups of operators: expert vs trainee, or any two or more groups.

Events and scans of one operator are not independent, so every test here is on operator-level
values (the mean over the operator's scans) or models the operator explicitly (a random
intercept in `mixed_model_durations`, permutation of operators in
`transition_permutation_test`).

The first group (of `groups`, or of the sorted group names) is the reference: differences,
effect sizes and model coefficients are those of each other group relative to it.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from analytics._checks import check_choice
from analytics.features import (
    SCAN_FEATURE_NUMERIC,
    category_times,
    scan_features,
    sequence_ctes,
)
from analytics.warnings import DegenerateDataWarning
from fetal_analytics import taxonomy
from fetal_analytics.errors import UserError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from analytics.selection import EventSelection
    from fetal_analytics.store import Store

__all__ = [
    "CORRECTIONS",
    "DISTANCES",
    "GroupComparison",
    "GroupError",
    "SingleGroupError",
    "TransitionTest",
    "UnknownGroupError",
    "compare_groups",
    "directly_follows_graph",
    "mixed_model_durations",
    "ngrams",
    "operator_values",
    "transition_matrices",
    "transition_permutation_test",
    "write_dfg",
]

log = logging.getLogger(__name__)

CORRECTIONS = ("holm", "fdr_bh", "none")
"""Multiple-testing corrections of `compare_groups` (statsmodels' method names)."""

DISTANCES = ("total_variation", "frobenius")
"""Distances between transition matrices of `transition_permutation_test`."""

DURATION_PREFIX = "duration_min:"
"""Prefix of the per-category duration features, e.g. ``duration_min:HeD`` (minutes per scan)."""


class GroupError(UserError, ValueError):
    """The groups asked for cannot be compared."""


class SingleGroupError(GroupError):
    """Fewer than two groups to compare."""


class UnknownGroupError(GroupError):
    """A group asked for has no operator with scans in the selection."""


@dataclass(frozen=True)
class GroupComparison:
    """Tests of the difference between groups, one family of tests per feature.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per feature and test. Columns: ``feature``; ``mean_G, sd_G, n_G`` for each group
        G (operator-level values; n counts operators); ``test`` ('welch' and 'mann-whitney' for
        two groups, 'welch-anova' and 'kruskal-wallis' for more); ``statistic`` (Welch's t and
        Mann-Whitney's U of the second group against the first; Welch's F; Kruskal-Wallis' H);
        ``p``; ``p_adjusted`` (corrected over the features, separately for each test);
        ``effect`` ('hedges_g' or 'epsilon_squared'), ``effect_size``, ``effect_ci_low``,
        ``effect_ci_high`` (Hedges' g of the second group minus the first, in pooled SDs, with
        a normal-approximation interval; epsilon-squared has no interval, NaN).
    groups : tuple of str
        The groups compared, reference first.
    correction : str
        The multiple-testing correction applied.
    n_operators : dict of str to int
        Operators per group with scans in the selection.
    values : pandas.DataFrame
        The operator-level values tested: ``operator_id, grp, feature, value``.
    """

    table: pd.DataFrame
    groups: tuple[str, ...]
    correction: str
    n_operators: dict[str, int]
    values: pd.DataFrame = field(repr=False)


@dataclass(frozen=True)
class TransitionTest:
    """A permutation test of the difference between two groups' transition matrices.

    Attributes
    ----------
    statistic : float
        Distance between the groups' smoothed transition matrices: the mean over rows of the
        total variation distance (half the L1 distance, in [0, 1]) or the Frobenius norm.
    p : float
        ``(1 + #{permuted >= observed}) / (1 + n_perm)``; NaN when a group has fewer than 2
        operators.
    distance : str
        'total_variation' or 'frobenius'.
    groups : tuple of str
        The two groups.
    n_perm : int
        Permutations of the group labels over operators.
    n_operators : dict of str to int
        Operators per group.
    alpha : float
        Laplace smoothing added to each off-diagonal transition count.
    null_distribution : numpy.ndarray
        The statistic of each permutation, shape ``(n_perm,)``.
    """

    statistic: float
    p: float
    distance: str
    groups: tuple[str, ...]
    n_perm: int
    n_operators: dict[str, int]
    alpha: float
    null_distribution: np.ndarray = field(repr=False, compare=False)


# --- groups ------------------------------------------------------------------------------------

def _groups_present(store: Store, selection: EventSelection) -> dict[str, int]:
    cte, params = selection.cte()
    rows = store.con.execute(
        f"""WITH {cte}
        SELECT o.grp, count(DISTINCT o.operator_id)
        FROM (SELECT DISTINCT scan_id FROM sel) s
        JOIN scans sc ON sc.scan_id = s.scan_id
        JOIN operators o ON o.operator_id = sc.operator_id
        GROUP BY o.grp ORDER BY o.grp""", params).fetchall()
    return dict(rows)


def _resolve_groups(present: dict[str, int], groups: Sequence[str] | str | None,
                    ) -> tuple[str, ...]:
    """The groups to compare, reference first; errors name the groups present."""
    listing = ", ".join(map(repr, present)) or "none"
    if groups is None:
        chosen = tuple(present)
    else:
        chosen = (groups,) if isinstance(groups, str) else tuple(dict.fromkeys(groups))
        absent = [g for g in chosen if g not in present]
        if absent:
            raise UnknownGroupError(
                f"no operator of group(s) {', '.join(map(repr, absent))} has scans in the "
                f"selection; groups present: {listing}")
    if len(chosen) < 2:
        raise SingleGroupError(
            f"a group comparison needs at least two groups, got {len(chosen)} "
            f"({', '.join(map(repr, chosen)) or 'none'}); groups present: {listing}")
    return chosen


# --- operator-level values and tests -------------------------------------------------------------

def operator_values(store: Store, selection: EventSelection, *,
                    groups: Sequence[str] | None = None) -> pd.DataFrame:
    """Operator-level workflow features: the mean over each operator's scans.

    Parameters
    ----------
    store : Store
    selection : EventSelection
    groups : sequence of str, optional
        Keep only operators of these groups.

    Returns
    -------
    pandas.DataFrame
        Columns ``operator_id, grp, feature, value``, one row per operator and feature. The
        features are the numeric columns of `analytics.features.scan_features` and
        ``duration_min:CODE`` (minutes per scan spent on the category, 0 where absent) for each
        category in scope. NaN scan values (e.g. a scan that never covered the protocol) are
        left out of the mean; ``value`` is NaN where all of the operator's scans are NaN.
    """
    import pandas as pd

    scans = scan_features(store, selection)
    cats = category_times(store, selection)
    order = [*SCAN_FEATURE_NUMERIC,
             *(DURATION_PREFIX + c for c in pd.unique(cats["label"]))]
    long = pd.concat([
        scans.melt(id_vars=["scan_id", "operator_id", "grp"],
                   value_vars=list(SCAN_FEATURE_NUMERIC), var_name="feature",
                   value_name="value"),
        cats.assign(feature=DURATION_PREFIX + cats["label"].astype(str), value=cats["duration_min"])
        [["scan_id", "operator_id", "grp", "feature", "value"]],
    ], ignore_index=True)
    long["value"] = long["value"].astype("float64")
    if groups is not None:
        long = long[long["grp"].isin(list(groups))]
    values = long.groupby(["operator_id", "grp", "feature"], sort=False)["value"].mean()
    values = values.reset_index()
    values["feature"] = pd.Categorical(values["feature"], categories=order)
    values = values.sort_values(["feature", "grp", "operator_id"], kind="stable")
    values["feature"] = values["feature"].astype(str)
    return values.reset_index(drop=True)


def compare_groups(store: Store, selection: EventSelection, *,
                   groups: Sequence[str] | None = None, correction: str = "holm",
                   features: Sequence[str] | None = None, ci: float = 0.95) -> GroupComparison:
    """Test each workflow feature for a difference between groups of operators.

    Every test is on operator-level values (`operator_values`): the mean over the operator's
    scans, so operators with many scans do not count more.

    Parameters
    ----------
    store : Store
    selection : EventSelection
    groups : sequence of str, optional
        Groups to compare, reference first (default: every group present, sorted).
    correction : {'holm', 'fdr_bh', 'none'}, optional
        Correction of the p-values over the features (Holm's step-down family-wise error, or
        Benjamini-Hochberg's false discovery rate), applied to each test separately.
    features : sequence of str, optional
        Feature names (``total_min``, ``duration_min:HeD``, ...). Default: every feature that
        varies between operators; features constant over all operators (e.g. ``n_freezes``
        without freeze frames) are left out and logged.
    ci : float, optional
        Confidence level of the Hedges' g interval.

    Returns
    -------
    GroupComparison

    Raises
    ------
    SingleGroupError
        Fewer than two groups, naming the groups found.
    UnknownGroupError
        A group of `groups` has no scans in the selection, naming the groups present.
    ValueError
        An unknown feature or correction (with the valid choices).

    Warns
    -----
    DegenerateDataWarning
        A group with fewer than 2 operators for a feature, or a feature without variation:
        its tests and effect size are NaN.
    """
    import numpy as np
    import pandas as pd

    check_choice("correction", correction, CORRECTIONS)
    if not 0 < ci < 1:
        raise ValueError(f"`ci` must be a confidence level in (0, 1), got {ci!r}")
    present = _groups_present(store, selection)
    chosen = _resolve_groups(present, groups)
    values = operator_values(store, selection, groups=chosen)
    available = list(pd.unique(values["feature"]))
    if features is None:
        spread = values.groupby("feature", sort=False)["value"].agg(
            lambda v: v.max() - v.min() if v.notna().any() else np.nan)
        constant = [f for f in available if not spread[f] > 0]
        if constant:
            log.info("compare_groups: leaving out features without variation: %s",
                     ", ".join(constant))
        wanted = [f for f in available if f not in constant]
    else:
        wanted = [features] if isinstance(features, str) else list(dict.fromkeys(features))
        for name in wanted:
            check_choice("features", name, available)
    values = values[values["feature"].isin(wanted)].reset_index(drop=True)
    rows: list[dict] = []
    degenerate: list[str] = []
    samples_by_feature = {
        f: [frame.loc[frame["grp"] == g, "value"].dropna().to_numpy(dtype=float)
            for g in chosen]
        for f, frame in values.groupby("feature", sort=False)
    }
    for feature in wanted:
        samples = samples_by_feature[feature]
        described = {}
        for g, x in zip(chosen, samples, strict=True):
            described[f"mean_{g}"] = float(np.mean(x)) if len(x) else math.nan
            described[f"sd_{g}"] = float(np.std(x, ddof=1)) if len(x) >= 2 else math.nan
            described[f"n_{g}"] = len(x)
        tests, why = _tests(samples, ci)
        if why:
            degenerate.append(f"{feature} ({why})")
        for test in tests:
            rows.append({"feature": feature, **described, **test})
    if degenerate:
        warnings.warn("cannot test " + "; ".join(degenerate) + ": statistics are NaN",
                      DegenerateDataWarning, stacklevel=2)
    columns = ["feature", *(f"{s}_{g}" for g in chosen for s in ("mean", "sd", "n")), "test",
               "statistic", "p", "p_adjusted", "effect", "effect_size", "effect_ci_low",
               "effect_ci_high"]
    table = pd.DataFrame(rows, columns=columns)
    table["p_adjusted"] = _adjust(table, correction)
    return GroupComparison(table=table, groups=chosen, correction=correction,
                           n_operators={g: int(present[g]) for g in chosen}, values=values)


def _tests(samples: list[np.ndarray], ci: float) -> tuple[list[dict], str | None]:
    """The two tests of one feature, and why they are NaN (None when computed)."""
    import numpy as np
    from scipy import stats

    two = len(samples) == 2
    names = ("welch", "mann-whitney") if two else ("welch-anova", "kruskal-wallis")
    effect = "hedges_g" if two else "epsilon_squared"
    nan = {"statistic": math.nan, "p": math.nan, "effect": effect, "effect_size": math.nan,
           "effect_ci_low": math.nan, "effect_ci_high": math.nan}
    if min(len(x) for x in samples) < 2:
        return [{"test": t, **nan} for t in names], "a group has fewer than 2 operators"
    pooled = np.concatenate(samples)
    if np.ptp(pooled) == 0:
        return [{"test": t, **nan} for t in names], "no variation between operators"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if two:
            a, b = samples
            welch = stats.ttest_ind(b, a, equal_var=False)
            rank = stats.mannwhitneyu(b, a, alternative="two-sided")
            size, low, high = _hedges_g(a, b, ci)
            eff = {"effect": effect, "effect_size": size, "effect_ci_low": low,
                   "effect_ci_high": high}
            results = [(welch.statistic, welch.pvalue, eff), (rank.statistic, rank.pvalue, eff)]
        else:
            anova = stats.f_oneway(*samples, equal_var=False)
            kruskal = stats.kruskal(*samples)
            n = len(pooled)
            ss_total = float(np.sum((pooled - pooled.mean()) ** 2))
            ss_between = float(sum(len(x) * (x.mean() - pooled.mean()) ** 2 for x in samples))
            ms_within = (ss_total - ss_between) / (n - len(samples))
            eps_anova = (ss_between - (len(samples) - 1) * ms_within) / ss_total
            eps_rank = kruskal.statistic / (n - 1)
            results = [
                (anova.statistic, anova.pvalue, {**nan, "effect_size": eps_anova}),
                (kruskal.statistic, kruskal.pvalue, {**nan, "effect_size": eps_rank}),
            ]
    rows = [{"test": name, **nan, **eff, "statistic": float(s), "p": float(p)}
            for name, (s, p, eff) in zip(names, results, strict=True)]
    return rows, None


def _hedges_g(a: np.ndarray, b: np.ndarray, ci: float) -> tuple[float, float, float]:
    """Hedges' g of ``b - a`` (pooled SD, small-sample corrected) and its normal-approx CI."""
    from scipy import stats

    n1, n2 = len(a), len(b)
    pooled = math.sqrt(((n1 - 1) * a.var(ddof=1) + (n2 - 1) * b.var(ddof=1)) / (n1 + n2 - 2))
    if pooled == 0:
        return math.nan, math.nan, math.nan
    g = (1 - 3 / (4 * (n1 + n2) - 9)) * (b.mean() - a.mean()) / pooled
    se = math.sqrt((n1 + n2) / (n1 * n2) + g * g / (2 * (n1 + n2)))
    z = stats.norm.ppf((1 + ci) / 2)
    return float(g), float(g - z * se), float(g + z * se)


def _adjust(table: pd.DataFrame, correction: str) -> pd.Series:
    """p-values corrected over the features, separately for each test; NaN stays NaN."""
    import pandas as pd
    from statsmodels.stats.multitest import multipletests

    adjusted = pd.Series(math.nan, index=table.index, dtype="float64")
    for _, part in table.groupby("test", sort=False):
        ok = part["p"].notna()
        if not ok.any():
            continue
        p = part.loc[ok, "p"].to_numpy(dtype=float)
        adjusted[part.index[ok]] = p if correction == "none" else multipletests(
            p, method=correction)[1]
    return adjusted


# --- mixed model ---------------------------------------------------------------------------------

def mixed_model_durations(store: Store, selection: EventSelection, *,
                          groups: Sequence[str] | None = None) -> pd.DataFrame:
    """Group effect on each category's duration, by a linear mixed model of log durations.

    For each category, on the scans where it is present: ``log(duration_s) ~ group`` with a
    random intercept per operator (statsmodels ``MixedLM``, REML), so that an operator's scans
    share their operator's level.

    Parameters
    ----------
    store : Store
    selection : EventSelection
    groups : sequence of str, optional
        Groups to compare, reference first (default: every group present, sorted).

    Returns
    -------
    pandas.DataFrame
        One row per category and non-reference group: ``label, group, reference``; ``coef``
        (difference of mean log duration, group minus reference) with ``ci_low, ci_high``
        (95% Wald) and ``p``; ``ratio, ratio_ci_low, ratio_ci_high`` (``exp`` of those: the
        ratio of geometric mean durations); ``n_scans, n_operators`` (used in the fit);
        ``converged`` (the optimiser converged); ``on_boundary`` (the operator variance was
        estimated at about 0: the fit is then close to ordinary least squares); ``reason`` (why
        a row is NaN, else None).

    Raises
    ------
    SingleGroupError, UnknownGroupError
        As for `compare_groups`.
    """
    import numpy as np
    import pandas as pd

    chosen = _resolve_groups(_groups_present(store, selection), groups)
    reference, others = chosen[0], chosen[1:]
    times = category_times(store, selection)
    labels = pd.unique(times["label"])
    times = times[times["grp"].isin(chosen) & (times["duration_s"] > 0)]
    rows = []
    for label in labels:
        data = times[times["label"] == label]
        here = [g for g in others if (data["grp"] == g).any()]
        fit, reason = None, None
        n_ops = data["operator_id"].nunique()
        if not (data["grp"] == reference).any():
            reason = f"no scan of the reference group {reference!r} has {label}"
        elif not here:
            reason = f"no scan of {', '.join(others)} has {label}"
        elif n_ops < 3:
            reason = f"only {n_ops} operator(s) have {label}"
        elif len(data) <= len(here) + 2:
            reason = f"only {len(data)} scans have {label}"
        else:
            fit, reason = _fit_mixed(data, reference, here)
        for g in others:
            row = {"label": label, "group": g, "reference": reference, "coef": math.nan,
                   "ci_low": math.nan, "ci_high": math.nan, "p": math.nan,
                   "n_scans": len(data), "n_operators": n_ops, "converged": False,
                   "on_boundary": False, "reason": reason}
            if fit is not None and g in here:
                row.update(fit[g])
            elif reason is None:
                row["reason"] = f"no scan of {g!r} has {label}"
            rows.append(row)
    columns = ["label", "group", "reference", "coef", "ci_low", "ci_high", "p", "ratio",
               "ratio_ci_low", "ratio_ci_high", "n_scans", "n_operators", "converged",
               "on_boundary", "reason"]
    table = pd.DataFrame(rows, columns=columns)
    table["reason"] = pd.Series([row["reason"] for row in rows], index=table.index,
                                dtype=object)
    for col, src in (("ratio", "coef"), ("ratio_ci_low", "ci_low"), ("ratio_ci_high", "ci_high")):
        table[col] = np.exp(table[src].astype(float))
    table["converged"] = table["converged"].astype(bool)
    table["on_boundary"] = table["on_boundary"].astype(bool)
    return table


def _fit_mixed(data: pd.DataFrame, reference: str, others: list[str]
               ) -> tuple[dict | None, str | None]:
    """Fit one category's model; per group the result fields, or None and why."""
    import numpy as np
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    y = np.log(data["duration_s"].to_numpy(dtype=float))
    exog = np.column_stack([np.ones(len(data))] +
                           [(data["grp"] == g).to_numpy(dtype=float) for g in others])
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = sm.MixedLM(y, exog, groups=data["operator_id"].to_numpy())
            result = model.fit(reml=True)
        notes = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
        # "The MLE may be on the boundary" (operator variance ~0) is a fit, not a failure.
        on_boundary = any("boundary" in n for n in notes)
        failed = any("boundary" not in n and "singular" not in n for n in notes)
        converged = bool(getattr(result, "converged", True)) and not failed
        params = np.asarray(result.fe_params)
        bse = np.asarray(result.bse_fe)
        pvalues = np.asarray(result.pvalues)[: len(params)]
    except (np.linalg.LinAlgError, ValueError) as exc:
        return None, f"the model could not be fitted: {exc}"
    if not np.all(np.isfinite(bse[1:])):
        return None, "the model's standard errors are undefined (singular fit)"
    from scipy import stats

    z = stats.norm.ppf(0.975)
    fit = {}
    for j, g in enumerate(others, start=1):
        fit[g] = {"coef": float(params[j]), "ci_low": float(params[j] - z * bse[j]),
                  "ci_high": float(params[j] + z * bse[j]), "p": float(pvalues[j]),
                  "converged": converged, "on_boundary": on_boundary, "reason": None}
    return fit, None


# --- transitions ---------------------------------------------------------------------------------

def _operator_transition_counts(
        store: Store, selection: EventSelection, *, groups: Sequence[str] | None,
        categories: Sequence[str] | None, skip_background: bool,
) -> tuple[pd.DataFrame, tuple[str, ...], np.ndarray]:
    """Per operator (with scans in the selection): its group and its transition counts.

    Returns the operators (``operator_id, grp``), the categories and counts of shape
    ``(n_operators, K, K)`` (row: from, column: to).
    """
    import numpy as np

    ctes, params = sequence_ctes(selection, skip_background=skip_background)
    counts = store.query_df(f"""
        WITH {ctes}
        SELECT sc.operator_id, t.from_label, t.to_label, sum(t.n)::BIGINT AS n
        FROM tcount t JOIN scans sc ON sc.scan_id = t.scan_id
        GROUP BY ALL""", params)
    ops = store.query_df(f"""
        WITH {ctes}
        SELECT DISTINCT sc.operator_id, o.grp
        FROM merged m JOIN scans sc ON sc.scan_id = m.scan_id
        JOIN operators o ON o.operator_id = sc.operator_id
        ORDER BY o.grp, sc.operator_id""", params)
    if groups is not None:
        ops = ops[ops["grp"].isin(list(groups))].reset_index(drop=True)
    if categories is None:
        seen = set(counts["from_label"]) | set(counts["to_label"])
        cats = tuple(c for c in taxonomy.codes() if c in seen)
    else:
        cats = tuple(dict.fromkeys(taxonomy.validate_code(c) for c in categories))
    index = {c: i for i, c in enumerate(cats)}
    op_index = {o: i for i, o in enumerate(ops["operator_id"])}
    tensor = np.zeros((len(ops), len(cats), len(cats)))
    keep = (counts["operator_id"].isin(op_index) & counts["from_label"].isin(index)
            & counts["to_label"].isin(index))
    kept = counts[keep]
    np.add.at(tensor, (kept["operator_id"].map(op_index).to_numpy(dtype=int),
                       kept["from_label"].map(index).to_numpy(dtype=int),
                       kept["to_label"].map(index).to_numpy(dtype=int)),
              kept["n"].to_numpy(dtype=float))
    return ops, cats, tensor


def _smooth(counts: np.ndarray, alpha: float) -> np.ndarray:
    """Row-stochastic matrices from counts (..., K, K): ``alpha`` added off the diagonal.

    Merged sequences never repeat a label, so the diagonal is a structural zero and stays 0.
    Rows without counts (and ``alpha == 0``) are NaN.
    """
    import numpy as np

    k = counts.shape[-1]
    off = 1.0 - np.eye(k)
    smoothed = (counts + alpha) * off
    totals = smoothed.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, smoothed / totals, np.nan)


def transition_matrices(store: Store, selection: EventSelection, *, alpha: float = 1.0,
                        groups: Sequence[str] | None = None,
                        categories: Sequence[str] | None = None,
                        skip_background: bool = False) -> dict[str, pd.DataFrame]:
    """Each group's first-order transition matrix over the merged label sequences.

    Counts of transitions from each category to the next, pooled over the group's scans, with
    Laplace smoothing: ``P[i, j] = (N[i, j] + alpha) / (N[i] + alpha * (K - 1))`` for ``j != i``
    and 0 on the diagonal (a merged sequence never repeats a label).

    Parameters
    ----------
    store : Store
    selection : EventSelection
    alpha : float, optional
        Pseudo-count added to each off-diagonal cell, >= 0.
    groups : sequence of str, optional
        The groups (default: every group present).
    categories : sequence of str, optional
        Rows and columns (default: the labels that occur in the selection's sequences, in
        taxonomy order). Transitions from or to other labels are left out.
    skip_background : bool, optional
        Drop background (``Bk``) events before merging.

    Returns
    -------
    dict of str to pandas.DataFrame
        Group -> K x K row-stochastic matrix (index: from, columns: to). A row without counts
        and ``alpha == 0`` is NaN.

    Raises
    ------
    UnknownGroupError
        A group of `groups` has no scans in the selection.
    ValueError
        `alpha` is negative.
    """
    import pandas as pd

    if not alpha >= 0:
        raise ValueError(f"`alpha` must be >= 0, got {alpha!r}")
    present = _groups_present(store, selection)
    if groups is not None:
        wanted = (groups,) if isinstance(groups, str) else tuple(groups)
        absent = [g for g in wanted if g not in present]
        if absent:
            raise UnknownGroupError(
                f"no operator of group(s) {', '.join(map(repr, absent))} has scans in the "
                f"selection; groups present: {', '.join(map(repr, present))}")
    else:
        wanted = tuple(present)
    ops, cats, tensor = _operator_transition_counts(
        store, selection, groups=wanted, categories=categories, skip_background=skip_background)
    matrices = {}
    for g in wanted:
        pooled = tensor[(ops["grp"] == g).to_numpy()].sum(axis=0)
        matrix = pd.DataFrame(_smooth(pooled, alpha), index=list(cats), columns=list(cats))
        matrix.index.name, matrix.columns.name = "from_label", "to_label"
        matrices[g] = matrix
    return matrices


def _distance(p: np.ndarray, q: np.ndarray, distance: str) -> np.ndarray:
    """Distance between stacks of matrices (..., K, K), ignoring NaN rows."""
    import numpy as np

    diff = p - q
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if distance == "total_variation":
            return np.nanmean(0.5 * np.abs(diff).sum(axis=-1), axis=-1)
        return np.sqrt(np.nansum(diff ** 2, axis=(-2, -1)))


def transition_permutation_test(
        store: Store, selection: EventSelection, *,
        groups: tuple[str, str] = ("expert", "trainee"), n_perm: int = 1000, seed: int = 0,
        alpha: float = 1.0, distance: str = "total_variation",
        skip_background: bool = False) -> TransitionTest:
    """Do two groups' transition matrices differ? A permutation test over operators.

    The statistic is the distance between the groups' smoothed matrices (see
    `transition_matrices`); its null distribution comes from shuffling the group labels over
    the operators (each operator keeps all their scans), so dependence within an operator is
    respected.

    Parameters
    ----------
    store : Store
    selection : EventSelection
    groups : (str, str), optional
        The two groups.
    n_perm : int, optional
        Permutations.
    seed : int, optional
        Seed of the permutations.
    alpha : float, optional
        Laplace pseudo-count (> 0 keeps every row defined).
    distance : {'total_variation', 'frobenius'}, optional
        Mean over rows of the total variation distance, or the Frobenius norm of the difference.
    skip_background : bool, optional
        Drop background (``Bk``) events before merging.

    Returns
    -------
    TransitionTest

    Raises
    ------
    SingleGroupError, UnknownGroupError
        Not two distinct groups present in the selection.

    Warns
    -----
    DegenerateDataWarning
        A group has fewer than 2 operators: p is NaN.
    """
    import numpy as np

    check_choice("distance", distance, DISTANCES)
    if not alpha >= 0:
        raise ValueError(f"`alpha` must be >= 0, got {alpha!r}")
    if int(n_perm) != n_perm or n_perm < 1:
        raise ValueError(f"`n_perm` must be a positive integer, got {n_perm!r}")
    present = _groups_present(store, selection)
    chosen = _resolve_groups(present, groups)
    if len(chosen) != 2:
        raise GroupError(f"`groups` must name exactly two groups, got {', '.join(chosen)}")
    ops, _, tensor = _operator_transition_counts(
        store, selection, groups=chosen, categories=None, skip_background=skip_background)
    k = tensor.shape[-1]
    flat = tensor.reshape(len(ops), k * k)
    total = flat.sum(axis=0)
    first = (ops["grp"] == chosen[0]).to_numpy(dtype=float)

    def statistic(assign: np.ndarray) -> np.ndarray:
        a = assign @ flat
        shape = (*assign.shape[:-1], k, k)
        return _distance(_smooth(a.reshape(shape), alpha),
                         _smooth((total - a).reshape(shape), alpha), distance)

    observed = float(statistic(first))
    rng = np.random.default_rng(seed)
    perms = rng.permuted(np.tile(first, (int(n_perm), 1)), axis=1)
    null = statistic(perms)
    n_ops = {g: int((ops["grp"] == g).sum()) for g in chosen}
    if min(n_ops.values()) < 2:
        warnings.warn(
            f"a permutation test needs at least 2 operators per group, got "
            f"{', '.join(f'{g}: {n}' for g, n in n_ops.items())}: p is NaN",
            DegenerateDataWarning, stacklevel=2)
        p = math.nan
    else:
        p = float((1 + np.sum(null >= observed - 1e-12)) / (1 + len(null)))
    return TransitionTest(statistic=observed, p=p, distance=distance, groups=chosen,
                          n_perm=int(n_perm), n_operators=n_ops, alpha=float(alpha),
                          null_distribution=null)


# --- n-grams and directly-follows graphs ---------------------------------------------------

NGRAM_SEPARATOR = " > "
"""Separator of the labels of an n-gram, e.g. ``"Br > HeD"``."""


def ngrams(store: Store, selection: EventSelection, *, n: int = 2, top: int | None = 10,
           by_group: bool = True, skip_background: bool = False) -> pd.DataFrame:
    """The most frequent runs of `n` consecutive categories in the merged sequences.

    Parameters
    ----------
    store : Store
    selection : EventSelection
    n : int, optional
        Length of the n-grams, 1 to 10 (2: transitions, 3: triples).
    top : int or None, optional
        Keep the `top` most frequent per group (None: all).
    by_group : bool, optional
        Count per group; else over the whole selection (``grp`` is then ``"all"``).
    skip_background : bool, optional
        Drop background (``Bk``) events before merging.

    Returns
    -------
    pandas.DataFrame
        Columns ``grp, ngram`` (labels joined by ``" > "``), ``count`` (occurrences over all
        scans), ``share`` (of all n-grams of the group, in [0, 1]), ``n_scans`` (scans where it
        occurs); sorted by group, then count (descending), then n-gram.
    """
    if int(n) != n or not 1 <= n <= 10:
        raise ValueError(f"`n` must be an integer from 1 to 10, got {n!r}")
    if top is not None and (int(top) != top or top < 1):
        raise ValueError(f"`top` must be a positive integer or None, got {top!r}")
    ctes, params = sequence_ctes(selection, skip_background=skip_background)
    leads = ", ".join(f"lead(label, {k}) OVER w AS l{k}" for k in range(1, n))
    parts = " || ".join(["label", *(f"'{NGRAM_SEPARATOR}' || l{k}" for k in range(1, n))])
    last = f"l{n - 1}" if n > 1 else "label"
    grp = "o.grp" if by_group else "'all'"
    sql = f"""
    WITH {ctes},
    grams AS (
        SELECT scan_id, {parts} AS ngram, {last} AS last_label
        FROM (SELECT scan_id, label{', ' + leads if leads else ''} FROM merged
              WINDOW w AS (PARTITION BY scan_id ORDER BY seg_id))
    ),
    counted AS (
        SELECT {grp} AS grp, g.ngram, count(*) AS count, count(DISTINCT g.scan_id) AS n_scans
        FROM grams g JOIN scans sc ON sc.scan_id = g.scan_id
        JOIN operators o ON o.operator_id = sc.operator_id
        WHERE g.last_label IS NOT NULL
        GROUP BY ALL
    ),
    ranked AS (
        SELECT *, count / sum(count) OVER (PARTITION BY grp) AS share,
               row_number() OVER (PARTITION BY grp ORDER BY count DESC, ngram) AS rank
        FROM counted
    )
    SELECT grp, ngram, count::BIGINT AS count, share, n_scans::BIGINT AS n_scans
    FROM ranked WHERE ? IS NULL OR rank <= ?
    ORDER BY grp, rank
    """
    return store.query_df(sql, [*params, top, top]).reset_index(drop=True)


def directly_follows_graph(store: Store, selection: EventSelection, *,
                           group: str | None = None,
                           skip_background: bool = False) -> pd.DataFrame:
    """The directly-follows graph of the merged sequences: which category follows which.

    Parameters
    ----------
    store : Store
    selection : EventSelection
    group : str, optional
        Only scans of this group's operators (default: all).
    skip_background : bool, optional
        Drop background (``Bk``) events before merging, so the graph links structures.

    Returns
    -------
    pandas.DataFrame
        One row per edge: ``source, target`` (category codes), ``count`` (transitions over all
        scans), ``n_scans`` (scans with the transition), ``mean_gap_s`` (mean unlabelled time
        between the end of ``source`` and the start of ``target``, seconds); sorted by count,
        descending.

    Raises
    ------
    UnknownGroupError
        `group` has no scans in the selection.
    """
    if group is not None:
        present = _groups_present(store, selection)
        if group not in present:
            raise UnknownGroupError(
                f"no operator of group {group!r} has scans in the selection; groups present: "
                f"{', '.join(map(repr, present))}")
    ctes, params = sequence_ctes(selection, skip_background=skip_background)
    sql = f"""
    WITH {ctes},
    pairs AS (
        SELECT scan_id, label AS source,
               lead(label) OVER w AS target, lead(start_s) OVER w - end_s AS gap_s
        FROM merged WINDOW w AS (PARTITION BY scan_id ORDER BY seg_id)
    )
    SELECT p.source, p.target, count(*)::BIGINT AS count,
           count(DISTINCT p.scan_id)::BIGINT AS n_scans, avg(p.gap_s) AS mean_gap_s
    FROM pairs p JOIN scans sc ON sc.scan_id = p.scan_id
    JOIN operators o ON o.operator_id = sc.operator_id
    WHERE p.target IS NOT NULL AND (?::VARCHAR IS NULL OR o.grp = ?::VARCHAR)
    GROUP BY p.source, p.target
    ORDER BY count DESC, p.source, p.target
    """
    return store.query_df(sql, [*params, group, group]).reset_index(drop=True)


DFG_FORMATS = {".dot": "dot", ".gv": "dot", ".json": "json"}
"""File suffixes `write_dfg` understands, and the format each means."""


def write_dfg(dfg: pd.DataFrame, path: str | Path, *, title: str | None = None) -> Path:
    """Write a directly-follows graph as Graphviz DOT (``.dot``, ``.gv``) or JSON (``.json``).

    Parameters
    ----------
    dfg : pandas.DataFrame
        The output of `directly_follows_graph` (``source, target, count`` at least).
    path : str or Path
        The file; its suffix chooses the format.
    title : str, optional
        Graph label (DOT) or ``title`` field (JSON).

    Returns
    -------
    Path
        `path`.

    Notes
    -----
    DOT nodes take the taxonomy's colours and names; edge width grows with the count. JSON holds
    ``{"title", "nodes": [{"id", "name", "colour"}], "edges": [{"source", "target", "count",
    ...}]}``.
    """
    from analytics._checks import check_columns

    path = Path(path)
    check_columns(dfg, "dfg", ("source", "target", "count"))
    fmt = DFG_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot tell the format of {path.name}: use one of the suffixes "
                         f"{', '.join(DFG_FORMATS)}")
    nodes = list(dict.fromkeys([*dfg["source"], *dfg["target"]]))
    known = set(taxonomy.codes())

    def node_info(code: str) -> dict:
        if code in known:
            c = taxonomy.get(code)
            return {"id": code, "name": c.name, "colour": c.colour}
        return {"id": code, "name": code, "colour": "#cccccc"}

    if fmt == "json":
        edges = json.loads(dfg.to_json(orient="records"))
        payload = {"title": title, "nodes": [node_info(n) for n in nodes], "edges": edges}
        path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        return path

    def quote(text: object) -> str:
        return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'

    def quote_lines(*lines: str) -> str:
        return "\\n".join(quote(line)[1:-1] for line in lines).join('""')

    top = max(float(dfg["count"].max()), 1.0) if len(dfg) else 1.0
    lines = ["digraph dfg {", "  rankdir=LR;",
             '  node [shape=box, style="rounded,filled", fontname="Helvetica"];']
    if title:
        lines.append(f"  label={quote(title)}; labelloc=t;")
    for code in nodes:
        info = node_info(code)
        lines.append(f"  {quote(code)} [label={quote_lines(code, info['name'])}, "
                     f"fillcolor={quote(info['colour'] + '80')}];")
    for row in dfg.itertuples(index=False):
        width = 1 + 4 * float(row.count) / top
        lines.append(f"  {quote(row.source)} -> {quote(row.target)} "
                     f"[label={quote(int(row.count))}, penwidth={width:.2f}];")
    lines.append("}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    log.info("wrote the directly-follows graph (%d edges) to %s", len(dfg), path)
    return path

