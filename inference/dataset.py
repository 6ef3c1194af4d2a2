"""Training datasets: manifest + manual labels + videos -> compressed shards of clips.

For every labelled span (the paper's freeze-centred 5 s clips) up to ten window centres are
spread over the span, and every stream gets the clip centred on each: 12 frames at the stream's
spacing (the 2D stream: the frame nearest the centre), cut from one decode of the scan, cropped to
the automatically detected image area and resized to a square (`inference.crop`). The streams
therefore hold the same instances (aligned on scan and centre time, as the labeller's dense windows
are), which late fusion needs. Scans are split subject-wise: whole operators go to train,
validation or test, so no scan and no operator is in two splits. A scan's clips enter the shards
and the counts only once its video was read to the end: a scan that fails part way (a truncated or
corrupt video) is reported in ``skipped_scans`` and leaves nothing behind.

Layout of a dataset folder::

    dataset.json                       spec, classes, streams (spacing in s), splits, counts, hashes
    <split>/<stream>/shard-00000.npz   x (n, frames, S, S) uint8, y (n,) int16 class index,
                                       scan_id (n,), t_s (n,) clip centre time (s)

`inference.pipeline.ClipSequence` streams the shards into Keras, with augmentation.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fetal_analytics import taxonomy
from fetal_analytics.errors import UserError
from fetal_analytics.hashing import file_sha256
from inference.clips import FRAMES_PER_CLIP, ClipRequest, sample_clips, window_times
from inference.crop import cropped_frames, video_image_area
from inference.decode import iter_frames
from inference.streams import INPUT_STREAMS, STREAM_2D, STREAMS

__all__ = ["SPLITS", "DatasetError", "DatasetSpec", "DatasetSummary", "build_dataset",
           "span_centres", "split_operators"]

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


class DatasetError(UserError, ValueError):
    """The labelled scans cannot make a dataset (too few operators, no readable video)."""


MIN_CENTRE_GAP_S = 0.2  # window centres of one span closer than this would repeat frames
CENTRE_MARGIN_S = 0.5 * (FRAMES_PER_CLIP - 1) * STREAMS["fr4"]  # keeps FR/4 clips in their span


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset holds.

    Attributes
    ----------
    size : int
        Side of the square frames, pixels.
    streams : tuple of str
        Clip streams (``fr2``, ``fr4``, ``fr8``) and/or ``2d`` (single frames).
    classes : tuple of str
        Taxonomy codes kept; labels of other classes are dropped (and counted).
    split_fractions : (train, val, test)
        Shares of operators per split (the paper's 76/12/12 %).
    max_subclips : int
        Window centres (clips per stream) per labelled span.
    others_as : str or None
        Code given to labels outside `classes` (e.g. ``"Bk"`` when training a labeller on
        dense timelines, where everything the model does not know is background); None drops
        them.
    rare_as : str or None
        Instead of `others_as`: every label outside `classes` found in the labels becomes a
        class of its own (after `classes`, in taxonomy order), which a model trained on the
        dataset outputs as this code (one of `classes`, e.g. ``"Bk"``): the dataset's ``codes``.
        A model then learns the rare structures apart from true background and from the
        structures they resemble, and still outputs only `classes`.
    shard_size : int
        Clips per shard file.
    seed : int
        Seed of the split.
    """

    size: int = 64
    streams: tuple[str, ...] = INPUT_STREAMS
    classes: tuple[str, ...] = field(default_factory=taxonomy.default_model_codes)
    split_fractions: tuple[float, float, float] = (0.76, 0.12, 0.12)
    max_subclips: int = 10
    shard_size: int = 512
    seed: int = 0
    others_as: str | None = None
    rare_as: str | None = None

    def __post_init__(self) -> None:
        for stream in self.streams:
            if stream not in INPUT_STREAMS:
                raise ValueError(f"unknown stream {stream!r}; valid streams: "
                                 f"{', '.join(INPUT_STREAMS)}")
        for code in self.classes:
            taxonomy.validate_code(code)
        for name in ("others_as", "rare_as"):
            code = getattr(self, name)
            if code is not None and code not in self.classes:
                raise ValueError(f"{name} {code!r} must be one of the classes "
                                 f"{', '.join(self.classes)}")
        if self.others_as is not None and self.rare_as is not None:
            raise ValueError("give others_as or rare_as, not both")
        if self.size < 16:
            raise ValueError(f"size must be at least 16 pixels, got {self.size}")


