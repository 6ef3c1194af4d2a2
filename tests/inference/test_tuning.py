"""Tuning the decoding on stored window probabilities, through a real store and the real CLI."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from fetal_analytics.cli import main
from fetal_analytics.errors import UserError
from fetal_analytics.events import relabel_others
from fetal_analytics.ingest import ingest_labels, ingest_manifest
from fetal_analytics.runs import UnknownRunError
from fetal_analytics.store import Store
from inference.decoding import DecodingParams
from inference.tuning import (
    TUNABLE,
    TuningError,
    _reference_frames,
    tune_decoding,
    write_sidecar_decoding,
)

CLASSES = ["HeD", "Bk", "Br", "Sp", "Ab"]
SCANS = {"V1": 240.0, "V2": 200.0, "V3": 180.0}  # scan -> duration in seconds
# A deliberately bad combination: no stickiness, sharp emissions, uniform transitions, no
# merging (= argmax).
BAD = {"temperature": 0.05, "expected_segment_s": 1.0, "background_share": None,
       "background_segment_s": None, "min_duration_s": 0.0}
GRID = {"temperature": [0.05, 2.0], "expected_segment_s": [1.0, 20.0],
        "background_share": [None, 0.8], "background_segment_s": [None, 8.0],
        "min_duration_s": [0.0, 3.0]}


def reference_events(rng: np.random.Generator) -> pd.DataFrame:
    """Dense timelines: structures of 8-40 s separated by Bk of 4-12 s; one Um (not a model
    class) event in V2."""
    rows = []
    for scan, duration in SCANS.items():
        t = 0.0
        structure = True
        while t < duration:
            length = rng.uniform(8, 40) if structure else rng.uniform(4, 12)
            label = str(rng.choice(["HeD", "Br", "Sp", "Ab"])) if structure else "Bk"
            end = min(duration, round(t + length, 1))
            rows.append({"scan_id": scan, "start_s": t, "end_s": end, "label": label})
            t, structure = end, not structure
    events = pd.DataFrame(rows)
    um = events.index[(events["scan_id"] == "V2") & (events["label"] != "Bk")][1]
    events.loc[um, "label"] = "Um"
    return events


def noisy_posteriors(events: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Fused posteriors every 1 s: the true class (Um -> Bk) mostly wins, with 15% flips."""
    frames = []
    for scan, duration in SCANS.items():
        ev = events[events["scan_id"] == scan]
        times = np.arange(0.5, duration, 1.0)
        index = np.searchsorted(ev["start_s"].to_numpy(), times, side="right") - 1
        labels = ev["label"].to_numpy()[index]
        true = np.array([CLASSES.index("Bk" if lab == "Um" else lab) for lab in labels])
        flip = rng.random(len(times)) < 0.15
        winner = np.where(flip, rng.integers(len(CLASSES), size=len(times)), true)
        probs = (0.3 * rng.dirichlet(np.ones(len(CLASSES)), size=len(times))
                 + 0.7 * np.eye(len(CLASSES))[winner])
        frames.append(pd.DataFrame({"scan_id": scan, "t_s": times, "stream": "fused",
                                    "probs": list(probs.astype(np.float32))}))
    return pd.concat(frames, ignore_index=True)


def add_auto_run(store: Store, name: str, params: dict | None,
                 windows: pd.DataFrame | None) -> int:
    run_id = store.scalar(
        "INSERT INTO runs (name, source, kind, params_json, status, finished_at) "
        "VALUES (?, 'auto', 'label', ?, 'finished', current_timestamp) RETURNING run_id",
        [name, None if params is None else json.dumps(params)])
    if windows is not None:
        store.insert_frame("window_probs", windows.assign(run_id=run_id))
    return run_id


