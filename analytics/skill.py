"""A skill estimate from workflow: how much a scan's workflow resembles that of a group.

As the PULSE group classified operator skill from representations of the scanning workflow
(98.5% accuracy in cross-validation over scans, 76.9% on operators never seen in training), a
classifier is trained on per-scan workflow features of operators of known group, and evaluated
**leave-one-operator-out**: every fold holds out all the scans of one operator and trains on the
others, so no test operator's scan is ever seen in training (each fold records its training
operators, and the test checks it). What it estimates is evidence about workflow, not a verdict
on a person.

Features (per scan): the numeric workflow features of `analytics.features.scan_features` except
the censored time to full coverage, and the share of labelled time in each category of the
paper's 11. The classifier is a standardised L2 logistic regression with balanced class weights
(scikit-learn), whose output is a probability; the out-of-fold probabilities are reported, and
their Brier score says how well calibrated they are.

Figures, each with a 95% percentile bootstrap CI over operators (operators resampled with all
their scans): per scan and per operator (the mean of the operator's scan probabilities),
``accuracy``, ``balanced_accuracy`` (the majority-class baseline scores 0.5) and ``roc_auc``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from analytics.features import category_times, scan_features
from analytics.groups import CENSORED_FEATURES, GroupError, groups_present
from analytics.warnings import DegenerateDataWarning
from fetal_analytics import taxonomy
from fetal_analytics.results import Result

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from analytics.selection import EventSelection
    from fetal_analytics.store import Store

__all__ = ["METRICS", "PULSE", "SkillEstimate", "skill_estimate", "skill_features"]

METRICS = ("accuracy", "balanced_accuracy", "roc_auc")
"""The figures of `SkillEstimate.metrics`."""

PULSE = {"cross_validation_accuracy": 0.985, "unseen_operator_accuracy": 0.769}
"""The PULSE group's figures, for comparison: accuracy over scans in cross-validation, and on
operators never seen in training."""

_SHARE_PREFIX = "share:"
_C = 1.0  # inverse L2 strength: fixed, never tuned on the operators it is then scored on


@dataclass(frozen=True)
class SkillEstimate(Result):
    """Leave-one-operator-out skill estimate (see the module docstring).

    Attributes
    ----------
    metrics : pandas.DataFrame
        One row per level (``scan``, ``operator``) and metric (`METRICS`): ``level, metric,
        value, ci_low, ci_high``.
    operators : pandas.DataFrame
        One row per operator: ``operator_id, group, n_scans, probability`` (the mean
        out-of-fold probability of their scans resembling `positive_group`), ``predicted``.
    scans : pandas.DataFrame
        One row per scan: ``scan_id, operator_id, group, probability``.
    positive_group : str
    n_operators : dict of str to int
        Operators per group.
    brier : float
        Brier score of the scan probabilities (0 is perfect; 0.25 is a coin).
    features : tuple of str
        The features the classifier used.
    folds : list of dict
        Per fold: ``test_operator`` and ``train_operators``.
    pulse : dict
        The PULSE group's figures (`PULSE`), to put beside these.
    selection : str
    """

    metrics: pd.DataFrame
    operators: pd.DataFrame
    scans: pd.DataFrame
    positive_group: str
    n_operators: dict[str, int]
    brier: float
    features: tuple[str, ...]
    folds: list[dict] = field(repr=False)
    pulse: dict = field(default_factory=lambda: dict(PULSE))
    selection: str = ""

    frame_field: ClassVar[str] = "metrics"


def skill_features(store: Store, selection: EventSelection) -> pd.DataFrame:
    """The per-scan feature table the classifier reads: ``scan_id, operator_id, group``, then
    one column per feature (see the module docstring)."""
    scans = scan_features(store, selection)
    numeric = [c for c in scans.select_dtypes("number").columns if c not in CENSORED_FEATURES]
    times = category_times(store, selection, categories=taxonomy.default_model_codes())
    shares = times.pivot(index="scan_id", columns="label", values="share")
    shares = shares.reindex(columns=list(taxonomy.default_model_codes())).add_prefix(
        _SHARE_PREFIX)
    table = scans[["scan_id", "operator_id", "group", *numeric]].merge(
        shares.reset_index(), on="scan_id", how="left")
    return table.reset_index(drop=True)


def skill_estimate(store: Store, selection: EventSelection, *, positive_group: str = "expert",
                   n_boot: int = 1000, seed: int = 0) -> SkillEstimate:
    """Train and evaluate the skill classifier leave-one-operator-out.

    Parameters
    ----------
    store : Store
    selection : EventSelection
    positive_group : str, optional
        The group whose workflow the probability is of resembling; every other group is the
        negative class.
    n_boot : int, optional
        Bootstrap resamples of the operators for the CIs.
    seed : int, optional

    Raises
    ------
    GroupError
        `positive_group` has no operators, or no other group has any, or either class has
        fewer than 2 operators (a held-out operator would leave its class untrained).
    """
    import numpy as np

    present = groups_present(store, selection)
    if positive_group not in present:
        raise GroupError(f"no operator of group {positive_group!r} has scans in the "
                         f"selection; groups present: {', '.join(map(repr, present))}")
    if len(present) < 2:
        raise GroupError(f"a skill estimate needs operators outside {positive_group!r} too; "
                         f"groups present: {', '.join(map(repr, present))}")
    n_positive = present[positive_group]
    n_negative = sum(n for g, n in present.items() if g != positive_group)
    if min(n_positive, n_negative) < 2:
        raise GroupError(f"leave-one-operator-out needs at least 2 operators in "
                         f"{positive_group!r} and 2 outside it, got {n_positive} and "
                         f"{n_negative}")
    table = skill_features(store, selection)
    features = tuple(c for c in table.columns if c not in ("scan_id", "operator_id", "group"))
    x = table[list(features)].to_numpy(dtype=float)
    y = (table["group"] == positive_group).to_numpy(dtype=int)
    operators = table["operator_id"].to_numpy()
    probability, folds = _out_of_fold(x, y, operators)
    scans = table[["scan_id", "operator_id", "group"]].assign(probability=probability)
    per_operator = (scans.groupby(["operator_id", "group"], sort=True)
                    .agg(n_scans=("scan_id", "size"), probability=("probability", "mean"))
                    .reset_index())
    per_operator["predicted"] = np.where(per_operator["probability"] >= 0.5, positive_group,
                                         "other")
    metrics = _metrics_with_cis(scans, per_operator, positive_group, n_boot=n_boot, seed=seed)
    return SkillEstimate(
        metrics=metrics, operators=per_operator, scans=scans, positive_group=positive_group,
        n_operators={g: int(n) for g, n in present.items()},
        brier=float(np.mean((probability - y) ** 2)), features=features, folds=folds,
        selection=selection.description)


def _out_of_fold(x: np.ndarray, y: np.ndarray, operators: np.ndarray
                 ) -> tuple[np.ndarray, list[dict]]:
    """Each scan's probability from a model that never saw its operator."""
    import numpy as np
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import LeaveOneGroupOut
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probability = np.full(len(y), np.nan)
    folds = []
    for train, test in LeaveOneGroupOut().split(x, y, groups=operators):
        model = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                              LogisticRegression(C=_C, class_weight="balanced", max_iter=1000))
        model.fit(x[train], y[train])
        probability[test] = model.predict_proba(x[test])[:, 1]
        folds.append({"test_operator": str(operators[test][0]),
                      "train_operators": sorted(set(map(str, operators[train])))})
    return probability, folds


