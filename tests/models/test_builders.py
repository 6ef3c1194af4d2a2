"""Model builders (`inference.models`): shapes, parameter counts, names, inflation, saving.

Tiny widths and inputs throughout; parameter counts are checked against counts written out
layer by layer here, independently of the builders.
"""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest

from inference import models
from inference.models import (
    ARCHITECTURES,
    build,
    count_params,
    inflate_from_2d,
    sono_2dtcnn,
    sononet,
    transfer_weights,
)
from inference.presets import MODEL_PRESETS

pytestmark = pytest.mark.filterwarnings(
    # Keras's own model.save() on TensorFlow 2.21 with numpy 2.
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

W, C, T, SIDE = 2, 5, 4, 32  # width, classes, frames, input side
TINY = {"input_shape": (SIDE, SIDE, 1), "classes": C, "width": W, "frames": T}
TWO_D = ("sononet", "vgg16", "vgg19")

# --------------------------------------------------------------- counts written out by hand

CONVS = {"sononet": (2, 2, 3, 3, 3), "vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
MULT = (1, 2, 4, 8, 8)


def trunk_channels(w: int, convs=CONVS["sononet"], c_in: int = 1) -> list[tuple[int, int]]:
    """(in, out) channels of every 3x3 convolution of the trunk."""
    pairs = []
    for n, m in zip(convs, MULT, strict=True):
        for _ in range(n):
            pairs.append((c_in, w * m))
            c_in = w * m
    return pairs


def encoder_counts(w: int) -> tuple[int, int]:
    """(trainable, non-trainable) of SonoNet's trunk and first adaptation layer, trainable."""
    pairs = [*trunk_channels(w)]
    conv = sum(9 * a * b for a, b in pairs) + 8 * w * 4 * w
    bn = sum(b for _, b in pairs) + 4 * w
    return conv + 2 * bn, 2 * bn


def dense_chain(d_in: int, w: int, c: int) -> int:
    units = [d_in, 8 * w, 4 * w, 2 * w, c]
    return sum(a * b + b for a, b in itertools.pairwise(units))


def expected_counts(arch: str, w: int = W, c: int = C, side: int = SIDE) -> tuple[int, int]:
    """(trainable, non-trainable) parameters of `arch` at width `w`, `c` classes."""
    if arch == "sononet":
        enc_t, enc_n = encoder_counts(w)
        return enc_t + 4 * w * c + 2 * c, enc_n + 2 * c
    if arch in ("vgg16", "vgg19"):
        pairs = trunk_channels(w, CONVS[arch])
        conv = sum(9 * a * b + b for a, b in pairs)
        flat = (side // 32) ** 2 * 8 * w
        fc = 64 * w
        return conv + flat * fc + fc + fc * fc + fc + fc * c + c, 0
    if arch == "sono_2dtcnn":
        t_of_block = [1, 1, 3, 3, 3]
        blocks = []
        for b, n in enumerate(CONVS["sononet"]):
            blocks += [t_of_block[b]] * n
        pairs = trunk_channels(w)
        conv = sum(t * 9 * a * bb for t, (a, bb) in zip(blocks, pairs, strict=True))
        conv += 8 * w * 4 * w + 4 * w * c
        bn = sum(b for _, b in pairs) + 4 * w + c
        return conv + 2 * bn, 2 * bn
    enc_t, enc_n = encoder_counts(w)
    f = 4 * w
    if arch in ("feat1d_lstm_rnn", "temp_sono_lstm_rcn"):
        head = 4 * (f * 8 * w + 8 * w * 8 * w + 8 * w) + dense_chain(8 * w, w, c)
        head_n = 0
    elif arch.endswith("2dtcnn"):
        head = 27 * f * f + 2 * f + dense_chain(f, w, c)
        head_n = 2 * f
    else:  # convolutional LSTM: kernel, recurrent kernel, bias
        head = 4 * (9 * f * f + 9 * f * f + f) + dense_chain(f, w, c)
        head_n = 0
    if arch.startswith("feat"):
        return head, enc_t + enc_n + head_n  # the frame encoder is frozen
    return enc_t + head, enc_n + head_n


# --------------------------------------------------------------- every builder


@pytest.fixture(scope="module")
def tiny_models() -> dict[str, keras.Model]:
    return {arch: builder(**TINY) for arch, builder in ARCHITECTURES.items()}


def test_the_registry_holds_the_papers_architectures():
    assert set(ARCHITECTURES) == {
        "sononet", "vgg16", "vgg19", "feat1d_lstm_rnn", "feat2d_2dtcnn", "feat2d_clstm_rnn",
        "temp_sono_2dtcnn", "temp_sono_lstm_rcn", "temp_sono_clstm_rcn", "sono_2dtcnn"}


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_output_shape_and_softmax(tiny_models, arch):
    model = tiny_models[arch]
    frame = (SIDE, SIDE, 1)
    expected_input = (None, *frame) if arch in TWO_D else (None, T, *frame)
    assert tuple(model.input_shape) == expected_input
    assert tuple(model.output_shape) == (None, C)
    x = np.random.default_rng(0).normal(0, 255, (2, *expected_input[1:])).astype("float32")
    y = np.asarray(model.predict_on_batch(x))
    assert y.shape == (2, C)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
    assert model.name == arch or (arch == "sononet" and model.name == f"sononet{W}")


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_parameter_counts(tiny_models, arch):
    counts = count_params(tiny_models[arch])
    assert (counts["trainable"], counts["non_trainable"]) == expected_counts(arch)


@pytest.mark.parametrize("width, millions", [(16, 0.93), (32, 3.72), (64, 14.85)])
def test_sononet_16_32_64_have_the_published_parameter_counts(width, millions):
    # Parameters do not depend on the input size: build small.
    model = sononet(input_shape=(32, 32, 1), classes=14, width=width)
    trainable = count_params(model)["trainable"]
    assert round(trainable / 1e6, 2) == millions
    assert trainable == expected_counts("sononet", width, 14)[0]


def test_vgg16_at_the_paper_configuration_has_the_papers_134_3_million():
    model = ARCHITECTURES["vgg16"](input_shape=(224, 224, 3), classes=11, width=64)
    assert round(count_params(model)["total"] / 1e6, 1) == 134.3


def test_sononet_layers_are_named_by_block_and_position_with_bn_eps_1e_4():
    model = sononet(input_shape=(32, 32, 1), classes=C, width=W)
    names = [layer.name for layer in model.layers]
    expected = ["image"]
    for b, n in enumerate((2, 2, 3, 3, 3), 1):
        for i in range(1, n + 1):
            expected += [f"block{b}_conv{i}", f"block{b}_bn{i}", f"block{b}_relu{i}"]
        if b < 5:
            expected.append(f"block{b}_pool")
    expected += ["adapt_conv1", "adapt_bn1", "adapt_relu1", "adapt_conv2", "adapt_bn2",
                 "avg_pool", "predictions"]
    assert names == expected
    assert all(layer.epsilon == 1e-4 for layer in model.layers
               if isinstance(layer, keras.layers.BatchNormalization))
    assert not any(layer.use_bias for layer in model.layers
                   if isinstance(layer, keras.layers.Conv2D))


def test_dropout_adds_named_layers_and_no_parameters():
    plain, dropped = (ARCHITECTURES["feat2d_2dtcnn"](**TINY, dropout=d) for d in (0.0, 0.3))
    assert count_params(plain) == count_params(dropped)
    assert [layer.name for layer in dropped.layers if "dropout" in layer.name] == [
        "fc1_dropout", "fc2_dropout", "fc3_dropout"]


def test_feature_models_freeze_the_frame_encoder_and_end_to_end_models_do_not(tiny_models):
    for arch in ("feat1d_lstm_rnn", "feat2d_2dtcnn", "feat2d_clstm_rnn"):
        assert not tiny_models[arch].get_layer("frame_features").layer.trainable
    for arch in ("temp_sono_2dtcnn", "temp_sono_lstm_rcn", "temp_sono_clstm_rcn"):
        assert tiny_models[arch].get_layer("frame_features").layer.trainable


def test_presets_differ_only_in_parameters():
    assert MODEL_PRESETS["cpu"] == {"width": 8, "input_shape": (64, 64, 1), "frames": 12}
    assert MODEL_PRESETS["paper"] == {"width": 64, "input_shape": (224, 224, 1), "frames": 12}
    model = build("sono_2dtcnn", preset="cpu", classes=11)
    assert tuple(model.input_shape) == (None, 12, 64, 64, 1)
    assert round(count_params(model)["total"] / 1e6, 2) == 0.69  # DESIGN.md's 2D+t at width 8


def test_unknown_names_and_bad_keywords_are_explained():
    with pytest.raises(ValueError, match=r"got 'sononet64' \(did you mean 'sononet'"):
        build("sononet64")
    with pytest.raises(ValueError, match="`preset` must be one of 'cpu', 'paper', got 'gpu'"):
        build("sononet", preset="gpu")
    with pytest.raises(ValueError, match="`width` must be an integer >= 1"):
        sononet(width=0)
    with pytest.raises(ValueError, match="`input_shape` height and width must be at least 16"):
        sononet(input_shape=(8, 8, 1))
    with pytest.raises(ValueError, match=r"`dropout` must be in \[0, 1\)"):
        sononet(dropout=1.0)


# --------------------------------------------------------------- weights between models


def _randomise_batch_norm(model: keras.Model, seed: int = 0) -> None:
    """Give every BN layer non-trivial statistics, so that copying them is tested."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n),
                               rng.normal(0, 0.5, n), rng.uniform(0.5, 2.0, n)])


def _features(model: keras.Model, x: np.ndarray) -> np.ndarray:
    head = keras.Model(model.input, model.get_layer("avg_pool").output)
    return np.asarray(head.predict_on_batch(x))


@pytest.mark.parametrize("temporal_blocks", [(3, 4, 5), (1, 2, 3, 4, 5)])
def test_inflation_preserves_the_2d_output_on_a_static_clip(temporal_blocks):
    model2d = sononet(input_shape=(SIDE, SIDE, 1), classes=C, width=4)
    _randomise_batch_norm(model2d)
    model3d = sono_2dtcnn(input_shape=(SIDE, SIDE, 1), classes=C, width=4, frames=12,
                          temporal_blocks=temporal_blocks)
    copied = inflate_from_2d(model3d, model2d)
    assert "block5_conv3" in copied and "adapt_bn2" in copied
    assert model3d.get_layer("block5_conv1").kernel.shape[0] == 3
    frames = np.random.default_rng(1).normal(0, 255, (2, SIDE, SIDE, 1)).astype("float32")
    clips = np.repeat(frames[:, np.newaxis], 12, axis=1)  # (2, 12, H, W, 1), static
    expected = _features(model2d, frames)
    assert np.abs(expected).max() > 0.1  # not a trivial comparison
    np.testing.assert_allclose(_features(model3d, clips), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(model3d.predict_on_batch(clips), model2d.predict_on_batch(frames),
                               rtol=1e-4, atol=1e-6)


def test_inflation_names_layers_missing_from_the_2d_model():
    model3d = sono_2dtcnn(**TINY)
    vgg = ARCHITECTURES["vgg16"](**TINY)
    with pytest.raises(ValueError, match=r"has no layers named .*block1_bn1"):
        inflate_from_2d(model3d, vgg)


def test_transfer_weights_loads_a_sononet_into_the_frame_encoder():
    model2d = sononet(input_shape=(SIDE, SIDE, 1), classes=C, width=W)
    _randomise_batch_norm(model2d)
    feat = ARCHITECTURES["feat2d_2dtcnn"](**TINY)
    copied = transfer_weights(feat, model2d)
    assert copied[0] == "block1_conv1" and copied[-1] == "adapt_bn1" and len(copied) == 28
    encoder = feat.get_layer("frame_features").layer
    for name in ("block3_conv2", "adapt_bn1"):
        for got, want in zip(encoder.get_layer(name).get_weights(),
                             model2d.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("arch", ["sono_2dtcnn", "feat2d_clstm_rnn"])
def test_saved_models_load_and_predict_identically(tmp_path, arch):
    model = ARCHITECTURES[arch](**TINY)
    path = tmp_path / f"{arch}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    x = np.random.default_rng(2).normal(0, 255, (2, T, SIDE, SIDE, 1)).astype("float32")
    np.testing.assert_allclose(loaded.predict_on_batch(x), model.predict_on_batch(x),
                               rtol=1e-5, atol=1e-7)
    assert models.count_params(loaded) == models.count_params(model)
