"""Keras 3 models: SonoNet-16/32/64, VGG baselines and the spatio-temporal models of Sharma et al.

Every builder takes the same keywords, so callers and tests can loop over `ARCHITECTURES`:

input_shape : (height, width, channels)
    One frame, channels_last. Temporal models take clips of ``frames`` such frames, i.e. inputs of
    shape (batch, frames, height, width, channels). Default (224, 288, 1), SonoNet's input.
classes : int
    Number of output classes (softmax). Default 11, the paper's classes.
width : int
    Base width: the number of filters of the first block (SonoNet-16 has 16; SonoNet-32, 32;
    SonoNet-64 and VGG, 64). Every other width scales with it.
frames : int
    Frames per clip (temporal models; 2D models ignore it). Default 12.
dropout : float
    Dropout rate in [0, 1) before the classification layers (0: no dropout layer).
name : str or None
    Model name; the architecture's name by default.

Only ``keras.layers`` and ``keras.ops`` are used, channels_last, so a saved ``.keras`` file runs on
the TensorFlow, JAX and PyTorch backends. The one custom layer (`ClipPadding`, the replicate
padding in time of the inflated 3D convolutions) is registered as ``fetal_analytics>ClipPadding``;
import this module before loading such a file. Layers are named by block and position
(``block1_conv1``, ``block1_bn1``, ``block1_relu1``, ``block1_pool``, ..., ``adapt_conv1``,
``adapt_bn1``, ``adapt_relu1``, ``adapt_conv2``, ``adapt_bn2``, ``avg_pool``, ``predictions``), so
weights transfer by name (`transfer_weights`, `inflate_from_2d`) and features can be taken at a
named layer. No builder compiles the model, so nothing asks for XLA (``jit_compile``), which makes
3D convolutions several times slower on CPU; compile with ``jit_compile=False``.

Architectures (paper: Sharma et al., ISBI 2019, Fig. 2; SonoNet: Baumgartner et al., TMI 2017):

``sononet``
    The VGG-16 conv trunk (blocks of 2, 2, 3, 3, 3 convolutions 3x3, widths w, 2w, 4w, 8w, 8w)
    with batch norm (epsilon 1e-4) after every convolution, ReLU, 2x2 max-pooling after blocks
    1-4; adaptation: 1x1 convolution to 4w + BN + ReLU, 1x1 convolution to ``classes`` + BN (no
    ReLU); global average pooling; softmax. Convolutions have no bias. With 14 classes: 0.93 M
    (w=16), 3.72 M (w=32), 14.85 M (w=64) trainable parameters.
``vgg16``, ``vgg19``
    Simonyan & Zisserman: blocks of 3x3 convolutions with bias and ReLU (2-2-3-3-3 or 2-2-4-4-4),
    2x2 max-pooling after each of the 5 blocks, flatten, two dense layers of 64w units (4096 at
    w=64), softmax. Unlike the others, their size depends on the input size.
``feat1d_lstm_rnn``, ``feat2d_2dtcnn``, ``feat2d_clstm_rnn``
    Feature-based: SonoNet's trunk and first adaptation layer (4w feature maps), frozen, applied
    to each frame (`keras.layers.TimeDistributed` of a nested model named ``frame_encoder``),
    then a temporal unit: global-average-pooled 1D features into an LSTM of 8w units; a
    2D+t convolution (3x3x3, 4w filters, BN, ReLU, max-pooling) over the 2D feature maps; a
    convolutional LSTM (3x3, 4w filters) over the 2D feature maps. Then dense layers of 8w, 4w and
    2w units (512, 256, 128 at w=64) with ReLU, and the softmax.
``temp_sono_2dtcnn``, ``temp_sono_lstm_rcn``, ``temp_sono_clstm_rcn``
    End-to-end: the same three models with the per-frame trunk trainable.
``sono_2dtcnn``
    The pure 2D+t CNN: SonoNet with every layer made 3D. Blocks in ``temporal_blocks`` (default
    3, 4 and 5) get 3x3x3 kernels (with the clip replicated at its ends, so a static clip gives
    what the 2D model gives) and their pooling also halves time; the others get 1x3x3 kernels
    (2D per frame). Adaptation 1x1x1; global average pooling over time and space.
    `inflate_from_2d` initialises it from a trained SonoNet (I3D-style).

Model files (the ``.keras`` file and its JSON sidecar, saved and loaded with a sha256 check) are
`inference.model_file`'s; the published SonoNet weights are imported by `inference.sononet`;
build presets (``cpu``, ``paper``) are `inference.presets.MODEL_PRESETS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import layers, ops

from fetal_analytics.checks import check_choice
from inference.model_file import LoadedModel, ModelFileError, load_model, save_model
from inference.presets import MODEL_PRESETS

__all__ = [
    "ARCHITECTURES",
    "BN_EPSILON",
    "DEFAULT_INPUT_SHAPE",
    "FIRST_CONV",
    "SONONET_HEAD",
    "SONONET_LAYERS",
    "TEMPORAL",
    "ClipPadding",
    "build",
    "combine_streams",
    "count_params",
    "feat1d_lstm_rnn",
    "feat2d_2dtcnn",
    "feat2d_clstm_rnn",
    "fold_input_scale",
    "inflate_from_2d",
    "sono_2dtcnn",
    "sononet",
    "temp_sono_2dtcnn",
    "temp_sono_clstm_rcn",
    "temp_sono_lstm_rcn",
    "transfer_weights",
    "vgg16",
    "vgg19",
]

#: Batch-norm epsilon of SonoNet (lasagne's default is 1e-4; Keras's is 1e-3).
BN_EPSILON = 1e-4

#: Default input: one greyscale frame, height 224 x width 288 (SonoNet's).
DEFAULT_INPUT_SHAPE: tuple[int, int, int] = (224, 288, 1)
DEFAULT_CLASSES = 11
DEFAULT_FRAMES = 12

# SonoNet / VGG-16 trunk: convolutions per block and width multiple of each block.
_SONONET_CONVS = (2, 2, 3, 3, 3)
_VGG19_CONVS = (2, 2, 4, 4, 4)
_BLOCK_WIDTHS = (1, 2, 4, 8, 8)
#: The 15 (conv, bn) layer pairs of SonoNet in network order: the order of the published weights.
SONONET_LAYERS: tuple[tuple[str, str], ...] = (
    *((f"block{b}_conv{i}", f"block{b}_bn{i}")
      for b, n in enumerate(_SONONET_CONVS, 1) for i in range(1, n + 1)),
    ("adapt_conv1", "adapt_bn1"),
    ("adapt_conv2", "adapt_bn2"),
)
#: SonoNet's class head: the last adaptation layer (1x1 convolution to the classes + BN). A model
#: started from a SonoNet with other classes gets a new one.
SONONET_HEAD: tuple[str, ...] = SONONET_LAYERS[-1]
#: The first convolution of every SonoNet-family model (`fold_input_scale`).
FIRST_CONV = SONONET_LAYERS[0][0]


# ---------------------------------------------------------------------------------------------
# A custom layer: replicate padding in time


@keras.saving.register_keras_serializable(package="fetal_analytics")
class ClipPadding(layers.Layer):
    """Pad clips for a 'same' 3D convolution: time by repeating the end frames, space by zeros.

    Replicating the first and last frame (instead of zeros) makes an inflated 3D convolution of a
    static clip equal to the 2D convolution of its frame at every time step, the ends included.

    Parameters
    ----------
    time : int
        Frames added at each end of the time axis (1 for a kernel of 3 frames).
    space : int
        Zero pixels added on each side of the height and width axes.

    Input shape (batch, T, H, W, C); output shape (batch, T + 2 time, H + 2 space, W + 2 space, C).
    """

    def __init__(self, time: int = 1, space: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.time = int(time)
        self.space = int(space)

    def call(self, inputs: Any) -> Any:
        x = inputs
        if self.time:
            first = ops.repeat(x[:, :1], self.time, axis=1)
            last = ops.repeat(x[:, -1:], self.time, axis=1)
            x = ops.concatenate([first, x, last], axis=1)
        if self.space:
            s = self.space
            x = ops.pad(x, [[0, 0], [0, 0], [s, s], [s, s], [0, 0]])
        return x

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        b, t, h, w, c = input_shape

        def grow(n: int | None, k: int) -> int | None:
            return None if n is None else n + 2 * k

        return (b, grow(t, self.time), grow(h, self.space), grow(w, self.space), c)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "time": self.time, "space": self.space}


# ---------------------------------------------------------------------------------------------
# Building blocks


def _check(input_shape: Sequence[int] | None, classes: int, width: int, frames: int,
           dropout: float, *, min_side: int = 16) -> tuple[int, int, int]:
    """Validate the shared keywords; return input_shape as a tuple of 3 ints."""
    shape = tuple(DEFAULT_INPUT_SHAPE if input_shape is None else input_shape)
    if len(shape) != 3 or not all(isinstance(v, int | np.integer) and v >= 1 for v in shape):
        raise ValueError(
            f"`input_shape` must be (height, width, channels) of positive integers, got "
            f"{input_shape!r}")
    if min(shape[:2]) < min_side:
        raise ValueError(f"`input_shape` height and width must be at least {min_side} "
                         f"(the trunk halves them 4-5 times), got {input_shape!r}")
    for argname, value, low in (("classes", classes, 2), ("width", width, 1),
                                ("frames", frames, 1)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"`{argname}` must be an integer >= {low}, got {value!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1), got {dropout!r}")
    return int(shape[0]), int(shape[1]), int(shape[2])


def _conv_bn(x: Any, filters: int, kernel: int | tuple[int, ...], *, prefix: str, index: int | str,
             relu: bool = True, dims: int = 2, time_pad: int = 0) -> Any:
    """Convolution without bias + BN (eps 1e-4) [+ ReLU], named ``{prefix}_conv{index}`` etc."""
    if dims == 2:
        x = layers.Conv2D(filters, kernel, padding="same", use_bias=False,
                          name=f"{prefix}_conv{index}")(x)
    else:
        if time_pad:
            x = ClipPadding(time_pad, kernel[1] // 2, name=f"{prefix}_pad{index}")(x)
        x = layers.Conv3D(filters, kernel, padding="valid" if time_pad else "same",
                          use_bias=False, name=f"{prefix}_conv{index}")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{prefix}_bn{index}")(x)
    if relu:
        x = layers.ReLU(name=f"{prefix}_relu{index}")(x)
    return x


def _sononet_trunk(x: Any, width: int) -> Any:
    """SonoNet's 13 convolutions (2D) and the first adaptation layer: (h/16, w/16, 4 width)."""
    for b, (n, mult) in enumerate(zip(_SONONET_CONVS, _BLOCK_WIDTHS, strict=True), 1):
        for i in range(1, n + 1):
            x = _conv_bn(x, width * mult, 3, prefix=f"block{b}", index=i)
        if b < 5:
            x = layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
    return _conv_bn(x, 4 * width, 1, prefix="adapt", index=1)