def _scores(truth: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    import numpy as np
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score

    predicted = (probability >= 0.5).astype(int)
    both = len(np.unique(truth)) == 2
    return {"accuracy": float(accuracy_score(truth, predicted)),
            "balanced_accuracy": float(balanced_accuracy_score(truth, predicted))
            if both else math.nan,
            "roc_auc": float(roc_auc_score(truth, probability)) if both else math.nan}


def _fast_scores(truth: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    """`_scores` in numpy, for the bootstrap's thousands of draws (scikit-learn's input checks
    cost ~1 ms a call): the same accuracy, balanced accuracy (mean recall of the two classes)
    and ROC AUC (the Mann-Whitney statistic with ties counted half, which is what
    `roc_auc_score` computes); NaN for the last two when `truth` holds one class."""
    import numpy as np
    from scipy.stats import rankdata

    predicted = probability >= 0.5
    positive = truth == 1
    n_pos = int(positive.sum())
    n_neg = len(truth) - n_pos
    accuracy = float(np.mean(predicted == positive))
    if n_pos == 0 or n_neg == 0:
        return {"accuracy": accuracy, "balanced_accuracy": math.nan, "roc_auc": math.nan}
    recall_pos = float(np.sum(predicted & positive)) / n_pos
    recall_neg = float(np.sum(~predicted & ~positive)) / n_neg
    ranks = rankdata(probability)
    auc = (float(ranks[positive].sum()) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return {"accuracy": accuracy, "balanced_accuracy": (recall_pos + recall_neg) / 2,
            "roc_auc": auc}


def _metrics_with_cis(scans: pd.DataFrame, operators: pd.DataFrame, positive: str, *,
                      n_boot: int, seed: int) -> pd.DataFrame:
    """Scan- and operator-level metrics, with percentile CIs from resampling operators."""
    import numpy as np
    import pandas as pd

    ids = operators["operator_id"].to_numpy()
    scan_rows = {o: np.flatnonzero(scans["operator_id"].to_numpy() == o) for o in ids}
    truth_scan = (scans["group"] == positive).to_numpy(dtype=int)
    truth_op = (operators["group"] == positive).to_numpy(dtype=int)
    prob_scan, prob_op = scans["probability"].to_numpy(), operators["probability"].to_numpy()

    def levels(draw: np.ndarray, scores=_fast_scores) -> dict[str, dict[str, float]]:
        rows = np.concatenate([scan_rows[ids[i]] for i in draw])
        return {"scan": scores(truth_scan[rows], prob_scan[rows]),
                "operator": scores(truth_op[draw], prob_op[draw])}

    point = levels(np.arange(len(ids)), _scores)  # scikit-learn's own, for the figures
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a draw of one class has no AUC: left out
        draws = [levels(rng.integers(0, len(ids), len(ids))) for _ in range(int(n_boot))]
    rows = []
    for level in ("scan", "operator"):
        for metric in METRICS:
            values = np.array([d[level][metric] for d in draws], dtype=float)
            values = values[np.isfinite(values)]
            low, high = (np.percentile(values, [2.5, 97.5]) if len(values) >= 2
                         else (math.nan, math.nan))
            rows.append({"level": level, "metric": metric, "value": point[level][metric],
                         "ci_low": float(low), "ci_high": float(high)})
    if len(ids) < 10:
        warnings.warn(f"{len(ids)} operators: the skill estimate's intervals are wide and "
                      f"approximate", DegenerateDataWarning, stacklevel=3)
    return pd.DataFrame(rows)
