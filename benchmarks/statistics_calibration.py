"""Do the intervals cover and the tests hold their level on nested cohorts?

Simulates cohorts with known truth, in the shape of the project's data: two groups of operators
(6 or 12 per group), each operator with 2 to 6 scans, and an operator effect making scans of one
operator alike (intraclass correlation 0.3 or 0.7). For each condition and each statistic the
project reports, it repeats the simulation and prints

``coverage``
    the share of 95% intervals that contain the true value (target 0.93-0.97);
``type_i``
    the share of tests at the 0.05 level that reject a true null (target 0.04-0.06);
``power``
    the share that reject when the groups differ by `EFFECT` (total SDs at the scan level);

with its Monte Carlo standard error. Every figure comes from the package's public functions on
simulated DataFrames (no database: the statistics, not the SQL, are on trial):

- `analytics.summary.summarise_features`: the mean per scan with its CR2 operator-clustered t
  interval (``stats --by scan``), the Student-t interval of operator means (``--by operator``),
  the bootstrap-t cluster bootstrap (``--bootstrap``); and, for comparison only, the naive t
  interval that treats scans as independent (what ``stats --by scan`` did before);
- `analytics.groups.compare_values`: Welch's t and Mann-Whitney's U on operator means;
- `analytics.groups.mixed_model_fit`: the mixed model's group effect (t, operator-level df);
- `analytics.coverage.compare_coverage`: share reaching full coverage (clustered CI),
  Kaplan-Meier median CI, the log-rank test with operators permuted (and, for comparison, its
  asymptotic p that treats scans as independent) and the operator-clustered Cox test, on
  censored times with an operator frailty;
- `analytics.agreement.minutes_agreement`: Bland-Altman bias CI and Pearson's r CI (on
  log(1 + minutes)) of paired log-normal minutes;
- `analytics.agreement.cohens_kappa`: the cluster-bootstrap CI of kappa over scans whose
  accuracy varies from scan to scan.

Usage::

    python benchmarks/statistics_calibration.py              # default repetitions (~15 min)
    python benchmarks/statistics_calibration.py --reps 200 --json
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from _report import report
from scipy import stats
from statsmodels.duration.survfunc import survdiff

from analytics.agreement import cohens_kappa, minutes_agreement
from analytics.coverage import compare_coverage
from analytics.groups import compare_values, mixed_model_fit
from analytics.summary import summarise_features

GROUPS = ("expert", "trainee")
ICCS = (0.3, 0.7)
OPERATORS = (6, 12)
SCANS_PER_OPERATOR = (2, 6)
EFFECT = 0.8
"""Group difference of the power runs, in total standard deviations at the scan level."""
N_BOOT = 499
N_PERM = 199
TARGETS = {"coverage": (0.93, 0.97), "type_i": (0.04, 0.06)}


@dataclass(frozen=True)
class Condition:
    """One design: intraclass correlation and operators per group."""

    icc: float
    operators: int

    def __str__(self) -> str:
        return f"ICC {self.icc}, {self.operators} operators/group"


def nested_scans(rng: np.random.Generator, condition: Condition, *, effect: float = 0.0,
                 groups: tuple[str, ...] = GROUPS) -> pd.DataFrame:
    """Scans nested in operators: ``y = group effect + u_operator + e_scan`` with total
    variance 1 and ``var(u) = icc``; columns ``scan_id, operator_id, group, y``."""
    rows = []
    for g, group in enumerate(groups):
        for o in range(condition.operators):
            u = rng.normal(0, math.sqrt(condition.icc))
            for s in range(int(rng.integers(SCANS_PER_OPERATOR[0], SCANS_PER_OPERATOR[1] + 1))):
                rows.append((f"{group}{o}-{s}", f"{group}{o}", group,
                             g * effect + u + rng.normal(0, math.sqrt(1 - condition.icc))))
    return pd.DataFrame(rows, columns=["scan_id", "operator_id", "group", "y"])


def _interval(scans: pd.DataFrame, *, by: str, ci_method: str = "t") -> tuple[float, float]:
    table = summarise_features(scans, by=by, features=["y"],
                               ci_method=ci_method, n_boot=N_BOOT).table
    return float(table["ci_low"].iloc[0]), float(table["ci_high"].iloc[0])


def _naive(scans: pd.DataFrame) -> tuple[float, float]:
    y = scans["y"].to_numpy()
    return stats.t.interval(0.95, len(y) - 1, loc=y.mean(), scale=stats.sem(y))


def mean_intervals(rng: np.random.Generator, condition: Condition
                   ) -> Iterator[tuple[str, str, bool]]:
    """Coverage of the true mean (0) by each interval of ``stats``, on one group."""
    scans = nested_scans(rng, condition, groups=("expert",))
    for name, interval in (("stats --by scan (CR2 t)", _interval(scans, by="scan")),
                           ("stats --by operator (t)", _interval(scans, by="operator")),
                           ("stats --bootstrap (bootstrap-t)",
                            _interval(scans, by="scan", ci_method="bootstrap")),
                           ("naive t over scans (before; for comparison)", _naive(scans))):
        yield name, "coverage", interval[0] <= 0 <= interval[1]


def group_tests(rng: np.random.Generator, condition: Condition, *, effect: float
                ) -> Iterator[tuple[str, str, bool]]:
    """Rejections of compare's tests and of the mixed model at the 0.05 level."""
    kind = "type_i" if effect == 0 else "power"
    scans = nested_scans(rng, condition, effect=effect)
    values = (scans.groupby(["operator_id", "group"], sort=False)["y"]
              .agg(value="mean", n_scans="count").reset_index().assign(feature="y"))
    table = compare_values(values, groups=GROUPS).table.set_index("test")
    yield "compare: Welch t (operator means)", kind, table.loc["welch", "p"] < 0.05
    yield "compare: Mann-Whitney U (operator means)", kind, table.loc["mann-whitney", "p"] < 0.05
    times = scans.assign(label="HeD", duration_s=60 * np.exp(scans["y"]))
    fit = mixed_model_fit(times, groups=GROUPS).table.iloc[0]
    if fit["p"] == fit["p"]:
        yield "compare --mixed-model (t, operator df)", kind, fit["p"] < 0.05