def _classifier(x: Any, classes: int, width: int, dropout: float) -> Any:
    """Dense layers of 8w, 4w and 2w units (ReLU), each after dropout, then the softmax."""
    for i, units in enumerate((8 * width, 4 * width, 2 * width), 1):
        if dropout:
            x = layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
        x = layers.Dense(units, activation="relu", name=f"fc{i}")(x)
    return layers.Dense(classes, activation="softmax", name="predictions")(x)


def _frame_encoder(input_shape: tuple[int, int, int], width: int, *, trainable: bool) -> Any:
    """A nested model: SonoNet's trunk and first adaptation layer on one frame."""
    frame = keras.Input(input_shape, name="frame")
    encoder = keras.Model(frame, _sononet_trunk(frame, width), name="frame_encoder")
    encoder.trainable = trainable
    return encoder


# ---------------------------------------------------------------------------------------------
# 2D builders


def sononet(*, input_shape: Sequence[int] | None = None, classes: int = DEFAULT_CLASSES,
            width: int = 64, frames: int = DEFAULT_FRAMES, dropout: float = 0.0,
            name: str | None = None) -> keras.Model:
    """SonoNet-`width` (16, 32, 64 published) exactly as Baumgartner et al. (see module doc).

    Parameters
    ----------
    input_shape, classes, width, frames, dropout, name
        The shared keywords (module docstring); `frames` is ignored. `dropout` adds a layer
        ``adapt_dropout`` between the two adaptation layers (not in the published model).

    Returns
    -------
    keras.Model
        Input (batch, height, width, channels) float32 (preprocessed as by
        `inference.roi.preprocess`); output (batch, classes) softmax probabilities.
    """
    shape = _check(input_shape, classes, width, frames, dropout)
    inputs = keras.Input(shape, name="image")
    x = _sononet_trunk(inputs, width)
    if dropout:
        x = layers.Dropout(dropout, name="adapt_dropout")(x)
    x = _conv_bn(x, classes, 1, prefix="adapt", index=2, relu=False)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = layers.Activation("softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name or f"sononet{width}")


def _vgg(convs: tuple[int, ...], arch: str, input_shape: Sequence[int] | None, classes: int,
         width: int, frames: int, dropout: float, name: str | None) -> keras.Model:
    shape = _check(input_shape, classes, width, frames, dropout, min_side=32)
    inputs = keras.Input(shape, name="image")
    x = inputs
    for b, (n, mult) in enumerate(zip(convs, _BLOCK_WIDTHS, strict=True), 1):
        for i in range(1, n + 1):
            x = layers.Conv2D(width * mult, 3, padding="same", activation="relu",
                              name=f"block{b}_conv{i}")(x)
        x = layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    for i in (1, 2):
        x = layers.Dense(64 * width, activation="relu", name=f"fc{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
    outputs = layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name or arch)


def vgg16(*, input_shape: Sequence[int] | None = None, classes: int = DEFAULT_CLASSES,
          width: int = 64, frames: int = DEFAULT_FRAMES, dropout: float = 0.0,
          name: str | None = None) -> keras.Model:
    """VGG-16 baseline (width 64: the original; smaller widths scale every layer).

    Parameters
    ----------
    input_shape, classes, width, frames, dropout, name
        The shared keywords; `frames` is ignored; `dropout` follows each dense layer. Height and
        width must be at least 32 (5 poolings).

    Returns
    -------
    keras.Model
        (batch, height, width, channels) -> (batch, classes) softmax. At width 64, 224 x 224 x 3
        input and 11 classes it has the paper's 134.3 M parameters.
    """
    return _vgg(_SONONET_CONVS, "vgg16", input_shape, classes, width, frames, dropout, name)


def vgg19(*, input_shape: Sequence[int] | None = None, classes: int = DEFAULT_CLASSES,
          width: int = 64, frames: int = DEFAULT_FRAMES, dropout: float = 0.0,
          name: str | None = None) -> keras.Model:
    """VGG-19 baseline: as `vgg16` with 4 convolutions in blocks 3-5.

    Returns
    -------
    keras.Model
        (batch, height, width, channels) -> (batch, classes) softmax.
    """
    return _vgg(_VGG19_CONVS, "vgg19", input_shape, classes, width, frames, dropout, name)


# ---------------------------------------------------------------------------------------------
# Spatio-temporal builders on a per-frame trunk (feature-based: frozen; Temp-Sono: trainable)


def _temporal(kind: str, arch: str, *, trainable: bool, input_shape: Sequence[int] | None,
              classes: int, width: int, frames: int, dropout: float,
              name: str | None) -> keras.Model:
    shape = _check(input_shape, classes, width, frames, dropout)
    clip = keras.Input((frames, *shape), name="clip")
    encoder = _frame_encoder(shape, width, trainable=trainable)
    x = layers.TimeDistributed(encoder, name="frame_features")(clip)  # (T, h, w, 4w)
    if kind == "lstm":
        x = layers.TimeDistributed(layers.GlobalAveragePooling2D(), name="frame_pool")(x)
        x = layers.LSTM(8 * width, name="lstm")(x)
    elif kind == "conv3d":
        x = _conv_bn(x, 4 * width, (3, 3, 3), prefix="temporal", index=1, dims=3, time_pad=1)
        pool = tuple(2 if n is not None and n >= 2 else 1 for n in x.shape[1:4])
        x = layers.MaxPooling3D(pool, name="temporal_pool")(x)
        x = layers.GlobalAveragePooling3D(name="avg_pool")(x)
    else:
        x = layers.ConvLSTM2D(4 * width, 3, padding="same", name="clstm")(x)
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = _classifier(x, classes, width, dropout)
    return keras.Model(clip, outputs, name=name or arch)


def _temporal_doc(fn: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
    fn.__doc__ = (fn.__doc__ or "") + """
    Parameters
    ----------
    input_shape, classes, width, frames, dropout, name
        The shared keywords (module docstring); `input_shape` is one frame's.

    Returns
    -------
    keras.Model
        Input (batch, frames, height, width, channels) float32 clips, each frame preprocessed as
        by `inference.roi.preprocess`; output (batch, classes) softmax probabilities. The
        per-frame trunk is the nested model ``frame_encoder`` (load a trained SonoNet into it
        with `transfer_weights`).
    """
    return fn


@_temporal_doc
def feat1d_lstm_rnn(*, input_shape: Sequence[int] | None = None, classes: int = DEFAULT_CLASSES,
                    width: int = 64, frames: int = DEFAULT_FRAMES, dropout: float = 0.0,
                    name: str | None = None) -> keras.Model:
    """Feat1D-LSTM-RNN: frozen SonoNet features, average-pooled to 1D per frame, into an LSTM.
    """
    return _temporal("lstm", "feat1d_lstm_rnn", trainable=False, input_shape=input_shape,
                     classes=classes, width=width, frames=frames, dropout=dropout, name=name)


@_temporal_doc
def feat2d_2dtcnn(*, input_shape: Sequence[int] | None = None, classes: int = DEFAULT_CLASSES,
                  width: int = 64, frames: int = DEFAULT_FRAMES, dropout: float = 0.0,
                  name: str | None = None) -> keras.Model:
    """Feat2D-2DtCNN: frozen SonoNet 2D feature maps into a 3x3x3 convolution over time.
    """
    return _temporal("conv3d", "feat2d_2dtcnn", trainable=False, input_shape=input_shape,
                     classes=classes, width=width, frames=frames, dropout=dropout, name=name)


@_temporal_doc
def feat2d_clstm_rnn(*, input_shape: Sequence[int] | None = None, classes: int = DEFAULT_CLASSES,
                     width: int = 64, frames: int = DEFAULT_FRAMES, dropout: float = 0.0,
                     name: str | None = None) -> keras.Model:
    """Feat2D-CLSTM-RNN: frozen SonoNet 2D feature maps into a convolutional LSTM.
    """
    return _temporal("clstm", "feat2d_clstm_rnn", trainable=False, input_shape=input_shape,
                     classes=classes, width=width, frames=frames, dropout=dropout, name=name)


@_temporal_doc
def temp_sono_2dtcnn(*, input_shape: Sequence[int] | None = None,
                     classes: int = DEFAULT_CLASSES, width: int = 64,
                     frames: int = DEFAULT_FRAMES, dropout: float = 0.0,
                     name: str | None = None) -> keras.Model:
    """Temp-Sono-2DtCNN: `feat2d_2dtcnn` trained end to end (the per-frame trunk trainable).
    """
    return _temporal("conv3d", "temp_sono_2dtcnn", trainable=True, input_shape=input_shape,
                     classes=classes, width=width, frames=frames, dropout=dropout, name=name)


@_temporal_doc
def temp_sono_lstm_rcn(*, input_shape: Sequence[int] | None = None,
                       classes: int = DEFAULT_CLASSES, width: int = 64,
                       frames: int = DEFAULT_FRAMES, dropout: float = 0.0,
                       name: str | None = None) -> keras.Model:
    """Temp-Sono-LSTM-RCN: `feat1d_lstm_rnn` trained end to end.
    """
    return _temporal("lstm", "temp_sono_lstm_rcn", trainable=True, input_shape=input_shape,
                     classes=classes, width=width, frames=frames, dropout=dropout, name=name)


@_temporal_doc
def temp_sono_clstm_rcn(*, input_shape: Sequence[int] | None = None,
                        classes: int = DEFAULT_CLASSES, width: int = 64,
                        frames: int = DEFAULT_FRAMES, dropout: float = 0.0,
                        name: str | None = None) -> keras.Model:
    """Temp-Sono-CLSTM-RCN: `feat2d_clstm_rnn` trained end to end.
    """
    return _temporal("clstm", "temp_sono_clstm_rcn", trainable=True, input_shape=input_shape,
                     classes=classes, width=width, frames=frames, dropout=dropout, name=name)


# ---------------------------------------------------------------------------------------------
# Sono-2DtCNN: SonoNet inflated in time


def sono_2dtcnn(*, input_shape: Sequence[int] | None = None, classes: int = DEFAULT_CLASSES,
                width: int = 64, frames: int = DEFAULT_FRAMES, dropout: float = 0.0,
                name: str | None = None,
                temporal_blocks: Iterable[int] = (3, 4, 5)) -> keras.Model:
    """Sono-2DtCNN: SonoNet with its layers made 3D, later blocks inflated in time.

    Parameters
    ----------
    input_shape, classes, width, frames, dropout, name
        The shared keywords (module docstring); `input_shape` is one frame's.
    temporal_blocks : iterable of int in 1..5
        Blocks whose 3x3 convolutions become 3x3x3 (time, height, width; the clip is replicated
        at its ends) and whose max-pooling (blocks 1-4) also halves time while 2 or more frames
        remain. The other blocks use 1x3x3 kernels: SonoNet's 2D layers applied per frame.

    Returns
    -------
    keras.Model
        Input (batch, frames, height, width, channels) float32 clips; output (batch, classes)
        softmax. Layer names are SonoNet's, so `inflate_from_2d` initialises it from a SonoNet
        of the same width and classes.
    """
    shape = _check(input_shape, classes, width, frames, dropout)
    temporal = set(temporal_blocks)
    if not temporal <= {1, 2, 3, 4, 5}:
        raise ValueError(f"`temporal_blocks` must be block numbers 1..5, got {sorted(temporal)}")
    clip = keras.Input((frames, *shape), name="clip")
    x = clip
    for b, (n, mult) in enumerate(zip(_SONONET_CONVS, _BLOCK_WIDTHS, strict=True), 1):
        t = 3 if b in temporal else 1
        for i in range(1, n + 1):
            x = _conv_bn(x, width * mult, (t, 3, 3), prefix=f"block{b}", index=i, dims=3,
                         time_pad=t // 2)
        if b < 5:
            pool_t = 2 if b in temporal and x.shape[1] >= 2 else 1
            x = layers.MaxPooling3D((pool_t, 2, 2), name=f"block{b}_pool")(x)
    x = _conv_bn(x, 4 * width, (1, 1, 1), prefix="adapt", index=1, dims=3)
    if dropout:
        x = layers.Dropout(dropout, name="adapt_dropout")(x)
    x = _conv_bn(x, classes, (1, 1, 1), prefix="adapt", index=2, dims=3, relu=False)
    x = layers.GlobalAveragePooling3D(name="avg_pool")(x)
    outputs = layers.Activation("softmax", name="predictions")(x)
    return keras.Model(clip, outputs, name=name or "sono_2dtcnn")


#: Architecture name -> builder; every builder takes the shared keywords.
ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {
    "sononet": sononet,
    "vgg16": vgg16,
    "vgg19": vgg19,
    "feat1d_lstm_rnn": feat1d_lstm_rnn,
    "feat2d_2dtcnn": feat2d_2dtcnn,
    "feat2d_clstm_rnn": feat2d_clstm_rnn,
    "temp_sono_2dtcnn": temp_sono_2dtcnn,
    "temp_sono_lstm_rcn": temp_sono_lstm_rcn,
    "temp_sono_clstm_rcn": temp_sono_clstm_rcn,
    "sono_2dtcnn": sono_2dtcnn,
}

#: Architectures whose input is a clip (batch, frames, H, W, C) rather than a frame.
TEMPORAL = frozenset(ARCHITECTURES) - {"sononet", "vgg16", "vgg19"}


def build(arch: str, *, preset: str | None = None, **overrides: Any) -> keras.Model:
    """Build an architecture by name, from a preset and/or explicit keywords.

    Parameters
    ----------
    arch : str
        A key of `ARCHITECTURES`.
    preset : {"cpu", "paper"} or None
        Starting keywords from `inference.presets.MODEL_PRESETS`; `overrides` win.
    **overrides
        Shared keywords (``classes``, ``width``, ...).

    Raises
    ------
    ValueError
        Unknown `arch` or `preset`, naming the valid ones (and the closest).
    """
    for what, value, valid in (("arch", arch, ARCHITECTURES), ("preset", preset, MODEL_PRESETS)):
        if value is not None:
            check_choice(what, value, valid)
    kwargs = {**(MODEL_PRESETS[preset] if preset else {}), **overrides}
    return ARCHITECTURES[arch](**kwargs)


def count_params(model: keras.Model) -> dict[str, int]:
    """``{"trainable": n, "non_trainable": n, "total": n}`` weights (scalars) of `model`."""
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    non_trainable = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))
    return {"trainable": trainable, "non_trainable": non_trainable,
            "total": trainable + non_trainable}


# ---------------------------------------------------------------------------------------------
# Weight transfer


def _weighted_layers(model: keras.Model) -> dict[str, Any]:
    """Every layer with weights, by name, looking inside nested models and TimeDistributed."""
    found: dict[str, Any] = {}

    def visit(layer: Any) -> None:
        if isinstance(layer, layers.TimeDistributed):
            visit(layer.layer)
        elif isinstance(layer, keras.Model):
            for inner in layer.layers:
                visit(inner)
        elif layer.weights:
            found[layer.name] = layer

    for layer in model.layers:
        visit(layer)
    return found


def transfer_weights(target: keras.Model, source: keras.Model, *,
                     names: Iterable[str] | None = None, skip: Iterable[str] = ()) -> list[str]:
    """Copy weights between layers of the same name and shapes (nested models included).

    Parameters
    ----------
    target, source : keras.Model
        E.g. a feature-based temporal model and a trained SonoNet of the same width.
    names : iterable of str, optional
        Only these layers; by default every layer name that both models have.
    skip : iterable of str
        Layers left as built, e.g. `SONONET_HEAD` when the classes differ.

    Returns
    -------
    list of str
        The names of the layers copied, in `target`'s order.

    Raises
    ------
    ValueError
        If a layer's weight shapes differ between the two models.
    """
    dst, src = _weighted_layers(target), _weighted_layers(source)
    wanted = [n for n in dst if n in src] if names is None else list(names)
    wanted = [n for n in wanted if n not in set(skip)]
    for n in wanted:
        if n not in dst or n not in src:
            raise ValueError(f"layer {n!r} is not in both models")
        weights = src[n].get_weights()
        shapes = [tuple(w.shape) for w in dst[n].weights]
        if [w.shape for w in weights] != shapes:
            raise ValueError(f"layer {n!r}: shapes {[w.shape for w in weights]} in the source, "
                             f"{shapes} in the target")
        dst[n].set_weights(weights)
    return wanted


def inflate_from_2d(model3d: keras.Model, model2d: keras.Model, *,
                    skip: Iterable[str] = ()) -> list[str]:
    """Initialise a 2D+t model from a 2D one, I3D-style (Carreira & Zisserman 2017).

    A 3D kernel (t, kh, kw, in, out) becomes the 2D kernel (kh, kw, in, out) repeated t times
    along time and divided by t, so on a static clip each 3D convolution gives the 2D one's
    output; batch-norm and dense weights are copied. Layers are matched by name.

    Parameters
    ----------
    model3d : keras.Model
        E.g. `sono_2dtcnn`; changed in place.
    model2d : keras.Model
        E.g. a trained `sononet` of the same width and classes.
    skip : iterable of str
        Layers of `model3d` left as built, e.g. `SONONET_HEAD` when the classes differ.

    Returns
    -------
    list of str
        Names of the layers initialised.

    Raises
    ------
    ValueError
        If a weighted layer of `model3d` has no counterpart in `model2d`, or shapes disagree.
    """
    skip = set(skip)
    src = _weighted_layers(model2d)
    dst = {n: layer for n, layer in _weighted_layers(model3d).items() if n not in skip}
    missing = [n for n in dst if n not in src]
    if missing:
        raise ValueError(f"`model2d` has no layers named {missing}; build both models with the "
                         "same architecture family")
    for n, layer in dst.items():
        weights = src[n].get_weights()
        if isinstance(layer, layers.Conv3D):
            kernel = weights[0]
            t = layer.kernel.shape[0]
            weights[0] = np.repeat(kernel[np.newaxis], t, axis=0) / t
        shapes = [tuple(w.shape) for w in layer.weights]
        if [tuple(w.shape) for w in weights] != shapes:
            raise ValueError(f"layer {n!r}: cannot inflate {[w.shape for w in weights]} "
                             f"to {shapes}")
        layer.set_weights(weights)
    return list(dst)


def fold_input_scale(model: keras.Model, scale: float) -> None:
    """Make `model` take inputs `scale` times smaller: its first convolution's kernel times
    `scale` (exact: SonoNet's convolutions have no bias and everything after is unchanged).

    A model started from the published SonoNet (which takes ``255 * z-score``) thus takes the
    plain z-scored frames and clips of this project's datasets, with the donor's batch-norm
    statistics still valid.

    Parameters
    ----------
    model : keras.Model
        A SonoNet-family model (first convolution `FIRST_CONV`); changed in place.
    scale : float
        The donor's input scale (`inference.model_file.ModelInfo.input_scale`).
    """
    conv = _weighted_layers(model).get(FIRST_CONV)
    if conv is None:
        raise ValueError(f"model {model.name!r} has no layer {FIRST_CONV!r}")
    if conv.use_bias:
        raise ValueError(f"{FIRST_CONV} of {model.name!r} has a bias: the scale cannot be folded")
    conv.kernel.assign(np.asarray(conv.kernel) * np.float32(scale))


# ---------------------------------------------------------------------------------------------
# Multi-stream models


def combine_streams(members: Sequence[str | Path | LoadedModel], out_path: str | Path, *,
                    name: str = "multi_stream") -> Path:
    """Join single-stream models of the same classes into one multi-stream model file.

    The result has one input and one softmax output per member (in the members' order), so one
    ``predict_on_batch`` serves every stream; late fusion (`inference.evaluation.fuse`) is left
    to the caller, which also stores each stream's probabilities.

    Parameters
    ----------
    members : sequence of paths or LoadedModel
        Models trained by `inference.training.train` on different streams (``fr2``, ``fr4``,
        ``fr8``, ``2d``), with the same classes, codes and input scale; their frame sizes may
        differ (square or not): labelling cuts each stream's frames at its own size from one
        decode.
    out_path : path ending in ``.keras``
        The sidecar lists the ``streams`` (each with its member's ``input_shape``) and the
        members (architecture, stream, sha256, metrics); its ``input_shape``, ``decoding`` and
        ``preprocessing`` are the first member's.

    Returns
    -------
    Path
        `out_path`.
    """
    loaded = [m if isinstance(m, LoadedModel) else load_model(m) for m in members]
    if not loaded:
        raise ModelFileError("combine_streams needs at least one model")
    first = loaded[0]
    names = [m.streams[0]["name"] for m in loaded]
    for m in loaded:
        if len(m.streams) != 1:
            raise ModelFileError(f"{m.path}: already a multi-stream model")
        if m.classes != first.classes or m.codes != first.codes:
            raise ModelFileError(f"{m.path}: classes or codes differ from {first.path}")
        if m.input_scale != first.input_scale:
            raise ModelFileError(f"{m.path}: input scale {m.input_scale} differs from "
                                 f"{first.input_scale} of {first.path}")
    if len(set(names)) != len(names):
        raise ModelFileError(f"two members share a stream: {names}")
    inputs, outputs = [], []
    for stream, m in zip(names, loaded, strict=True):
        m.model.name = f"{stream}_{m.model.name}"  # member names must be unique in the model
        x = keras.Input(m.model.input_shape[1:], name=f"{stream}_input")
        inputs.append(x)
        outputs.append(layers.Identity(name=f"{stream}_probs")(m.model(x)))
    combined = keras.Model(inputs, outputs, name=name)
    skip = {"stream", "sha256", "format", "version", "keras_version", "metrics", "params",
            "training", "name", "arch", "dataset"}
    sidecar = {k: v for k, v in first.sidecar.items() if k not in skip}
    sidecar.update(
        arch="multi_stream", name=f"{name}: " + " + ".join(
            f"{m.sidecar.get('arch', '?')} ({s})" for s, m in zip(names, loaded, strict=True)),
        streams=[{**m.streams[0], "input_shape": list(m.input_shape)} for m in loaded],
        frames=next((m.frames for m in loaded if m.frames), None),
        fusion="mean of the streams' softmax probabilities (inference.evaluation.fuse)",
        members=[{"stream": s, "arch": m.sidecar.get("arch"), "path": str(m.path),
                  "sha256": m.sidecar.get("sha256"), "metrics": m.sidecar.get("metrics"),
                  "dataset": m.sidecar.get("dataset")}
                 for s, m in zip(names, loaded, strict=True)],
        params=count_params(combined))
    return save_model(combined, out_path, sidecar)
