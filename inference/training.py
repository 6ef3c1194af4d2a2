"""Training a model of `inference.models` on a dataset of `inference.dataset`, resumably.

`train` follows the paper: SGD with Nesterov momentum 0.9 and learning rate 0.01, the builders'
dropout and batch norm, the augmentation of `inference.pipeline.clip_batches` on the training
split, balanced class weights, early stopping on the validation loss (best weights restored).

Everything goes into one output folder::

    last.keras     the model after the latest epoch, with its optimizer state (for resuming)
    best.keras     the model of the lowest validation loss so far
    metrics.csv    one row per epoch (keras.callbacks.CSVLogger: epoch, loss, accuracy,
                   val_loss, val_accuracy, learning_rate)
    model.keras    the final model (best weights), with its sidecar model.json

A run killed between epochs resumes where it stopped: when ``last.keras`` and ``metrics.csv``
exist, `train` loads the former (weights and optimizer state) and continues at the epoch after the
last recorded row, with that epoch's data order and augmentation. A resumed run is reproducible
but not bit-identical to an uninterrupted one (measured: epoch-2 weights differ by up to 0.07
for SonoNet width 4; the random state of dropout is not restored).
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fetal_analytics.checks import check_choice
from fetal_analytics.errors import UserError
from inference.decoding import DecodingParams
from inference.presets import MODEL_PRESETS
from inference.streams import STREAM_2D

__all__ = ["DECODING_DEFAULTS", "PREPROCESSING_DATASET", "TrainResult", "TrainingError", "train"]

log = logging.getLogger(__name__)

#: Temporal-decoding defaults written to the sidecar (used by labelling; tune them with
#: `fetal-analytics tune-decoding`).
DECODING_DEFAULTS: dict[str, float] = DecodingParams().to_dict()

#: The preprocessing of the dataset's clips, as written to the sidecar.
PREPROCESSING_DATASET: dict[str, Any] = {
    "image_area": "automatic: inference.roi.detect_image_area (region free of screen furniture)",
    "crop": "to the detected image area, then resized to a square (area interpolation)",
    "grey": "mean of the RGB channels",
    "normalisation": "per-clip z-score: (x - mean) / std over all frames of the clip (2d: the "
                     "image)",
    "function": "inference.pipeline.standardise",
}

LEARNING_RATE = 0.01
MOMENTUM = 0.9


class TrainingError(UserError, ValueError):
    """The arguments of `train` do not fit the dataset (stream, architecture, preset)."""


@dataclass(frozen=True)
class TrainResult:
    """What `train` produced.

    Attributes
    ----------
    model_path : Path
        ``out/model.keras`` (best weights), with its sidecar ``out/model.json``.
    history : list of dict
        The rows of ``metrics.csv`` (one per epoch, resumed epochs included), floats.
    epochs_run : int
        Epochs recorded in ``metrics.csv`` at the end (at most `epochs`; fewer after early stop).
    resumed_from : int
        Epochs already recorded when this call started (0 for a fresh run).
    best_epoch : int
        1-based epoch of the lowest validation loss.
    best_val_loss, best_val_accuracy : float
        Validation loss and accuracy at `best_epoch`.
    """

    model_path: Path
    history: list[dict[str, float]]
    epochs_run: int
    resumed_from: int
    best_epoch: int
    best_val_loss: float
    best_val_accuracy: float


def _read_metrics(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in (None, "")}
                for row in csv.DictReader(f)]


def _check_args(metadata: dict, arch: str, stream: str, preset: str) -> None:
    from inference.models import ARCHITECTURES, TEMPORAL

    for what, value, valid in (("arch", arch, ARCHITECTURES), ("preset", preset, MODEL_PRESETS),
                               ("stream", stream, metadata["streams"])):
        check_choice(what, value, valid, error=TrainingError)
    if stream == STREAM_2D and arch in TEMPORAL:
        raise TrainingError(
            f"`arch` {arch!r} takes clips but stream {STREAM_2D!r} holds single frames; train a "
            f"2D architecture ({', '.join(sorted(set(ARCHITECTURES) - TEMPORAL))}) on "
            f"{STREAM_2D!r}, or {arch!r} on a clip stream "
            f"({', '.join(s for s in metadata['streams'] if s != STREAM_2D)})")
    if stream != STREAM_2D and arch not in TEMPORAL:
        raise TrainingError(
            f"`arch` {arch!r} takes single frames but stream {stream!r} holds clips; train it on "
            f"stream {STREAM_2D!r}, or a temporal architecture ({', '.join(sorted(TEMPORAL))}) on "
            f"{stream!r}")


def train(dataset: str | Path, arch: str, *, stream: str = "fr4", preset: str = "cpu",
          epochs: int = 30, batch_size: int = 16, seed: int = 0, out: str | Path,
          patience: int = 5, resume: bool = True, progress: int = 2,
          dropout: float = 0.5, init_from: str | Path | None = None,
          learning_rate: float = LEARNING_RATE, **build_overrides: Any) -> TrainResult:
    """Train `arch` on one stream of a dataset; resumable, deterministic for a seed.

    Parameters
    ----------
    dataset : path
        A dataset folder (``dataset.json`` and shards, `inference.dataset.build_dataset`).
    arch : str
        A key of `inference.models.ARCHITECTURES`: a 2D one (``sononet``, ``vgg16``, ``vgg19``)
        for stream ``2d``, a temporal one for a clip stream.
    stream : str
        ``fr2``, ``fr4``, ``fr8`` (12-frame clips) or ``2d`` (single frames); must be in the
        dataset.
    preset : {"cpu", "paper"}
        Build parameters (`inference.presets.MODEL_PRESETS`); the input size and the frames per clip
        always come from the dataset (``spec.size``, ``frames_per_clip``), the classes from its
        ``classes``.
    epochs : int
        Total epochs (resumed epochs included), >= 1.
    batch_size : int
    seed : int
        Seeds Keras, NumPy and TensorFlow (`keras.utils.set_random_seed`), the data order and
        the augmentation; TensorFlow ops are made deterministic, so one seed gives the same
        weights on the same machine.
    out : path
        Output folder (created); see the module docstring.
    patience : int
        Epochs without a lower validation loss before stopping.
    resume : bool
        Continue from ``out/last.keras`` and ``out/metrics.csv`` when both exist; False starts
        afresh (the files are overwritten).
    progress : int
        Keras ``verbose``: 0 silent, 1 progress bar, 2 one line per epoch.
    dropout : float
        Dropout rate of the builder, in [0, 1).
    init_from : path or str, optional
        A 2D SonoNet to start from in a fresh run (a resumed run keeps its own weights): a
        ``model.keras`` with its sidecar, or a built-in name (``sononet16``: the published
        SonoNet-16, trained on real scans, the paper's pre-trained route; an existing file
        wins). ``sono_2dtcnn`` is inflated from it (`inference.models.inflate_from_2d`); any
        other architecture gets the weights of the layers of the same name
        (`inference.models.transfer_weights`: the per-frame trunk of the temporal models, frozen
        in the feature-based ones). The model is built with the donor's width (unless `width`
        is given); where the donor's classes differ from the dataset's, its class head
        (`inference.models.SONONET_HEAD`) is left new. A donor that takes scaled inputs (the
        published SonoNet: 255 x z-score) has the scale folded into the first convolution
        (`inference.models.fold_input_scale`), so the model takes the dataset's z-scored
        frames.
    learning_rate : float
        SGD learning rate (the paper's 0.01). Fine-tuning a network started from `init_from`
        end to end needs a smaller one (e.g. 0.001): at 0.01 the first epochs undo the 2D
        weights (measured on the simulated cohort: inflated Sono-2DtCNN fell from the 2D
        model's test F1 0.85 to 0.69).
    **build_overrides
        Further builder keywords (e.g. ``width``), over the preset's.

    Returns
    -------
    TrainResult

    Raises
    ------
    TrainingError
        Unknown architecture, preset or stream, or a 2D architecture on a clip stream (or the
        reverse); `epochs` < 1; `init_from` does not fit `arch`.
    FileNotFoundError
        No ``dataset.json`` or no shards for a split.
    """
    import keras

    from inference.model_file import save_model
    from inference.models import build, count_params
    from inference.pipeline import class_weights, keras_sequence, load_metadata

    dataset, out = Path(dataset), Path(out)
    metadata = load_metadata(dataset)
    _check_args(metadata, arch, stream, preset)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise TrainingError(f"`epochs` must be an integer >= 1, got {epochs!r}")
    out.mkdir(parents=True, exist_ok=True)
    last, best, final = out / "last.keras", out / "best.keras", out / "model.keras"
    metrics_csv = out / "metrics.csv"

    keras.utils.set_random_seed(seed)
    _deterministic_ops()
    size = int(metadata["spec"]["size"])
    frames = int(metadata.get("frames_per_clip", 12))
    classes = list(metadata["classes"])
    if init_from is not None and "width" not in build_overrides:
        from inference.model_file import read_model_info

        donor_width = read_model_info(init_from).sidecar.get("width")
        if donor_width is not None:
            build_overrides = {**build_overrides, "width": int(donor_width)}
    history = _read_metrics(metrics_csv) if resume else []
    resumed_from = len(history) if history and last.is_file() else 0
    if resumed_from:
        history = history[:resumed_from]
        log.info("resuming %s from epoch %d (%s)", out, resumed_from + 1, last)
        model = keras.saving.load_model(last, compile=True)
    else:
        history = []
        metrics_csv.unlink(missing_ok=True)
        model = build(arch, preset=preset, **{"input_shape": (size, size, 1), "frames": frames,
                                               "classes": len(classes), "dropout": dropout,
                                               **build_overrides})
        if init_from is not None:
            _initialise(model, arch, init_from, classes)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=learning_rate,
                                                     momentum=MOMENTUM, nesterov=True),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                      jit_compile=False)

    train_data = keras_sequence(dataset, "train", stream, batch_size=batch_size, shuffle=True,
                                augment=True, seed=seed)
    val_data = keras_sequence(dataset, "val", stream, batch_size=batch_size, shuffle=False)
    # The same data order and augmentation for an epoch whether or not the run was resumed.
    train_data.set_epoch(resumed_from)

    best_so_far = min((row["val_loss"] for row in history if "val_loss" in row),
                      default=math.inf)
    callbacks = [
        keras.callbacks.ModelCheckpoint(last, save_best_only=False),
        keras.callbacks.ModelCheckpoint(best, monitor="val_loss", mode="min",
                                        save_best_only=True,
                                        initial_value_threshold=best_so_far),
        keras.callbacks.CSVLogger(metrics_csv, append=bool(resumed_from)),
        _early_stopping_class()(history, best if resumed_from else None, patience),
    ]
    done = bool(history) and len(history) - 1 - int(np.argmin(
        [row.get("val_loss", math.inf) for row in history])) >= patience
    if done:
        log.info("%s: stopped early before (patience %d); nothing to resume", out, patience)
    if resumed_from < epochs and not done:
        model.fit(train_data, validation_data=val_data, epochs=epochs,
                  initial_epoch=resumed_from, class_weight=class_weights(dataset, stream),
                  callbacks=callbacks, verbose=progress)
    elif best.is_file():
        model = keras.saving.load_model(best, compile=False)
    history = _read_metrics(metrics_csv)
    losses = [row.get("val_loss", math.inf) for row in history]
    k = int(np.argmin(losses))
    best_row = history[k]
    sidecar = {
        "arch": arch,
        "name": f"{arch} trained on {dataset.name}/{stream}",
        "preset": preset,
        "width": build_overrides.get("width", _preset_width(preset)),
        "input_shape": [size, size, 1],
        "frames": None if stream == STREAM_2D else frames,
        "classes": classes,
        "codes": list(metadata.get("codes", classes)),
        "preprocessing": {**PREPROCESSING_DATASET, "size": [size, size]},
        "stream": {"name": stream, "spacing_s": metadata["streams"].get(stream),
                   "frames": 1 if stream == STREAM_2D else frames},
        "metrics": {"best_epoch": k + 1, "best_val_loss": best_row.get("val_loss"),
                    "best_val_accuracy": best_row.get("val_accuracy"),
                    "epochs_run": len(history)},
        "training": {"optimizer": "SGD", "learning_rate": learning_rate,
                     "momentum": MOMENTUM, "nesterov": True, "batch_size": batch_size,
                     "seed": seed, "patience": patience, "dropout": dropout,
                     "class_weight": "balanced", "augmentation": True,
                     "init_from": None if init_from is None else str(init_from)},
        "dataset": {"path": str(dataset), "sha256": metadata.get("dataset_sha256")},
        "decoding": dict(DECODING_DEFAULTS),
        "params": count_params(model),
    }
    save_model(model, final, sidecar)
    return TrainResult(model_path=final, history=history, epochs_run=len(history),
                       resumed_from=resumed_from, best_epoch=k + 1,
                       best_val_loss=float(best_row.get("val_loss", math.nan)),
                       best_val_accuracy=float(best_row.get("val_accuracy", math.nan)))


def _initialise(model: Any, arch: str, source: str | Path, classes: list[str]) -> None:
    """Start `model` from the 2D model `source` (inflated or transferred by layer name), with a
    new class head where the donor's classes differ from `classes`."""
    from inference.model_file import load_model
    from inference.models import (
        FIRST_CONV,
        SONONET_HEAD,
        fold_input_scale,
        inflate_from_2d,
        transfer_weights,
    )

    donor = load_model(source)  # a built-in name or a path; checks the sidecar's sha256
    head = () if list(donor.classes) == classes else SONONET_HEAD
    try:
        names = (inflate_from_2d(model, donor.model, skip=head) if arch == "sono_2dtcnn"
                 else transfer_weights(model, donor.model, skip=head))
        if donor.input_scale != 1.0 and FIRST_CONV in names:
            fold_input_scale(model, donor.input_scale)
    except ValueError as exc:
        raise TrainingError(f"cannot initialise {arch!r} from {source}: {exc}; start from a "
                            "2D SonoNet of the same width (e.g. --width)") from exc
    if not names:
        raise TrainingError(f"cannot initialise {arch!r} from {source}: no layer in common")
    log.info("initialised %d layers of %s from %s%s", len(names), arch, source,
             f" (new class head for {len(classes)} classes)" if head else "")


def _preset_width(preset: str) -> int:
    return int(MODEL_PRESETS[preset]["width"])


def _deterministic_ops() -> None:
    """Make TensorFlow's ops deterministic (cheap on CPU); nothing for other backends."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    try:
        tf.config.experimental.enable_op_determinism()
    except (AttributeError, RuntimeError) as exc:  # an old TF
        log.warning("TensorFlow op determinism not available: %s", exc)


def _early_stopping_class() -> type:
    import keras

    class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
        """EarlyStopping on val_loss whose state (best, wait, best weights) survives a resume."""

        def __init__(self, history: list[dict[str, float]], best_path: Path | None,
                     patience: int) -> None:
            super().__init__(monitor="val_loss", mode="min", patience=patience,
                             restore_best_weights=True)
            self._history = history
            self._best_path = best_path

        def on_train_begin(self, logs: Any = None) -> None:
            super().on_train_begin(logs)
            losses = [row.get("val_loss", math.inf) for row in self._history]
            if not losses:
                return
            k = int(np.argmin(losses))
            self.best = losses[k]
            self.best_epoch = k
            self.wait = len(losses) - 1 - k
            if self._best_path is not None and self._best_path.is_file():
                import keras

                self.best_weights = keras.saving.load_model(
                    self._best_path, compile=False).get_weights()

    return ResumableEarlyStopping