@dataclass(frozen=True)
class DatasetSummary:
    """What `build_dataset` wrote.

    Attributes
    ----------
    out : Path
    counts : dict
        ``counts[split][stream][code]``: clips per class.
    splits : dict
        ``splits[split]``: the operators and scans in it.
    dropped_labels : dict
        Labelled spans of classes outside the spec, per code (without `DatasetSpec.others_as`).
    skipped_scans : dict
        Scans left out and why (no video, unreadable video, no labels).
    relabelled_labels : dict
        Labelled spans of classes outside the spec given the code `DatasetSpec.others_as`,
        per original code (`fetal_analytics.events.relabel_others`); empty without it.
    classes : tuple of str
        The dataset's classes: `DatasetSpec.classes`, then with `DatasetSpec.rare_as` the
        other codes found in the labels.
    """

    out: Path
    counts: dict
    splits: dict
    dropped_labels: dict
    skipped_scans: dict
    relabelled_labels: dict
    classes: tuple[str, ...]


def split_operators(operators: dict[str, str], fractions: Sequence[float], *,
                    seed: int = 0) -> dict[str, str]:
    """Assign whole operators to train / val / test, each group spread over the splits.

    Parameters
    ----------
    operators : dict
        Operator id -> group.
    fractions : (train, val, test)
    seed : int

    Returns
    -------
    dict
        Operator id -> split.

    Raises
    ------
    ValueError
        Fewer than three operators: a subject-wise three-way split is impossible.
    """
    if len(operators) < len(SPLITS):
        raise DatasetError(f"a subject-wise split needs at least {len(SPLITS)} operators, "
                         f"the manifest has {len(operators)}")
    rng = np.random.default_rng(seed)
    by_group: dict[str, list[str]] = defaultdict(list)
    for operator_id, group in sorted(operators.items()):
        by_group[group].append(operator_id)
    shuffled = [list(rng.permutation(by_group[g])) for g in sorted(by_group)]
    # Round-robin over the groups, so validation and test each get a mix of groups.
    interleaved = [str(queue[i]) for i in range(max(map(len, shuffled)))
                   for queue in shuffled if i < len(queue)]
    n = len(interleaved)
    n_val = max(1, round(fractions[1] * n))
    n_test = max(1, round(fractions[2] * n))
    if n - n_val - n_test < 1:
        raise DatasetError(f"{n} operators are too few for the split fractions {tuple(fractions)}")
    assignment = dict.fromkeys(interleaved, "train")
    assignment.update(dict.fromkeys(interleaved[:n_val], "val"))
    assignment.update(dict.fromkeys(interleaved[n_val:n_val + n_test], "test"))
    return assignment