def coverage_time_stats(rng: np.random.Generator, condition: Condition, *, effect: float,
                        truth: dict[str, float]) -> Iterator[tuple[str, str, bool]]:
    """Censored time to full coverage: exponential with an operator frailty, censored at the
    end of a 20-40 minute scan."""
    scans = nested_scans(rng, condition, effect=effect)
    rate = np.exp(scans["y"].to_numpy() - 3.0)  # median ~ 14 min where y = 0
    times = rng.exponential(1 / rate)
    end = rng.uniform(20, 40, len(scans))
    censored = scans.assign(time_min=np.minimum(times, end), reached=times <= end)
    result = compare_coverage(censored, groups=GROUPS, n_perm=N_PERM,
                              seed=int(rng.integers(2**31)))
    kind = "type_i" if effect == 0 else "power"
    if result.logrank_p == result.logrank_p:
        yield ("compare: time to coverage, log-rank (operators permuted)", kind,
               result.logrank_p < 0.05)
        asymptotic = float(survdiff(censored["time_min"].to_numpy(), censored["reached"]
                                    .to_numpy(int), censored["group"].to_numpy())[1])
        yield ("log-rank, asymptotic p (scans as independent; for comparison)", kind,
               asymptotic < 0.05)
    if result.cox_p == result.cox_p:
        yield ("compare: time to coverage, Cox (operator-clustered, t on G - 1 df)", kind,
               result.cox_p < 0.05)
    if effect == 0:
        row = result.table.iloc[0]
        yield ("compare: share reaching full coverage (CR2 t)", "coverage",
               row["share_ci_low"] <= truth["share"] <= row["share_ci_high"])
        if row["median_ci_low"] == row["median_ci_low"]:
            yield ("compare: Kaplan-Meier median", "coverage",
                   row["median_ci_low"] <= truth["median"] <= row["median_ci_high"])


def coverage_truth(condition: Condition, n: int = 400_000) -> dict[str, float]:
    """The population share reaching full coverage and median time, by Monte Carlo."""
    rng = np.random.default_rng(1)
    y = rng.normal(0, math.sqrt(condition.icc), n) + rng.normal(0, math.sqrt(1 - condition.icc),
                                                                n)
    times = rng.exponential(1 / np.exp(y - 3.0))
    return {"share": float(np.mean(times <= rng.uniform(20, 40, n))),
            "median": float(np.median(times))}


