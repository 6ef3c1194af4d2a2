"""The statistics calibration benchmark at a few repetitions: the clustered intervals cover on
nested cohorts where the naive ones do not, and the group tests hold their level."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def calibration():
    sys.path.insert(0, str(BENCHMARKS))  # for its `_report`
    try:
        spec = importlib.util.spec_from_file_location(
            "statistics_calibration", BENCHMARKS / "statistics_calibration.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def rates(check, reps: int, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    hits: dict[str, list[bool]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(reps):
            for name, _kind, hit in check(rng):
                hits.setdefault(name, []).append(hit)
    return {name: float(np.mean(values)) for name, values in hits.items()}


def test_clustered_intervals_cover_where_the_naive_one_does_not(calibration):
    condition = calibration.Condition(icc=0.7, operators=12)
    coverage = rates(lambda rng: calibration.mean_intervals(rng, condition), reps=150)
    assert coverage["stats --by scan (CR2 t)"] >= 0.88
    assert coverage["stats --by operator (t)"] >= 0.88
    assert coverage["stats --bootstrap (bootstrap-t)"] >= 0.86
    assert coverage["naive t over scans (before; for comparison)"] <= 0.87


def test_group_tests_hold_their_level_and_find_a_difference(calibration):
    condition = calibration.Condition(icc=0.5, operators=8)
    null = rates(lambda rng: calibration.group_tests(rng, condition, effect=0.0), reps=60)
    assert null["compare: Welch t (operator means)"] <= 0.15
    assert null["compare --mixed-model (t, operator df)"] <= 0.15
    power = rates(lambda rng: calibration.group_tests(rng, condition, effect=1.5), reps=30)
    assert power["compare: Welch t (operator means)"] >= 0.6


def test_the_markdown_table_marks_figures_outside_their_target(calibration):
    table = calibration.calibrate(3, reps_mixed=2, conditions=(calibration.Condition(0.3, 6),))
    assert set(table["kind"]) == {"coverage", "type_i", "power"}
    text = calibration.markdown(table)
    assert text.splitlines()[0].startswith("| statistic | measure | ICC 0.3, 6 operators/group")
    assert ("**" in text) == any(
        not (low <= rate <= high)
        for kind, rate in zip(table["kind"], table["rate"], strict=True)
        for low, high in [calibration.TARGETS.get(kind, (-1, 2))])
