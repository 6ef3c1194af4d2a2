"""Labelling full-length scans: video -> dense windows -> model -> fused probabilities -> events.

Each video is decoded once, in order (`inference.decode.iter_frames`, luma fast path). The frames
go into a ring buffer (`_LazyRing`, an `inference.decode.FrameRing`) per frame size the model's
streams take, from which every stream takes its clips; a frame is cropped to the scan's image
area and resized to the stream's height x width (square or not) exactly as dataset clips are
(`inference.crop.video_image_area` from the first `ROI_SAMPLE_S` seconds, then
`inference.crop.cropped_frame`) once, when a window first samples it, and frames no window
samples are never shrunk (about 60% of them with fr4 clips every second; shrinking was the
producer's largest cost after the decoder). Windows are centred every ``hop_s`` seconds
(`inference.clips.window_centres`), each clip stream samples the frames nearest to
`inference.clips.window_times` of the centre, and the 2D stream takes the frame nearest to the
centre. The same full-resolution frames feed freeze detection
(`inference.freeze.detect_freezes_in_frames`), so nothing is decoded twice.

Decoding runs in a producer thread that hands batches of standardised windows
(`inference.pipeline.standardise`, times the model's ``preprocessing.scale``: 255 for the
published SonoNet) through a bounded queue to the network (`LoadedModel.predict_streams`, one
``predict_on_batch`` per batch), so decoding and inference overlap (PyAV and TensorFlow release
the GIL) and memory stays bounded whatever the scan's length. Each stream's softmax output is
summed per taxonomy code (`ModelSpec.to_codes`: SonoNet's four heart views become one ``HeD``),
so a model's output codes are its classes from here on; the streams are fused
(`inference.evaluation.fuse`, their mean) and decoded into events
(`inference.decoding.decode_timeline`).

`label_video` is the pure per-scan step (a video in, rows out); `label_scans` runs it over many
scans and writes each scan's results through `fetal_analytics.run_writing` (start the run, write
each scan in one transaction, finish the run), holding DuckDB's write lock only for each write,
so readers (the dashboard) can open the file between scans. A scan counts as finished in a run
once its rows are committed: a run killed at any moment leaves every finished scan intact and no
half-written one, and running it again labels only the scans not yet finished. Progress goes to
a plain callback (`LabelProgress`).
"""

from __future__ import annotations

import logging
import math
import queue
import shlex
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fetal_analytics.errors import UserError
from fetal_analytics.hashing import file_sha256
from fetal_analytics.results import Result, plain
from fetal_analytics.run_writing import (
    ModelRecord,
    ScanFacts,
    finish_run,
    finished_scans,
    label_run,
    open_for_write,
    start_label_run,
    stored_videos,
    write_scan,
)
from fetal_analytics.store import StoreBusyError, removed_if_refused
from inference.clips import clip_span_s, window_centres, window_times
from inference.crop import cropped_frame, video_image_area
from inference.decode import Frame, FrameRing, iter_frames, probe
from inference.freeze import FreezeConfig, FreezeSpan, detect_freezes_in_frames
from inference.model_file import DEMO_MODEL, DEMO_MODEL_COMMAND
from inference.pipeline import standardise
from inference.streams import FUSED, STREAM_2D, STREAMS

if TYPE_CHECKING:
    import pandas as pd

    from fetal_analytics.store import Store
    from inference.model_file import LoadedModel
    from inference.roi import ImageArea

__all__ = [
    "DEFAULT_FREEZES",
    "DecodedScan",
    "LabelProgress",
    "LabelResult",
    "LabellingError",
    "LabellingInterrupted",
    "ModelSpec",
    "ModelStream",
    "RunLeftRunningError",
    "ScanLabels",
    "ScanOutcome",
    "ScanVideo",
    "WindowBatch",
    "decode_windows",
    "label_scans",
    "label_video",
    "load_labelling_model",
    "model_spec",
]

log = logging.getLogger(__name__)

#: Freeze detection as labelling runs it by default: stillness of the image area, no preset.
DEFAULT_FREEZES = FreezeConfig()
DEFAULT_HOP_S = 1.0
DEFAULT_BATCH = 32
QUEUE_BATCHES = 4  # batches of windows decoded ahead of the network


class LabellingError(UserError, ValueError):
    """The model, the scans or the run cannot be labelled as asked; the message says why."""


class _Cancelled(Exception):
    """The consumer stopped: the producer thread unwinds."""


# ---------------------------------------------------------------------------------------------
# The model


@dataclass(frozen=True)
class ModelStream:
    """One input stream of a model.

    Attributes
    ----------
    name : {'fr2', 'fr4', 'fr8', '2d'}
    spacing_s : float or None
        Seconds between a clip's frames (None for 2d).
    frames : int
        Frames per clip (1 for 2d).
    size : (int, int)
        The (height, width) in pixels each frame is resized to for this stream.
    """

    name: str
    spacing_s: float | None
    frames: int
    size: tuple[int, int]


