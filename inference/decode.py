"""One-pass video decoding: frames with exact timestamps, resized and converted in swscale.

Each video is decoded once, sequentially, and never held in memory whole: `iter_frames` yields
frames one by one and `FrameRing` keeps just the recent ones for the samplers that need a window
of the past (clips, freeze detection). Timestamps come from each frame's pts, so variable frame
rates are handled, and the header's frame count is never trusted.

Containers: anything FFmpeg reads (MP4, AVI, MOV, ...) through PyAV; DICOM multi-frame cine
loops through pydicom (optional dependency), with the frame time from the DICOM header.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fetal_analytics.errors import UserError

__all__ = [
    "STILL_SUFFIXES",
    "DecodeError",
    "Frame",
    "FrameRing",
    "VideoInfo",
    "frame_at",
    "iter_frames",
    "load_still",
    "probe",
    "sample_frames",
]

STILL_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})

log = logging.getLogger(__name__)

# Pixel formats whose first plane is 8-bit luma: greyscale without conversion.
_LUMA_FIRST = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p",
                         "nv12", "gray"})

# A stream that ends this much before its header's duration was cut short.
TRUNCATION_TOLERANCE_S = 1.0


class DecodeError(UserError, RuntimeError):
    """A video could not be (fully) decoded.

    Attributes
    ----------
    path : Path
    last_good_s : float or None
        Timestamp of the last frame decoded before the failure (None: none was).
    n_frames : int
        Frames decoded (and yielded) before the failure; they remain valid.
    """

    def __init__(self, path: Path, reason: str, *, last_good_s: float | None = None,
                 n_frames: int = 0) -> None:
        self.path, self.last_good_s, self.n_frames = path, last_good_s, n_frames
        where = ("before any frame" if last_good_s is None
                 else f"after {n_frames} frames (last good timestamp {last_good_s:.3f} s)")
        super().__init__(f"{path}: {reason}; decoding stopped {where}")


@dataclass(frozen=True)
class VideoInfo:
    """What a video's header says (the frame count and duration may be wrong).

    Attributes
    ----------
    path : Path
    width, height : int
        Frame size in pixels.
    fps : float
        Nominal frame rate (frames per second).
    duration_s : float or None
        Header duration in seconds.
    n_frames_header : int or None
        Header frame count (not trusted: decode to count).
    codec : str
    """

    path: Path
    width: int
    height: int
    fps: float
    duration_s: float | None
    n_frames_header: int | None
    codec: str


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    Attributes
    ----------
    index : int
        Position in decoding order, from 0.
    t_s : float
        Presentation time in seconds from the start of the video.
    image : ndarray
        (H, W) uint8 greyscale, or (H, W, 3) uint8 RGB.
    """

    index: int
    t_s: float
    image: np.ndarray


