"""Evaluating trained models: the paper's metrics, confusion matrices and late fusion.

`classification_metrics` computes, in NumPy only, per-class precision, recall and F1, their macro
averages, top-1 and top-3 accuracy and the confusion matrix; `evaluate` runs a model file (with
its sidecar, `inference.model_file.load_model`) over one split and stream of a dataset and returns
them with the probabilities. `fuse` and `fuse_log` combine the probabilities of several streams
(late fusion), and `save_confusion_png` draws a confusion matrix with OpenCV.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fetal_analytics.errors import UserError
from fetal_analytics.results import Result
from inference.streams import STREAM_2D

__all__ = ["ClassificationMetrics", "Evaluation", "EvaluationError", "classification_metrics",
           "evaluate", "fit_input", "fuse", "fuse_log", "save_confusion_png"]

log = logging.getLogger(__name__)


class EvaluationError(UserError, ValueError):
    """A model and a dataset do not fit together (classes, stream, input size)."""


@dataclass(frozen=True)
class ClassificationMetrics(Result):
    """Metrics of a classifier on labelled samples.

    Attributes
    ----------
    per_class : pandas.DataFrame
        Indexed by class (all classes, in output order), columns ``precision``, ``recall``,
        ``f1`` and ``support`` (true samples of the class). Precision is NaN for a class never
        predicted, recall NaN for a class with no sample, F1 NaN when either is.
    precision, recall, f1 : float
        Macro averages over the classes that occur in the true labels or the predictions (as
        scikit-learn with ``zero_division=0``: an undefined per-class value counts as 0). F1 is
        the mean of the per-class F1, not the F1 of the macro P and R.
    top1, top3 : float
        Fraction of samples whose true class is the most probable one, or among the three most
        probable (1.0 when there are at most three classes).
    confusion : pandas.DataFrame
        Counts, rows the true class, columns the predicted class (all classes, output order).
    n : int
        Number of samples.
    """

    per_class: Any = field(repr=False)
    precision: float
    recall: float
    f1: float
    top1: float
    top3: float
    confusion: Any = field(repr=False)
    n: int

    frame_field: ClassVar[str] = "per_class"


@dataclass(frozen=True)
class Evaluation(ClassificationMetrics):
    """A model evaluated on one split and stream of a dataset (`evaluate`): the
    `ClassificationMetrics` of its predictions, and what they were computed from.

    Attributes
    ----------
    probabilities : ndarray
        float (n, classes) probabilities of the dataset's classes (taxonomy codes), in the order
        of the dataset's shards: the model's softmax summed per code
        (`inference.model_file.ModelInfo.code_probs`), 0 for a code the model cannot output.
    labels : ndarray
        int64 (n,) true class indices.
    classes : tuple of str
        The dataset's classes (taxonomy codes), in `probabilities` order; for a dataset with
        rare classes (`inference.dataset.DatasetSpec.rare_as`), the codes they are output as.
    model_path : Path
    split, stream : str
    """

    probabilities: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    classes: tuple[str, ...]
    model_path: Path
    split: str
    stream: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the scalar metrics, ``per_class`` records and ``confusion``
        (``{"classes": [...], "matrix": [[...]]}``, rows true, columns predicted)."""

        def num(v: float) -> float | None:
            return None if v is None or np.isnan(v) else float(v)

        per_class = [{"class": c, "precision": num(r.precision), "recall": num(r.recall),
                      "f1": num(r.f1), "support": int(r.support)}
                     for c, r in self.per_class.iterrows()]
        return {"model": str(self.model_path), "split": self.split, "stream": self.stream,
                "n": self.n, "precision": num(self.precision), "recall": num(self.recall),
                "f1": num(self.f1), "top1": num(self.top1), "top3": num(self.top3),
                "per_class": per_class,
                "confusion": {"classes": list(self.classes),
                              "matrix": self.confusion.to_numpy().astype(int).tolist()}}


def _top_k(y_true: np.ndarray, probs: np.ndarray, k: int) -> float:
    k = min(k, probs.shape[1])
    # Rank of the true class = number of classes with a strictly higher probability.
    true_p = probs[np.arange(len(y_true)), y_true]
    rank = (probs > true_p[:, None]).sum(axis=1)
    return float(np.mean(rank < k))


