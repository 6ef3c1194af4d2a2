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

Confidence intervals of the mean are Student-t intervals (``ci_method="t"``) or percentile
intervals from a cluster bootstrap (``ci_method="bootstrap"``) that resamples operators with all
their scans (within each group when ``by="group"``): scans of one operator are not independent.

A mean of one value has no SD and no interval: those cells are NaN and a `DegenerateDataWarning`
names them.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from analytics.warnings import DegenerateDataWarning
from fetal_analytics.checks import check_choice, check_columns
from fetal_analytics.results import Result

if TYPE_CHECKING:
    import pandas as pd

    from analytics.selection import EventSelection
    from fetal_analytics.store import Store

__all__ = ["BY", "CI_METHODS", "Summary", "describe", "summarise", "summarise_features"]

log = logging.getLogger(__name__)

BY = ("scan", "operator", "group")
"""Units of analysis of `summarise`."""

CI_METHODS = ("t", "bootstrap")
"""Confidence-interval methods of `summarise`."""

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
        "scan"``), ``mean_min, sd_min, ci_low_min, ci_high_min`` (duration per scan, minutes),
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
    columns = [*keys, "label", "n_duration_min", "mean_min", "sd_min", "ci_low_min",
               "ci_high_min", "mean_share", "share_ci_low", "share_ci_high"]
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
        ``table`` has the columns ``[group,] feature, n, mean, sd, ci_low, ci_high``, in the
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
    table = table[[*keys, "feature", "n", "mean", "sd", "ci_low", "ci_high"]]
    return _result(table, by, ci_method, ci, n_boot, seed, selection, "features")


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
    Returns columns ``[group,] var`` and ``n_V, mean_V, sd_V, ci_low_V, ci_high_V`` per value V.
    """
    import numpy as np
    import pandas as pd
    from scipy import stats

    order = pd.unique(long[var])
    if by != "scan":
        # One value per operator and variable: the mean over the operator's scans.
        long = (long.groupby(["operator_id", "group", var], sort=False)[list(values)]
                .mean().reset_index())
    keys = ["group", var] if by == "group" else [var]
    grouped = long.groupby(keys, sort=False)
    table = grouped.size().rename("_rows").reset_index()[keys]
    for v in values:
        agg = grouped[v].agg(["count", "mean", "std"]).reset_index()
        n = agg["count"].to_numpy(dtype=float)
        sd = np.where(n >= 2, agg["std"].to_numpy(dtype=float), np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            half = stats.t.ppf((1 + ci) / 2, n - 1) * sd / np.sqrt(n)
        table[f"n_{v}"] = agg["count"].to_numpy(dtype="int64")
        table[f"mean_{v}"] = agg["mean"].to_numpy(dtype=float)
        table[f"sd_{v}"] = sd
        if ci_method == "t":
            table[f"ci_low_{v}"] = table[f"mean_{v}"] - half
            table[f"ci_high_{v}"] = table[f"mean_{v}"] + half
    if ci_method == "bootstrap":
        table = _bootstrap(long, table, keys=keys, var=var, values=values, ci=ci,
                           n_boot=n_boot, seed=seed)
    degenerate = table[f"ci_low_{values[0]}"].isna()
    if degenerate.any():
        where = ", ".join("/".join(map(str, row)) for row in
                          table.loc[degenerate, keys].itertuples(index=False))
        if ci_method == "bootstrap":
            few = "fewer than 2 operators to resample"
        else:
            few = f"fewer than 2 {'scans' if by == 'scan' else 'operators'}"
        warnings.warn(f"{few} for {where}: the confidence interval is NaN",
                      DegenerateDataWarning, stacklevel=3)
    table[var] = pd.Categorical(table[var], categories=order)
    sort_keys = ["group", var] if by == "group" else [var]
    table = table.sort_values(sort_keys, kind="stable")
    table[var] = table[var].astype(object)
    return table.reset_index(drop=True)


def _bootstrap(long: pd.DataFrame, table: pd.DataFrame, *, keys: list[str], var: str,
               values: tuple[str, ...], ci: float, n_boot: int, seed: int) -> pd.DataFrame:
    """Percentile CIs of the mean from resampling operators (clusters) with their units."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    strata = sorted(long["group"].unique()) if "group" in keys else [None]
    q = [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100]
    pieces = []
    for stratum in strata:
        part = long if stratum is None else long[long["group"] == stratum]
        clusters = part.groupby(["operator_id", var], sort=True)
        n_clusters = part["operator_id"].nunique()
        weights = rng.multinomial(n_clusters, np.full(n_clusters, 1 / n_clusters), size=n_boot)
        out = pd.DataFrame({var: part[var].unique()})
        if stratum is not None:
            out.insert(0, "group", stratum)
        for v in values:
            sums = clusters[v].sum().unstack(var).reindex(columns=out[var]).fillna(0.0)
            counts = clusters[v].count().unstack(var).reindex(columns=out[var]).fillna(0.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                means = (weights @ sums.to_numpy()) / (weights @ counts.to_numpy())
            enough = (counts.to_numpy() > 0).sum(axis=0) >= 2
            low, high = np.full(len(out), np.nan), np.full(len(out), np.nan)
            if enough.any():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    bounds = np.nanpercentile(means[:, enough], q, axis=0)
                low[enough], high[enough] = bounds[0], bounds[1]
            out[f"ci_low_{v}"] = low
            out[f"ci_high_{v}"] = high
        pieces.append(out)
    cis = pd.concat(pieces, ignore_index=True)
    return table.merge(cis, on=keys, how="left")
