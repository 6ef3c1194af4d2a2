"""Clips as the paper sampled them, defined in time so any frame rate samples alike.

The paper's streams took 12 frames at strides 2, 4 and 8 of its 30 fps videos (FR/2, FR/4,
FR/8). Here a stream is its spacing in seconds (1/15, 2/15, 4/15 s: `inference.streams.STREAMS`),
and each sampled time takes the decoded frame nearest to it by timestamp, so a 25 or 60 fps
recording gives clips of the same duration and motion as a 30 fps one.

Labelled clips are freeze-centred 5 s spans (2/3 before the freeze, 1/3 after); a labelled span
longer than one 12-frame sub-clip yields up to ten unique sub-clips spread evenly over it. For
unlabelled scans, dense windows are centred on a regular grid of times (the hop).

`sample_clips` serves many clip requests from one sequential decode through a `FrameRing`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from inference.decode import Frame, FrameRing
from inference.streams import STREAMS

__all__ = [
    "FRAMES_PER_CLIP",
    "ClipRequest",
    "SampledClip",
    "clip_span_s",
    "freeze_clip_bounds",
    "sample_clips",
    "subclip_starts",
    "window_centres",
    "window_times",
]

FRAMES_PER_CLIP = 12


def _spacing(stream: str) -> float:
    try:
        return STREAMS[stream]
    except KeyError:
        raise ValueError(f"unknown stream {stream!r}; valid streams: "
                         f"{', '.join(STREAMS)}") from None


def clip_span_s(stream: str, frames: int = FRAMES_PER_CLIP) -> float:
    """Time from the first to the last sampled frame of a clip, in seconds."""
    return (frames - 1) * _spacing(stream)


def freeze_clip_bounds(freeze_s: float, *, clip_s: float = 5.0,
                       before_fraction: float = 2 / 3) -> tuple[float, float]:
    """The paper's labelling clip around a freeze at `freeze_s`: (start_s, end_s)."""
    return freeze_s - before_fraction * clip_s, freeze_s + (1 - before_fraction) * clip_s


def subclip_starts(start_s: float, end_s: float, stream: str, *, max_subclips: int = 10,
                   frames: int = FRAMES_PER_CLIP) -> np.ndarray:
    """Start times of up to `max_subclips` sub-clips spread evenly over ``[start_s, end_s]``.

    A span shorter than one clip gives one sub-clip centred on it. Callers drop sub-clips that
    come out identical after nearest-frame sampling (see `SampledClip.frame_indices`).
    """
    span = clip_span_s(stream, frames)
    room = end_s - start_s - span
    if room <= 0:
        return np.array([(start_s + end_s - span) / 2])
    return np.linspace(start_s, start_s + room, max_subclips)


def window_times(centre_s: float | np.ndarray, stream: str,
                 frames: int = FRAMES_PER_CLIP) -> np.ndarray:
    """Sampled times of clips centred on `centre_s`: shape (frames,) or (n, frames)."""
    offsets = (np.arange(frames) - (frames - 1) / 2) * _spacing(stream)
    return np.add.outer(np.asarray(centre_s, dtype=float), offsets)


def window_centres(duration_s: float, hop_s: float, *, streams: Sequence[str] = tuple(STREAMS),
                   frames: int = FRAMES_PER_CLIP) -> np.ndarray:
    """Centres of dense windows every `hop_s` over a scan, where every stream's clip fits."""
    if hop_s <= 0:
        raise ValueError(f"hop must be positive, got {hop_s}")
    half = max(clip_span_s(s, frames) for s in streams) / 2
    if duration_s < 2 * half:
        return np.array([duration_s / 2])
    return np.arange(half, duration_s - half + 1e-9, hop_s)


@dataclass(frozen=True)
class ClipRequest:
    """A clip to cut: the times to sample (seconds, ascending) and a key of the caller's."""

    key: object
    times_s: np.ndarray


@dataclass(frozen=True)
class SampledClip:
    """A sampled clip.

    Attributes
    ----------
    key : object
        The request's key.
    images : ndarray
        (frames, H, W) or (frames, H, W, 3) uint8.
    frame_indices : ndarray
        (frames,) int: the decoded frames used (equal sets mean identical clips).
    times_s : ndarray
        (frames,) the frames' timestamps.
    """

    key: object
    images: np.ndarray
    frame_indices: np.ndarray
    times_s: np.ndarray


def sample_clips(frames: Iterable[Frame], requests: Iterable[ClipRequest], *,
                 fps_hint: float = 30.0, history_s: float | None = None
                 ) -> Iterator[SampledClip]:
    """Serve clip requests from one pass over decoded frames, nearest frame by timestamp.

    Parameters
    ----------
    frames : iterable of Frame
        In time order, typically `iter_frames(path, size=...)`.
    requests : iterable of ClipRequest
        Served in order of their last time; times before the first frame take the first frame,
        times after the last frame take the last.
    fps_hint : float
        Sizes the ring of recent frames (with `history_s`); too small a hint only costs memory.
    history_s : float, optional
        The longest span of a request (default: the longest of any request).

    Yields
    ------
    SampledClip
        As soon as the frames it needs have been decoded, in order of the requests' last times.
    """
    pending = sorted(requests, key=lambda r: float(r.times_s[-1]))
    if not pending:
        return
    longest = history_s or max(float(r.times_s[-1] - r.times_s[0]) for r in pending)
    capacity = int(np.ceil((longest + 1.0) * fps_hint * 1.5)) + 4
    ring: FrameRing | None = None
    next_request = 0
    previous_t = -np.inf
    for frame in frames:
        if ring is None:
            ring = FrameRing(capacity, frame.image.shape, frame.image.dtype)
        if frame.t_s < previous_t:
            raise ValueError(f"frame {frame.index} at {frame.t_s:.3f} s comes after a frame at "
                             f"{previous_t:.3f} s: frames must be in time order")
        # A request is complete once a frame at or after its last time has arrived: the nearest
        # frame to that time is then known.
        while next_request < len(pending) and pending[next_request].times_s[-1] <= frame.t_s:
            if ring.count:
                yield _cut(ring, pending[next_request], frame)
            else:
                yield _cut_single(frame, pending[next_request])
            next_request += 1
        ring.push(frame)
        previous_t = frame.t_s
    if ring is None:
        return
    for request in pending[next_request:]:
        yield _cut(ring, request, None)


def _cut(ring: FrameRing, request: ClipRequest, incoming: Frame | None) -> SampledClip:
    times = request.times_s
    slots = ring.nearest(times)
    images = ring.images[slots].copy()
    indices, stamps = ring.indices[slots].copy(), ring.times[slots].copy()
    if incoming is not None:
        # The frame that completed the request is not in the ring yet: use it where nearer.
        use_new = np.abs(incoming.t_s - times) < np.abs(stamps - times)
        images[use_new] = incoming.image
        indices[use_new] = incoming.index
        stamps[use_new] = incoming.t_s
    return SampledClip(request.key, images, indices, stamps)


def _cut_single(frame: Frame, request: ClipRequest) -> SampledClip:
    n = len(request.times_s)
    return SampledClip(request.key, np.repeat(frame.image[None], n, axis=0),
                       np.full(n, frame.index), np.full(n, frame.t_s))
