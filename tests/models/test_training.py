"""Training, evaluation and late fusion (`inference.training`, `inference.evaluation`).

One tiny simulated dataset (3 one-minute scans, 32 px, streams fr4 and 2d) and SonoNet of width 4
on the 2d stream keep the whole file at a few tens of seconds on 2 cores. Metrics and fusion are
checked against values worked out by hand in the comments.
"""

from __future__ import annotations

import csv
import json

import cv2
import keras
import numpy as np
import pytest
from click.testing import CliRunner

from fetal_analytics.cli import main
from inference.decoding import DecodingParams
from inference.evaluation import (
    classification_metrics,
    evaluate,
    fuse,
    fuse_log,
    save_confusion_png,
)
from inference.model_file import load_model
from inference.training import TrainingError, train

pytestmark = pytest.mark.filterwarnings(  # raised inside Keras fit by TensorFlow 2.21
    "ignore:__array__ implementation:DeprecationWarning")

TINY = {"stream": "2d", "width": 4, "batch_size": 16, "progress": 0}


@pytest.fixture(scope="module")
def dataset(tiny_clip_dataset):
    return tiny_clip_dataset(seed=4, streams=("fr4", "2d"))


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "sononet-2d"
    return train(dataset, "sononet", epochs=3, seed=0, out=out, **TINY)