@dataclass(frozen=True)
class ModelSpec:
    """What labelling needs to know about a model, checked.

    Attributes
    ----------
    path : Path
    sha256 : str
    model_id : str
        ``models.model_id``: the first 16 hex digits of `sha256`.
    arch : str
    streams : tuple of ModelStream
        In the model's input order, each with its frame size.
    input_shape : (int, int, int)
        The model's (height, width, channels) of one frame (its first stream's).
    classes : tuple of str
        The model's own output classes, in output order (e.g. SonoNet's 14).
    codes : tuple of str
        The taxonomy codes the model outputs (`inference.model_file.ModelInfo.output_codes`):
        probabilities of classes sharing a code are summed (`to_codes`), so window
        probabilities, fusion and events are per code, in this order.
    class_codes : ndarray
        (classes, codes) 0/1 float32 matrix that sums classes into codes.
    scale : float
        Factor after the per-sample z-score (`inference.model_file.ModelInfo.input_scale`).
    hop_s : float
        Seconds between window centres.
    decoding : dict
        The sidecar's temporal-decoding parameters, with ``hop_s``
        (`inference.decoding.DecodingParams.from_dict` reads them).
    """

    path: Path
    sha256: str
    model_id: str
    arch: str
    streams: tuple[ModelStream, ...]
    input_shape: tuple[int, int, int]
    classes: tuple[str, ...]
    codes: tuple[str, ...]
    class_codes: np.ndarray = field(repr=False, compare=False)
    scale: float
    hop_s: float
    decoding: dict[str, Any]

    def to_codes(self, probs: np.ndarray) -> np.ndarray:
        """(n, classes) softmax outputs -> (n, codes) float32, classes sharing a code summed."""
        return np.asarray(probs, dtype=np.float32) @ self.class_codes

    def params(self) -> dict[str, Any]:
        """The run's ``params_json``: what decides its rows."""
        owner = self.class_codes.argmax(axis=1)  # each class's code, as an index into codes
        summed = {code: [c for c, k in zip(self.classes, owner, strict=True) if k == j]
                  for j, code in enumerate(self.codes)}
        return {"classes": list(self.codes), "decoding": self.decoding,
                "streams": [{"name": s.name, "spacing_s": s.spacing_s, "frames": s.frames,
                             "size": list(s.size)} for s in self.streams],
                "model": {"path": str(self.path.resolve()), "sha256": self.sha256,
                          "arch": self.arch, "classes": list(self.classes)},
                "summed_classes": {c: v for c, v in summed.items() if v != [c]},
                "hop_s": self.hop_s, "size": list(self.input_shape[:2]), "scale": self.scale,
                "preprocessing": "inference.crop.video_image_area + cropped_frames, "
                                 "inference.pipeline.standardise x scale"}

    def record(self, metrics: dict[str, Any] | None = None) -> ModelRecord:
        """The model as the store's ``models`` table keeps it (with its sidecar's `metrics`):
        its output codes are its classes."""
        return ModelRecord(self.model_id, self.path, self.sha256, self.arch, self.input_shape,
                           self.codes, metrics)


def load_labelling_model(path: str | Path | None = None) -> LoadedModel:
    """Load a model for labelling: `path`, or the shipped demo model.

    Raises
    ------
    ModelFileError
        The model is missing (for the demo model, with the command that makes it) or damaged.
    """
    from inference.model_file import ModelFileError, load_model

    if path is None:
        if not DEMO_MODEL.is_file():
            raise ModelFileError(
                f"the demo model {DEMO_MODEL} is missing: make it with `{DEMO_MODEL_COMMAND}`, "
                f"or pass --model PATH (a model written by `fetal-analytics train`)")
        path = DEMO_MODEL
    return load_model(path)


def model_spec(loaded: LoadedModel, *, hop_s: float | None = None) -> ModelSpec:
    """Check that a loaded model can label scans, and describe it.

    Parameters
    ----------
    loaded : LoadedModel
    hop_s : float, optional
        Seconds between window centres (default: the sidecar's ``decoding.hop_s``, else 1 s).

    Any input size is taken (square or not); every stream's frames are resized to its own
    height x width. Classes that share a taxonomy code (SonoNet's four heart views) become one
    output code: their probabilities are summed (`ModelSpec.to_codes`).

    Raises
    ------
    LabellingError
        The model takes colour frames, a class has no taxonomy code, or a stream is unknown.
    """
    from fetal_analytics import taxonomy

    codes = loaded.codes
    if any(c is None for c in codes):
        raise LabellingError(
            f"{loaded.path}: every class needs a taxonomy code to become events (classes "
            f"sharing a code are summed); classes {list(loaded.classes)} have codes "
            f"{list(codes)}: set them in its sidecar's \"codes\"")
    for code in codes:
        taxonomy.validate_code(code)
    streams = []
    for index, stream in enumerate(loaded.streams):
        height, width, channels = loaded.stream_input_shape(index)
        if channels != 1:
            raise LabellingError(
                f"{loaded.path}: stream {stream['name']} takes frames of "
                f"{height}x{width}x{channels}; labelling feeds greyscale frames (1 channel)")
        name = stream["name"]
        if name != STREAM_2D and name not in STREAMS:
            raise LabellingError(f"{loaded.path}: unknown stream {name!r}; valid streams: "
                                 f"{', '.join([*STREAMS, STREAM_2D])}")
        spacing = stream.get("spacing_s")
        if name in STREAMS and spacing is not None and abs(spacing - STREAMS[name]) > 1e-6:
            raise LabellingError(f"{loaded.path}: stream {name} has spacing {spacing} s, "
                                 f"expected {STREAMS[name]:.6f} s")
        streams.append(ModelStream(name, STREAMS.get(name),
                                   1 if name == STREAM_2D else int(stream.get("frames") or 12),
                                   (int(height), int(width))))
    if len({s.frames for s in streams if s.name != STREAM_2D}) > 1:
        raise LabellingError(f"{loaded.path}: clip streams with different frame counts "
                             f"{[s.frames for s in streams]} are not supported")
    decoding = dict(loaded.sidecar.get("decoding") or {})
    hop = float(hop_s if hop_s is not None else decoding.get("hop_s", DEFAULT_HOP_S))
    if not hop > 0:
        raise LabellingError(f"`hop_s` must be positive, got {hop}")
    from inference.decoding import DecodingParams

    try:  # checked now rather than after the first scan's network run
        DecodingParams.from_dict({**decoding, "hop_s": hop})
    except ValueError as exc:
        raise LabellingError(f"{loaded.path}: bad \"decoding\" in its sidecar: {exc}") from exc
    sha = str(loaded.sidecar.get("sha256", ""))
    return ModelSpec(path=loaded.path, sha256=sha, model_id=sha[:16],
                     arch=str(loaded.sidecar.get("arch", "unknown")), streams=tuple(streams),
                     input_shape=tuple(int(v) for v in loaded.input_shape),
                     classes=loaded.classes, codes=loaded.output_codes,
                     class_codes=loaded.code_matrix(), scale=loaded.input_scale, hop_s=hop,
                     decoding={**decoding, "hop_s": hop})


