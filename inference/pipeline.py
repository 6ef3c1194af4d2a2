"""Streaming a dataset's shards into Keras, with the paper's augmentation.

`clip_batches` yields (x, y) batches from one split and stream of a dataset built by
`inference.dataset.build_dataset`, reading one shard at a time; `keras_sequence` wraps it as a
``keras.utils.PyDataset`` for ``model.fit`` on any Keras backend. Keras is imported only there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np

from fetal_analytics.errors import UserError
from inference.augment import augment_clip

__all__ = ["DatasetFolderError", "class_weights", "clip_batches", "keras_sequence",
           "load_metadata", "shard_paths", "standardise"]


class DatasetFolderError(UserError, FileNotFoundError):
    """A folder is not a dataset built by `fetal-analytics dataset build`, or lacks shards."""


def load_metadata(folder: str | Path) -> dict:
    """The ``dataset.json`` of a dataset folder."""
    path = Path(folder) / "dataset.json"
    if not path.is_file():
        raise DatasetFolderError(f"{path} not found: build the dataset with "
                                 f"`fetal-analytics dataset build`")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetFolderError(f"{path} is damaged ({exc}): build the dataset again with "
                                 f"`fetal-analytics dataset build`") from exc


def shard_paths(folder: str | Path, split: str, stream: str) -> list[Path]:
    """The shard files of one split and stream of a dataset, in order (empty if none)."""
    return sorted((Path(folder) / split / stream).glob("shard-*.npz"))


def _shards(folder: Path, split: str, stream: str) -> list[Path]:
    shards = shard_paths(folder, split, stream)
    if not shards:
        raise DatasetFolderError(f"no shards in {folder / split / stream}: build the dataset "
                                 f"with this stream, or choose another")
    return shards


@lru_cache(maxsize=4)
def _load(shard: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(shard) as data:
        return data["x"], data["y"].astype(np.int64)


def standardise(x: np.ndarray) -> np.ndarray:
    """Per-sample z-score: (x - mean) / std over each clip or image, as float32 with a channel
    axis: (n, frames, S, S) -> (n, frames, S, S, 1); (n, S, S) -> (n, S, S, 1)."""
    x = x.astype(np.float32)
    axes = tuple(range(1, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    std = x.std(axis=axes, keepdims=True)
    return ((x - mean) / np.maximum(std, 1e-6))[..., None]


def clip_batches(folder: str | Path, split: str, stream: str, *, batch_size: int = 16,
                 shuffle: bool = True, augment: bool = False, seed: int = 0, epoch: int = 0,
                 ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Batches of one epoch, streamed shard by shard.

    Parameters
    ----------
    folder : str or Path
        A dataset folder.
    split : {'train', 'val', 'test'}
    stream : str
        ``fr2``, ``fr4``, ``fr8`` or ``2d``.
    batch_size : int
    shuffle : bool
        Shuffle the shard order and the clips within each shard (per epoch, from `seed`).
    augment : bool
        Apply one random augmentation per clip (`inference.augment`).
    seed, epoch : int
        Shuffling and augmentation are a function of both: reproducible, different per epoch.

    Yields
    ------
    x : ndarray
        float32 (batch, frames, S, S, 1) or, for ``2d``, (batch, S, S, 1), standardised.
    y : ndarray
        int64 (batch,) class indices into the dataset's ``classes``.
    """
    folder = Path(folder)
    rng = np.random.default_rng([seed, epoch])
    shards = _shards(folder, split, stream)
    order = rng.permutation(len(shards)) if shuffle else range(len(shards))
    carry_x: list[np.ndarray] = []
    carry_y: list[np.ndarray] = []
    for shard_index in order:
        x, y = _load(shards[shard_index])
        rows = rng.permutation(len(y)) if shuffle else np.arange(len(y))
        for row in rows:
            sample = x[row]
            if augment:
                sample = augment_clip(sample if sample.ndim == 3 else sample[None], rng)
                sample = sample if x.ndim == 4 else sample[0]
            carry_x.append(sample)
            carry_y.append(y[row])
            if len(carry_y) == batch_size:
                yield standardise(np.stack(carry_x)), np.array(carry_y)
                carry_x, carry_y = [], []
    if carry_y:
        yield standardise(np.stack(carry_x)), np.array(carry_y)


def class_weights(folder: str | Path, stream: str, *, split: str = "train") -> dict[int, float]:
    """Balanced class weights (n / (k * n_c)) for the classes present in a split and stream."""
    metadata = load_metadata(folder)
    counts = metadata["counts"][split][stream]
    classes = metadata["classes"]
    total = sum(counts.values())
    present = {classes.index(code): n for code, n in counts.items() if n}
    return {index: total / (len(present) * n) for index, n in present.items()}


def keras_sequence(folder: str | Path, split: str, stream: str, *, batch_size: int = 16,
                   shuffle: bool = True, augment: bool = False, seed: int = 0):
    """A ``keras.utils.PyDataset`` over one split and stream (for ``model.fit``)."""
    import keras

    folder = Path(folder)
    total = sum(len(_load(shard)[1]) for shard in _shards(folder, split, stream))

    class ClipSequence(keras.utils.PyDataset):
        """Batches served in order from a stream over the shards (Keras asks for them in order
        with one worker); an out-of-order index restarts the stream and skips ahead."""

        def __init__(self) -> None:
            super().__init__()
            self.epoch = 0
            self._restart()

        def _restart(self) -> None:
            self._stream = clip_batches(folder, split, stream, batch_size=batch_size,
                                        shuffle=shuffle, augment=augment, seed=seed,
                                        epoch=self.epoch)
            self._next = 0

        def __len__(self) -> int:
            return -(-total // batch_size)

        def __getitem__(self, index: int):
            if index < self._next:
                self._restart()
            while self._next < index:
                next(self._stream)
                self._next += 1
            self._next += 1
            return next(self._stream)

        def on_epoch_end(self) -> None:
            self.set_epoch(self.epoch + 1)

        def set_epoch(self, epoch: int) -> None:
            """Serve epoch `epoch` next (its shuffle and augmentation), e.g. when resuming."""
            self.epoch = epoch
            self._restart()

    return ClipSequence()