def _rows(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# --- training ---------------------------------------------------------------------------------

def test_a_tiny_training_run_reduces_the_training_loss(trained):
    losses = [row["loss"] for row in trained.history]
    assert len(losses) == 3 and trained.resumed_from == 0
    assert losses[-1] < losses[0]
    out = trained.model_path.parent
    assert {"model.keras", "model.json", "last.keras", "best.keras", "metrics.csv"} <= {
        p.name for p in out.iterdir()}
    assert [int(r["epoch"]) for r in _rows(out / "metrics.csv")] == [0, 1, 2]


def test_the_saved_model_carries_what_labelling_needs(trained, dataset):
    loaded = load_model(trained.model_path)  # checks the sha256
    side = loaded.sidecar
    meta = json.loads((dataset / "dataset.json").read_text())
    assert list(loaded.classes) == meta["classes"]
    assert loaded.input_shape == (32, 32, 1) and loaded.frames is None
    assert side["stream"] == {"name": "2d", "spacing_s": None, "frames": 1}
    assert side["preprocessing"]["size"] == [32, 32]
    assert "z-score" in side["preprocessing"]["normalisation"]
    assert side["dataset"]["sha256"] == meta["dataset_sha256"]
    assert side["decoding"] == DecodingParams().to_dict()
    assert side["metrics"]["best_epoch"] == trained.best_epoch
    assert side["metrics"]["best_val_loss"] == pytest.approx(trained.best_val_loss)


def test_a_killed_run_resumes_and_one_seed_gives_the_same_weights(dataset, tmp_path):
    first = train(dataset, "sononet", epochs=1, seed=0, out=tmp_path / "a", **TINY)
    weights = keras.saving.load_model(tmp_path / "a" / "last.keras").get_weights()
    # TensorFlow's CPU ops are deterministic (enable_op_determinism): the same seed, the same
    # weights, bit for bit.
    again = train(dataset, "sononet", epochs=1, seed=0, out=tmp_path / "b", **TINY)
    for w, v in zip(weights, keras.saving.load_model(tmp_path / "b" / "last.keras").get_weights(),
                    strict=True):
        np.testing.assert_array_equal(w, v)
    assert again.history == first.history
    # "Killed" after epoch 1: asking for 2 epochs continues at epoch 2.
    resumed = train(dataset, "sononet", epochs=2, seed=0, out=tmp_path / "a", **TINY)
    assert resumed.resumed_from == 1 and resumed.epochs_run == 2
    rows = _rows(tmp_path / "a" / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert float(rows[0]["loss"]) == pytest.approx(first.history[0]["loss"])


@pytest.mark.parametrize(("arch", "stream", "message"), [
    ("sononet", "fr4", "`arch` 'sononet' takes single frames but stream 'fr4' holds clips"),
    ("sono_2dtcnn", "2d", "`arch` 'sono_2dtcnn' takes clips but stream '2d' holds single"),
    ("sononett", "2d", "got 'sononett' (did you mean 'sononet'?)"),
    ("sononet", "fr2", "`stream` must be one of"),
])
def test_a_wrong_stream_or_arch_is_a_clear_error(dataset, tmp_path, arch, stream, message):
    with pytest.raises(TrainingError) as info:
        train(dataset, arch, stream=stream, epochs=1, out=tmp_path / "x")
    assert message in str(info.value)


def test_the_train_command_names_the_fix(dataset, tmp_path):
    result = CliRunner().invoke(main, ["train", "--dataset", str(dataset), "--arch", "sononet",
                                       "--out", str(tmp_path / "x")])
    assert result.exit_code == 1
    assert "train it on stream '2d'" in result.output


def test_fine_tuning_from_a_2d_model_at_its_own_learning_rate(trained, dataset, tmp_path):
    out = tmp_path / "ft"
    result = CliRunner().invoke(main, [
        "train", "--dataset", str(dataset), "--arch", "sono_2dtcnn", "--stream", "fr4",
        "--epochs", "1", "--init-from", str(trained.model_path), "--learning-rate", "0.001",
        "--out", str(out)])
    # Built at the donor's width (4), not the CPU preset's (8), so its layers fit.
    assert result.exit_code == 0, result.output
    sidecar = load_model(out / "model.keras").sidecar
    assert sidecar["width"] == 4
    side = sidecar["training"]
    assert side["learning_rate"] == 0.001 and side["init_from"] == str(trained.model_path)


def test_a_donor_of_another_width_is_refused_with_the_fix(trained, dataset, tmp_path):
    with pytest.raises(TrainingError, match="start from a 2D SonoNet of the same width"):
        train(dataset, "sono_2dtcnn", stream="fr4", epochs=1, out=tmp_path / "x",
              init_from=trained.model_path, width=8, progress=0)


# --- metrics, by hand ---------------------------------------------------------------------------

# 5 classes; E never occurs nor is predicted, so it is left out of the macro averages.
CLASSES = ["A", "B", "C", "D", "E"]
Y_TRUE = [0, 0, 1, 1, 2, 3]
PROBS = [
    [0.70, 0.10, 0.10, 0.10, 0.0],  # A -> A
    [0.20, 0.50, 0.20, 0.10, 0.0],  # A -> B; A ranks 2nd (top-3)
    [0.10, 0.60, 0.20, 0.10, 0.0],  # B -> B
    [0.50, 0.15, 0.30, 0.05, 0.0],  # B -> A; B ranks 3rd (top-3)
    [0.10, 0.10, 0.70, 0.10, 0.0],  # C -> C
    [0.40, 0.30, 0.25, 0.05, 0.0],  # D -> A; D ranks 4th (not top-3)
]
# Confusion (rows true, columns predicted): A [1 1 0 0 0], B [1 1 0 0 0], C [0 0 1 0 0],
# D [1 0 0 0 0]. Precision A 1/3, B 1/2, C 1, D undefined (never predicted: 0 in the mean);
# recall A 1/2, B 1/2, C 1, D 0; F1 A 2(1/6)/(5/6) = 0.4, B 0.5, C 1, D 0.


def test_metrics_against_hand_computed_values():
    with pytest.warns(RuntimeWarning, match="never predicted"):
        m = classification_metrics(np.array(Y_TRUE), np.array(PROBS), CLASSES)
    assert m.precision == pytest.approx((1 / 3 + 1 / 2 + 1 + 0) / 4)
    assert m.recall == pytest.approx((1 / 2 + 1 / 2 + 1 + 0) / 4)
    assert m.f1 == pytest.approx((0.4 + 0.5 + 1 + 0) / 4)
    assert m.top1 == pytest.approx(3 / 6) and m.top3 == pytest.approx(5 / 6)
    assert m.n == 6
    assert m.confusion.to_numpy().tolist() == [[1, 1, 0, 0, 0], [1, 1, 0, 0, 0],
                                               [0, 0, 1, 0, 0], [1, 0, 0, 0, 0], [0] * 5]
    assert list(m.confusion.index) == CLASSES and list(m.confusion.columns) == CLASSES
    table = m.per_class
    assert table.loc["A", "precision"] == pytest.approx(1 / 3)
    assert table.loc["A", "f1"] == pytest.approx(0.4)
    assert np.isnan(table.loc["D", "precision"]) and table.loc["D", "recall"] == 0
    assert table.support.tolist() == [2, 2, 1, 1, 0]


def test_perfect_predictions_and_bad_input():
    m = classification_metrics([0, 1, 2], np.eye(3), ["a", "b", "c"])
    assert (m.precision, m.recall, m.f1, m.top1, m.top3) == (1.0, 1.0, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"`probs` must have shape \(n, 2\)"):
        classification_metrics([0, 1], np.eye(3)[:2], ["a", "b"])
    with pytest.raises(ValueError, match="`y_true` must be class indices"):
        classification_metrics([0, 5], np.eye(2), ["a", "b"])


def test_fusion_against_hand_computed_values():
    fr2 = np.array([[0.6, 0.4], [0.2, 0.8]])
    fr4 = np.array([[0.2, 0.8], [0.4, 0.6]])
    np.testing.assert_allclose(fuse([fr2, fr4]), [[0.4, 0.6], [0.3, 0.7]])
    # Geometric mean, renormalised: row 0 sqrt(.12) : sqrt(.32), row 1 sqrt(.08) : sqrt(.48).
    row0 = np.sqrt([0.12, 0.32]) / np.sqrt([0.12, 0.32]).sum()
    row1 = np.sqrt([0.08, 0.48]) / np.sqrt([0.08, 0.48]).sum()
    np.testing.assert_allclose(fuse_log([fr2, fr4]), [row0, row1])
    np.testing.assert_allclose(row0, [0.379795897, 0.620204103])
    with pytest.raises(ValueError, match="same shape"):
        fuse([fr2, fr4[:1]])


# --- evaluation ---------------------------------------------------------------------------------

def _n_test(dataset):
    n = sum(json.loads((dataset / "dataset.json").read_text())["counts"]["test"]["2d"].values())
    assert n > 10
    return n


def test_evaluate_a_trained_model(trained, dataset, tmp_path):
    with pytest.warns(RuntimeWarning):  # the tiny test split lacks most classes
        result = evaluate(trained.model_path, dataset)
    n = _n_test(dataset)
    assert result.stream == "2d" and result.split == "test" and result.n == n
    assert result.probabilities.shape == (n, len(result.classes))
    assert int(result.confusion.to_numpy().sum()) == n
    assert result.top1 == pytest.approx(
        np.mean(result.probabilities.argmax(axis=1) == result.labels))
    png = save_confusion_png(result.confusion, tmp_path / "confusion.png", title="test")
    image = cv2.imread(str(png))
    assert image is not None and image.shape[0] > 11 * 44


def test_the_evaluate_command_prints_json_and_draws_the_matrix(trained, dataset, tmp_path):
    png = tmp_path / "c.png"
    result = CliRunner().invoke(main, ["evaluate", str(trained.model_path), "--dataset",
                                       str(dataset), "--format", "json", "--confusion",
                                       str(png)])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert set(record) == {"model", "split", "stream", "n", "precision", "recall", "f1",
                           "top1", "top3", "per_class", "confusion"}
    assert record["n"] == _n_test(dataset) and record["stream"] == "2d"
    assert set(record["per_class"][0]) == {"class", "precision", "recall", "f1", "support"}
    assert len(record["confusion"]["matrix"]) == len(record["confusion"]["classes"])
    assert png.is_file()


def test_evaluate_refuses_a_stream_the_model_cannot_take(trained, dataset):
    result = CliRunner().invoke(main, ["evaluate", str(trained.model_path), "--dataset",
                                       str(dataset), "--stream", "fr4"])
    assert result.exit_code == 1
    assert "takes frames but stream 'fr4' holds clips" in result.output
