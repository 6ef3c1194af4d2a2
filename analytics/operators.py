"""One operator at a time: protocol coverage per structure, the operator against a reference
group, and the operator's trend over their scans (a learning curve).

What a trainer looks at for one person, on the same per-scan features as the group statistics
(`analytics.features.scan_features`, `analytics.groups.operator_values`). Durations are minutes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from analytics.features import category_times, scan_features
from analytics.groups import operator_values
from fetal_analytics.errors import UserError
from fetal_analytics.results import Result
from fetal_analytics.taxonomy import FASP_REQUIRED

if TYPE_CHECKING:
    import pandas as pd

    from analytics.selection import EventSelection
    from fetal_analytics.store import Store

__all__ = [
    "TREND_FEATURES",
    "OperatorProfile",
    "OperatorTrends",
    "UnknownOperatorError",
    "operator_profile",
    "operator_trends",
    "profile_of",
    "structure_coverage",
    "structure_coverage_of",
    "trends_of",
]

TREND_FEATURES = ("total_min", "fasp_coverage")
"""Default features of `operator_trends`: scan duration (labelled minutes) and FASP coverage."""


class UnknownOperatorError(UserError, LookupError):
    """An operator without scans in the selection."""


def structure_coverage(store: Store, selection: EventSelection) -> pd.DataFrame:
    """How often each operator saw each FASP-required structure: the operators x structures
    table of protocol coverage.

    Parameters
    ----------
    store : Store
    selection : EventSelection

    Returns
    -------
    pandas.DataFrame
        One row per operator (with scans in the selection) and structure of
        `taxonomy.FASP_REQUIRED`, in that order: ``operator_id, group, label, n_scans``
        (the operator's scans), ``n_seen`` (scans with any time on the structure) and
        ``share_seen`` (their ratio, in [0, 1]). Sorted by group, operator, then structure.
    """
    return structure_coverage_of(category_times(store, selection, categories=FASP_REQUIRED))


def structure_coverage_of(times: pd.DataFrame) -> pd.DataFrame:
    """`structure_coverage` from a selection's `analytics.features.category_times` at hand
    (with every FASP-required structure among its categories, as by default)."""
    import pandas as pd

    times = times[times["label"].isin(FASP_REQUIRED)]
    times = times.assign(seen=times["duration_s"] > 0)
    table = (times.groupby(["operator_id", "group", "label"], sort=False)["seen"]
             .agg(n_scans="count", n_seen="sum").reset_index())
    table["n_seen"] = table["n_seen"].astype("int64")
    table["share_seen"] = table["n_seen"] / table["n_scans"]
    table["label"] = pd.Categorical(table["label"], categories=list(FASP_REQUIRED))
    table = table.sort_values(["group", "operator_id", "label"], kind="stable")
    table["label"] = table["label"].astype(str)
    return table.reset_index(drop=True)


def _check_operator(operator: str, present: Sequence[str]) -> None:
    if operator not in present:
        listing = ", ".join(sorted(present)) or "none"
        raise UnknownOperatorError(
            f"operator {operator!r} has no scans in the selection; operators present: {listing}")


@dataclass(frozen=True)
class OperatorProfile(Result):
    """One operator's workflow features against a reference group's operators.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per feature: ``feature``, ``value`` (the operator's mean over their scans),
        ``n_scans`` (behind it), ``reference_mean``, ``reference_sd`` and
        ``reference_n`` (over the reference group's operators, the operator left out),
        ``reference_min`` and ``reference_max`` (the range of those operators' means),
        ``z`` (``(value - reference_mean) / reference_sd``; NaN where the SD is 0 or fewer
        than 2 reference operators) and ``percentile`` (share of reference operators with a
        lower value, ties half, in [0, 1]; NaN without reference operators).
    operator : str
    group : str
        The operator's own group.
    reference : str
        The reference group.
    selection : str
        The events described.
    """

    table: pd.DataFrame
    operator: str
    group: str
    reference: str
    selection: str = ""

    frame_field: ClassVar[str] = "table"


def operator_profile(store: Store, selection: EventSelection, operator: str, *,
                     reference: str = "expert") -> OperatorProfile:
    """Compare one operator with the operators of a reference group, feature by feature.

    Parameters
    ----------
    store : Store
    selection : EventSelection
    operator : str
        The operator's id.
    reference : str, optional
        The reference group (default ``"expert"``). When the operator belongs to it, the
        operator is left out of the reference.

    Returns
    -------
    OperatorProfile

    Raises
    ------
    UnknownOperatorError
        The operator has no scans in the selection (naming the operators present).
    """
    return profile_of(operator_values(store, selection), operator, reference=reference,
                      selection=selection.description)


def profile_of(values: pd.DataFrame, operator: str, *, reference: str = "expert",
               selection: str = "") -> OperatorProfile:
    """`operator_profile` on operator-level values at hand
    (`analytics.groups.operator_values_of`)."""
    import numpy as np
    import pandas as pd

    _check_operator(operator, values["operator_id"].unique().tolist())
    own = values[values["operator_id"] == operator]
    others = values[(values["group"] == reference) & (values["operator_id"] != operator)]
    rows = []
    for feature in own["feature"]:
        value = float(own.loc[own["feature"] == feature, "value"].iloc[0])
        ref = others.loc[others["feature"] == feature, "value"].dropna().to_numpy(dtype=float)
        mean = float(ref.mean()) if len(ref) else np.nan
        sd = float(ref.std(ddof=1)) if len(ref) >= 2 else np.nan
        z = (value - mean) / sd if sd == sd and sd > 0 else np.nan
        percentile = (float(((ref < value).sum() + 0.5 * (ref == value).sum()) / len(ref))
                      if len(ref) and value == value else np.nan)
        rows.append({"feature": feature, "value": value,
                     "n_scans": int(own.loc[own["feature"] == feature, "n_scans"].iloc[0]),
                     "reference_mean": mean, "reference_sd": sd, "reference_n": len(ref),
                     "reference_min": float(ref.min()) if len(ref) else np.nan,
                     "reference_max": float(ref.max()) if len(ref) else np.nan,
                     "z": z, "percentile": percentile})
    return OperatorProfile(table=pd.DataFrame(rows), operator=operator,
                           group=str(own["group"].iloc[0]), reference=reference,
                           selection=selection)


@dataclass(frozen=True)
class OperatorTrends(Result):
    """Each operator's features scan by scan over time, and the slope of each.

    Attributes
    ----------
    points : pandas.DataFrame
        One row per scan with a date and feature: ``operator_id, group, scan_id,
        acquired_at, scan_number`` (1 for the operator's first dated scan), ``feature,
        value``.
    slopes : pandas.DataFrame
        One row per operator and feature: ``operator_id, group, feature, n_scans``, ``slope``
        (least-squares change of the feature per scan; NaN with fewer than 2 scans with a
        value) and ``slope_per_30_days`` (the same against the scan time, per 30 days;
        NaN where all the scans have one time), with ``slope_per_30_days_ci_low`` and
        ``slope_per_30_days_ci_high`` (its 95% t interval, n - 2 degrees of freedom; NaN with
        fewer than 3 scans), ``slope_per_30_days_p`` (two-sided test of a zero slope) and
        ``intercept`` (the fitted value at the operator's first dated scan, in the feature's
        unit), so the fitted line is ``intercept + slope_per_30_days * days / 30``.
    features : tuple of str
    selection : str
    """

    points: pd.DataFrame
    slopes: pd.DataFrame
    features: tuple[str, ...]
    selection: str = ""

    frame_field: ClassVar[str] = "slopes"


def _slope(x, y) -> float:
    import numpy as np

    keep = ~np.isnan(y)
    x, y = x[keep], y[keep]
    if len(x) < 2 or np.ptp(x) == 0:
        return float("nan")
    return float(np.polyfit(x, y, 1)[0])


def _fit(x, y, *, ci: float = 0.95) -> tuple[float, float, float, float]:
    """Least-squares line of `y` on `x`: (slope CI low, CI high, p, intercept); NaN where
    it cannot be computed (fewer than 3 points for the interval, 2 for the line)."""
    import numpy as np
    from scipy import stats

    keep = ~np.isnan(y)
    x, y = x[keep], y[keep]
    nan = float("nan")
    if len(x) < 2 or np.ptp(x) == 0:
        return nan, nan, nan, nan
    if len(x) < 3:
        return nan, nan, nan, float(np.polyfit(x, y, 1)[1])
    fit = stats.linregress(x, y)
    half = float(stats.t.ppf(0.5 + ci / 2, len(x) - 2)) * float(fit.stderr)
    p = float(fit.pvalue) if np.isfinite(fit.pvalue) else nan
    return float(fit.slope) - half, float(fit.slope) + half, p, float(fit.intercept)


def operator_trends(store: Store, selection: EventSelection, *,
                    features: Sequence[str] = TREND_FEATURES,
                    operators: Sequence[str] | None = None) -> OperatorTrends:
    """Learning curves: each operator's features over their scans in date order.

    Parameters
    ----------
    store : Store
    selection : EventSelection
    features : sequence of str, optional
        Numeric columns of `analytics.features.scan_features` (default `TREND_FEATURES`).
    operators : sequence of str, optional
        Only these operators (default: every operator with dated scans).

    Returns
    -------
    OperatorTrends
        Scans without a date are left out.

    Raises
    ------
    ValueError
        A feature that is not a numeric scan feature (naming the valid ones).
    """
    return trends_of(scan_features(store, selection), features=features, operators=operators,
                     selection=selection.description)


def trends_of(scans: pd.DataFrame, *, features: Sequence[str] = TREND_FEATURES,
              operators: Sequence[str] | None = None, selection: str = "") -> OperatorTrends:
    """`operator_trends` from a selection's `analytics.features.scan_features` at hand."""
    import numpy as np
    import pandas as pd

    from analytics.features import SCAN_FEATURE_NUMERIC

    unknown = [f for f in features if f not in SCAN_FEATURE_NUMERIC]
    if unknown:
        raise ValueError(f"unknown feature(s) {', '.join(map(repr, unknown))}; choose from "
                         f"{', '.join(SCAN_FEATURE_NUMERIC)}")
    scans = scans[scans["acquired_at"].notna()]
    if operators is not None:
        scans = scans[scans["operator_id"].isin(list(operators))]
    scans = scans.sort_values(["operator_id", "acquired_at", "scan_id"], kind="stable")
    scans = scans.assign(scan_number=scans.groupby("operator_id").cumcount() + 1)
    points = scans.melt(id_vars=["operator_id", "group", "scan_id", "acquired_at",
                                 "scan_number"], value_vars=list(features),
                        var_name="feature", value_name="value")
    points["value"] = points["value"].astype("float64")
    rows = []
    for (operator, group, feature), part in points.groupby(
            ["operator_id", "group", "feature"], sort=True):
        y = part["value"].to_numpy(dtype=float)
        days = ((part["acquired_at"] - part["acquired_at"].min()).dt.total_seconds()
                .to_numpy(dtype=float) / 86400.0)
        low, high, p, intercept = _fit(days / 30.0, y)
        rows.append({"operator_id": operator, "group": group, "feature": feature,
                     "n_scans": int(np.isfinite(y).sum()),
                     "slope": _slope(part["scan_number"].to_numpy(dtype=float), y),
                     "slope_per_30_days": _slope(days, y) * 30.0,
                     "slope_per_30_days_ci_low": low, "slope_per_30_days_ci_high": high,
                     "slope_per_30_days_p": p, "intercept": intercept})
    slopes = pd.DataFrame(rows, columns=["operator_id", "group", "feature", "n_scans", "slope",
                                         "slope_per_30_days", "slope_per_30_days_ci_low",
                                         "slope_per_30_days_ci_high", "slope_per_30_days_p",
                                         "intercept"])
    return OperatorTrends(points=points.reset_index(drop=True), slopes=slopes,
                          features=tuple(features), selection=selection)
