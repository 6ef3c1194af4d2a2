"""Model files: a ``.keras`` file, its JSON sidecar, and the models shipped with the package.

Every model this project writes is a pair: ``MODEL.keras`` (Keras 3's format: architecture and
weights) and the sidecar ``MODEL.json`` beside it, which holds what labelling needs besides the
weights and the model file's sha256:

``format``, ``version``
    `SIDECAR_FORMAT` and 1.
``classes``
    The output classes, in output order.
``codes``
    The taxonomy code of each class (null where a class has none). Classes may share a code
    (SonoNet's four heart views: HeD): their probabilities are summed (`ModelInfo.code_probs`),
    so the model's output codes (`ModelInfo.output_codes`) are its classes for labelling,
    classification and evaluation.
``input_shape``
    One frame's (height, width, channels).
``frames``
    Frames per clip of a temporal model; null for 2D models.
``stream`` or ``streams``
    The input stream(s): ``name`` (see `inference.streams`), ``spacing_s``, ``frames``, and
    for a multi-stream model each member's ``input_shape`` (streams may differ in size).
``preprocessing``
    Written by the command that made the model; ``preprocessing.scale`` is the factor after the
    per-sample z-score that every command applies (`ModelInfo.input_scale`; 255 for the
    published SonoNet, absent and 1 for models trained here).
``decoding``, ``params``, ``metrics``, ...
    Written by the command that made the model (training, import, combination).
``keras_version``, ``sha256``
    Of the ``.keras`` file when it was written; `load_model` refuses a file whose hash differs.

`read_model_info` reads the sidecar alone, without TensorFlow or Keras (the command line and the
dashboard describe models with it); `load_model` checks the hash and loads the network. Models
are named by path or by a built-in name (`BUILTIN_MODELS`, e.g. ``demo``), resolved by
`resolve_model`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fetal_analytics.errors import UserError
from fetal_analytics.hashing import file_sha256
from fetal_analytics.shipped import shipped_file

__all__ = [
    "BUILTIN_MODELS",
    "DEMO_MODEL",
    "DEMO_MODEL_COMMAND",
    "SIDECAR_FORMAT",
    "SONONET16_MODEL",
    "LoadedModel",
    "ModelFileError",
    "ModelInfo",
    "load_model",
    "read_model_info",
    "resolve_model",
    "save_model",
    "sidecar_path",
]

log = logging.getLogger(__name__)

SIDECAR_FORMAT = "fetal-analytics model sidecar"

#: The shipped demo model (trained on simulated scans, sized for 2 CPU cores), package data.
DEMO_MODEL = shipped_file("demo_model.keras")
#: The command that makes `DEMO_MODEL`, named when it is missing.
DEMO_MODEL_COMMAND = "make demo-model"
#: The published SonoNet-16 (Baumgartner et al., TMI 2017), converted by `import-sononet`:
#: trained on real scans, the model for real recordings (package data, with its licence).
SONONET16_MODEL = shipped_file("sononet16.keras")
#: Built-in model names, accepted wherever a model path is (`resolve_model`), and the command
#: that makes each.
BUILTIN_MODELS: dict[str, Path] = {"demo": DEMO_MODEL, "sononet16": SONONET16_MODEL}
_BUILTIN_COMMANDS = {
    "demo": DEMO_MODEL_COMMAND,
    "sononet16": "fetal-analytics import-sononet ../shared/data/sononet/SonoNet16.npz "
                 "--out data/sononet16.keras",
}

# A model without stream information (an imported SonoNet) takes single frames.
_DEFAULT_STREAMS = ({"name": "2d", "spacing_s": None, "frames": 1},)


class ModelFileError(UserError, ValueError):
    """A model file or its sidecar is missing, damaged or does not match."""


def sidecar_path(model_path: str | Path) -> Path:
    """The JSON sidecar of a model file: ``MODEL.keras`` -> ``MODEL.json``."""
    return Path(model_path).with_suffix(".json")


def resolve_model(ref: str | Path) -> Path:
    """The model file that `ref` names: a built-in name (`BUILTIN_MODELS`) or a path.

    Parameters
    ----------
    ref : str or Path
        The path of a ``.keras`` file, or a built-in name: ``demo`` (the shipped demo model,
        for the simulator's screens) or ``sononet16`` (the published SonoNet-16, for real
        scans). An existing file wins over a built-in name. A path is returned as given,
        unchecked (`read_model_info` and `load_model` check it).

    Returns
    -------
    Path

    Raises
    ------
    ModelFileError
        A built-in model that is missing from this installation (the message names the
        command that makes it).
    """
    name = str(ref)
    if name not in BUILTIN_MODELS or Path(ref).is_file():
        return Path(ref)
    path = BUILTIN_MODELS[name]
    if not path.is_file():
        raise ModelFileError(
            f"the {name} model {path} is missing: make it with `{_BUILTIN_COMMANDS[name]}`, or "
            f"pass the path of a model written by `fetal-analytics train`")
    return path


@dataclass(frozen=True)
class ModelInfo:
    """What a model's sidecar says about it (no network loaded).

    Attributes
    ----------
    path : Path
        The ``.keras`` file.
    classes : tuple of str
        Output classes, in output order.
    codes : tuple of (str or None)
        Taxonomy code of each class (None where the class has none).
    input_shape : tuple of int
        One frame's (height, width, channels), pixels.
    frames : int or None
        Frames per clip for temporal models, None for 2D models.
    sidecar : dict
        The whole sidecar.
    """

    path: Path
    classes: tuple[str, ...]
    codes: tuple[str | None, ...]
    input_shape: tuple[int, int, int]
    frames: int | None
    sidecar: dict[str, Any] = field(repr=False)

    @property
    def streams(self) -> tuple[dict[str, Any], ...]:
        """The model's input streams, in input order: dicts with ``name`` (``fr2``, ``fr4``,
        ``fr8`` or ``2d``), ``spacing_s`` (seconds between a clip's frames; None for 2d) and
        ``frames`` (frames per clip; 1 for 2d). A multi-stream model
        (`inference.models.combine_streams`) has several; a model without stream information
        (an imported SonoNet) takes 2D frames."""
        if "streams" in self.sidecar:
            return tuple(self.sidecar["streams"])
        if "stream" in self.sidecar:
            return (self.sidecar["stream"],)
        return _DEFAULT_STREAMS

    @property
    def output_codes(self) -> tuple[str, ...]:
        """The taxonomy codes the model can output: `codes` without None and repeats, in output
        order (SonoNet's four heart views give one ``HeD``)."""
        return tuple(dict.fromkeys(c for c in self.codes if c is not None))

    @property
    def input_scale(self) -> float:
        """The factor applied after the per-sample z-score: the sidecar's
        ``preprocessing.scale``, 1 when absent (models trained here take ``(x - mean) / std``;
        the published SonoNet takes ``255 * (x - mean) / std``)."""
        return float((self.sidecar.get("preprocessing") or {}).get("scale", 1.0))

    def stream_input_shape(self, index: int) -> tuple[int, int, int]:
        """One frame's (height, width, channels) for input stream `index` (in `streams` order):
        the stream's own ``input_shape`` where the sidecar gives one (a multi-stream model whose
        members take different sizes), else the model's `input_shape`."""
        shape = self.streams[index].get("input_shape")
        return self.input_shape if shape is None else tuple(int(v) for v in shape)

    def code_matrix(self) -> np.ndarray:
        """The (classes, codes) 0/1 float32 matrix that sums the probabilities of the classes
        sharing a taxonomy code: ``probs @ code_matrix()`` gives one column per
        `output_codes` entry, in that order.

        Raises
        ------
        ModelFileError
            A class has no taxonomy code (its probability would be lost).
        """
        missing = [c for c, code in zip(self.classes, self.codes, strict=True) if code is None]
        if missing:
            raise ModelFileError(
                f"{sidecar_path(self.path)}: classes {missing} have no taxonomy code; give every "
                f"class one in the sidecar's \"codes\" (classes sharing a code are summed)")
        outputs = self.output_codes
        matrix = np.zeros((len(self.classes), len(outputs)), np.float32)
        for k, code in enumerate(self.codes):
            matrix[k, outputs.index(code)] = 1.0
        return matrix

    def code_probs(self, probs: np.ndarray) -> np.ndarray:
        """Class probabilities summed per taxonomy code.

        Parameters
        ----------
        probs : (..., classes) ndarray
            Softmax outputs in `classes` order.

        Returns
        -------
        (..., codes) float32 ndarray
            In `output_codes` order; rows still sum to 1. A model whose classes are their own
            codes gets its probabilities back unchanged.
        """
        probs = np.asarray(probs, dtype=np.float32)
        if probs.shape[-1] != len(self.classes):
            raise ValueError(f"{self.path}: probabilities of {probs.shape[-1]} classes, the model "
                             f"has {len(self.classes)}")
        return probs @ self.code_matrix()


def read_model_info(model_path: str | Path) -> ModelInfo:
    """Read a model's sidecar, without loading the network (nor importing TensorFlow or Keras).

    Parameters
    ----------
    model_path : str or Path
        The ``.keras`` file, its sidecar ``MODEL.json`` beside it, or a built-in name
        (`resolve_model`). The model file's hash is not checked here (`load_model` does).

    Returns
    -------
    ModelInfo

    Raises
    ------
    ModelFileError
        The model file or its sidecar is missing, or the sidecar lacks the classes, codes or
        input shape.
    """
    model_path = resolve_model(model_path)
    side = sidecar_path(model_path)
    if not model_path.is_file():
        builtin = f" or a built-in name ({', '.join(BUILTIN_MODELS)})" if BUILTIN_MODELS else ""
        raise ModelFileError(f"{model_path}: no such model file; pass a .keras file with its "
                             f"sidecar{builtin}")
    if not side.is_file():
        raise ModelFileError(f"{model_path}: its sidecar {side} is missing (it holds the classes, "
                             "preprocessing and hash); re-create the model with the command "
                             "that wrote it, e.g. `fetal-analytics import-sononet`")
    try:
        sidecar = json.loads(side.read_text(encoding="utf-8"))
        classes = tuple(str(c) for c in sidecar["classes"])
        codes = tuple(None if c is None else str(c) for c in sidecar["codes"])
        input_shape = tuple(int(v) for v in sidecar["input_shape"])
        frames = sidecar.get("frames")
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"{side}: not a model sidecar ({exc})") from exc
    if len(codes) != len(classes) or len(input_shape) != 3:
        raise ModelFileError(f"{side}: not a model sidecar ({len(classes)} classes but "
                             f"{len(codes)} codes, input shape {list(input_shape)})")
    return ModelInfo(path=model_path, classes=classes, codes=codes, input_shape=input_shape,
                     frames=None if frames is None else int(frames), sidecar=sidecar)


def save_model(model: Any, out_path: str | Path, sidecar: dict[str, Any]) -> Path:
    """Save `model` to a ``.keras`` file and write its sidecar with the file's sha256.

    Parameters
    ----------
    model : keras.Model
    out_path : path ending in ``.keras``
    sidecar : dict
        What labelling needs besides the weights (classes, codes, input shape, preprocessing);
        ``sha256``, ``format`` and ``keras_version`` are added.

    Returns
    -------
    Path
        `out_path`.
    """
    import keras

    out_path = Path(out_path)
    if out_path.suffix != ".keras":
        raise ModelFileError(f"the model file must end in .keras, got {out_path}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    model.save(out_path)
    record = {"format": SIDECAR_FORMAT, "version": 1, **sidecar,
              "keras_version": keras.__version__, "sha256": file_sha256(out_path)}
    sidecar_path(out_path).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    log.info("saved %s (sha256 %s)", out_path, record["sha256"])
    return out_path


@dataclass(frozen=True)
class LoadedModel(ModelInfo):
    """A model loaded with its sidecar: `ModelInfo` and the network.

    Attributes
    ----------
    model : keras.Model
    """

    model: Any = field(default=None, repr=False)

    def predict_streams(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Softmax of each stream for a batch.

        Parameters
        ----------
        inputs : sequence of ndarray
            One per stream, in `streams` order, standardised float32 (times `input_scale`):
            clips ``(n, frames, H, W, 1)``, 2D frames ``(n, H, W, 1)``, with the stream's
            (H, W) (`stream_input_shape`).

        Returns
        -------
        list of ndarray
            One ``(n, classes)`` array per stream, in `classes` order (`code_probs` sums them
            per code).
        """
        if len(inputs) != len(self.streams):
            raise ValueError(f"{self.path}: {len(self.streams)} input streams, got "
                             f"{len(inputs)} inputs")
        if len(inputs) == 1:
            return [np.asarray(self.model.predict_on_batch(inputs[0]))]
        return [np.asarray(out) for out in self.model.predict_on_batch(list(inputs))]


def load_model(model_path: str | Path) -> LoadedModel:
    """Load a ``.keras`` model after checking it against its sidecar's sha256.

    Parameters
    ----------
    model_path : str or Path
        The ``.keras`` file (its sidecar beside it), or a built-in name (`resolve_model`).

    Raises
    ------
    ModelFileError
        The file or its sidecar is missing or unreadable, or the file's sha256 differs from the
        sidecar's (the file was changed or replaced after it was written).
    """
    import keras

    import inference.models  # noqa: F401  (registers the custom layer ClipPadding)

    info = read_model_info(model_path)
    side = sidecar_path(info.path)
    expected = info.sidecar.get("sha256")
    if not isinstance(expected, str):
        raise ModelFileError(f"{side}: not a model sidecar (no sha256 of the model file)")
    actual = file_sha256(info.path)
    if actual != expected:
        raise ModelFileError(
            f"{info.path}: sha256 {actual[:16]}... does not match {expected[:16]}... in {side}; "
            "the model file was changed after it was written: re-create it")
    try:
        model = keras.saving.load_model(info.path, compile=False)
    except Exception as exc:  # a damaged zip, an unknown layer
        raise ModelFileError(f"{info.path}: cannot load the model ({exc})") from exc
    shapes = model.output_shape if isinstance(model.output_shape, list) else [model.output_shape]
    if any(shape[-1] != len(info.classes) for shape in shapes):
        raise ModelFileError(f"{info.path}: outputs {shapes} do not match the "
                             f"{len(info.classes)} classes in {side}")
    return LoadedModel(path=info.path, classes=info.classes, codes=info.codes,
                       input_shape=info.input_shape, frames=info.frames, sidecar=info.sidecar,
                       model=model)