def labeller_params(**extra) -> dict:
    return {"classes": CLASSES, "decoding": DecodingParams().to_dict(),
            "streams": ["fr4", "2d"], "model": {"path": "m.keras"}, **extra}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """A database with three validation scans: a reference run 'truth' and an auto run 'v1'
    with fused window probabilities (and 'imported', an auto run without any)."""
    folder = tmp_path_factory.mktemp("tuning")
    rng = np.random.default_rng(7)
    manifest = folder / "manifest.csv"
    manifest.write_text("scan_id,operator_id,group\nV1,OP1,expert\nV2,OP1,expert\n"
                        "V3,OP2,trainee\nV4,OP2,trainee\n")
    events = reference_events(rng)
    labels = folder / "truth.csv"
    events.to_csv(labels, index=False)
    path = folder / "val.duckdb"
    with Store(path) as store:
        ingest_manifest(store, manifest)
        ingest_labels(store, labels, source="manual", run_name="truth")
        # V1's duration is known; V2's and V3's are not (last window + half a hop).
        store.con.execute("UPDATE scans SET duration_s = 240.0 WHERE scan_id = 'V1'")
        windows = noisy_posteriors(events, rng)
        # V4 has windows but no reference: it is not scored.
        v4 = windows[windows["scan_id"] == "V1"].assign(scan_id="V4")
        add_auto_run(store, "v1", labeller_params(), pd.concat([windows, v4]))
        add_auto_run(store, "imported", labeller_params(), None)
    return path


@contextmanager
def copy_with_auto_run(cohort: Path, tmp_path: Path, name: str, params: dict, *,
                       scans: Sequence[str] | None = None) -> Iterator[tuple[Store, pd.DataFrame]]:
    """A writable copy of the cohort with one more auto run `name`, holding run v1's window
    probabilities (of `scans` only, if given); yields the open store and those windows."""
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(cohort.read_bytes())
    with Store(copy) as store:
        windows = store.query_df("SELECT scan_id, t_s, stream, probs FROM window_probs "
                                 "WHERE run_id = (SELECT run_id FROM runs WHERE name = 'v1')")
        if scans is not None:
            windows = windows[windows["scan_id"].isin(scans)].reset_index(drop=True)
        add_auto_run(store, name, params, windows)
        yield store, windows


@pytest.fixture
def store(cohort):
    with Store(cohort, read_only=True) as store:
        yield store


def row_of(result, **params):
    (row,) = [r for r in result.table if all(r[k] == v for k, v in params.items())]
    return row


def test_tuning_beats_a_bad_combination_and_sorts_by_the_objective(store):
    result = tune_decoding(store, "truth", "v1", grid=GRID, objective="f1_25")
    assert result.scans == ("V1", "V2", "V3") and result.objective == "f1_25"
    assert len(result.table) == 32
    scores = [row["f1_25"] for row in result.table]
    assert scores == sorted(scores, reverse=True)
    bad = row_of(result, **BAD)
    assert result.table[0]["f1_25"] > bad["f1_25"] + 0.2
    assert result.table[0]["edit"] > bad["edit"]
    best = result.best
    assert {k: getattr(best, k) for k in TUNABLE} == {k: result.table[0][k] for k in TUNABLE}
    assert best.hop_s == 1.0 and best.min_duration_s == 3.0
    assert set(result.table[0]) == {"temperature", "prior_power", "expected_segment_s",
                                    "background_share", "background_segment_s",
                                    "min_duration_s", "f1_10", "f1_25", "f1_50", "edit",
                                    "accuracy"}
    # The grid's None (uniform transitions) reaches the table as None.
    assert {row["background_share"] for row in result.table} == {None, 0.8}
    assert {row["background_segment_s"] for row in result.table} == {None, 8.0}
    # The cohort puts Bk between every two structures: sending 80% of the leaving mass to Bk
    # wins, and beats the same combination with uniform transitions.
    assert best.background_share == 0.8 and result.table[0]["f1_25"] == 1.0
    uniform = row_of(result, **{k: getattr(best, k) for k in TUNABLE
                                if k not in ("background_share", "background_segment_s")},
                     background_share=None, background_segment_s=None)
    assert uniform["f1_25"] < result.table[0]["f1_25"]


def test_another_objective_sorts_the_table_by_it(store):
    result = tune_decoding(store, "truth", "v1", grid=GRID, objective="accuracy")
    accuracy = [row["accuracy"] for row in result.table]
    assert accuracy == sorted(accuracy, reverse=True)
    assert 0 < accuracy[-1] <= accuracy[0] <= 1


