"""Comparing groups of operators: expert vs trainee, or any two or more groups.

Events and scans of one operator are not independent, so every test here is on operator-level
values (the mean over the operator's scans) or models the operator explicitly (a random
intercept in `mixed_model_durations`); `analytics.sequences` compares their transitions by
permuting operators.

The first group (of `groups`, or of the sorted group names) is the reference: differences,
effect sizes and model coefficients are those of each other group relative to it.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from analytics.features import (
    SCAN_FEATURE_NUMERIC,
    category_times,
    scan_features,
)
from analytics.warnings import DegenerateDataWarning
from fetal_analytics.checks import check_choice
from fetal_analytics.errors import UserError
from fetal_analytics.results import Result, format_p, plain

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from analytics.selection import EventSelection
    from fetal_analytics.store import Store

__all__ = [
    "CENSORED_FEATURES",
    "CORRECTIONS",
    "MIXED_OPTIMISERS",
    "GroupComparison",
    "GroupError",
    "MixedModelResult",
    "SingleGroupError",
    "UnknownGroupError",
    "compare_groups",
    "compare_groups_of",
    "compare_values",
    "groups_present",
    "mixed_model_durations",
    "mixed_model_fit",
    "operator_values",
    "operator_values_of",
    "resolve_groups",
]

log = logging.getLogger(__name__)

CORRECTIONS = ("holm", "fdr_bh", "none")
"""Multiple-testing corrections of `compare_groups` (statsmodels' method names)."""

CENSORED_FEATURES = ("time_to_full_coverage_min",)
"""Per-scan features that are censored times (a scan that never covers the protocol has none):
`compare_groups` leaves them out, and `analytics.coverage.coverage_times` compares them."""

DURATION_PREFIX = "duration_min:"
"""Prefix of the per-category duration features, e.g. ``duration_min:HeD`` (minutes per scan)."""


class GroupError(UserError, ValueError):
    """The groups asked for cannot be compared."""


class SingleGroupError(GroupError):
    """Fewer than two groups to compare."""


class UnknownGroupError(GroupError):
    """A group asked for has no operator with scans in the selection."""


@dataclass(frozen=True)
class GroupComparison(Result):
    """Tests of the difference between groups, one family of tests per feature.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per feature and test. Columns: ``feature``; ``mean_G, sd_G, n_G, scans_G`` for
        each group G (operator-level values; n counts operators, scans the scans behind their
        means); ``test`` ('welch' and 'mann-whitney' for
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
        The operator-level values tested: ``operator_id, group, feature, value, n_scans``.
    pairwise : pandas.DataFrame
        With more than two groups, the post-hoc tests of each pair: ``feature, group_a,
        group_b, test`` ('welch', 'mann-whitney'), ``statistic, p, p_adjusted`` (corrected
        over the pairs of each feature and test); empty with two groups.
    family : str
        The families the corrections were applied over, for every output to state.
    selection : str
        The events compared (`EventSelection.description`).
    """

    table: pd.DataFrame
    groups: tuple[str, ...]
    correction: str
    n_operators: dict[str, int]
    values: pd.DataFrame = field(repr=False)
    pairwise: pd.DataFrame = field(repr=False, default=None)
    family: str = ""
    selection: str = ""

    frame_field: ClassVar[str] = "table"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: one record per feature and test, each group's mean, SD and n nested
        under ``values``; the operator-level values as records."""
        features = []
        for row in plain(self.table):
            values = {g: {stat: row.pop(f"{stat}_{g}", None)
                          for stat in ("mean", "sd", "n", "scans")} for g in self.groups}
            features.append({"feature": row.pop("feature"), "values": values, **row})
        return {"selection": self.selection, "groups": list(self.groups),
                "correction": self.correction, "family": self.family,
                "n_operators": plain(self.n_operators), "features": features,
                "pairwise": plain(self.pairwise), "operator_values": plain(self.values)}

    def readable(self) -> list[dict[str, str]]:
        """One row per feature for people: each group's mean ± SD, each test's p (corrected),
        and the effect size with its CI, as text (blank where not computable). The column of
        Hedges' g names its direction, e.g. ``Hedges' g (trainee - expert)``: the second group
        minus the first, in the order of `groups`."""
        def short(value: float, spec: str) -> str:
            return "" if value != value else format(value, spec)  # NaN: not computable

        rows = []
        for feature, tests in self.table.groupby("feature", sort=False):
            first = tests.iloc[0]
            row: dict[str, str] = {"feature": feature}
            for group in self.groups:
                row[group] = (f"{short(first[f'mean_{group}'], '.3g')} ± "
                              f"{short(first[f'sd_{group}'], '.2g')}"
                              if first[f"n_{group}"] else "")
            for test in tests.itertuples():
                row[f"{test.test} p (corrected)"] = (
                    f"{format_p(test.p)} ({format_p(test.p_adjusted)})"
                    if test.p == test.p else "")
            size, low, high = (short(first[c], ".2f") for c in
                               ("effect_size", "effect_ci_low", "effect_ci_high"))
            row[self._effect_column(first["effect"])] = (f"{size} [{low}, {high}]" if low
                                                          else size)
            rows.append(row)
        return rows

    def _effect_column(self, effect: str) -> str:
        """The readable name of the effect size; Hedges' g says its direction."""
        if effect == "hedges_g":
            first, second = self.groups
            return f"Hedges' g ({second} - {first})"
        return effect.replace("_", " ")


@dataclass(frozen=True)
class MixedModelResult(Result):
    """The group effect on each category's duration from `mixed_model_durations`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per category and non-reference group (columns: see `mixed_model_durations`).
    groups : tuple of str
        The groups compared, reference first.
    selection : str
        The events modelled (`EventSelection.description`).
    """

    table: pd.DataFrame
    groups: tuple[str, ...]
    selection: str = ""

    frame_field: ClassVar[str] = "table"


# --- groups ------------------------------------------------------------------------------------

def groups_present(store: Store, selection: EventSelection) -> dict[str, int]:
    cte, params = selection.cte()
    rows = store.con.execute(
        f"""WITH {cte}
        SELECT o.grp, count(DISTINCT o.operator_id)
        FROM (SELECT DISTINCT scan_id FROM sel) s
        JOIN scans sc ON sc.scan_id = s.scan_id
        JOIN operators o ON o.operator_id = sc.operator_id
        GROUP BY o.grp ORDER BY o.grp""", params).fetchall()
    return dict(rows)


def resolve_groups(present: dict[str, int], groups: Sequence[str] | str | None, *,
                   minimum: int = 2) -> tuple[str, ...]:
    """The groups to compare, reference first; errors name the groups present.

    Raises `UnknownGroupError` for a group without scans and `SingleGroupError` for fewer than
    `minimum` groups."""
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
    if len(chosen) < minimum:
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
        Columns ``operator_id, group, feature, value, n_scans`` (the scans behind the mean),
        one row per operator and feature. The
        features are the numeric columns of `analytics.features.scan_features` and
        ``duration_min:CODE`` (minutes per scan spent on the category, 0 where absent) for each
        category in scope. NaN scan values (e.g. a scan that never covered the protocol) are
        left out of the mean; ``value`` is NaN where all of the operator's scans are NaN.
    """
    return operator_values_of(scan_features(store, selection), category_times(store, selection),
                              groups=groups)


def operator_values_of(scans: pd.DataFrame, cats: pd.DataFrame, *,
                       groups: Sequence[str] | None = None) -> pd.DataFrame:
    """`operator_values` from a selection's `scan_features` and `category_times` at hand (a
    dashboard reads them once for several analyses)."""
    import pandas as pd

    order = [*SCAN_FEATURE_NUMERIC,
             *(DURATION_PREFIX + c for c in pd.unique(cats["label"]))]
    long = pd.concat([
        scans.melt(id_vars=["scan_id", "operator_id", "group"],
                   value_vars=list(SCAN_FEATURE_NUMERIC), var_name="feature",
                   value_name="value"),
        cats.assign(feature=DURATION_PREFIX + cats["label"].astype(str), value=cats["duration_min"])
        [["scan_id", "operator_id", "group", "feature", "value"]],
    ], ignore_index=True)
    long["value"] = long["value"].astype("float64")
    if groups is not None:
        long = long[long["group"].isin(list(groups))]
    values = (long.groupby(["operator_id", "group", "feature"], sort=False)["value"]
              .agg(value="mean", n_scans="count").reset_index())
    values["feature"] = pd.Categorical(values["feature"], categories=order)
    values = values.sort_values(["feature", "group", "operator_id"], kind="stable")
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
    check_choice("correction", correction, CORRECTIONS)
    chosen = resolve_groups(groups_present(store, selection), groups)
    return compare_values(operator_values(store, selection, groups=chosen), groups=chosen,
                          correction=correction, features=features, ci=ci,
                          selection=selection.description)


def compare_groups_of(values: pd.DataFrame, *, groups: Sequence[str] | None = None,
                      correction: str = "holm", features: Sequence[str] | None = None,
                      ci: float = 0.95, selection: str = "") -> GroupComparison:
    """`compare_groups` on the operator-level values of a selection at hand
    (`operator_values_of`): the groups present are those of `values`.

    Raises
    ------
    SingleGroupError, UnknownGroupError, ValueError
        As `compare_groups`.
    """
    check_choice("correction", correction, CORRECTIONS)
    present = values.groupby("group", sort=True)["operator_id"].nunique()
    chosen = resolve_groups({str(g): int(n) for g, n in present.items()}, groups)
    return compare_values(values[values["group"].isin(chosen)], groups=chosen,
                          correction=correction, features=features, ci=ci, selection=selection)


def compare_values(values: pd.DataFrame, *, groups: Sequence[str],
                   correction: str = "holm", features: Sequence[str] | None = None,
                   ci: float = 0.95, selection: str = "") -> GroupComparison:
    """The tests of `compare_groups` on operator-level values already at hand.

    Parameters
    ----------
    values : pandas.DataFrame
        One row per operator and feature: ``operator_id, group, feature, value`` and
        optionally ``n_scans`` (as `operator_values` gives).
    groups : sequence of str
        The groups to compare, reference first (at least two).
    correction, features, ci
        As for `compare_groups`.
    selection : str, optional
        What the values describe, kept in the result.

    Returns
    -------
    GroupComparison
    """
    import numpy as np
    import pandas as pd

    check_choice("correction", correction, CORRECTIONS)
    if not 0 < ci < 1:
        raise ValueError(f"`ci` must be a confidence level in (0, 1), got {ci!r}")
    chosen = tuple(groups)
    if len(chosen) < 2:
        raise SingleGroupError(f"a group comparison needs at least two groups, got "
                               f"{len(chosen)}")
    if "n_scans" not in values.columns:
        values = values.assign(n_scans=1)
    # A censored time is no operator-level mean: `analytics.coverage` compares it.
    values = values[~values["feature"].isin(CENSORED_FEATURES)].reset_index(drop=True)
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
    known = values[values["value"].notna()]
    samples_by_feature = {
        f: [frame.loc[frame["group"] == g, "value"].to_numpy(dtype=float) for g in chosen]
        for f, frame in known.groupby("feature", sort=False)
    }
    scans_by_feature = {
        f: [int(frame.loc[frame["group"] == g, "n_scans"].sum()) for g in chosen]
        for f, frame in known.groupby("feature", sort=False)
    }
    pairwise: list[dict] = []
    for feature in wanted:
        samples = samples_by_feature.get(feature, [np.zeros(0)] * len(chosen))
        described = {}
        for g, x, n_scans in zip(chosen, samples, scans_by_feature.get(feature, [0] * len(chosen)),
                                 strict=True):
            described[f"mean_{g}"] = float(np.mean(x)) if len(x) else math.nan
            described[f"sd_{g}"] = float(np.std(x, ddof=1)) if len(x) >= 2 else math.nan
            described[f"n_{g}"] = len(x)
            described[f"scans_{g}"] = n_scans
        tests, why = _tests(samples, ci)
        if why:
            degenerate.append(f"{feature} ({why})")
        for test in tests:
            rows.append({"feature": feature, **described, **test})
        if len(chosen) > 2:
            pairwise += _pairwise(feature, chosen, samples, ci)
    if degenerate:
        warnings.warn("cannot test " + "; ".join(degenerate) + ": statistics are NaN",
                      DegenerateDataWarning, stacklevel=2)
    columns = ["feature", *(f"{s}_{g}" for g in chosen for s in ("mean", "sd", "n", "scans")),
               "test", "statistic", "p", "p_adjusted", "effect", "effect_size", "effect_ci_low",
               "effect_ci_high"]
    table = pd.DataFrame(rows, columns=columns)
    table["p_adjusted"] = _adjust(table, correction)
    pairs = pd.DataFrame(pairwise, columns=["feature", "group_a", "group_b", "test",
                                            "statistic", "p", "p_adjusted"])
    if not pairs.empty:
        pairs["p_adjusted"] = _adjust(pairs, correction, family=["feature", "test"])
    family = f"p_adjusted: {correction} over the {len(wanted)} features, each test its own family"
    if len(chosen) > 2:
        n_pairs = len(chosen) * (len(chosen) - 1) // 2
        family += f"; pairwise: {correction} over the {n_pairs} pairs, per feature and test"
    n_operators = values.groupby("group")["operator_id"].nunique()
    return GroupComparison(table=table, groups=chosen, correction=correction,
                           n_operators={g: int(n_operators.get(g, 0)) for g in chosen},
                           values=values, pairwise=pairs, family=family, selection=selection)


def _pairwise(feature: str, groups: tuple[str, ...], samples: list[np.ndarray],
              ci: float) -> list[dict]:
    """Post-hoc Welch and Mann-Whitney tests of each pair of groups for one feature."""
    import itertools

    rows = []
    for (i, a), (j, b) in itertools.combinations(enumerate(groups), 2):
        tests, _ = _tests([samples[i], samples[j]], ci)
        rows += [{"feature": feature, "group_a": a, "group_b": b, "test": t["test"],
                  "statistic": t["statistic"], "p": t["p"], "p_adjusted": math.nan}
                 for t in tests]
    return rows


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


def _adjust(table: pd.DataFrame, correction: str, *,
            family: Sequence[str] = ("test",)) -> pd.Series:
    """p-values corrected within each family (default: over the features, separately for each
    test); NaN stays NaN."""
    import pandas as pd
    from statsmodels.stats.multitest import multipletests

    adjusted = pd.Series(math.nan, index=table.index, dtype="float64")
    for _, part in table.groupby(list(family), sort=False):
        ok = part["p"].notna()
        if not ok.any():
            continue
        p = part.loc[ok, "p"].to_numpy(dtype=float)
        adjusted[part.index[ok]] = p if correction == "none" else multipletests(
            p, method=correction)[1]
    return adjusted


# --- mixed model ---------------------------------------------------------------------------------

def mixed_model_durations(store: Store, selection: EventSelection, *,
                          groups: Sequence[str] | None = None) -> MixedModelResult:
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
    MixedModelResult
        Its ``table`` has one row per category and non-reference group: ``label, group,
        reference``; ``coef`` (difference of mean log duration, group minus reference) with
        ``ci_low, ci_high`` (95%) and ``p``, from Student's t with ``df`` degrees of freedom:
        the operators less the fixed effects, since the group is a property of the operator
        and about a dozen operators make Wald's z too liberal; ``ratio, ratio_ci_low,
        ratio_ci_high`` (``exp`` of those: the ratio of geometric mean durations); ``n_scans,
        n_operators`` (used in the fit); ``converged`` (the fit's own convergence flag);
        ``optimiser`` (the one that converged: bfgs first, then lbfgs, powell and nm);
        ``on_boundary`` (the operator variance was estimated at about 0: the fit is then close
        to ordinary least squares); ``reason`` (why a row is NaN, else None).

    Raises
    ------
    SingleGroupError, UnknownGroupError
        As for `compare_groups`.
    """
    chosen = resolve_groups(groups_present(store, selection), groups)
    return mixed_model_fit(category_times(store, selection), groups=chosen,
                           selection=selection.description)