def classification_metrics(y_true: Any, probs: Any, classes: Any) -> ClassificationMetrics:
    """Precision, recall, F1 (per class and macro), top-1/top-3 accuracy and confusion matrix.

    Parameters
    ----------
    y_true : (n,) array of int
        True class indices into `classes`.
    probs : (n, k) array of float
        Class probabilities (or any scores: only their order matters); the prediction is the
        argmax (the first class on ties). A tie with the true class counts in its favour for
        top-k.
    classes : sequence of str, length k

    Returns
    -------
    ClassificationMetrics

    Raises
    ------
    ValueError
        Shapes disagree, no samples, or a label outside ``[0, k)``.
    """
    import pandas as pd

    y_true = np.asarray(y_true)
    probs = np.asarray(probs, dtype=np.float64)
    classes = [str(c) for c in classes]
    k = len(classes)
    if probs.ndim != 2 or probs.shape[1] != k:
        raise ValueError(f"`probs` must have shape (n, {k}) for {k} classes, got {probs.shape}")
    if y_true.ndim != 1 or len(y_true) != len(probs):
        raise ValueError(f"`y_true` must have shape ({len(probs)},), got {y_true.shape}")
    if len(y_true) == 0:
        raise ValueError("`y_true` is empty: no samples to evaluate")
    if not np.issubdtype(y_true.dtype, np.integer) or y_true.min() < 0 or y_true.max() >= k:
        raise ValueError(f"`y_true` must be class indices in [0, {k}), got values "
                         f"{np.unique(y_true)[:10]}")
    y_pred = probs.argmax(axis=1)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    tp = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, np.nan)
        recall = np.where(support > 0, tp / support, np.nan)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / np.where(denom > 0, denom, 1), 0.0)
        f1 = np.where(np.isnan(precision) | np.isnan(recall), np.nan, f1)
    seen = (support > 0) | (predicted > 0)
    macro = {name: float(np.mean(np.nan_to_num(v[seen], nan=0.0)))
             for name, v in (("precision", precision), ("recall", recall), ("f1", f1))}
    if (seen & ((support == 0) | (predicted == 0))).any():
        warnings.warn("some classes are never predicted or have no sample: their undefined "
                      "precision or recall counts as 0 in the macro averages", RuntimeWarning,
                      stacklevel=2)
    per_class = pd.DataFrame({"precision": precision, "recall": recall, "f1": f1,
                              "support": support}, index=pd.Index(classes, name="class"))
    confusion_df = pd.DataFrame(confusion, index=pd.Index(classes, name="true"),
                                columns=pd.Index(classes, name="predicted"))
    return ClassificationMetrics(per_class=per_class, precision=macro["precision"],
                                 recall=macro["recall"], f1=macro["f1"],
                                 top1=_top_k(y_true, probs, 1), top3=_top_k(y_true, probs, 3),
                                 confusion=confusion_df, n=len(y_true))


def _stack(prob_list: Any) -> np.ndarray:
    arrays = [np.asarray(p, dtype=np.float64) for p in prob_list]
    if not arrays:
        raise ValueError("`prob_list` is empty: pass the probabilities of at least one stream")
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1 or arrays[0].ndim != 2:
        raise ValueError(f"every array of `prob_list` must have the same shape (n, classes), "
                         f"got {[a.shape for a in arrays]}")
    return np.stack(arrays)


def fuse(prob_list: Any) -> np.ndarray:
    """Late fusion: the mean of the streams' softmax probabilities (the paper's fusion).

    Parameters
    ----------
    prob_list : sequence of (n, k) arrays
        One array per stream (e.g. FR/2, FR/4, FR/8 and 2D), row i of every array being the
        same sample (the same labelled span).

    Returns
    -------
    ndarray
        float64 (n, k); rows sum to 1 when the inputs' rows do.
    """
    return _stack(prob_list).mean(axis=0)