# ---------------------------------------------------------------------------------------------
# Decoding a scan into batches of windows


@dataclass(frozen=True)
class WindowBatch:
    """Consecutive windows of a scan, ready for the network.

    Attributes
    ----------
    centres_s : ndarray
        (n,) window centres, seconds from the start of the video.
    inputs : list of ndarray
        One per model stream, standardised float32: clips (n, frames, H, W, 1), 2d (n, H, W, 1)
        with the stream's (H, W).
    decoded_s : float
        Time of the newest frame decoded when the batch was complete (progress).
    """

    centres_s: np.ndarray
    inputs: list[np.ndarray]
    decoded_s: float


@dataclass(frozen=True)
class DecodedScan:
    """What one decode of a scan gave besides its windows (`decode_windows`).

    Attributes
    ----------
    centres_s : ndarray
        (T,) centres of all windows, in the order their batches were delivered.
    n_frames : int
        Frames decoded.
    duration_s : float
        Time of the last frame plus one frame interval.
    area : ImageArea
        The image area every frame was cropped to.
    freezes : tuple of FreezeSpan, or None
        Confirmed freezes (None: freeze detection was off).
    """

    centres_s: np.ndarray
    n_frames: int
    duration_s: float
    area: ImageArea
    freezes: tuple[FreezeSpan, ...] | None


_RELEASE_MARGIN_S = 1e-6  # rounding slack when deciding that no window samples a frame