def mixed_model_fit(times: pd.DataFrame, *, groups: Sequence[str],
                    selection: str = "") -> MixedModelResult:
    """The models of `mixed_model_durations` on per-scan durations already at hand.

    Parameters
    ----------
    times : pandas.DataFrame
        One row per scan and category: ``scan_id, operator_id, group, label, duration_s``
        (as `analytics.features.category_times` gives); rows with ``duration_s`` 0 are left
        out (the category was not seen).
    groups : sequence of str
        Groups to compare, reference first.
    selection : str, optional
        What the durations describe, kept in the result.
    """
    import numpy as np
    import pandas as pd

    chosen = tuple(groups)
    reference, others = chosen[0], chosen[1:]
    labels = pd.unique(times["label"])
    times = times[times["group"].isin(chosen) & (times["duration_s"] > 0)]
    rows = []
    for label in labels:
        data = times[times["label"] == label]
        here = [g for g in others if (data["group"] == g).any()]
        fit, reason = None, None
        n_ops = data["operator_id"].nunique()
        if not (data["group"] == reference).any():
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
                   "ci_low": math.nan, "ci_high": math.nan, "p": math.nan, "df": math.nan,
                   "n_scans": len(data), "n_operators": n_ops, "converged": False,
                   "optimiser": None, "on_boundary": False, "reason": reason}
            if fit is not None and g in here:
                row.update(fit[g])
            elif reason is None:
                row["reason"] = f"no scan of {g!r} has {label}"
            rows.append(row)
    columns = ["label", "group", "reference", "coef", "ci_low", "ci_high", "p", "df", "ratio",
               "ratio_ci_low", "ratio_ci_high", "n_scans", "n_operators", "converged",
               "optimiser", "on_boundary", "reason"]
    table = pd.DataFrame(rows, columns=columns)
    for column in ("reason", "optimiser"):
        table[column] = pd.Series([row[column] for row in rows], index=table.index,
                                  dtype=object)
    for col, src in (("ratio", "coef"), ("ratio_ci_low", "ci_low"), ("ratio_ci_high", "ci_high")):
        table[col] = np.exp(table[src].astype(float))
    table["converged"] = table["converged"].astype(bool)
    table["on_boundary"] = table["on_boundary"].astype(bool)
    return MixedModelResult(table=table, groups=chosen, selection=selection)


