"""The published SonoNet (Baumgartner et al., TMI 2017): its classes, their taxonomy codes, the
conversion of its weights, and the classification of screen captures with a 2D model.

SonoNet's 14 classes map onto the project's taxonomy as data (`SONONET_TO_TAXONOMY`): the four
heart views to HeD, both brain planes to Br, both spine planes to Sp, Abdominal to Ab, Kidneys to
Ki, Lips to NL, Profile to Fa, Femur to Fm, Background to Bk; 3Dm and MaD have no SonoNet class.
`import_sononet` converts the trained weights (theano/lasagne ``.npz``) to a ``.keras`` file with
its sidecar (`inference.model_file`), and `classify_images` classifies still screen captures with
SonoNet's preprocessing (`PREPROCESSING_SONONET`: `inference.roi.preprocess` in the automatically
detected image area). Keras is imported only by the functions that build or run a network.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fetal_analytics import taxonomy
from fetal_analytics.errors import UserError
from fetal_analytics.hashing import file_sha256
from inference.model_file import LoadedModel, ModelFileError, load_model, save_model

__all__ = [
    "CODES_WITHOUT_CLASS",
    "PREPROCESSING_SONONET",
    "SONONET_CLASSES",
    "SONONET_TO_TAXONOMY",
    "classify_images",
    "import_sononet",
]

log = logging.getLogger(__name__)

#: The 14 output classes of the published SonoNet, in output order.
SONONET_CLASSES: tuple[str, ...] = (
    "3VV", "4CH", "Abdominal", "Background", "Brain (Cb.)", "Brain (Tv.)", "Femur", "Kidneys",
    "Lips", "LVOT", "Profile", "RVOT", "Spine (cor.)", "Spine (sag.)",
)

#: SonoNet's classes mapped onto the project's taxonomy codes.
SONONET_TO_TAXONOMY: dict[str, str] = {
    "3VV": "HeD", "4CH": "HeD", "LVOT": "HeD", "RVOT": "HeD",
    "Brain (Cb.)": "Br", "Brain (Tv.)": "Br", "Abdominal": "Ab", "Kidneys": "Ki", "Femur": "Fm",
    "Spine (cor.)": "Sp", "Spine (sag.)": "Sp", "Lips": "NL", "Profile": "Fa", "Background": "Bk",
}

#: Codes of the default models' classes that no SonoNet class maps to (3Dm and MaD).
CODES_WITHOUT_CLASS: tuple[str, ...] = tuple(
    c for c in taxonomy.default_model_codes() if c not in SONONET_TO_TAXONOMY.values())

#: SonoNet's preprocessing, as recorded in the sidecar of an imported model.
PREPROCESSING_SONONET: dict[str, Any] = {
    "image_area": "automatic: inference.roi.detect_image_area (region free of screen furniture)",
    "grey": "mean of the RGB channels",
    "resize": "to height x width of input_shape (area interpolation when shrinking)",
    "normalisation": "per image: 255 * (x - mean) / std",
    "scale": 255.0,
    "function": "inference.roi.preprocess",
}


def import_sononet(npz_path: str | Path, out_path: str | Path) -> Path:
    """Convert the published SonoNet weights (theano/lasagne ``.npz``) to a ``.keras`` model.

    Parameters
    ----------
    npz_path : path
        ``SonoNet16.npz``: 75 arrays ``arr_0`` ... ``arr_74``, five per convolution in network
        order: W (out, in, kh, kw) applied as cross-correlation, beta, gamma, running mean and
        inv_std = 1 / sqrt(running_var + 1e-4). The width (16, 32, 64) and the number of classes
        are read from the shapes.
    out_path : path ending in ``.keras``
        The model: input (224, 288, 1) (height, width, channels), 14 softmax outputs in
        `SONONET_CLASSES` order. The sidecar ``out_path.with_suffix(".json")`` gets the classes,
        their taxonomy codes (`SONONET_TO_TAXONOMY`), the input shape, the preprocessing and the
        model file's sha256.

    Returns
    -------
    Path
        `out_path`.

    Raises
    ------
    ModelFileError
        The file is missing or not SonoNet weights (count or shapes of the arrays).
    """
    from inference.models import (
        BN_EPSILON,
        DEFAULT_INPUT_SHAPE,
        SONONET_LAYERS,
        count_params,
        sononet,
    )

    npz_path = Path(npz_path)
    if not npz_path.is_file():
        raise ModelFileError(f"{npz_path}: no such file")
    try:
        with np.load(npz_path) as npz:
            arrays = [npz[f"arr_{i}"] for i in range(len(npz.files))]
    except (OSError, ValueError, KeyError, EOFError, TypeError, AttributeError) as exc:
        raise ModelFileError(f"{npz_path}: not a SonoNet weights file ({exc})") from exc
    if len(arrays) != 5 * len(SONONET_LAYERS):
        raise ModelFileError(f"{npz_path}: expected {5 * len(SONONET_LAYERS)} arrays "
                             f"(5 per convolution), got {len(arrays)}")
    width, classes = int(arrays[0].shape[0]), int(arrays[-5].shape[0])
    if classes != len(SONONET_CLASSES):
        raise ModelFileError(f"{npz_path}: {classes} output classes, expected "
                             f"{len(SONONET_CLASSES)} (SonoNet's)")
    model = sononet(input_shape=DEFAULT_INPUT_SHAPE, classes=classes, width=width,
                    name=f"sononet{width}")
    for k, (conv_name, bn_name) in enumerate(SONONET_LAYERS):
        w, beta, gamma, mean, inv_std = arrays[5 * k: 5 * k + 5]
        conv, bn = model.get_layer(conv_name), model.get_layer(bn_name)
        kernel = np.transpose(w, (2, 3, 1, 0))  # (out, in, kh, kw) -> (kh, kw, in, out)
        if kernel.shape != tuple(conv.kernel.shape):
            raise ModelFileError(f"{npz_path}: array arr_{5 * k} of shape {w.shape} does not fit "
                                 f"{conv_name} {tuple(conv.kernel.shape)}")
        variance = np.maximum(1.0 / np.square(inv_std.astype(np.float64)) - BN_EPSILON, 0.0)
        conv.set_weights([kernel.astype(np.float32)])
        bn.set_weights([gamma.astype(np.float32), beta.astype(np.float32),
                        mean.astype(np.float32), variance.astype(np.float32)])
    sidecar = {
        "arch": "sononet",
        "name": f"SonoNet-{width} (published weights, Baumgartner et al. 2017)",
        "width": width,
        "input_shape": list(DEFAULT_INPUT_SHAPE),
        "frames": None,
        "classes": list(SONONET_CLASSES),
        "codes": [SONONET_TO_TAXONOMY.get(c) for c in SONONET_CLASSES],
        "codes_without_class": list(CODES_WITHOUT_CLASS),
        "preprocessing": PREPROCESSING_SONONET,
        "params": count_params(model),
        "source": {"file": npz_path.name, "sha256": file_sha256(npz_path)},
    }
    return save_model(model, out_path, sidecar)


def classify_images(model_path: str | Path | LoadedModel,
                    images: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Classify screen captures with a 2D model and the project's preprocessing.

    Per image: RGB decode (`inference.decode.load_still`), the automatic image area
    (`inference.roi.detect_image_area`, no fixed crop), then `inference.roi.preprocess`:
    greyscale as the mean of RGB, crop, resize to the model's height x width, per-image z-score
    times the model's ``preprocessing.scale`` (255 for SonoNet). The probabilities of classes
    sharing a taxonomy code are summed, as labelling does
    (`inference.model_file.ModelInfo.code_probs`): the answer is the most probable code.

    Parameters
    ----------
    model_path : path or LoadedModel
        A ``.keras`` file with its sidecar (checked by `load_model`), or a loaded model.
    images : sequence of paths
        PNG, JPEG, TIFF or BMP screen captures.

    Returns
    -------
    list of dict
        One per image, in order: ``image`` (the path as given, str), ``class`` (the model's
        most probable class of the winning code), ``code`` (the taxonomy code with the highest
        summed probability), ``probability`` (that sum, in [0, 1]) and ``class_probability``
        (the class's own).

    Raises
    ------
    ModelFileError
        From `load_model`; the model takes clips rather than frames, or a class has no
        taxonomy code.
    inference.decode.DecodeError
        An image is missing or unreadable.
    UserError
        No image area is found in an image (the message names it).
    """
    from inference.decode import load_still
    from inference.roi import detect_image_area, preprocess

    loaded = model_path if isinstance(model_path, LoadedModel) else load_model(model_path)
    if loaded.frames is not None or len(loaded.model.input_shape) != 4:
        raise ModelFileError(f"{loaded.path}: takes clips of frames; classify takes 2D models")
    height, width, channels = loaded.input_shape
    if channels != 1:
        raise ModelFileError(f"{loaded.path}: expects {channels} channels; classify feeds "
                             "greyscale (1 channel)")
    batch = []
    for image in images:
        frame = load_still(image)
        try:
            area = detect_image_area(frame)
        except ValueError as exc:
            raise UserError(f"{image}: {exc}") from exc
        log.debug("%s: image area %s", image, area)
        batch.append(preprocess(frame, area, (height, width), scale=loaded.input_scale))
    if not batch:
        return []
    probs = np.concatenate([np.asarray(loaded.model.predict_on_batch(np.stack(batch[i:i + 32])))
                            for i in range(0, len(batch), 32)])
    code_probs = loaded.code_probs(probs)
    results = []
    for image, p, summed in zip(images, probs, code_probs, strict=True):
        j = int(np.argmax(summed))
        code = loaded.output_codes[j]
        k = max((i for i, c in enumerate(loaded.codes) if c == code), key=lambda i: p[i])
        results.append({"image": str(image), "class": loaded.classes[k], "code": code,
                        "probability": float(summed[j]), "class_probability": float(p[k])})
    return results
