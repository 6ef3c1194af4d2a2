"""Fine-tuning from the published SonoNet-16 (`train --init-from sononet16`, issue 20 item 3),
and `evaluate sononet16` with its classes summed per taxonomy code.

The shipped SonoNet-16 (14 classes, 224 x 288, inputs 255 x z-score) starts a 2D SonoNet and an
inflated Sono-2DtCNN on a tiny simulated dataset (11 classes, 32 px, z-scored): a new class
head, the donor's width, its input scale folded into the first convolution. One epoch at a
negligible learning rate, so the weights are still the donor's when checked.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from fetal_analytics.cli import main
from inference.model_file import SONONET16_MODEL, load_model
from inference.models import fold_input_scale, sononet
from inference.training import train

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
    pytest.mark.skipif(not SONONET16_MODEL.is_file(),
                       reason=f"the shipped {SONONET16_MODEL} is missing"),
]

STILL = "1e-9"  # learning rate: one epoch leaves the donor's weights in place


@pytest.fixture(scope="module")
def dataset(tiny_clip_dataset):
    return tiny_clip_dataset(seed=4, streams=("fr4", "2d"))


@pytest.fixture(scope="module")
def donor():
    return load_model("sononet16")


def _kernel(model, name):
    return np.asarray(model.get_layer(name).kernel)


def test_folding_the_input_scale_is_exact():
    keras.utils.set_random_seed(1)
    a = sononet(input_shape=(32, 32, 1), classes=3, width=4)
    b = keras.models.clone_model(a)
    b.set_weights(a.get_weights())
    fold_input_scale(b, 255.0)
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 1)).astype(np.float32)
    np.testing.assert_allclose(b.predict_on_batch(x), a.predict_on_batch(255 * x), rtol=1e-4,
                               atol=1e-6)


def test_train_init_from_sononet16_starts_a_2d_model_with_a_new_head(dataset, donor, tmp_path):
    out = tmp_path / "s2d"
    result = CliRunner().invoke(main, [
        "train", "--dataset", str(dataset), "--arch", "sononet", "--stream", "2d",
        "--epochs", "1", "--init-from", "sononet16", "--learning-rate", STILL,
        "--out", str(out)])
    assert result.exit_code == 0, result.output
    model = load_model(out / "model.keras")
    classes = json.loads((dataset / "dataset.json").read_text())["classes"]
    assert list(model.classes) == classes and len(classes) != len(donor.classes)
    assert model.sidecar["width"] == 16 and model.input_shape == (32, 32, 1)
    assert model.sidecar["training"]["init_from"] == "sononet16"
    assert model.input_scale == 1.0  # takes the dataset's z-scored frames
    # The trunk is SonoNet-16's; the first convolution takes the 255 x scale; the head is new.
    for name in ("block3_conv2", "block5_conv3", "adapt_conv1"):
        np.testing.assert_allclose(_kernel(model.model, name), _kernel(donor.model, name),
                                   atol=1e-5)
    np.testing.assert_allclose(_kernel(model.model, "block1_conv1"),
                               255 * _kernel(donor.model, "block1_conv1"), rtol=1e-4, atol=1e-4)
    assert _kernel(model.model, "adapt_conv2").shape == (1, 1, 64, len(classes))


def test_train_init_from_sononet16_inflates_a_sono_2dtcnn(dataset, donor, tmp_path):
    result = train(dataset, "sono_2dtcnn", stream="fr4", epochs=1, seed=0, out=tmp_path / "fr4",
                   init_from="sononet16", learning_rate=float(STILL), batch_size=16,
                   progress=0)
    model = load_model(result.model_path)
    assert model.sidecar["width"] == 16 and model.frames == 12
    # Blocks 3-5 are inflated in time (3 x the 2D kernel / 3); blocks 1-2 stay per frame.
    inflated = _kernel(model.model, "block4_conv1")
    assert inflated.shape[0] == 3
    for t in range(3):
        np.testing.assert_allclose(inflated[t], _kernel(donor.model, "block4_conv1") / 3,
                                   atol=1e-5)
    np.testing.assert_allclose(_kernel(model.model, "block2_conv1")[0],
                               _kernel(donor.model, "block2_conv1"), atol=1e-5)
    assert _kernel(model.model, "adapt_conv2").shape[-1] == len(model.classes)


def test_evaluate_scores_sononet16_per_taxonomy_code(dataset):
    # SonoNet's 14 classes summed into its 9 codes and placed among the dataset's 11; its
    # 224 x 288 input is fed the dataset's 32 x 32 frames resized.
    result = CliRunner().invoke(main, ["evaluate", "sononet16", "--dataset", str(dataset),
                                       "--format", "json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    classes = json.loads((dataset / "dataset.json").read_text())["classes"]
    assert record["stream"] == "2d" and record["confusion"]["classes"] == classes
    from inference.evaluation import evaluate

    evaluation = evaluate("sononet16", dataset, split="test")
    np.testing.assert_allclose(evaluation.probabilities.sum(axis=1), 1.0, atol=1e-4)
    for code in ("3Dm", "MaD"):  # no SonoNet class maps to them
        assert not evaluation.probabilities[:, classes.index(code)].any()