class _ShardWriter:
    """Clips into numbered shard files, with a rollback to the last `mark`.

    Memory holds at most one shard of clips: full shards are written as clips come. To undo
    a scan, `mark` remembers the shard count and the (fewer than `shard_size`) clips not yet
    written before it; `rollback` deletes the shards written since and restores those clips.
    """

    def __init__(self, folder: Path, shard_size: int) -> None:
        self.folder, self.shard_size = folder, shard_size
        self.buffer: list[tuple[np.ndarray, int, str, float]] = []
        self.n_shards = 0
        self._mark: tuple[int, list[tuple[np.ndarray, int, str, float]]] = (0, [])

    def add(self, x: np.ndarray, y: int, scan_id: str, t_s: float) -> None:
        self.buffer.append((x, y, scan_id, t_s))
        if len(self.buffer) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        x, y, scan, t = zip(*self.buffer, strict=True)
        np.savez_compressed(self._shard(self.n_shards), x=np.stack(x),
                            y=np.array(y, np.int16), scan_id=np.array(scan), t_s=np.array(t))
        self.n_shards += 1
        self.buffer = []

    def mark(self) -> None:
        self._mark = (self.n_shards, list(self.buffer))

    def rollback(self) -> None:
        n_shards, buffer = self._mark
        for k in range(n_shards, self.n_shards):
            self._shard(k).unlink()
        self.n_shards, self.buffer = n_shards, list(buffer)

    def _shard(self, k: int) -> Path:
        return self.folder / f"shard-{k:05d}.npz"