def _is_dicom(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(128)
        return handle.read(4) == b"DICM"


def _open(path: Path):
    import av

    if not path.is_file():
        raise DecodeError(path, "no such file")
    if path.stat().st_size == 0:
        raise DecodeError(path, "the file is empty (0 bytes)")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise DecodeError(path, f"not a readable video (truncated or corrupt?): {exc}") from exc
    if not container.streams.video:
        container.close()
        raise DecodeError(path, "the file has no video stream")
    return container


def probe(path: str | Path) -> VideoInfo:
    """Read a video's header without decoding it.

    Raises
    ------
    DecodeError
        The file is missing, empty, not a video, or truncated so far it cannot be opened.
    """
    path = Path(path)
    if path.is_file() and _is_dicom(path):
        return _dicom_info(path)
    container = _open(path)
    with container:
        stream = container.streams.video[0]
        duration = (float(stream.duration * stream.time_base) if stream.duration
                    else (container.duration / 1e6 if container.duration else None))
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        return VideoInfo(path, stream.codec_context.width, stream.codec_context.height,
                         float(rate) if rate else float("nan"), duration,
                         stream.frames or None, stream.codec_context.name)


def iter_frames(path: str | Path, *, size: tuple[int, int] | None = None,
                colour: bool = False, step: int = 1) -> Iterator[Frame]:
    """Decode a video once, in order, yielding every frame with its timestamp.

    Parameters
    ----------
    path : str or Path
        A container FFmpeg reads, or a DICOM multi-frame file.
    size : (width, height), optional
        Resize in swscale while converting (much cheaper than resizing afterwards).
    colour : bool
        RGB (H, W, 3) instead of greyscale (H, W).
    step : int
        Keep every `step`-th pixel of each row and column, without filtering. Greyscale frames
        without `size` come straight from the decoder's luma plane, so this is nearly free (about
        4x faster than any conversion): the fast path for change detection.

    Yields
    ------
    Frame

    Raises
    ------
    DecodeError
        After yielding every frame that could be decoded, when the data is corrupt or ends
        more than a second before the duration its header states (a truncated file).
    """
    path = Path(path)
    if path.is_file() and _is_dicom(path):
        yield from _iter_dicom(path, size=size, colour=colour)
        return
    import av

    if step < 1 or (step > 1 and (size or colour)):
        raise ValueError("step must be >= 1, and only decimates greyscale frames without size")
    container = _open(path)
    fmt = "rgb24" if colour else "gray"
    width, height = size if size else (None, None)
    luma = not colour and size is None
    index, last_t = 0, None
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        base = float(stream.time_base)
        start = stream.start_time or 0
        header_s = stream.duration * base if stream.duration else None
        try:
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                t_s = (frame.pts - start) * base
                if luma and frame.format.name in _LUMA_FIRST:
                    plane = frame.planes[0]
                    image = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
                    # A view keeps the decoded frame's buffer alive: no copy unless decimated.
                    image = image[::step, : plane.width : step]
                    if step > 1:
                        image = image.copy()
                else:
                    image = frame.to_ndarray(width=width, height=height, format=fmt)[::step, ::step]
                yield Frame(index, t_s, image)
                index, last_t = index + 1, t_s
        except av.error.FFmpegError as exc:
            raise DecodeError(path, f"corrupt data: {exc}", last_good_s=last_t,
                              n_frames=index) from exc
        if index == 0:
            raise DecodeError(path, "no frame could be decoded")
        frame_s = 1.0 / float(stream.average_rate) if stream.average_rate else 0.0
        if header_s is not None and last_t + frame_s < header_s - TRUNCATION_TOLERANCE_S:
            raise DecodeError(path, f"the file is truncated: its header says {header_s:.3f} s",
                              last_good_s=last_t, n_frames=index)


def frame_at(path: str | Path, t_s: float, *, colour: bool = True) -> Frame:
    """The frame shown at time `t_s`: the last frame whose timestamp is <= `t_s`.

    Seeks to the keyframe before `t_s`, then decodes forward (a plain seek lands on the
    keyframe), so reading one frame of a long video costs at most one group of pictures.

    Parameters
    ----------
    path : str or Path
        A container FFmpeg reads, or a DICOM multi-frame file (decoded from its start).
    t_s : float
        Seconds from the start of the video; before the first frame gives the first frame,
        past the end the last one.
    colour : bool
        RGB (H, W, 3) instead of greyscale (H, W).

    Raises
    ------
    DecodeError
        The video cannot be read, or no frame can be decoded.
    """
    path = Path(path)
    if path.is_file() and _is_dicom(path):
        shown = None
        for frame in _iter_dicom(path, size=None, colour=colour):
            if shown is not None and frame.t_s > t_s:
                break
            shown = frame
        return shown
    import av

    fmt = "rgb24" if colour else "gray"
    container = _open(path)
    with container:
        stream = container.streams.video[0]
        base = float(stream.time_base)
        start = stream.start_time or 0
        target = max(int(t_s / base) + start, start)
        try:
            container.seek(target, stream=stream, backward=True, any_frame=False)
            shown = None
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                if shown is not None and frame.pts > target:
                    break
                shown = frame
        except av.error.FFmpegError as exc:
            raise DecodeError(path, f"corrupt data: {exc}") from exc
        if shown is None:
            raise DecodeError(path, "no frame could be decoded")
        index = round((shown.pts - start) * base * float(stream.average_rate or 0))
        return Frame(index, (shown.pts - start) * base, shown.to_ndarray(format=fmt))


class FrameRing:
    """The most recent frames of a decode, for samplers that look back in time.

    A fixed-size ring of images and timestamps: pushing is O(1) and memory is bounded whatever
    the length of the video.

    Parameters
    ----------
    capacity : int
        Frames kept (e.g. the frames in the longest window a sampler needs, plus a margin).
    shape : tuple of int
        Shape of each image.
    dtype : numpy dtype
    """

    def __init__(self, capacity: int, shape: tuple[int, ...], dtype: np.dtype = np.uint8) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.images = np.zeros((capacity, *shape), dtype)
        self.times = np.full(capacity, np.nan)
        self.indices = np.full(capacity, -1, np.int64)
        self.capacity = capacity
        self.count = 0

    def push(self, frame: Frame) -> None:
        """Keep `frame`, forgetting the oldest frame if the ring is full."""
        slot = self.count % self.capacity
        self.images[slot] = frame.image
        self.times[slot] = frame.t_s
        self.indices[slot] = frame.index
        self.count += 1

    @property
    def newest_s(self) -> float:
        """Timestamp of the newest frame (NaN when empty)."""
        return float(self.times[(self.count - 1) % self.capacity]) if self.count else float("nan")

    def nearest(self, times_s: np.ndarray) -> np.ndarray:
        """Slots of the frames nearest in time to each of `times_s` (among those kept).

        While no frame has been forgotten, times before the first frame take the first frame
        (clips at the start of a video).

        Raises
        ------
        ValueError
            A requested time lies before the oldest frame kept, which has forgotten earlier
            frames (the ring is too small).
        """
        times_s = np.asarray(times_s, dtype=float)
        n = min(self.count, self.capacity)
        if n == 0:
            raise ValueError("the ring is empty")
        order = (np.arange(self.count - n, self.count)) % self.capacity
        kept = self.times[order]
        if self.count > self.capacity and times_s.min() < kept[0] - 0.5 / 1000:
            raise ValueError(f"time {times_s.min():.3f} s is older than the oldest frame kept "
                             f"({kept[0]:.3f} s): enlarge the ring")
        right = np.clip(np.searchsorted(kept, times_s), 1, n - 1) if n > 1 else np.zeros(
            len(times_s), int)
        if n > 1:
            left = right - 1
            right = np.where(np.abs(kept[left] - times_s) <= np.abs(kept[right] - times_s),
                             left, right)
        return order[right]

    def gather(self, times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The images nearest to `times_s` and their frame indices: ((n, *shape), (n,))."""
        slots = self.nearest(times_s)
        return self.images[slots], self.indices[slots]


def _dicom_info(path: Path) -> VideoInfo:
    dataset = _read_dicom(path, header_only=True)
    frames = int(getattr(dataset, "NumberOfFrames", 1) or 1)
    fps = _dicom_fps(dataset, path)
    return VideoInfo(path, int(dataset.Columns), int(dataset.Rows), fps, frames / fps, frames,
                     "dicom")


def _read_dicom(path: Path, *, header_only: bool = False):
    try:
        import pydicom
    except ImportError as exc:  # an optional dependency: say how to get it
        raise DecodeError(path, "reading DICOM needs pydicom: pip install pydicom") from exc
    try:
        return pydicom.dcmread(path, stop_before_pixels=header_only)
    except Exception as exc:
        raise DecodeError(path, f"not a readable DICOM file: {exc}") from exc


def _dicom_fps(dataset, path: Path) -> float:
    if getattr(dataset, "FrameTime", None):  # milliseconds per frame
        return 1000.0 / float(dataset.FrameTime)
    if getattr(dataset, "CineRate", None):
        return float(dataset.CineRate)
    if getattr(dataset, "RecommendedDisplayFrameRate", None):
        return float(dataset.RecommendedDisplayFrameRate)
    raise DecodeError(path, "the DICOM header gives no frame rate (FrameTime or CineRate)")


def _iter_dicom(path: Path, *, size: tuple[int, int] | None, colour: bool) -> Iterator[Frame]:
    import cv2

    dataset = _read_dicom(path)
    fps = _dicom_fps(dataset, path)
    pixels = dataset.pixel_array  # (frames, rows, cols[, 3])
    if int(getattr(dataset, "NumberOfFrames", 1) or 1) == 1:
        pixels = pixels[None]
    photometric = str(getattr(dataset, "PhotometricInterpretation", "MONOCHROME2"))
    for index, image in enumerate(pixels):
        if photometric.startswith("YBR"):
            from pydicom.pixels import convert_color_space

            image = convert_color_space(image, photometric, "RGB")
        image = np.asarray(image)
        if image.dtype != np.uint8:
            image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
        if image.ndim == 2 and colour:
            image = np.repeat(image[..., None], 3, axis=2)
        elif image.ndim == 3 and not colour:
            image = image.mean(axis=2).astype(np.uint8)
        if size:
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        yield Frame(index, index / fps, image)


def load_still(path: str | Path) -> np.ndarray:
    """A still image (PNG, JPEG, TIFF, BMP) as (H, W, 3) uint8 RGB.

    Raises
    ------
    DecodeError
        The file is missing or not an image.
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise DecodeError(path, "no such file")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DecodeError(path, "not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def sample_frames(path: str | Path, *, seconds: float = 10.0, every: int = 2,
                  colour: bool = False) -> list[np.ndarray]:
    """Frames of a video's first `seconds`, every `every`-th one (for image-area detection);
    a still image gives itself."""
    path = Path(path)
    if path.suffix.lower() in STILL_SUFFIXES:
        return [load_still(path)]
    frames = []
    for frame in iter_frames(path, colour=colour):
        if frame.t_s > seconds:
            break
        if frame.index % every == 0:
            frames.append(frame.image)
    return frames