def paired_minutes(rng: np.random.Generator, n_scans: int, *, bias: float = 0.3
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Skewed (log-normal) manual minutes and automatic ones with a constant bias and error."""
    manual = np.exp(rng.normal(0.5, 0.8, n_scans))
    auto = np.exp(np.log(manual) + rng.normal(0, 0.3, n_scans)) + bias
    return manual, auto


def agreement_truth(n: int = 2_000_000) -> dict[str, float]:
    rng = np.random.default_rng(2)
    manual, auto = paired_minutes(rng, n)
    return {"bias": float(np.mean(auto - manual)),
            "r": float(np.corrcoef(np.log1p(manual), np.log1p(auto))[0, 1])}


def agreement_intervals(rng: np.random.Generator, condition: Condition,
                        truth: dict[str, float]) -> Iterator[tuple[str, str, bool]]:
    """Bland-Altman bias and Pearson's r intervals on one category's paired minutes."""
    manual, auto = paired_minutes(rng, 2 * condition.operators)
    row, _ = minutes_agreement(manual, auto)
    yield ("correlate --paired: Bland-Altman bias", "coverage",
           row["bias_ci_low"] <= truth["bias"] <= row["bias_ci_high"])
    yield ("correlate --paired: Pearson r (log(1 + minutes), Fisher z)", "coverage",
           row["pearson_ci_low"] <= truth["r"] <= row["pearson_ci_high"])


def kappa_tables(rng: np.random.Generator, n_scans: int, frames: int = 120) -> np.ndarray:
    """Per-scan confusion tables of 4 classes; each scan's accuracy drawn from Beta(8, 2)."""
    tables = np.zeros((n_scans, 4, 4))
    for s in range(n_scans):
        truth = rng.choice(4, frames, p=[0.4, 0.3, 0.2, 0.1])
        right = rng.random(frames) < rng.beta(8, 2)
        pred = np.where(right, truth, rng.integers(0, 4, frames))
        np.add.at(tables[s], (truth, pred), 1)
    return tables


def kappa_truth(n_scans: int = 20_000) -> float:
    tables = kappa_tables(np.random.default_rng(3), n_scans)
    return float(cohens_kappa(tables, ci_method="asymptotic").kappa)


def kappa_interval(rng: np.random.Generator, condition: Condition, truth: float
                   ) -> Iterator[tuple[str, str, bool]]:
    result = cohens_kappa(kappa_tables(rng, 2 * condition.operators), n_boot=N_BOOT,
                          seed=int(rng.integers(2**31)))
    yield ("correlate --paired: Cohen's kappa (cluster bootstrap)", "coverage",
           result.ci_low <= truth <= result.ci_high)


def calibrate(reps: int, *, seed: int = 0, reps_mixed: int | None = None,
              conditions: tuple[Condition, ...] | None = None,
              progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Run every check `reps` times per condition; one row per statistic, kind and condition:
    ``statistic, kind, condition, rate, mc_se, reps``."""
    conditions = conditions or tuple(Condition(i, o) for i in ICCS for o in OPERATORS)
    agreement, kappa = agreement_truth(), kappa_truth()
    tallies: dict[tuple[str, str, str], list[bool]] = {}
    rng = np.random.default_rng(seed)
    for condition in conditions:
        truth = coverage_truth(condition)
        for rep in range(reps):
            checks = [mean_intervals(rng, condition),
                      coverage_time_stats(rng, condition, effect=0.0, truth=truth),
                      coverage_time_stats(rng, condition, effect=EFFECT, truth=truth),
                      agreement_intervals(rng, condition, agreement),
                      kappa_interval(rng, condition, kappa)]
            if rep < (reps_mixed or reps):
                checks += [group_tests(rng, condition, effect=0.0),
                           group_tests(rng, condition, effect=EFFECT)]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # degenerate draws are part of the design
                for check in checks:
                    for name, kind, hit in check:
                        tallies.setdefault((name, kind, str(condition)), []).append(bool(hit))
        if progress:
            progress(str(condition))
    rows = []
    for (name, kind, condition), hits in tallies.items():
        rate = float(np.mean(hits))
        rows.append({"statistic": name, "kind": kind, "condition": condition, "rate": rate,
                     "mc_se": math.sqrt(rate * (1 - rate) / len(hits)), "reps": len(hits)})
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    """One row per statistic and kind, one column per condition; outside the target in bold."""
    conditions = list(dict.fromkeys(table["condition"]))
    lines = ["| statistic | measure | " + " | ".join(conditions) + " |",
             "|---|---|" + "---|" * len(conditions)]
    for (name, kind), part in table.groupby(["statistic", "kind"], sort=False):
        cells = []
        for condition in conditions:
            row = part[part["condition"] == condition]
            if row.empty:
                cells.append("")
                continue
            rate = float(row["rate"].iloc[0])
            low, high = TARGETS.get(kind, (-1, 2))
            text = f"{rate:.3f}"
            cells.append(text if low <= rate <= high else f"**{text}**")
        lines.append(f"| {name} | {kind.replace('_', ' ')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000,
                        help="repetitions per condition (default 1000)")
    parser.add_argument("--reps-mixed", type=int, default=400,
                        help="repetitions per condition of the group tests, whose mixed model "
                             "is the slowest fit (default 400)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    options = parser.parse_args()
    start = time.perf_counter()
    table = calibrate(options.reps, seed=options.seed, reps_mixed=options.reps_mixed,
                      progress=lambda c: print(f"done: {c}", file=sys.stderr))
    if options.json:
        report({"rows": table.to_dict(orient="records"),
                "seconds": round(time.perf_counter() - start, 1)}, as_json=True)
        return
    print(markdown(table))
    print(f"\n{options.reps} repetitions per condition ({options.reps_mixed} for the group "
          f"tests); Monte Carlo SE up to {table['mc_se'].max():.3f}; "
          f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