def fuse_log(prob_list: Any, *, eps: float = 1e-7) -> np.ndarray:
    """Late fusion by the mean of log-probabilities (a normalised geometric mean).

    A stream that gives a class (almost) zero probability vetoes it, unlike `fuse`.
    Probabilities are clipped to ``[eps, 1]`` before the log; rows are renormalised to sum to 1.

    Parameters
    ----------
    prob_list : sequence of (n, k) arrays
        As in `fuse`.
    eps : float

    Returns
    -------
    ndarray
        float64 (n, k), rows summing to 1.
    """
    mean_log = np.log(np.clip(_stack(prob_list), eps, 1.0)).mean(axis=0)
    fused = np.exp(mean_log - mean_log.max(axis=1, keepdims=True))
    return fused / fused.sum(axis=1, keepdims=True)


def evaluate(model_path: str | Path, dataset: str | Path, *, split: str = "test",
             stream: str | None = None, batch_size: int = 32) -> Evaluation:
    """Run a trained model over one split and stream of a dataset and compute its metrics.

    The model's classes are summed per taxonomy code, as labelling does (an imported SonoNet's
    four heart views give HeD), and scored against the dataset's classes: every code the model
    outputs must be one of them; a dataset class the model cannot output gets probability 0.
    A dataset that names an output code per class (``codes``, from `DatasetSpec.rare_as`) is
    scored on those codes: its rare classes count as the code they are output as.
    Frames of another size than the model takes are resized to its height x width (bilinear,
    after the z-score), and multiplied by its ``preprocessing.scale``.

    Parameters
    ----------
    model_path : path or str
        A ``.keras`` file with its sidecar (written by `inference.training.train` or
        `import-sononet`), or a built-in name (``demo``, ``sononet16``; an existing file wins).
    dataset : path
        A dataset folder.
    split : {'train', 'val', 'test'}
    stream : str, optional
        Defaults to the stream the model was trained on (its sidecar's ``stream.name``), or
        its only stream (``2d`` for an imported SonoNet).
    batch_size : int

    Returns
    -------
    Evaluation

    Raises
    ------
    inference.model_file.ModelFileError
        The model file or its sidecar is missing or does not match.
    EvaluationError
        The dataset's classes or streams do not fit the model.
    """
    from inference.model_file import load_model
    from inference.pipeline import clip_batches, load_metadata

    loaded = load_model(model_path)
    metadata = load_metadata(dataset)
    trained_on = (loaded.sidecar.get("stream") or {}).get("name")
    if trained_on is None and len(loaded.streams) == 1:
        trained_on = loaded.streams[0]["name"]
    stream = stream or trained_on
    if stream is None:
        raise EvaluationError(f"{model_path}: its sidecar names no stream; pass `stream`")
    if stream not in metadata["streams"]:
        raise EvaluationError(f"stream {stream!r} is not in {dataset} (it has "
                              f"{', '.join(metadata['streams'])})")
    if (stream == STREAM_2D) != (loaded.frames is None):
        raise EvaluationError(f"{model_path} takes {'frames' if loaded.frames is None else 'clips'}"
                              f" but stream {stream!r} holds "
                              f"{'frames' if stream == STREAM_2D else 'clips'}")
    dataset_classes = [str(c) for c in metadata["classes"]]
    # A dataset whose rare classes a model outputs as another code (`DatasetSpec.rare_as`) is
    # scored on those codes: its labels are mapped as the model's outputs are.
    dataset_codes = [str(c) for c in metadata.get("codes", dataset_classes)]
    classes = list(dict.fromkeys(dataset_codes))
    label_code = np.array([classes.index(code) for code in dataset_codes])
    try:
        # (model classes, dataset codes): sums classes per code, places codes in order.
        to_dataset = loaded.code_matrix() @ np.eye(len(classes))[
            [classes.index(code) for code in loaded.output_codes]]
    except ValueError as exc:  # a code the dataset lacks, or a class without a code
        raise EvaluationError(f"{dataset} has codes {classes} but {model_path} outputs "
                              f"{list(loaded.classes)} with codes {list(loaded.codes)} ({exc})"
                              ) from exc
    height, width = loaded.input_shape[:2]
    probs, labels = [], []
    for x, y in clip_batches(dataset, split, stream, batch_size=batch_size, shuffle=False):
        probs.append(np.asarray(loaded.model.predict_on_batch(
            fit_input(x, height, width) * np.float32(loaded.input_scale))))
        labels.append(y)
    if not labels:
        raise EvaluationError(f"{dataset}: no samples in {split}/{stream}")
    probabilities = np.concatenate(probs).astype(np.float64) @ to_dataset
    y_true = label_code[np.concatenate(labels)]
    metrics = classification_metrics(y_true, probabilities, classes)
    log.info("%s on %s/%s: macro F1 %.3f, top-1 %.3f", model_path, split, stream, metrics.f1,
             metrics.top1)
    return Evaluation(**vars(metrics), probabilities=probabilities, labels=y_true,
                      classes=tuple(classes), model_path=Path(model_path), split=split,
                      stream=stream)


