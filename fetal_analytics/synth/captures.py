"""Semi-real scan videos: real scanner screen captures brought to life, then frozen.

`capture_video` turns a folder of still screen captures (e.g. the GE Voluson E8 captures of
``../shared/data/sononet/example_images/``, 975x735 RGB PNG) into an H.264 MP4 that looks like a
frame grabber's recording of a scan: each capture in turn is shown

- **live** for ``live_s`` seconds: the image area moves with a smooth probe jitter (a few pixels
  of translation and about a degree of rotation) and fresh multiplicative speckle every frame, so
  no two frames are alike; the jitter fades out as the freeze approaches, so the image does not
  jump when it freezes;
- **frozen** for ``frozen_s`` seconds: the capture itself, pixel-identical from frame to frame
  before encoding. No freeze indicator is drawn (a screen the project has no preset for).

Throughout, a clock (``HH:MM:SS``) outside the image area, in the top band of the screen, ticks
once per second of video, so text outside the image area changes while the image is frozen. The
scanner's own header (probe, depth / gain / frame rate in Hz, date, time) and side panels are left
as captured. The ground truth comes back as `CaptureVideo.segments`: each capture's name (its file
stem, e.g. ``4CH``), its live span and its frozen span, in seconds from the start of the video.

Everything is a deterministic function of ``seed`` and the captures. The default geometry
(`VOLUSON_E8_IMAGE_BOX`, `VOLUSON_E8_FURNITURE`, `VOLUSON_E8_CLOCK`) fits 975x735 Voluson E8
screens; pass other boxes for other scanners.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "EXAMPLE_CODES",
    "EXAMPLE_HEADERS",
    "VOLUSON_E8_CLOCK",
    "VOLUSON_E8_FURNITURE",
    "VOLUSON_E8_IMAGE_BOX",
    "CaptureSegment",
    "CaptureVideo",
    "capture_video",
]

log = logging.getLogger(__name__)

#: The ultrasound image region of a 975x735 Voluson E8 capture that moves while live:
#: ``(top, bottom, left, right)`` pixels, bottom and right exclusive (below the header bars,
#: right of the grey scale bar).
VOLUSON_E8_IMAGE_BOX: tuple[int, int, int, int] = (75, 735, 45, 975)
#: Boxes inside `VOLUSON_E8_IMAGE_BOX` that are screen furniture and stay put while live: the
#: preset panel (right) and the green probe-orientation mark (top left).
VOLUSON_E8_FURNITURE: tuple[tuple[int, int, int, int], ...] = ((75, 195, 835, 975),
                                                               (85, 112, 190, 222))
#: Where the ticking clock is drawn: a black band above the header bars, left of the probe box.
VOLUSON_E8_CLOCK: tuple[int, int, int, int] = (6, 38, 160, 330)

#: What the 7 shared SonoNet example captures show (``../shared/data/sononet/README.md``): file
#: stem (the standard plane) -> its taxonomy code, the truth a labeller is scored against.
EXAMPLE_CODES: dict[str, str] = {"4CH": "HeD", "ABDOMINAL": "Ab", "BRAIN-CB": "Br",
                                 "BRAIN-TV": "Br", "FEMUR": "Fm", "RVOT": "HeD",
                                 "SPINE-SAGITTAL": "Sp"}
#: The header burned into each of those captures (the README's table "header text"): file stem
#: -> (frame rate in Hz, date, time) as the screen shows them.
EXAMPLE_HEADERS: dict[str, tuple[float, str, str]] = {
    "4CH": (117.0, "02.10.2015", "10:19:40 AM"),
    "ABDOMINAL": (50.0, "20.05.2015", "2:47:33 PM"),
    "BRAIN-CB": (31.0, "18.11.2015", "09:12:23"),
    "BRAIN-TV": (35.0, "25.01.2016", "4:45:04 PM"),
    "FEMUR": (49.0, "04.11.2015", "2:49:10 PM"),
    "RVOT": (92.0, "21.05.2015", "3:19:14 PM"),
    "SPINE-SAGITTAL": (36.0, "18.08.2015", "09:54:08"),
}

CRF = 23
PRESET = "ultrafast"
JITTER_PX = 6.0        # largest probe translation while live, pixels
JITTER_DEG = 1.5       # largest probe rotation while live, degrees
SPECKLE = 0.18         # standard deviation of the multiplicative speckle while live
_TEXTURES = 4          # speckle textures drawn per capture
_MIN_LIVE_S = 0.5


@dataclass(frozen=True)
class CaptureSegment:
    """One capture's time in a semi-real video.

    Attributes
    ----------
    name : str
        The capture's file stem (for the SonoNet examples, the true standard plane: ``4CH``).
    start_s : float
        When it appears live, seconds from the start of the video.
    freeze_s : float
        When it freezes (end of the live span), seconds.
    end_s : float
        When the next capture appears (end of the frozen span), seconds; exclusive.
    """

    name: str
    start_s: float
    freeze_s: float
    end_s: float

    @property
    def live(self) -> tuple[float, float]:
        """The live span ``(start_s, freeze_s)``, seconds."""
        return (self.start_s, self.freeze_s)

    @property
    def frozen(self) -> tuple[float, float]:
        """The frozen span ``(freeze_s, end_s)``, seconds."""
        return (self.freeze_s, self.end_s)


@dataclass(frozen=True)
class CaptureVideo:
    """A semi-real video written by `capture_video`.

    Attributes
    ----------
    path : Path
        The MP4 file (H.264, yuv420p).
    fps : float
        Frame rate, frames per second.
    n_frames : int
        Frames written; frame ``i`` shows time ``i / fps``.
    width, height : int
        Frame size in pixels (the captures' size rounded up to even numbers: black padding on
        the right and at the bottom).
    segments : tuple of CaptureSegment
        One per capture, in video order, covering ``[0, n_frames / fps)``.
    """

    path: Path
    fps: float
    n_frames: int
    width: int
    height: int
    segments: tuple[CaptureSegment, ...]

    @property
    def duration_s(self) -> float:
        """Length of the video in seconds."""
        return self.n_frames / self.fps

    @property
    def freezes(self) -> list[tuple[float, float]]:
        """The frozen spans ``(start_s, end_s)``, seconds, in order."""
        return [segment.frozen for segment in self.segments]

    def live_labels(self, events: pd.DataFrame) -> list[str | None]:
        """The label covering most of each segment's live span, in video order.

        Parameters
        ----------
        events : pandas.DataFrame
            ``start_s, end_s, label`` (seconds) of one labelling of this video.

        Returns
        -------
        list of str or None
            One per segment: the label whose events overlap its live span longest (None where
            no event does).
        """
        labels = []
        for start_s, end_s in (segment.live for segment in self.segments):
            overlap = (np.minimum(events["end_s"], end_s)
                       - np.maximum(events["start_s"], start_s)).clip(lower=0)
            covered = events.assign(overlap=overlap).groupby("label")["overlap"].sum()
            labels.append(None if covered.empty or covered.max() <= 0
                          else str(covered.idxmax()))
        return labels


def _read_captures(folder: Path, names: Sequence[str] | None) -> dict[str, np.ndarray]:
    """The captures as RGB uint8 arrays of one size, keyed by file stem, in video order."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of screen captures")
    files = {p.stem: p for p in sorted(folder.iterdir())
             if p.suffix.lower() in (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")}
    if names is None:
        names = list(files)
    missing = [n for n in names if n not in files]
    if missing:
        raise FileNotFoundError(f"{folder}: no capture named {', '.join(missing)} (found "
                                f"{', '.join(files) or 'no images'})")
    if not names:
        raise ValueError(f"{folder}: no screen captures (PNG, TIFF, JPEG or BMP files)")
    images: dict[str, np.ndarray] = {}
    for name in names:
        bgr = cv2.imread(str(files[name]), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"{files[name]}: not a readable image")
        images[name] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    shapes = {img.shape for img in images.values()}
    if len(shapes) != 1:
        raise ValueError(f"{folder}: the captures differ in size ({sorted(shapes)}); one video "
                         "needs one screen size")
    return images


def _check_box(box: tuple[int, int, int, int], shape: tuple[int, ...], what: str) -> None:
    top, bottom, left, right = box
    if not (0 <= top < bottom <= shape[0] and 0 <= left < right <= shape[1]):
        raise ValueError(f"{what} {box} (top, bottom, left, right) does not fit captures of "
                         f"{shape[1]}x{shape[0]} pixels")


class _Live:
    """Draws the live frames of one capture: jitter and speckle inside the image box."""

    def __init__(self, capture: np.ndarray, image_box: tuple[int, int, int, int],
                 furniture: Sequence[tuple[int, int, int, int]], rng: np.random.Generator):
        top, bottom, left, right = image_box
        self.capture = capture
        self.box = image_box
        self.region = np.ascontiguousarray(capture[top:bottom, left:right])
        self.furniture = [(f_top - top, f_bottom - top, f_left - left, f_right - left)
                          for f_top, f_bottom, f_left, f_right in furniture]
        self.rng = rng
        # Smooth jitter: a sum of two sinusoids per degree of freedom, random periods 0.7-3 s.
        self.periods = rng.uniform(0.7, 3.0, size=(3, 2))
        self.phases = rng.uniform(0, 2 * np.pi, size=(3, 2))
        # Multiplicative speckle fields (x128, grains of ~2 pixels), cut from a few textures
        # at a fresh random offset every frame.
        h, w = self.region.shape[:2]
        self.textures = []
        for _ in range(_TEXTURES):
            noise = rng.standard_normal((h + 1, w // 2 + 1)).astype(np.float32)
            noise = cv2.resize(noise, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
            field = np.clip(128 * (1.0 + SPECKLE * noise), 0, 255).astype(np.uint8)
            self.textures.append(cv2.merge([field] * self.region.shape[2]))

    def frame(self, t: float, envelope: float) -> np.ndarray:
        """The live frame at `t` seconds into the capture's live span; `envelope` in [0, 1]
        scales the jitter (1: full, 0: the capture in place)."""
        wave = np.sin(2 * np.pi * t / self.periods + self.phases).mean(axis=1) * envelope
        dx, dy = wave[:2] * JITTER_PX
        angle = wave[2] * JITTER_DEG
        h, w = self.region.shape[:2]
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        matrix[:, 2] += (dx, dy)
        moved = cv2.warpAffine(self.region, matrix, (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        texture = self.textures[self.rng.integers(len(self.textures))]
        y, x = self.rng.integers(h), self.rng.integers(w)
        moved = cv2.multiply(moved, texture[y:y + h, x:x + w], scale=1 / 128)
        for f_top, f_bottom, f_left, f_right in self.furniture:
            moved[f_top:f_bottom, f_left:f_right] = self.region[f_top:f_bottom, f_left:f_right]
        top, bottom, left, right = self.box
        out = self.capture.copy()
        out[top:bottom, left:right] = moved
        return out


def _draw_clock(frame: np.ndarray, box: tuple[int, int, int, int], seconds: int) -> None:
    """Draw ``HH:MM:SS`` (from 10:00:00) on black inside `box`, in place."""
    top, bottom, left, right = box
    frame[top:bottom, left:right] = 0
    clock = 10 * 3600 + seconds
    text = f"{clock // 3600 % 24:02d}:{clock // 60 % 60:02d}:{clock % 60:02d}"
    scale = (bottom - top) / 40
    cv2.putText(frame, text, (left + 4, bottom - max(3, (bottom - top) // 5)),
                cv2.FONT_HERSHEY_SIMPLEX, scale, (220, 220, 220), max(1, round(scale * 2)),
                cv2.LINE_AA)


def capture_video(captures: str | Path, out: str | Path, *,
                  names: Sequence[str] | None = None, live_s: float = 3.0,
                  frozen_s: float = 2.0, fps: float = 30.0, seed: int = 0, crf: int = CRF,
                  image_box: tuple[int, int, int, int] = VOLUSON_E8_IMAGE_BOX,
                  furniture: Sequence[tuple[int, int, int, int]] = VOLUSON_E8_FURNITURE,
                  clock_box: tuple[int, int, int, int] | None = VOLUSON_E8_CLOCK,
                  ) -> CaptureVideo:
    """Write an H.264 video of real screen captures, each live (jitter, speckle), then frozen.

    Parameters
    ----------
    captures : str or Path
        A folder of screen captures of one size (PNG, TIFF, JPEG or BMP; RGB or grey), e.g.
        ``../shared/data/sononet/example_images``. Read only.
    out : str or Path
        The MP4 file to write; parent folders are created. Written to ``<out>.part`` and
        renamed when complete.
    names : sequence of str, optional
        The captures to show, by file stem, in video order; default all, sorted by name.
    live_s, frozen_s : float
        Seconds each capture is shown live, then frozen. ``live_s >= 0.5``, ``frozen_s >= 0``.
    fps : float
        Video frame rate, frames per second (1-240). Segment boundaries fall on frames:
        each span lasts ``round(seconds * fps)`` frames.
    seed : int
        Determines the jitter and the speckle: the same captures and seed give the same frames.
    crf : int
        libx264 constant rate factor (0-51; 18-30 is the range frame grabbers use).
    image_box : (int, int, int, int)
        ``(top, bottom, left, right)`` pixels of the region that moves while live; default the
        Voluson E8 image area.
    furniture : sequence of (int, int, int, int)
        Boxes inside `image_box` that stay put while live (panels, marks).
    clock_box : (int, int, int, int) or None
        Where the ticking clock is drawn (outside `image_box`); None: no clock.

    Returns
    -------
    CaptureVideo
        The file, its size and frame count, and each capture's live and frozen spans.

    Raises
    ------
    FileNotFoundError
        `captures` is not a folder, or a name in `names` has no capture.
    ValueError
        No captures, captures of different sizes, an unreadable image, boxes that do not fit,
        or spans, frame rate or CRF out of range.
    """
    import av

    if not live_s >= _MIN_LIVE_S or not frozen_s >= 0:
        raise ValueError(f"live_s must be >= {_MIN_LIVE_S} and frozen_s >= 0 seconds, got "
                         f"{live_s} and {frozen_s}")
    if not 1 <= fps <= 240:
        raise ValueError(f"fps must be between 1 and 240, got {fps}")
    if not 0 <= crf <= 51:
        raise ValueError(f"crf must be between 0 and 51, got {crf}")
    images = _read_captures(Path(captures), names)
    shape = next(iter(images.values())).shape
    _check_box(image_box, shape, "image_box")
    for box in furniture:
        _check_box(box, shape, "furniture box")
    if clock_box is not None:
        _check_box(clock_box, shape, "clock_box")
    height, width = shape[0] + shape[0] % 2, shape[1] + shape[1] % 2
    live_n, frozen_n = round(live_s * fps), round(frozen_s * fps)
    rng = np.random.default_rng(seed)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".part")
    rate = Fraction(fps).limit_denominator(1001)
    segments: list[CaptureSegment] = []
    index = 0
    log.info("writing %s: %d captures, %g s live + %g s frozen each, %dx%d at %g fps", out,
             len(images), live_s, frozen_s, width, height, fps)
    try:
        with av.open(str(partial), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=rate, options={
                "preset": PRESET, "crf": str(crf),
                "threads": str(max(1, min(4, os.cpu_count() or 1)))})
            stream.width, stream.height = width, height
            stream.pix_fmt = "yuv420p"
            canvas = np.zeros((height, width, 3), dtype=np.uint8)
            for name, capture in images.items():
                live = _Live(capture, image_box, furniture, rng)
                first = index
                for k in range(live_n + frozen_n):
                    if k < live_n:
                        # Full jitter until the last 0.5 s of the live span, then fade to rest.
                        envelope = min(1.0, (live_n - k) / (_MIN_LIVE_S * fps))
                        screen = live.frame(k / fps, envelope)
                    else:
                        screen = capture
                    canvas[:shape[0], :shape[1]] = screen
                    if clock_box is not None:
                        _draw_clock(canvas, clock_box, int(index / fps))
                    frame = av.VideoFrame.from_ndarray(
                        cv2.cvtColor(canvas, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
                    frame.pts = index
                    frame.time_base = 1 / rate
                    container.mux(stream.encode(frame))
                    index += 1
                segments.append(CaptureSegment(name, first / fps, (first + live_n) / fps,
                                               index / fps))
            container.mux(stream.encode(None))
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return CaptureVideo(out, float(fps), index, width, height, tuple(segments))