def span_centres(start_s: float, end_s: float, max_centres: int) -> np.ndarray:
    """Up to `max_centres` window centres spread evenly over a labelled span, in seconds.

    Centres keep `CENTRE_MARGIN_S` from the span's ends (a span too short for that gets its
    midpoint) and at least `MIN_CENTRE_GAP_S` apart, so no two windows sample the same frames.
    """
    lo, hi = start_s + CENTRE_MARGIN_S, end_s - CENTRE_MARGIN_S
    if hi <= lo:
        return np.array([(start_s + end_s) / 2])
    n = int(min(max_centres, (hi - lo) // MIN_CENTRE_GAP_S + 1))
    return np.linspace(lo, hi, n) if n > 1 else np.array([(lo + hi) / 2])


def _scan_requests(spans: list[tuple[float, float, int]], spec: DatasetSpec) -> list[ClipRequest]:
    requests = []
    for start, end, label in spans:
        for centre in span_centres(start, end, spec.max_subclips):
            for stream in spec.streams:
                times = (np.array([centre]) if stream == STREAM_2D
                         else window_times(centre, stream))
                requests.append(ClipRequest((stream, label, float(centre)), times))
    return requests


def build_dataset(manifest: str | Path, labels: str | Path, out: str | Path, *,
                  spec: DatasetSpec | None = None,
                  on_scan: Callable[[str], None] | None = None) -> DatasetSummary:
    """Build a clip dataset from a manifest, manual labels and the scans' videos.

    Parameters
    ----------
    manifest, labels : str or Path
        Files in the formats `fetal-analytics ingest` reads.
    out : str or Path
        Dataset folder (created; existing shards of the same names are replaced).
    spec : DatasetSpec, optional
    on_scan : callable, optional
        Called with each scan id as it is processed (progress).

    Returns
    -------
    DatasetSummary

    Raises
    ------
    InputError
        The manifest or labels are malformed.
    ValueError
        Too few operators for a subject-wise split, or no usable labelled scan.
    """
    import pandas as pd

    from fetal_analytics.events import relabel_others
    from fetal_analytics.ingest import read_labels, read_manifest
    from inference.decode import DecodeError

    spec = spec or DatasetSpec()
    out = Path(out)
    parsed = read_manifest(manifest)
    scans = parsed.scans.set_index("scan_id")
    # Frame-based labels need each scan's fps, as `ingest labels` reads it from the manifest.
    events = read_labels(labels, scan_fps={s: None if pd.isna(fps) else float(fps)
                                           for s, fps in scans["fps"].items()})
    relabelled: dict[str, int] = {}
    classes, codes = spec.classes, spec.classes
    if spec.rare_as is not None:
        found = set(events.label)
        rare = tuple(c for c in taxonomy.codes() if c in found and c not in spec.classes)
        classes, codes = classes + rare, codes + (spec.rare_as,) * len(rare)
        dropped = {}
    elif spec.others_as is None:
        unlisted = ~events.label.isin(spec.classes)
        dropped = events.loc[unlisted, "label"].value_counts().to_dict()
        events = events[~unlisted]
    else:
        mapped = relabel_others(events, spec.classes, code=spec.others_as)
        events, relabelled, dropped = mapped.events, mapped.relabelled, {}
    groups = dict(zip(parsed.operators.operator_id, parsed.operators.grp, strict=True))
    labelled_ops = {scans.loc[s, "operator_id"] for s in events.scan_id.unique()}
    assignment = split_operators({op: groups[op] for op in labelled_ops}, spec.split_fractions,
                                 seed=spec.seed)
    class_index = {code: i for i, code in enumerate(classes)}
    writers = {(split, stream): _ShardWriter(out / split / stream, spec.shard_size)
               for split in SPLITS for stream in spec.streams}
    counts = {split: {stream: Counter() for stream in spec.streams} for split in SPLITS}
    members: dict[str, dict[str, list]] = {s: {"operators": [], "scans": []} for s in SPLITS}
    for op, split in sorted(assignment.items()):
        members[split]["operators"].append(op)
    skipped: dict[str, str] = {}
    for scan_id, scan_events in events.groupby("scan_id", sort=True):
        if on_scan:
            on_scan(scan_id)
        video = scans.loc[scan_id, "video_path"]
        if pd.isna(video) or not video:
            skipped[scan_id] = "no video in the manifest"
            continue
        split = assignment[scans.loc[scan_id, "operator_id"]]
        spans = [(r.start_s, r.end_s, class_index[r.label]) for r in scan_events.itertuples()]
        scan_writers = [writers[split, stream] for stream in spec.streams]
        for writer in scan_writers:
            writer.mark()
        scan_counts = {stream: Counter() for stream in spec.streams}
        try:
            area = video_image_area(video)
            for clip in sample_clips(cropped_frames(iter_frames(video), area, spec.size),
                                     _scan_requests(spans, spec)):
                stream, label, centre = clip.key
                x = clip.images[0] if stream == STREAM_2D else clip.images
                writers[split, stream].add(x, label, scan_id, centre)
                scan_counts[stream][classes[label]] += 1
        except (DecodeError, ValueError) as exc:
            for writer in scan_writers:  # the clips of a scan that failed part way go too
                writer.rollback()
            skipped[scan_id] = str(exc)
            log.warning("skipping scan %s: %s", scan_id, exc)
            continue
        for stream, scan_count in scan_counts.items():
            counts[split][stream].update(scan_count)
        members[split]["scans"].append(scan_id)
    for writer in writers.values():
        writer.flush()
    if not any(members[s]["scans"] for s in SPLITS):
        raise DatasetError(f"no labelled scan with a readable video: {skipped}")
    counts_out = {split: {stream: dict(sorted(c.items())) for stream, c in by_stream.items()}
                  for split, by_stream in counts.items()}
    metadata = {
        "spec": asdict(spec),
        "frames_per_clip": FRAMES_PER_CLIP,
        "aligned": True,  # every stream holds the clips of the same (scan_id, t_s) centres
        "streams": {s: STREAMS.get(s) for s in spec.streams},
        "stream_spacing_unit": "seconds between sampled frames",
        "classes": list(classes),
        # The code a model trained on the dataset outputs for each class.
        "codes": list(codes),
        "splits": members,
        "counts": counts_out,
        "dropped_labels": dropped,
        "relabelled_labels": relabelled,
        "skipped_scans": skipped,
        "sources": {"manifest": file_sha256(manifest), "labels": file_sha256(labels)},
        "dataset_sha256": _tree_hash(out),
    }
    (out / "dataset.json").write_text(json.dumps(metadata, indent=2))
    log.info("dataset %s: %s", out, counts_out)
    return DatasetSummary(out, counts_out, members, dropped, skipped, relabelled, classes)


def _tree_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for shard in sorted(folder.rglob("shard-*.npz")):
        digest.update(str(shard.relative_to(folder)).encode())
        digest.update(file_sha256(shard).encode())
    return digest.hexdigest()