MIXED_OPTIMISERS = ("bfgs", "lbfgs", "powell", "nm")
"""Optimisers `mixed_model_durations` tries in turn until a fit converges: statsmodels' own first
choice first (L-BFGS from the default start can stop at its start values and call that
converged, which the statistics calibration caught)."""


def _fit_mixed(data: pd.DataFrame, reference: str, others: list[str]
               ) -> tuple[dict | None, str | None]:
    """Fit one category's model; per group the result fields, or None and why."""
    import numpy as np
    import statsmodels.api as sm
    from scipy import stats

    y = np.log(data["duration_s"].to_numpy(dtype=float))
    exog = np.column_stack([np.ones(len(data))] +
                           [(data["group"] == g).to_numpy(dtype=float) for g in others])
    model = sm.MixedLM(y, exog, groups=data["operator_id"].to_numpy())
    result, optimiser, errors = None, None, []
    for optimiser in MIXED_OPTIMISERS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence is read from the fit itself
                fit = model.fit(reml=True, method=optimiser)
        except (np.linalg.LinAlgError, ValueError) as exc:
            errors.append(f"{optimiser}: {str(exc).strip().splitlines()[0]}")
            continue
        if fit.converged and np.all(np.isfinite(np.asarray(fit.bse_fe))):
            result = fit
            break
        errors.append(f"{optimiser}: did not converge")
    if result is None:
        return None, "the model could not be fitted (" + "; ".join(errors) + ")"
    params, bse = np.asarray(result.fe_params), np.asarray(result.bse_fe)
    n_operators = data["operator_id"].nunique()
    df = n_operators - len(params)
    if df < 1:
        return None, f"too few operators ({n_operators}) for {len(params)} fixed effects"
    quantile = float(stats.t.ppf(0.975, df))
    on_boundary = float(np.asarray(result.cov_re)[0, 0]) <= 1e-6 * float(result.scale)
    fit_rows = {}
    for j, g in enumerate(others, start=1):
        t_value = params[j] / bse[j]
        fit_rows[g] = {"coef": float(params[j]), "ci_low": float(params[j] - quantile * bse[j]),
                       "ci_high": float(params[j] + quantile * bse[j]),
                       "p": float(2 * stats.t.sf(abs(t_value), df)), "df": df,
                       "converged": True, "optimiser": optimiser, "on_boundary": on_boundary,
                       "reason": None}
    return fit_rows, None
