"""Descriptive statistics of workflow features: mean +- SD and confidence intervals.

The unit of analysis is chosen with `by`:

``"scan"``
    Each scan is one value; the table describes the cohort (as the paper's Table 3: mean +- SD
    duration in minutes and mean share per scan).
``"operator"``
    Each operator's scans are first averaged (one value per operator and category), and the
    table describes the cohort's operators, so that an operator with many scans does not weigh
    more than one with few.
``"group"``
    As ``"operator"``, with one block of rows per group (expert, trainee, ...).

Scans of one operator are not independent, so every interval is clustered by operator
(`Summary.cluster` is ``"operator"``):

``ci_method="t"``
    With ``by="scan"``, the mean over scans with a cluster-robust standard error (CR2, the
    bias-reduced sandwich of Bell & McCaffrey, 2002) and a t quantile with G - 1 degrees of
    freedom, G the number of operators (`cluster_mean_ci`). With ``by="operator"`` or
    ``"group"``, operators are the unit: the Student-t interval of the operator means.
``ci_method="bootstrap"``
    A studentised (bootstrap-t) cluster bootstrap: operators are resampled with all their scans
    (within each group when ``by="group"``). The percentile interval of a cluster bootstrap is
    too narrow with few clusters; the bootstrap-t is not, but below `FEW_CLUSTERS` operators a
    `DegenerateDataWarning` says the interval is approximate.

No interval is given from fewer than `MIN_CLUSTERS` operators (the cells are NaN and a
`DegenerateDataWarning` names them): two operator means cannot support a 95% interval.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from analytics.warnings import DegenerateDataWarning
from fetal_analytics.checks import check_choice, check_columns
from fetal_analytics.results import Result

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from analytics.selection import EventSelection
    from fetal_analytics.store import Store

__all__ = ["BY", "CI_METHODS", "FEW_CLUSTERS", "MIN_CLUSTERS", "MeanCI", "Summary",
           "cluster_mean_ci", "describe", "summarise", "summarise_features"]

log = logging.getLogger(__name__)

BY = ("scan", "operator", "group")
"""Units of analysis of `summarise`."""

CI_METHODS = ("t", "bootstrap")
"""Confidence-interval methods of `summarise`."""

MIN_CLUSTERS = 3
"""Fewest operators from which an interval is given."""

FEW_CLUSTERS = 10
"""Below this many operators a bootstrap interval comes with a warning."""

_ID_COLUMNS = ("scan_id", "operator_id", "group")


@dataclass(frozen=True)
class Summary(Result):
    """Descriptive statistics of a table of per-scan values.

    Attributes
    ----------
    table : pandas.DataFrame
        Tidy: one row per category (or feature), and per group when ``by == "group"`` (column
        ``group`` first). See `summarise` and `summarise_features` for the columns.
    by : {'scan', 'operator', 'group'}
        The unit of analysis.
    unit : {'scan', 'operator'}
        What the column ``n`` counts.
    ci_method : {'t', 'bootstrap'}
        How the confidence intervals were computed.
    ci : float
        Confidence level of the intervals, e.g. 0.95.
    n_boot : int or None
        Bootstrap resamples (None for ``ci_method == "t"``).
    seed : int or None
        Seed of the bootstrap's random generator (None for ``ci_method == "t"``).
    selection : str
        The events described (`EventSelection.description`), "" when not known.
    variables : {'categories', 'features'}
        Minutes per category (`summarise`) or workflow features (`summarise_features`).
    cluster : str
        The unit the intervals treat as independent: ``"operator"``.
    """

    table: pd.DataFrame
    by: str
    unit: str
    ci_method: str
    ci: float
    n_boot: int | None = None
    seed: int | None = None
    selection: str = ""
    variables: str = "categories"
    cluster: str = "operator"

    frame_field: ClassVar[str] = "table"


def describe(store: Store, selection: EventSelection, *, features: bool = False,
             by: str = "group", ci: float = 0.95, ci_method: str = "t", n_boot: int = 2000,
             seed: int = 0) -> Summary:
    """Describe a selection's minutes per category, or its workflow features, in one call.

    `summarise` of `analytics.features.category_times`, or with `features`
    `summarise_features` of `analytics.features.scan_features`; the result names the
    selection. Options as for those functions.
    """
    from analytics.features import category_times, scan_features

    if features:
        return summarise_features(scan_features(store, selection), by=by, ci=ci,
                                  ci_method=ci_method, n_boot=n_boot, seed=seed,
                                  selection=selection.description)
    return summarise(category_times(store, selection), by=by, ci=ci, ci_method=ci_method,
                     n_boot=n_boot, seed=seed, selection=selection.description)


def summarise(category_times_df: pd.DataFrame, *, by: str = "scan", ci: float = 0.95,
              ci_method: str = "t", n_boot: int = 2000, seed: int = 0,
              selection: str = "") -> Summary:
    """Mean +- SD time per category, in minutes and as a share of the scan, with CIs.

    Parameters
    ----------
    category_times_df : pandas.DataFrame
        The output of `analytics.features.category_times`: one row per scan and category, with
        at least ``scan_id, operator_id, group, label, duration_min, share``.
    by : {'scan', 'operator', 'group'}, optional
        Unit of analysis (see the module docstring).
    ci : float, optional
        Confidence level of the intervals, in (0, 1).
    ci_method : {'t', 'bootstrap'}, optional
        Student-t interval of the mean, or a percentile cluster bootstrap over operators.
    n_boot : int, optional
        Bootstrap resamples.
    seed : int, optional
        Seed of the bootstrap.
    selection : str, optional
        What the values describe, kept in the result.

    Returns
    -------
    Summary
        ``table`` has the columns ``[group,] label, n`` (scans, or operators unless ``by ==
        "scan"``), ``n_scans, n_operators`` (the scans and operators behind the row),
        ``mean_min, sd_min, ci_low_min, ci_high_min`` (duration per scan, minutes),
        ``mean_share, share_ci_low, share_ci_high`` (share of the scan's labelled time, in
        [0, 1]). Categories keep their order in `category_times_df`; groups are sorted.

    Raises
    ------
    ValueError
        A column is missing, the frame is empty, or an option is invalid.

    Warns
    -----
    DegenerateDataWarning
        Where ``n < 2`` (or, for the bootstrap, fewer than 2 operators): SD and CI are NaN.
    """
    check_columns(category_times_df, "category_times_df",
                  (*_ID_COLUMNS, "label", "duration_min", "share"))
    _check_options(by, ci, ci_method, n_boot)
    if category_times_df.empty:
        raise ValueError("`category_times_df` is empty: there is nothing to summarise")
    long = category_times_df[[*_ID_COLUMNS, "label", "duration_min", "share"]]
    table = _describe(long, var="label", values=("duration_min", "share"), by=by, ci=ci,
                      ci_method=ci_method, n_boot=n_boot, seed=seed)
    table = table.rename(columns={
        "mean_duration_min": "mean_min", "sd_duration_min": "sd_min",
        "ci_low_duration_min": "ci_low_min", "ci_high_duration_min": "ci_high_min",
        "ci_low_share": "share_ci_low", "ci_high_share": "share_ci_high",
    })
    keys = ["group"] if by == "group" else []
    columns = [*keys, "label", "n_duration_min", "n_scans", "n_operators", "mean_min", "sd_min",
               "ci_low_min", "ci_high_min", "mean_share", "share_ci_low", "share_ci_high"]
    table = table[columns].rename(columns={"n_duration_min": "n"})
    return _result(table, by, ci_method, ci, n_boot, seed, selection, "categories")


def summarise_features(scan_features_df: pd.DataFrame, *, by: str = "scan",
                       features: Sequence[str] | None = None, ci: float = 0.95,
                       ci_method: str = "t", n_boot: int = 2000, seed: int = 0,
                       selection: str = "") -> Summary:
    """Mean +- SD and CI of each numeric per-scan feature.

    Parameters
    ----------
    scan_features_df : pandas.DataFrame
        The output of `analytics.features.scan_features` (or any frame with ``scan_id,
        operator_id, group`` and numeric columns).
    by : {'scan', 'operator', 'group'}, optional
        Unit of analysis (see the module docstring).
    features : sequence of str, optional
        Columns to describe (default: every numeric column but the identifiers).
    ci, ci_method, n_boot, seed, selection
        As for `summarise`.

    Returns
    -------
    Summary
        ``table`` has the columns ``[group,] feature, n, n_scans, n_operators, mean, sd,
        ci_low, ci_high``, in the
        feature's own unit (the column name says it: ``*_min`` minutes, ``*_share`` a fraction,
        ``n_*`` counts). Missing values (NaN, e.g. ``time_to_full_coverage_min`` of a scan that
        never covered the protocol) are left out, so ``n`` may differ between features.

    Raises
    ------
    ValueError
        A column is missing or not numeric, the frame is empty, or an option is invalid.

    Warns
    -----
    DegenerateDataWarning
        Where ``n < 2``: SD and CI are NaN.
    """
    import pandas as pd

    check_columns(scan_features_df, "scan_features_df", _ID_COLUMNS)
    _check_options(by, ci, ci_method, n_boot)
    if scan_features_df.empty:
        raise ValueError("`scan_features_df` is empty: there is nothing to summarise")
    numeric = [c for c in scan_features_df.columns if c not in _ID_COLUMNS
               and pd.api.types.is_numeric_dtype(scan_features_df[c])
               and not pd.api.types.is_bool_dtype(scan_features_df[c])]
    if features is None:
        chosen = numeric
    else:
        chosen = [features] if isinstance(features, str) else list(features)
        for name in chosen:
            check_choice("features", name, numeric)
    if not chosen:
        raise ValueError("`scan_features_df` has no numeric feature columns")
    long = scan_features_df.melt(id_vars=list(_ID_COLUMNS), value_vars=chosen,
                                 var_name="feature", value_name="value")
    long["value"] = long["value"].astype("float64")
    table = _describe(long, var="feature", values=("value",), by=by, ci=ci, ci_method=ci_method,
                      n_boot=n_boot, seed=seed)
    keys = ["group"] if by == "group" else []
    table = table.rename(columns={"n_value": "n", "mean_value": "mean", "sd_value": "sd",
                                  "ci_low_value": "ci_low", "ci_high_value": "ci_high"})
    table = table[[*keys, "feature", "n", "n_scans", "n_operators", "mean", "sd", "ci_low",
                   "ci_high"]]
    return _result(table, by, ci_method, ci, n_boot, seed, selection, "features")


@dataclass(frozen=True)
class MeanCI(Result):
    """A mean with its cluster-robust confidence interval (see `cluster_mean_ci`)."""

    mean: float
    ci_low: float
    ci_high: float
    se: float
    n: int
    n_clusters: int
    ci: float


def cluster_mean_ci(values: Sequence[float], clusters: Sequence[object], *,
                    ci: float = 0.95) -> MeanCI:
    """Mean of values nested in clusters, with a CR2 cluster-robust t interval.

    The standard error is the bias-reduced sandwich (CR2) of the intercept-only regression:
    ``V = sum_g S_g**2 / (1 - n_g / n) / n**2`` with ``S_g`` the sum of the residuals of
    cluster g and ``n_g`` its size, and the interval uses Student's t with ``G - 1`` degrees of
    freedom (G clusters), as Imbens & Kolesar (2016) advise for few clusters.

    Parameters
    ----------
    values : (n,) sequence of float
        One value per unit (e.g. minutes per scan); NaN values are left out.
    clusters : (n,) sequence
        The cluster of each value (e.g. the scan's operator).
    ci : float, optional
        Confidence level in (0, 1).

    Returns
    -------
    MeanCI
        ``ci_low``, ``ci_high`` and ``se`` are NaN with fewer than `MIN_CLUSTERS` clusters.
    """
    import numpy as np
    import pandas as pd
    from scipy import stats

    y = np.asarray(values, dtype=float)
    keep = np.isfinite(y)
    y = y[keep]
    codes, _ = pd.factorize(pd.Series(list(clusters))[keep].to_numpy(), sort=False)
    n, n_clusters = len(y), int(codes.max()) + 1 if len(y) else 0
    mean = float(y.mean()) if n else math.nan
    if n_clusters < MIN_CLUSTERS:
        return MeanCI(mean, math.nan, math.nan, math.nan, n, n_clusters, ci)
    sums = np.bincount(codes, weights=y - mean)
    sizes = np.bincount(codes).astype(float)
    se = math.sqrt(float(np.sum(sums ** 2 / (1 - sizes / n))) / n ** 2)
    half = float(stats.t.ppf((1 + ci) / 2, n_clusters - 1)) * se
    return MeanCI(mean, mean - half, mean + half, se, n, n_clusters, ci)


def _check_options(by: str, ci: float, ci_method: str, n_boot: int) -> None:
    check_choice("by", by, BY)
    check_choice("ci_method", ci_method, CI_METHODS)
    if not 0 < ci < 1:
        raise ValueError(f"`ci` must be a confidence level in (0, 1), got {ci!r}")
    if ci_method == "bootstrap" and (int(n_boot) != n_boot or n_boot < 1):
        raise ValueError(f"`n_boot` must be a positive integer, got {n_boot!r}")


def _result(table: pd.DataFrame, by: str, ci_method: str, ci: float, n_boot: int,
            seed: int, selection: str, variables: str) -> Summary:
    boot = ci_method == "bootstrap"
    return Summary(table=table.reset_index(drop=True), by=by,
                   unit="scan" if by == "scan" else "operator", ci_method=ci_method, ci=ci,
                   n_boot=int(n_boot) if boot else None, seed=seed if boot else None,
                   selection=selection, variables=variables)


def _describe(long: pd.DataFrame, *, var: str, values: tuple[str, ...], by: str, ci: float,
              ci_method: str, n_boot: int, seed: int) -> pd.DataFrame:
    """n, mean, SD and CI of each value column, per variable (and group).

    `long` has one row per scan and variable: ``scan_id, operator_id, group, var, *values``.
    Returns columns ``[group,] var``, ``n_scans, n_operators`` (behind each row) and
    ``n_V, mean_V, sd_V, ci_low_V, ci_high_V`` per value V (n counts the unit of `by`).
    """
    import numpy as np
    import pandas as pd

    order = pd.unique(long[var])
    scans_per_operator = long.groupby(["operator_id", var], sort=False)["scan_id"].nunique()
    if by != "scan":
        # One value per operator and variable: the mean over the operator's scans.
        long = (long.groupby(["operator_id", "group", var], sort=False)[list(values)]
                .mean().reset_index())
        long["_scans"] = [scans_per_operator[(o, v)]
                          for o, v in zip(long["operator_id"], long[var], strict=True)]
    else:
        long = long.assign(_scans=1)
    keys = ["group", var] if by == "group" else [var]
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    few: list[str] = []
    approximate: dict[str, int] = {}
    for key, part in long.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(keys, key, strict=True))
        row["n_scans"] = int(part["_scans"].sum())
        row["n_operators"] = int(part["operator_id"].nunique())
        for v in values:
            y = part[v].to_numpy(dtype=float)
            known = np.isfinite(y)
            clusters = part["operator_id"].to_numpy()[known]
            y = y[known]
            row[f"n_{v}"] = len(y)
            row[f"mean_{v}"] = float(y.mean()) if len(y) else math.nan
            row[f"sd_{v}"] = float(y.std(ddof=1)) if len(y) >= 2 else math.nan
            if ci_method == "t":
                interval = cluster_mean_ci(y, clusters, ci=ci)
                low, high, n_clusters = interval.ci_low, interval.ci_high, interval.n_clusters
            else:
                low, high, n_clusters = _bootstrap_t(y, clusters, ci=ci, n_boot=n_boot, rng=rng)
            row[f"ci_low_{v}"], row[f"ci_high_{v}"] = low, high
            if v == values[0] and n_clusters < MIN_CLUSTERS:
                few.append("/".join(map(str, key)))
            elif v == values[0] and ci_method == "bootstrap" and n_clusters < FEW_CLUSTERS:
                approximate[key[0] if by == "group" else "the cohort"] = n_clusters
        rows.append(row)
    if few:
        warnings.warn(f"fewer than {MIN_CLUSTERS} operators for {', '.join(few)}: no "
                      f"confidence interval", DegenerateDataWarning, stacklevel=3)
    if approximate:
        counts = ", ".join(f"{n} in {where}" for where, n in approximate.items())
        warnings.warn(f"fewer than {FEW_CLUSTERS} operators ({counts}): the cluster bootstrap "
                      f"intervals are approximate", DegenerateDataWarning, stacklevel=3)
    table = pd.DataFrame(rows)
    table[var] = pd.Categorical(table[var], categories=order)
    table = table.sort_values(keys, kind="stable")
    table[var] = table[var].astype(object)
    return table.reset_index(drop=True)


def _bootstrap_t(y: np.ndarray, clusters: np.ndarray, *, ci: float, n_boot: int,
                 rng: np.random.Generator) -> tuple[float, float, int]:
    """Studentised cluster-bootstrap interval of the mean: resample whole clusters, and read
    the interval off the bootstrap distribution of ``(mean* - mean) / se*`` (CR2 SEs).

    Returns the limits (NaN with fewer than `MIN_CLUSTERS` clusters or without variation) and
    the number of clusters."""
    import numpy as np
    import pandas as pd

    codes, _ = pd.factorize(clusters, sort=False)
    n_clusters = int(codes.max()) + 1 if len(y) else 0
    point = cluster_mean_ci(y, codes)
    if n_clusters < MIN_CLUSTERS or not point.se > 0:
        return math.nan, math.nan, n_clusters
    sums = np.bincount(codes, weights=y)
    sizes = np.bincount(codes).astype(float)
    weights = rng.multinomial(n_clusters, np.full(n_clusters, 1 / n_clusters), size=n_boot)
    n_star = weights @ sizes
    mean_star = (weights @ sums) / n_star
    resid = sums[None, :] - sizes[None, :] * mean_star[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        var = (weights * resid ** 2 / (1 - sizes[None, :] / n_star[:, None])).sum(axis=1)
        t_star = (mean_star - point.mean) / (np.sqrt(var) / n_star)
    t_star = t_star[np.isfinite(t_star)]
    if len(t_star) < 2:
        return math.nan, math.nan, n_clusters
    lo_q, hi_q = np.percentile(t_star, [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100])
    return point.mean - hi_q * point.se, point.mean - lo_q * point.se, n_clusters
