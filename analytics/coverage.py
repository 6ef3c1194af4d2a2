"""Time until a scan has seen every FASP-required structure, as a time-to-event outcome.

Not every scan covers the protocol (`taxonomy.FASP_REQUIRED`), and trainees miss structures more
often than experts. Averaging the time of the scans that did reach full coverage would leave the
others out and flatter the group that misses most. So the time is treated as censored: a scan
that never reaches full coverage is censored at the end of its labelled span (it was observed that
long without reaching it). Per group:

- the share of scans that reached full coverage, with a 95% CI clustered by operator
  (`analytics.summary.cluster_mean_ci`);
- the Kaplan-Meier median time to full coverage with its 95% CI (Brookmeyer-Crowley, on the
  complementary log-log scale; statsmodels' ``SurvfuncRight``); NaN where fewer than half the
  scans reach full coverage within the observed time.

Between groups: the log-rank statistic (statsmodels' ``survdiff``), its p-value from permuting
the group labels over operators (scans of one operator move together, so the test holds its
level however alike an operator's scans are; scipy's or statsmodels' asymptotic p treats scans
as independent and rejects a true null up to three times too often on nested cohorts, see
BENCHMARKS.md); and a Cox model of the group with a cluster-robust (sandwich) covariance over
operators and a t reference on G - 1 degrees of freedom (G operators), whose hazard ratio says
how much faster one group reaches full coverage.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from analytics.features import scan_features
from analytics.groups import groups_present, resolve_groups
from analytics.summary import cluster_mean_ci
from analytics.warnings import DegenerateDataWarning
from fetal_analytics.results import Result

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from analytics.selection import EventSelection
    from fetal_analytics.store import Store

__all__ = ["CoverageTimes", "compare_coverage", "coverage_times", "time_to_event"]


@dataclass(frozen=True)
class CoverageTimes(Result):
    """Time to full FASP coverage by group (see the module docstring).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per group: ``group, n_scans, n_operators, n_reached``, ``share_reached`` with
        ``share_ci_low, share_ci_high``, ``median_min`` with ``median_ci_low, median_ci_high``
        (Kaplan-Meier, minutes).
    scans : pandas.DataFrame
        One row per scan: ``scan_id, operator_id, group, time_min`` (to full coverage, or to the
        end of the labelled span where censored) and ``reached``.
    groups : tuple of str
        The groups, reference first.
    logrank_statistic, logrank_p : float
        The log-rank statistic of equal curves across the groups, and its p-value from
        `n_perm` permutations of the groups over operators.
    n_perm : int
        Permutations behind `logrank_p`.
    hazard_ratio, hazard_ratio_ci_low, hazard_ratio_ci_high, cox_p : float
        Cox model of the second group against the first (two groups only, else NaN), with an
        operator-clustered sandwich covariance: above 1, the second group reaches full coverage
        sooner.
    cluster : str
        The unit the clustered figures treat as independent: ``"operator"``.
    selection : str
        The events analysed.
    """

    table: pd.DataFrame
    scans: pd.DataFrame
    groups: tuple[str, ...]
    logrank_statistic: float
    logrank_p: float
    n_perm: int
    hazard_ratio: float
    hazard_ratio_ci_low: float
    hazard_ratio_ci_high: float
    cox_p: float
    cluster: str = "operator"
    selection: str = ""

    frame_field: ClassVar[str] = "table"


def time_to_event(scan_features_df: pd.DataFrame) -> pd.DataFrame:
    """Each scan's time to full coverage, censored at the end of its span where not reached.

    Parameters
    ----------
    scan_features_df : pandas.DataFrame
        `analytics.features.scan_features` output (``time_to_full_coverage_min``,
        ``span_min``).

    Returns
    -------
    pandas.DataFrame
        ``scan_id, operator_id, group, time_min, reached``.
    """
    reached = scan_features_df["time_to_full_coverage_min"].notna()
    time = scan_features_df["time_to_full_coverage_min"].where(reached,
                                                               scan_features_df["span_min"])
    return scan_features_df[["scan_id", "operator_id", "group"]].assign(
        time_min=time.astype(float), reached=reached.to_numpy()).reset_index(drop=True)


def coverage_times(store: Store, selection: EventSelection, *,
                   groups: Sequence[str] | None = None, n_perm: int = 999,
                   seed: int = 0) -> CoverageTimes:
    """Time to full FASP coverage per group, censored, with a test between the groups.

    Parameters
    ----------
    store : Store
    selection : EventSelection
    groups : sequence of str, optional
        Groups to compare, reference first (default: every group present, sorted). A single
        group gives its figures and NaN tests.
    n_perm, seed
        Permutations of the log-rank p-value and their seed (see `compare_coverage`).

    Raises
    ------
    UnknownGroupError
        A group of `groups` has no scans in the selection.

    Returns
    -------
    CoverageTimes

    Warns
    -----
    DegenerateDataWarning
        Where a group's median is never reached, or the tests cannot be computed.
    """
    chosen = resolve_groups(groups_present(store, selection), groups, minimum=1)
    return compare_coverage(time_to_event(scan_features(store, selection)), groups=chosen,
                            n_perm=n_perm, seed=seed, selection=selection.description)


def compare_coverage(scans: pd.DataFrame, *, groups: Sequence[str], n_perm: int = 999,
                     seed: int = 0, selection: str = "") -> CoverageTimes:
    """The figures and tests of `coverage_times` on censored times already at hand.

    Parameters
    ----------
    scans : pandas.DataFrame
        ``scan_id, operator_id, group, time_min, reached`` (as `time_to_event` gives).
    groups : sequence of str
        The groups, reference first.
    n_perm : int, optional
        Permutations of the groups over operators for the log-rank p-value.
    seed : int, optional
        Seed of the permutations.
    selection : str, optional
        What the times describe, kept in the result.
    """
    import numpy as np
    import pandas as pd
    from statsmodels.duration.survfunc import SurvfuncRight

    chosen = tuple(groups)
    scans = scans[scans["group"].isin(chosen)].reset_index(drop=True)
    rows, unreached = [], []
    for group in chosen:
        part = scans[scans["group"] == group]
        share = cluster_mean_ci(part["reached"].astype(float), part["operator_id"])
        median = low = high = math.nan
        if part["reached"].any():
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore", RuntimeWarning)
                curve = SurvfuncRight(part["time_min"].to_numpy(float),
                                      part["reached"].to_numpy(int))
                median = float(curve.quantile(0.5))
                low, high = (float(v) for v in curve.quantile_ci(0.5))
        if not np.isfinite(median):
            unreached.append(group)
        rows.append({"group": group, "n_scans": len(part),
                     "n_operators": int(part["operator_id"].nunique()),
                     "n_reached": int(part["reached"].sum()), "share_reached": share.mean,
                     # a share's interval stays within [0, 1]
                     "share_ci_low": max(share.ci_low, 0.0),
                     "share_ci_high": min(share.ci_high, 1.0),
                     "median_min": median, "median_ci_low": low, "median_ci_high": high})
    if unreached:
        warnings.warn(f"fewer than half the scans of {', '.join(unreached)} reach full FASP "
                      f"coverage in the time observed: no median", DegenerateDataWarning,
                      stacklevel=2)
    stat = p = hr = hr_low = hr_high = cox_p = math.nan
    if len(chosen) >= 2 and scans["reached"].any():
        codes = pd.Categorical(scans["group"], categories=chosen).codes
        stat, p = _permuted_logrank(scans, codes, n_perm=n_perm, seed=seed)
        if len(chosen) == 2:
            hr, hr_low, hr_high, cox_p = _cox(scans, codes)
    return CoverageTimes(table=pd.DataFrame(rows), scans=scans, groups=chosen,
                         logrank_statistic=stat, logrank_p=p, n_perm=n_perm, hazard_ratio=hr,
                         hazard_ratio_ci_low=hr_low, hazard_ratio_ci_high=hr_high, cox_p=cox_p,
                         selection=selection)


def _permuted_logrank(scans: pd.DataFrame, codes: np.ndarray, *, n_perm: int,
                      seed: int) -> tuple[float, float]:
    """The log-rank statistic and its p-value over permutations of the groups' operators."""
    import numpy as np
    import pandas as pd
    from statsmodels.duration.survfunc import survdiff

    time = scans["time_min"].to_numpy(float)
    event = scans["reached"].to_numpy(int)

    def statistic(labels: np.ndarray) -> float:
        return float(survdiff(time, event, labels)[0])

    observed = statistic(codes)
    _, per_scan = np.unique(scans["operator_id"].to_numpy(), return_inverse=True)
    operator_group = pd.Series(codes).groupby(per_scan).first().to_numpy()
    rng = np.random.default_rng(seed)
    null = np.array([statistic(rng.permutation(operator_group)[per_scan])
                     for _ in range(int(n_perm))])
    return observed, float((1 + np.count_nonzero(null >= observed - 1e-12)) / (1 + n_perm))


def _cox(scans: pd.DataFrame, codes: np.ndarray) -> tuple[float, float, float, float]:
    """Hazard ratio of group 1 against group 0, CI and p: operator-clustered sandwich, t on
    G - 1 degrees of freedom."""
    import numpy as np
    from scipy import stats
    from statsmodels.duration.hazard_regression import PHReg

    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            fit = PHReg(scans["time_min"].to_numpy(float), codes[:, None].astype(float),
                        status=scans["reached"].to_numpy(int)).fit(
                groups=scans["operator_id"].to_numpy())
    except (np.linalg.LinAlgError, ValueError):
        return math.nan, math.nan, math.nan, math.nan
    beta, se = float(fit.params[0]), float(fit.bse[0])
    if not (math.isfinite(beta) and math.isfinite(se) and se > 0):
        return math.nan, math.nan, math.nan, math.nan
    df = scans["operator_id"].nunique() - 1
    quantile = float(stats.t.ppf(0.975, df))
    return (math.exp(beta), math.exp(beta - quantile * se), math.exp(beta + quantile * se),
            float(2 * stats.t.sf(abs(beta / se), df)))