def test_the_default_grid_without_priors_tries_one_prior_power(store):
    result = tune_decoding(store, "truth", "v1")
    # 3 temperatures x 3 lengths x 3 background shares x 3 background lengths x 3 minimum
    # durations
    assert len(result.table) == 243
    assert {row["prior_power"] for row in result.table} == {0.0}
    assert {row["background_share"] for row in result.table} == {None, 0.5, 0.8}
    assert {row["background_segment_s"] for row in result.table} == {None, 10.0, 20.0}


def test_reference_labels_outside_the_model_classes_count_as_bk(store):
    # The Um event of V2 is background to the model: the posteriors say Bk there, so with
    # Um counted as Bk the accuracy of the best decoding is high.
    result = tune_decoding(store, "truth", "v1", grid={"min_duration_s": [2.0]})
    assert result.table[0]["accuracy"] > 0.9
    assert result.relabelled == {"Um": 1} and result.to_dict()["relabelled"] == {"Um": 1}
    events = pd.DataFrame({"start_s": [0.0, 2.0, 4.0], "end_s": [2.0, 3.0, 5.0],
                           "label": ["Br", "Um", "Fe"]})
    as_model_sees = relabel_others(events, CLASSES, code="Bk").events
    frames = _reference_frames(as_model_sees, np.arange(0.25, 5.0, 0.5))
    assert frames.tolist() == ["Br"] * 4 + ["Bk"] * 2 + [None] * 2 + ["Bk"] * 2


def test_priors_recorded_by_the_run_are_used(cohort, tmp_path):
    with copy_with_auto_run(cohort, tmp_path, "v1-priors",
                            labeller_params(priors=[1, 4, 1, 1, 1])) as (store, _):
        result = tune_decoding(store, "truth", "v1-priors",
                               grid={"prior_power": [0.0, 1.0], "temperature": [1.0]})
    assert {row["prior_power"] for row in result.table} == {0.0, 1.0}
    # Dividing by a prior that favours Bk changes the decoding.
    assert row_of(result, prior_power=0.0)["accuracy"] != row_of(result, prior_power=1.0)[
        "accuracy"]


def test_an_auto_run_without_window_probabilities_is_named(store):
    with pytest.raises(TuningError, match=r"run \d+ 'imported' \(auto\) has no stored window "
                                          r"probabilities of stream 'fused'"):
        tune_decoding(store, "truth", "imported")
    with pytest.raises(TuningError, match=r"'v1' \(auto\) has no stored window probabilities "
                                          r"of stream 'fr2': it has streams fused"):
        tune_decoding(store, "truth", "v1", stream="fr2")


def test_bad_grids_objectives_and_runs_are_refused(store):
    with pytest.raises(TuningError, match=r"unknown parameter\(s\) 'hop_s'"):
        tune_decoding(store, "truth", "v1", grid={"hop_s": [1.0]})
    with pytest.raises(TuningError, match=r"the grid's 'temperature': `temperature` must be"):
        tune_decoding(store, "truth", "v1", grid={"temperature": [0.0]})
    with pytest.raises(TuningError, match=r"the grid's 'background_share': `background_share` "
                                          r"must be a number in \[0, 1\] or None, got 1.5"):
        tune_decoding(store, "truth", "v1", grid={"background_share": [None, 1.5]})
    with pytest.raises(TuningError, match=r"got 'f1@25' \(did you mean 'f1_25'\?\)"):
        tune_decoding(store, "truth", "v1", objective="f1@25")
    with pytest.raises(UnknownRunError, match="no run 'nope'"):
        tune_decoding(store, "truth", "nope")
    assert issubclass(TuningError, UserError)


def test_a_model_without_bk_tries_one_value_of_the_background_parameters(cohort, tmp_path):
    # The same posteriors, but the model's second class is Fe: the reference's Bk is not one
    # of its classes (it counts as Bk, which the model cannot output).
    classes = ["Fe" if c == "Bk" else c for c in CLASSES]
    with copy_with_auto_run(cohort, tmp_path, "no-bk", labeller_params(classes=classes)) as (
            store, _):
        result = tune_decoding(store, "truth", "no-bk", grid=GRID)
    assert len(result.table) == 8
    assert {(row["background_share"], row["background_segment_s"])
            for row in result.table} == {(None, None)}