class _LazyRing(FrameRing):
    """A `FrameRing` of small frames that are cut from the full frames only when sampled.

    Windows sample about 12 of every 30 frames (fr4 clips every second), so cropping and
    resizing every decoded frame (`inference.crop.cropped_frame`) would spend most of that
    work (the producer's largest cost after the decoder itself) on frames no window uses. Here
    each pushed frame keeps its full image (a view of the decoded frame) until a window samples
    it, when it is shrunk once and cached, or until no later window can sample it
    (`release_before`), when it is dropped unshrunk. The small frames are the same as shrinking
    every frame; only fewer are made.
    """

    def __init__(self, capacity: int, shape: tuple[int, ...], dtype: np.dtype,
                 shrink: Callable[[np.ndarray], np.ndarray]) -> None:
        super().__init__(capacity, shape, dtype)
        self.shrink = shrink
        self.full: list[np.ndarray | None] = [None] * capacity
        self.ready = np.zeros(capacity, bool)
        self.held: deque[int] = deque()  # slots still holding a full image, oldest first

    def push(self, frame: Frame) -> None:
        slot = self.count % self.capacity
        if self.full[slot] is not None:  # pragma: no cover - released long before reuse
            self.held.remove(slot)
        self.full[slot] = frame.image
        self.ready[slot] = False
        self.times[slot] = frame.t_s
        self.indices[slot] = frame.index
        self.count += 1
        self.held.append(slot)

    def release_before(self, t_s: float) -> None:
        """Drop the full images of frames that a later frame at or before `t_s` follows."""
        held, times = self.held, self.times
        while len(held) > 1 and times[held[1]] <= t_s:
            self.full[held.popleft()] = None

    def gather(self, times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        slots = self.nearest(times_s)
        for slot in slots[~self.ready[slots]]:
            if not self.ready[slot]:  # a slot sampled twice in one clip is shrunk once
                image = self.full[slot]
                if image is None:  # pragma: no cover - guarded by release_before's rule
                    raise RuntimeError(f"frame {self.indices[slot]} was released before use")
                self.images[slot] = self.shrink(image)
                self.ready[slot] = True
        return self.images[slots], self.indices[slots]


class _WindowAssembler:
    """Cuts windows from a stream of frames as soon as their last frame has arrived."""

    def __init__(self, streams: Sequence[ModelStream], *, hop_s: float, batch_size: int,
                 fps_hint: float, scale: float,
                 shrink: Callable[[np.ndarray, tuple[int, int]], np.ndarray],
                 on_batch: Callable[[WindowBatch], None]) -> None:
        self.streams = tuple(streams)
        self.clips = tuple(s for s in self.streams if s.name != STREAM_2D)
        self.frames = self.clips[0].frames if self.clips else 1
        self.half = max((clip_span_s(s.name, s.frames) for s in self.clips), default=0.0) / 2
        self.hop_s, self.batch_size, self.on_batch = hop_s, batch_size, on_batch
        self.scale = scale
        self.shrink = shrink
        fps = fps_hint if math.isfinite(fps_hint) and fps_hint > 0 else 60.0
        # Every frame from a window's first sampled time to the frame that completes it.
        self.capacity = math.ceil((2 * self.half + 1.0) * max(fps, 30.0) * 2) + 8
        # One ring per frame size the streams take, all filled from the one decode.
        self.rings: dict[tuple[int, int], _LazyRing] = {}
        self.next_k = 0
        self.n_frames = 0
        self.last_t = self.previous_t = math.nan
        self.centres: list[float] = []
        self.pending: list[list[np.ndarray]] = [[] for _ in self.streams]

    def push(self, frame: Frame) -> None:
        """Take a full-resolution frame (shrunk only if a window samples it)."""
        if not self.rings:
            for size in dict.fromkeys(s.size for s in self.streams):
                first = self.shrink(frame.image, size)
                self.rings[size] = _LazyRing(self.capacity, first.shape, first.dtype,
                                             lambda image, size=size: self.shrink(image, size))
        for ring in self.rings.values():
            ring.push(frame)
        self.n_frames += 1
        self.previous_t, self.last_t = self.last_t, frame.t_s
        # Once a frame at or after a window's last sampled time has arrived, every frame
        # nearest to its sampled times is known.
        while self.half + self.next_k * self.hop_s + self.half <= frame.t_s:
            self._take(self.half + self.next_k * self.hop_s)
            self.next_k += 1
        # No later window samples before the next one's first time: frames followed by one at
        # or before it can never be nearest to a sampled time again.
        for ring in self.rings.values():
            ring.release_before(self.next_k * self.hop_s - _RELEASE_MARGIN_S)

    def _take(self, centre: float) -> None:
        for pending, stream in zip(self.pending, self.streams, strict=True):
            times = (np.array([centre]) if stream.name == STREAM_2D
                     else window_times(centre, stream.name, stream.frames))
            images, _ = self.rings[stream.size].gather(times)
            pending.append(images[0] if stream.name == STREAM_2D else images)
        self.centres.append(centre)
        if len(self.pending[0]) == self.batch_size:
            self._flush()

    def _flush(self) -> None:
        if not self.pending[0]:
            return
        start = len(self.centres) - len(self.pending[0])
        inputs = [standardise(np.stack(p)) for p in self.pending]
        if self.scale != 1.0:
            inputs = [x * np.float32(self.scale) for x in inputs]
        batch = WindowBatch(np.array(self.centres[start:]), inputs, self.last_t)
        self.pending = [[] for _ in self.streams]
        self.on_batch(batch)

    def finish(self) -> tuple[float, np.ndarray]:
        """Cut the remaining windows; (duration_s, all centres)."""
        step = self.last_t - self.previous_t
        duration = self.last_t + (step if math.isfinite(step) and step > 0 else 1 / 30)
        if self.clips:
            centres = window_centres(duration, self.hop_s, streams=[s.name for s in self.clips],
                                     frames=self.frames)
        else:
            centres = np.arange(0.0, duration, self.hop_s)
        if len(centres) < self.next_k:  # pragma: no cover - emitted centres lie in the scan
            raise RuntimeError(f"{self.next_k} windows cut, but the scan holds {len(centres)}")
        for centre in centres[self.next_k:]:
            self._take(float(centre))
        self._flush()
        return duration, centres


def decode_windows(video: str | Path, streams: Sequence[ModelStream], *, scale: float = 1.0,
                   hop_s: float = DEFAULT_HOP_S, batch_size: int = DEFAULT_BATCH,
                   freezes: FreezeConfig | None = DEFAULT_FREEZES,
                   on_batch: Callable[[WindowBatch], None]) -> DecodedScan:
    """Decode a scan once into batches of dense windows for every stream (no network).

    Parameters
    ----------
    video : str or Path
        A video FFmpeg reads, or a DICOM cine loop.
    streams : sequence of ModelStream
        The model's streams, in input order, each with its frame size (see `model_spec`).
        Streams of different sizes are cut from the same decoded frames.
    scale : float
        Factor after the per-sample z-score (`ModelSpec.scale`).
    hop_s : float
        Seconds between window centres.
    batch_size : int
        Windows per batch (the last batch may be smaller).
    freezes : FreezeConfig or None
        Detect freezes on the same decoded frames; None skips it.
    on_batch : callable
        Called with each `WindowBatch`, in time order, as soon as it is complete.

    Returns
    -------
    DecodedScan

    Raises
    ------
    inference.decode.DecodeError
        The video is missing, unreadable, corrupt or truncated (after every window before the
        damage was delivered).
    ValueError
        No ultrasound image area is found in the first `ROI_SAMPLE_S` seconds.
    """
    video = Path(video)
    info = probe(video)
    area = video_image_area(video)

    def shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        # Exactly the dataset's preprocessing, for the frames that windows sample.
        return cropped_frame(image, area, size)

    assembler = _WindowAssembler(streams, hop_s=hop_s, batch_size=batch_size, fps_hint=info.fps,
                                 scale=scale, shrink=shrink, on_batch=on_batch)

    def full_frames():
        # The assembler shrinks the frames that windows sample; the freeze detector gets every
        # full frame (it reads the freeze indicator from it).
        for frame in iter_frames(video):
            assembler.push(frame)
            yield frame

    if freezes is None:
        for _ in full_frames():
            pass
        spans = None
    else:
        spans = detect_freezes_in_frames(full_frames(), config=freezes).spans
    duration, centres = assembler.finish()
    return DecodedScan(centres, assembler.n_frames, duration, area, spans)


# ---------------------------------------------------------------------------------------------
# Labelling one scan


@dataclass(frozen=True)
class ScanLabels:
    """The labels of one video (`label_video`): what the store keeps of a scan.

    Attributes
    ----------
    video : Path
    times_s : ndarray
        (T,) window centres, seconds.
    probs : dict of str to ndarray
        Per stream name, and ``'fused'``: (T, C) float32 probabilities of the C taxonomy codes
        the model outputs, in `codes` order (classes sharing a code summed).
    codes : tuple of str
        The model's output codes (`ModelSpec.codes`).
    segments : tuple
        Events from temporal decoding: objects with ``start_s``, ``end_s``, ``label`` (a code)
        and ``confidence``.
    freezes : tuple of FreezeSpan, or None
    n_frames : int
    duration_s : float
    area : ImageArea
    wall_s, decode_s, infer_s : float
        Wall time; time the decoding thread worked (not waiting for the network); time in the
        network. Pipelining makes ``wall_s`` approach ``max(decode_s, infer_s)``.
    """

    video: Path
    times_s: np.ndarray = field(repr=False)
    probs: dict[str, np.ndarray] = field(repr=False)
    codes: tuple[str, ...]
    segments: tuple[Any, ...] = field(repr=False)
    freezes: tuple[FreezeSpan, ...] | None = field(repr=False)
    n_frames: int
    duration_s: float
    area: ImageArea
    wall_s: float
    decode_s: float
    infer_s: float


def label_video(video: str | Path, model: LoadedModel, *, hop_s: float | None = None,
                batch_size: int = DEFAULT_BATCH,
                freezes: FreezeConfig | None = DEFAULT_FREEZES,
                on_decoded: Callable[[float], None] | None = None) -> ScanLabels:
    """Label one scan video: decode once, run the model on dense windows, fuse, decode events.

    Decoding (with cropping, window assembly and freeze detection) runs in a thread beside the
    network, ahead of it by at most a few batches.

    Parameters
    ----------
    video : str or Path
    model : LoadedModel
        From `load_labelling_model` or `inference.model_file.load_model`.
    hop_s : float, optional
        Seconds between window centres (default: the model's ``decoding.hop_s``, else 1 s).
    batch_size : int
        Windows per ``predict_on_batch``.
    freezes : FreezeConfig or None
        Freeze detection on the same frames; None skips it.
    on_decoded : callable, optional
        Called with the seconds of video processed so far, after each batch (progress).

    Returns
    -------
    ScanLabels

    Raises
    ------
    inference.decode.DecodeError
        The video is missing, unreadable, corrupt or truncated.
    ValueError
        No image area is found.
    """
    from inference.decoding import DecodingParams, decode_timeline
    from inference.evaluation import fuse

    spec = model_spec(model, hop_s=hop_s)
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be at least 1, got {batch_size}")
    video = Path(video)
    items: queue.Queue = queue.Queue(maxsize=QUEUE_BATCHES)
    stop = threading.Event()
    waited = [0.0]

    def put(item: tuple[str, Any]) -> None:
        start = time.perf_counter()
        while True:
            if stop.is_set():
                raise _Cancelled
            try:
                items.put(item, timeout=0.1)
                break
            except queue.Full:
                continue
        waited[0] += time.perf_counter() - start

    def produce() -> None:
        try:
            decoded = decode_windows(video, spec.streams, scale=spec.scale, hop_s=spec.hop_s,
                                     batch_size=batch_size, freezes=freezes,
                                     on_batch=lambda batch: put(("batch", batch)))
            put(("done", decoded))
        except _Cancelled:
            return
        except BaseException as exc:  # handed to the consumer, which raises it
            try:
                put(("error", exc))
            except _Cancelled:
                return

    start = time.perf_counter()
    thread = threading.Thread(target=produce, name=f"decode {video.name}", daemon=True)
    thread.start()
    outputs: list[list[np.ndarray]] = [[] for _ in spec.streams]
    infer_s = 0.0
    try:
        while True:
            kind, item = items.get()
            if kind == "error":
                raise item
            if kind == "done":
                decoded: DecodedScan = item
                break
            tick = time.perf_counter()
            for out, probs in zip(outputs, model.predict_streams(item.inputs), strict=True):
                out.append(spec.to_codes(probs))
            infer_s += time.perf_counter() - tick
            if on_decoded is not None:
                on_decoded(item.decoded_s)
    finally:
        stop.set()
        thread.join()
    wall_s = time.perf_counter() - start
    probs = {s.name: np.concatenate(out) for s, out in zip(spec.streams, outputs, strict=True)}
    n = len(decoded.centres_s)
    if any(len(p) != n for p in probs.values()):  # pragma: no cover - one output per window
        raise RuntimeError(f"{video}: {n} windows but {[len(p) for p in probs.values()]} outputs")
    probs[FUSED] = fuse(list(probs.values())).astype(np.float32)
    segments = decode_timeline(probs[FUSED], decoded.centres_s, list(spec.codes),
                               params=DecodingParams.from_dict(spec.decoding), priors=None,
                               duration_s=decoded.duration_s)
    log.info("%s: %d frames, %d windows, %d events in %.1f s (decode %.1f s, network %.1f s)",
             video, decoded.n_frames, n, len(segments), wall_s, wall_s - waited[0], infer_s)
    return ScanLabels(video=video, times_s=decoded.centres_s, probs=probs, codes=spec.codes,
                      segments=tuple(segments), freezes=decoded.freezes,
                      n_frames=decoded.n_frames, duration_s=decoded.duration_s,
                      area=decoded.area, wall_s=wall_s, decode_s=wall_s - waited[0],
                      infer_s=infer_s)


# ---------------------------------------------------------------------------------------------
# Labelling many scans into the store


@dataclass(frozen=True)
class ScanVideo:
    """A scan to label: its id in the store and its video."""

    scan_id: str
    video: Path | None


@dataclass(frozen=True)
class ScanOutcome(Result):
    """What happened to one scan in `label_scans`.

    Attributes
    ----------
    scan_id : str
    video : Path or None
    status : {'labelled', 'skipped', 'failed'}
        ``skipped``: already finished in the run (and not forced), or no video.
    reason : str
        Why it was skipped or failed (empty when labelled).
    n_windows, n_events : int
    n_freezes : int or None
        None when freeze detection was off.
    duration_s : float or None
        Length of the video, seconds.
    seconds : float
        Wall time spent on the scan.
    """

    scan_id: str
    video: Path | None
    status: str
    reason: str = ""
    n_windows: int = 0
    n_events: int = 0
    n_freezes: int | None = None
    duration_s: float | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class LabelResult(Result):
    """What `label_scans` did.

    Attributes
    ----------
    run_id : int
    run_name : str
    model_id : str
    status : {'finished', 'failed', 'running'}
        The run's status: ``failed`` when no scan of the run has labels; ``running`` only in
        the result a `RunLeftRunningError` carries.
    outcomes : tuple of ScanOutcome
        One per scan, in the order given.
    """

    run_id: int
    run_name: str
    model_id: str
    status: str
    outcomes: tuple[ScanOutcome, ...]

    def _with(self, status: str) -> tuple[ScanOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status == status)

    @property
    def labelled(self) -> tuple[ScanOutcome, ...]:
        """The scans labelled by this call."""
        return self._with("labelled")

    @property
    def skipped(self) -> tuple[ScanOutcome, ...]:
        """The scans left as they were (finished before, or without video)."""
        return self._with("skipped")

    @property
    def failed(self) -> tuple[ScanOutcome, ...]:
        """The scans that could not be labelled, with the reason."""
        return self._with("failed")

    def scan_rows(self) -> list[dict[str, Any]]:
        """One row per scan, its units in the column names: ``windows, events`` (of a scan
        labelled now, else None), ``freezes``, ``video_min`` (length of the video, minutes),
        ``wall_s`` (time spent on it, seconds) and ``reason``."""
        rows = []
        for o in self.outcomes:
            done = o.status == "labelled"
            rows.append({"scan_id": o.scan_id, "status": o.status,
                         "windows": o.n_windows if done else None,
                         "events": o.n_events if done else None, "freezes": o.n_freezes,
                         "video_min": None if o.duration_s is None else o.duration_s / 60,
                         "wall_s": o.seconds, "reason": o.reason})
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: the run (``run_id, run_name, model_id, status``) and `scan_rows`."""
        return {"run_id": self.run_id, "run_name": self.run_name, "model_id": self.model_id,
                "status": self.status, "scans": plain(self.scan_rows())}

    def to_frame(self) -> pd.DataFrame:
        """`scan_rows` as a DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.scan_rows())


