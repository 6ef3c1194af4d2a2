"""The skill estimate: leave-one-operator-out for real, metrics as scikit-learn computes them,
better than the majority-class baseline on the simulator's experts and trainees."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from analytics.groups import GroupError
from analytics.selection import select
from analytics.skill import skill_estimate, skill_features
from analytics.warnings import DegenerateDataWarning
from fetal_analytics.ingest import ingest_labels, ingest_manifest
from fetal_analytics.store import Store
from fetal_analytics.synth import simulate_cohort, write_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """The simulator's workflow model: 40 scans by 10 experts and trainees, exact timelines."""
    folder = tmp_path_factory.mktemp("skill")
    cohort = simulate_cohort(scans=40, operators=10, seed=8)
    write_cohort(cohort, folder / "sim", video=False)
    store = Store(folder / "skill.duckdb")
    ingest_manifest(store, folder / "sim" / "manifest.csv")
    ingest_labels(store, folder / "sim" / "truth" / "events.csv", source="auto")
    selection = select(store)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)
        result = skill_estimate(store, selection, n_boot=300)
    yield store, selection, result
    store.close()


def test_no_fold_trains_on_its_test_operator(cohort):
    store, selection, result = cohort
    operators = set(result.operators["operator_id"])
    assert len(result.folds) == len(operators) == 10
    for fold in result.folds:
        assert fold["test_operator"] not in fold["train_operators"]
        assert set(fold["train_operators"]) == operators - {fold["test_operator"]}
    # One held-out operator's probabilities, refitted by hand on the other operators alone.
    table = skill_features(store, selection)
    features = list(result.features)
    held_out = result.folds[3]["test_operator"]
    train, test = table[table.operator_id != held_out], table[table.operator_id == held_out]
    model = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                          LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000))
    model.fit(train[features].to_numpy(float), (train.group == "expert").to_numpy(int))
    expected = model.predict_proba(test[features].to_numpy(float))[:, 1]
    got = result.scans.set_index("scan_id").loc[test.scan_id, "probability"].to_numpy()
    assert got == pytest.approx(expected)


def test_metrics_match_scikit_learn_and_beat_the_baseline(cohort):
    _, _, result = cohort
    metrics = result.metrics.set_index(["level", "metric"])["value"]
    truth = (result.scans.group == "expert").to_numpy(int)
    probability = result.scans.probability.to_numpy()
    assert metrics["scan", "accuracy"] == pytest.approx(
        accuracy_score(truth, probability >= 0.5))
    assert metrics["scan", "balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(truth, probability >= 0.5))
    assert metrics["scan", "roc_auc"] == pytest.approx(roc_auc_score(truth, probability))
    per_op = result.operators
    assert metrics["operator", "roc_auc"] == pytest.approx(
        roc_auc_score(per_op.group == "expert", per_op.probability))
    assert per_op.set_index("operator_id").probability.to_dict() == pytest.approx(
        result.scans.groupby("operator_id").probability.mean().to_dict())
    # The simulator's trainees search longer and revisit more: far above the 0.5 baseline.
    row = result.metrics.set_index(["level", "metric"]).loc[("scan", "balanced_accuracy")]
    assert row["ci_low"] > 0.5 and row["ci_low"] <= row["value"] <= row["ci_high"]
    assert 0 <= result.brier < 0.25
    record = result.to_dict()
    assert json.loads(json.dumps(record, allow_nan=False)) == record
    assert record["pulse"]["unseen_operator_accuracy"] == 0.769


def test_groups_that_cannot_be_estimated(cohort):
    store, selection, _ = cohort
    with pytest.raises(GroupError, match="groups present"):
        skill_estimate(store, selection, positive_group="fellow")
    groups = store.con.execute("SELECT operator_id, grp FROM operators").fetchall()
    store.con.execute("UPDATE operators SET grp = 'expert'")
    try:
        with pytest.raises(GroupError, match="outside 'expert'"):
            skill_estimate(store, selection)
    finally:
        for operator, group in groups:
            store.con.execute("UPDATE operators SET grp = ? WHERE operator_id = ?",
                              [group, operator])


def test_the_bootstraps_numpy_scores_are_scikit_learns():
    from analytics.skill import _fast_scores, _scores

    rng = np.random.default_rng(3)
    for n in (2, 3, 7, 40):
        for _ in range(30):
            truth = rng.integers(0, 2, n)
            probability = np.round(rng.random(n), 1)  # ties
            fast, slow = _fast_scores(truth, probability), _scores(truth, probability)
            for metric in ("accuracy", "balanced_accuracy", "roc_auc"):
                if np.isnan(slow[metric]):
                    assert np.isnan(fast[metric])
                else:
                    assert fast[metric] == pytest.approx(slow[metric], abs=1e-12)