def test_runs_without_shared_scans_are_refused(cohort, tmp_path):
    with copy_with_auto_run(cohort, tmp_path, "only-v4", labeller_params(),
                            scans=["V4"]) as (store, windows):
        with pytest.raises(TuningError, match=r"no scan has both window probabilities in run "
                                              r"\d+ 'only-v4' \(1 scans\) and events in "
                                              r"reference run \d+ 'truth' \(3 scans\)"):
            tune_decoding(store, "truth", "only-v4")
        add_auto_run(store, "no-classes", {"decoding": {}}, windows)
        with pytest.raises(TuningError, match="params_json lacks the list of \"classes\""):
            tune_decoding(store, "truth", "no-classes")


# --- the command line ---------------------------------------------------------------------------

def invoke(*args, code: int = 0):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def test_the_cli_prints_the_best_parameters_and_updates_the_sidecar(cohort, tmp_path):
    model = tmp_path / "model.keras"
    model.write_bytes(b"not really a model")
    sidecar = {"format": "fetal-analytics-model", "codes": CLASSES, "sha256": "ab" * 32,
               "decoding": {"beta": 0.4, "min_duration_s": 2.0, "hop_s": 1.0}}
    model.with_suffix(".json").write_text(json.dumps(sidecar))
    result = invoke("tune-decoding", "--db", cohort, "--manual", "truth", "--auto", "v1",
                    "--format", "json", "--top", "3", "--update-model", model)
    report = json.loads(result.stdout)
    assert f"wrote the best decoding parameters to {model.with_suffix('.json')}" in result.stderr
    assert report["scans"] == ["V1", "V2", "V3"] and report["objective"] == "f1_25"
    assert len(report["table"]) == 3 and report["n_combinations"] == 243
    top = report["table"][0]
    # Background parameters of None (the default) are left out of the parameters.
    assert report["best"] == {**DecodingParams().to_dict(),
                              **{k: top[k] for k in TUNABLE if top[k] is not None}}
    written = json.loads(model.with_suffix(".json").read_text())
    assert written["decoding"] == report["best"]
    assert DecodingParams.from_dict(written["decoding"]) == replace(
        DecodingParams(), **{k: top[k] for k in TUNABLE})
    assert {k: v for k, v in written.items() if k != "decoding"} == {
        k: v for k, v in sidecar.items() if k != "decoding"}
    assert report["sidecar"] == str(model.with_suffix(".json")) and "beta" not in written[
        "decoding"]


def test_the_cli_table_names_the_best_combination(cohort):
    out = invoke("tune-decoding", "--db", cohort, "--manual", "truth", "--auto", "v1",
                 "--objective", "edit", "--top", "2").output
    assert "Decoding parameters by edit over 3 scans (best 2 of 243)" in out
    assert "background_share" in out and "background_segment_s" in out
    assert "best: hop_s=1, temperature=" in out
    assert "reference labels outside the model's classes, counted as Bk (events): Um 1" in out


def test_the_cli_reports_a_run_without_window_probabilities(cohort):
    result = invoke("tune-decoding", "--db", cohort, "--manual", "truth", "--auto", "imported",
                    code=1)
    assert "Error: run" in result.output and "'imported' (auto) has no stored window " \
        "probabilities" in result.output


def test_a_model_without_a_sidecar_is_refused(tmp_path):
    with pytest.raises(TuningError, match=r"no sidecar .*model.json beside the model"):
        write_sidecar_decoding(tmp_path / "model.keras", DecodingParams())


def test_tuning_a_model_with_classes_sharing_a_code_warns_only_on_other_codes(tmp_path, caplog):
    # A model with rare classes output as Bk (dataset build --rare-as Bk) outputs HeD and Bk.
    (tmp_path / "model.json").write_text(json.dumps({"codes": ["HeD", "Bk", "Bk"]}))
    with caplog.at_level(logging.WARNING, logger="inference.tuning"):
        write_sidecar_decoding(tmp_path / "model.keras", DecodingParams(), classes=("HeD", "Bk"))
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="inference.tuning"):
        write_sidecar_decoding(tmp_path / "model.keras", DecodingParams(), classes=("HeD", "Br"))
    assert "differ from the tuned run's HeD,Br" in caplog.text