def fit_input(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """Standardised frames or clips (n[, frames], H, W, 1) resized to (height, width)."""
    if x.shape[-3:-1] == (height, width):
        return x
    import cv2

    flat = x.reshape(-1, *x.shape[-3:-1])
    resized = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR)
                        for f in flat])
    return resized.reshape(*x.shape[:-3], height, width, 1)


def save_confusion_png(confusion: Any, path: str | Path, *, cell: int = 44,
                       title: str = "") -> Path:
    """Draw a confusion matrix as a PNG image with OpenCV.

    Each cell shows its count on a shade of blue by the row-normalised value (the share of the
    true class); rows are true classes, columns predicted ones, both labelled with the class
    names.

    Parameters
    ----------
    confusion : pandas.DataFrame
        Square counts with class names as index and columns (`Evaluation.confusion`).
    path : path ending in ``.png``
    cell : int
        Side of a cell, pixels.
    title : str
        Drawn above the matrix.

    Returns
    -------
    Path
        `path`.
    """
    import cv2

    path = Path(path)
    counts = np.asarray(confusion, dtype=np.int64)
    names = [str(c) for c in getattr(confusion, "index", range(len(counts)))]
    k = len(counts)
    if counts.shape != (k, k):
        raise ValueError(f"`confusion` must be square, got shape {counts.shape}")
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.45
    label_w = 12 + max((cv2.getTextSize(n, font, scale, 1)[0][0] for n in names), default=0)
    top = 50 + label_w  # room for the title and the rotated column labels
    left = label_w + 28
    height, width = top + k * cell + 30, left + k * cell + 10
    image = np.full((height, width, 3), 255, np.uint8)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, np.maximum(rows, 1))
    for i in range(k):
        for j in range(k):
            x0, y0 = left + j * cell, top + i * cell
            v = float(share[i, j])
            colour = (255, int(255 - 180 * v), int(255 - 230 * v))  # BGR: white -> blue
            cv2.rectangle(image, (x0, y0), (x0 + cell, y0 + cell), colour, -1)
            cv2.rectangle(image, (x0, y0), (x0 + cell, y0 + cell), (200, 200, 200), 1)
            text = str(counts[i, j])
            (tw, th), _ = cv2.getTextSize(text, font, scale, 1)
            ink = (255, 255, 255) if v > 0.5 else (0, 0, 0)
            cv2.putText(image, text, (x0 + (cell - tw) // 2, y0 + (cell + th) // 2), font,
                        scale, ink, 1, cv2.LINE_AA)
    for i, name in enumerate(names):  # row labels: true classes
        (tw, th), _ = cv2.getTextSize(name, font, scale, 1)
        cv2.putText(image, name, (left - 6 - tw, top + i * cell + (cell + th) // 2), font, scale,
                    (0, 0, 0), 1, cv2.LINE_AA)
    # Column labels, rotated: drawn on a strip, then turned 90 degrees.
    strip = np.full((cell * k, label_w, 3), 255, np.uint8)
    for j, name in enumerate(names):
        th = cv2.getTextSize(name, font, scale, 1)[0][1]
        cv2.putText(strip, name, (6, j * cell + (cell + th) // 2), font, scale,
                    (0, 0, 0), 1, cv2.LINE_AA)
    image[top - label_w:top, left:left + k * cell] = cv2.rotate(strip,
                                                                 cv2.ROTATE_90_COUNTERCLOCKWISE)
    cv2.putText(image, "predicted", (left, top - label_w - 8), font, scale, (80, 80, 80), 1,
                cv2.LINE_AA)
    if title:
        cv2.putText(image, title, (8, 22), font, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, "rows: true class, columns: predicted; shade: share of the row",
                (8, height - 10), font, 0.4, (80, 80, 80), 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"cannot write {path}")
    return path