class LabellingInterrupted(KeyboardInterrupt):
    """Labelling stopped by Ctrl-C; the finished scans are kept and the run can be resumed.

    Attributes
    ----------
    kept : int
        Scans finished in the run (by this call or earlier ones).
    command : str
        The `fetal-analytics label` command that resumes the run.
    """

    def __init__(self, message: str, *, kept: int, command: str) -> None:
        super().__init__(message)
        self.kept, self.command = kept, command


class RunLeftRunningError(UserError, RuntimeError):
    """The scans were labelled, but the run could not be marked finished (a busy database).

    Attributes
    ----------
    result : LabelResult
        What was labelled (its status ``running``).
    """

    def __init__(self, message: str, result: LabelResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class LabelProgress:
    """Where `label_scans` is: what its `progress` callback is given.

    Attributes
    ----------
    scan_id : str
        The scan being labelled.
    status : {'labelling', 'labelled', 'failed'}
        ``labelling`` while its video is decoded and classified (one report as it starts, then
        one per batch of windows); ``labelled`` once its rows are committed; ``failed`` when it
        could not be labelled (the reason is in its `ScanOutcome`).
    scan_done_s, scan_total_s : float
        Seconds of the scan's video processed, and its length (0 when its header gives none).
    done_s, total_s : float
        The same over every scan this call labels (scans skipped are not counted).
    """

    scan_id: str
    status: str
    scan_done_s: float
    scan_total_s: float
    done_s: float
    total_s: float


def label_scans(db: str | Path, scans: Sequence[ScanVideo] | None = None, *,
                manifest: str | Path | None = None, model: str | Path | LoadedModel | None = None,
                run_name: str | None = None, force: bool = False, hop_s: float | None = None,
                batch_size: int = DEFAULT_BATCH, freezes: FreezeConfig | None = DEFAULT_FREEZES,
                progress: Callable[[LabelProgress], None] | None = None,
                write_wait_s: float | None = None, replace: bool = False) -> LabelResult:
    """Label scans with a model and store events, window probabilities and freezes as one run.

    The run is written through `fetal_analytics.run_writing`: started (or continued), one
    transaction per scan as soon as the scan is labelled, then finished. The database file is
    opened only for these writes, so readers can open it in between.

    Parameters
    ----------
    db : str or Path
        The database file (created with `manifest` if missing).
    scans : sequence of ScanVideo, optional
        Scans already in the store (from a manifest) and their videos; a scan stored without a
        video path gets this one.
    manifest : str or Path, optional
        Instead of `scans`: import this manifest (`fetal_analytics.ingest.ingest_manifest`,
        idempotent), then label each of its scans that has a video.
    model : path or LoadedModel, optional
        Default: the shipped demo model `DEMO_MODEL`.
    run_name : str, optional
        The run (source ``auto``, kind ``label``). Default ``label-<model stem>-<sha256[:8]>``,
        so labelling again with the same model continues the same run. An existing run of this
        name is continued: scans finished in it are skipped unless `force`.
    force : bool
        Label scans again that are finished in the run (their rows are replaced).
    hop_s : float, optional
        Seconds between window centres (default: the model's).
    batch_size : int
        Windows per ``predict_on_batch``.
    freezes : FreezeConfig or None
        Freeze detection; None leaves the run's stored freezes of the scans as they are.
    progress : callable, optional
        Called with a `LabelProgress` as each scan starts, after each batch of its windows, and
        when it is labelled (committed) or has failed.
    write_wait_s : float, optional
        How long each write waits for the database file while another process holds it (a
        reader such as the dashboard); default
        `fetal_analytics.run_writing.DEFAULT_WRITE_WAIT_S`. A scan whose write waits longer is
        reported failed.
    replace : bool
        Let `manifest` correct scans and operators stored with other data
        (`fetal_analytics.ingest.ingest_manifest`).

    Returns
    -------
    LabelResult
        One outcome per scan. A scan that fails (an unreadable video, no image area, ...) is
        reported in it and the other scans go on. When every scan is skipped (finished in a
        finished run, or without a video) nothing is written: the file is left untouched.

    Raises
    ------
    LabellingError
        Neither or both of `scans` and `manifest`; scans not in the store.
    RunWritingError
        The run name belongs to another kind of run or to another model or settings.
    RunLeftRunningError
        Every scan was labelled or reported, but the database was still busy after
        `write_wait_s` when the run was to be marked finished; the error names the command that
        finishes it, and carries the result.
    LabellingInterrupted
        Ctrl-C (KeyboardInterrupt): the scans finished so far are kept and the run is marked
        failed; the error names the command that resumes it.
    StoreBusyError
        The database was busy for longer than `write_wait_s` before labelling began.
    ModelFileError
        The model is missing or damaged.
    InputError
        The manifest is malformed or contradicts the store.
    """
    if (scans is None) == (manifest is None):
        raise LabellingError("give the scans to label or a manifest, not both")
    db = Path(db)
    if manifest is None and not db.exists():
        from fetal_analytics.store import missing_database_error

        raise missing_database_error(db)
    loaded = model if _is_loaded(model) else load_labelling_model(model)
    spec = model_spec(loaded, hop_s=hop_s)
    name = run_name or f"label-{spec.path.stem}-{spec.sha256[:8]}"
    record = spec.record(loaded.sidecar.get("metrics"))
    with removed_if_refused(db):  # a refused manifest leaves no new database behind
        store = open_for_write(db, wait_s=write_wait_s)
        try:
            targets = _targets(store, scans, manifest, replace=replace)
            stored = label_run(store, name, model=record, params=spec.params())
            finished = frozenset() if stored is None else finished_scans(store, stored.run_id)
            todo = [t for t in targets
                    if t.video is not None and (force or t.scan_id not in finished)]
            if stored is not None and stored.status == "finished" and not todo:
                return LabelResult(stored.run_id, name, spec.model_id, stored.status,
                                   tuple(_skipped(t, finished) for t in targets))
            run = start_label_run(store, name, model=record, params=spec.params(),
                                  input_path=manifest)
        finally:
            store.close()
    log.info("run %d %r: %d scans, %d finished before", run.run_id, name, len(targets),
             len(finished & {t.scan_id for t in targets}))
    durations = {t.scan_id: _probe_duration(t.video) for t in todo}
    tracker = _Tracker(progress, sum(durations.values()))
    outcomes: list[ScanOutcome] = []
    try:
        for target in targets:
            if target.video is None or (target.scan_id in finished and not force):
                outcomes.append(_skipped(target, finished))
            else:
                tracker.start(target.scan_id, durations[target.scan_id])
                outcome = _label_one(db, run.run_id, target, loaded, spec,
                                     batch_size=batch_size, freezes=freezes,
                                     on_decoded=tracker.advance, write_wait_s=write_wait_s)
                tracker.done(outcome.status)
                outcomes.append(outcome)
    except KeyboardInterrupt:
        _mark_failed(db, run.run_id)
        kept = _finished_count(db, run.run_id, write_wait_s)
        command = _resume_command(db, name, manifest, targets,
                                  None if model is None else spec.path)
        raise LabellingInterrupted(
            f"interrupted: run {run.run_id} {name!r} keeps the {kept} scans finished in it; "
            f"resume with `{command}` (finished scans are skipped)", kept=kept,
            command=command) from None
    except BaseException:
        _mark_failed(db, run.run_id)
        raise
    try:
        store = open_for_write(db, wait_s=write_wait_s)
    except StoreBusyError as exc:
        result = LabelResult(run.run_id, name, spec.model_id, "running", tuple(outcomes))
        command = _resume_command(db, name, manifest, targets,
                                  None if model is None else spec.path)
        raise RunLeftRunningError(
            f"run {run.run_id} {name!r} is left running: {db} was in use by another process "
            f"when the run was to be marked finished (its labelled scans are stored); once the "
            f"file is free, finish the run with `{command}` (scans finished in it are skipped)",
            result) from exc
    try:
        status = finish_run(store, run.run_id)
    finally:
        store.close()
    return LabelResult(run.run_id, name, spec.model_id, status, tuple(outcomes))


def _skipped(target: ScanVideo, finished: frozenset[str]) -> ScanOutcome:
    if target.video is None:
        return ScanOutcome(target.scan_id, None, "skipped", "no video in the store")
    return ScanOutcome(target.scan_id, target.video, "skipped",
                       "already labelled in this run (--force labels again)")


def _finished_count(db: Path, run_id: int, write_wait_s: float | None) -> int:
    store = open_for_write(db, wait_s=write_wait_s)
    try:
        return len(finished_scans(store, run_id))
    finally:
        store.close()


def _is_loaded(model: Any) -> bool:
    return model is not None and not isinstance(model, str | Path)


def _label_one(db: Path, run_id: int, target: ScanVideo, loaded: LoadedModel, spec: ModelSpec,
               *, batch_size: int, freezes: FreezeConfig | None,
               on_decoded: Callable[[float], None], write_wait_s: float | None) -> ScanOutcome:
    start = time.perf_counter()
    try:
        labels = label_video(target.video, loaded, hop_s=spec.hop_s, batch_size=batch_size,
                             freezes=freezes, on_decoded=on_decoded)
        rows = _scan_rows(labels)
        store = open_for_write(db, wait_s=write_wait_s)
        try:
            write_scan(store, run_id, target.scan_id, **rows,
                       facts=ScanFacts(labels.n_frames, labels.duration_s, Path(target.video),
                                       file_sha256(target.video)))
        finally:
            store.close()
    except Exception as exc:  # one bad scan is reported; the others go on
        reason = str(exc) if isinstance(exc, UserError | ValueError | OSError) else (
            f"{type(exc).__name__}: {exc}")
        log.info("scan %s failed: %s", target.scan_id, reason)
        log.debug("scan %s", target.scan_id, exc_info=True)
        return ScanOutcome(target.scan_id, target.video, "failed", reason,
                           seconds=time.perf_counter() - start)
    seconds = time.perf_counter() - start
    log.info("labelled scan %s: %d windows, %d events, committed", target.scan_id,
             len(labels.times_s), len(labels.segments))
    return ScanOutcome(target.scan_id, target.video, "labelled", "", len(labels.times_s),
                       len(labels.segments),
                       None if labels.freezes is None else len(labels.freezes),
                       labels.duration_s, seconds)


def _scan_rows(labels: ScanLabels) -> dict[str, pd.DataFrame | None]:
    """A scan's labels as the frames `fetal_analytics.run_writing.write_scan` stores."""
    import pandas as pd

    events = pd.DataFrame(
        [(max(0.0, float(s.start_s)), float(s.end_s), str(s.label),
          float(np.clip(s.confidence, 0.0, 1.0)) if s.confidence is not None else None)
         for s in labels.segments],
        columns=["start_s", "end_s", "label", "confidence"]).astype(
            {"start_s": "float64", "end_s": "float64", "confidence": "float64"})
    times = np.asarray(labels.times_s, dtype=np.float64)
    probs = pd.concat([
        pd.DataFrame({"t_s": times, "stream": stream,
                      "probs": list(np.asarray(values, dtype=np.float32))})
        for stream, values in labels.probs.items()], ignore_index=True)
    freezes = None if labels.freezes is None else pd.DataFrame(
        {"t_s": [s.start_s for s in labels.freezes], "end_s": [s.end_s for s in labels.freezes],
         "frame": [s.start_frame for s in labels.freezes]},
        columns=["t_s", "end_s", "frame"])
    return {"events": events[events["end_s"] > events["start_s"]], "window_probs": probs,
            "freezes": freezes}


def _probe_duration(video: Path) -> float:
    try:
        duration = probe(video).duration_s
    except Exception:  # reported when the scan is labelled
        return 0.0
    return float(duration) if duration and math.isfinite(duration) else 0.0


class _Tracker:
    """Reports `LabelProgress` to the callback: seconds of video, per scan and overall."""

    def __init__(self, callback: Callable[[LabelProgress], None] | None, total_s: float) -> None:
        self.callback, self.total_s = callback, total_s
        self.before_s = 0.0  # seconds of the scans done
        self.scan_id, self.scan_total_s = "", 0.0

    def start(self, scan_id: str, total_s: float) -> None:
        self.scan_id, self.scan_total_s = scan_id, total_s
        self._report("labelling", 0.0)

    def advance(self, decoded_s: float) -> None:
        self._report("labelling", decoded_s)

    def done(self, status: str) -> None:
        self._report(status, self.scan_total_s)
        self.before_s += self.scan_total_s

    def _report(self, status: str, scan_done_s: float) -> None:
        if self.callback is not None:
            self.callback(LabelProgress(
                self.scan_id, status, scan_done_s, self.scan_total_s,
                self.before_s + min(scan_done_s, self.scan_total_s), self.total_s))


def _targets(store: Store, scans: Sequence[ScanVideo] | None,
             manifest: str | Path | None, *, replace: bool) -> list[ScanVideo]:
    """The scans to label, registered in the store, with their videos."""
    if manifest is not None:
        from fetal_analytics.ingest import ingest_manifest, read_manifest

        ingest_manifest(store, manifest, replace=replace)
        ids = list(read_manifest(manifest).scans["scan_id"])
        stored = stored_videos(store, ids)
        return [ScanVideo(i, stored.get(i)) for i in ids]
    ids = [s.scan_id for s in scans]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise LabellingError(f"scans given more than once: {', '.join(twice)}")
    stored = stored_videos(store, ids)
    missing = [i for i in ids if i not in stored]
    if missing:
        raise LabellingError(
            f"scans not in {store.path}: {', '.join(missing)}; register them first with "
            f"`fetal-analytics ingest manifest FILE --db {store.path}` (or label with --manifest)")
    for scan in scans:
        if stored[scan.scan_id] and stored[scan.scan_id] != Path(scan.video).resolve():
            log.warning("scan %s: labelling %s, but the store gives its video as %s",
                        scan.scan_id, scan.video, stored[scan.scan_id])
    return [ScanVideo(s.scan_id, Path(s.video)) for s in scans]


def _mark_failed(db: Path, run_id: int) -> None:
    """Mark the run failed as the labelling stops on an error, if the file is free soon."""
    try:
        store = open_for_write(db, wait_s=5.0)
    except UserError as exc:
        log.warning("could not mark run %d as failed: %s", run_id, exc)
        return
    try:
        finish_run(store, run_id, status="failed")
    finally:
        store.close()


def _resume_command(db: Path, name: str, manifest: str | Path | None,
                    targets: Sequence[ScanVideo], model: Path | None) -> str:
    """The `fetal-analytics label` command that continues (and so finishes) the run."""
    scans = (["--manifest", str(manifest)] if manifest is not None else
             [arg for t in targets if t.video is not None
              for arg in (str(t.video), "--scan-id", t.scan_id)])
    return shlex.join(["fetal-analytics", "label", *scans, "--db", str(db),
                       *([] if model is None else ["--model", str(model)]), "--run-name", name])
