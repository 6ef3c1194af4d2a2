"""Freeze-frame detection: where the operator froze the image, found by stillness alone.

The paper found freeze frames by OCR of every frame. Here one pass over the luma plane (no colour
conversion: nearly as fast as plain decoding) measures how much each block of the screen changes
from frame to frame; blocks that change in most frames are the live image area, while screen
furniture, the ticking clock and the cine bar change rarely and are ignored. A span where the
image area stays still (below a threshold set from the video's own live motion, robust to codec
noise) for at least `min_static_s` is a freeze. This needs no knowledge of the screen's layout.

Where a preset names the scanner's freeze indicator (`inference.presets.load_indicator_preset`),
the indicator confirms each still span: OCR (Tesseract, in a thread beside the decode) of its
region until one freeze is read, then template matching against that region, with OCR again
where the template fails; or the preset's own template image; or, for layouts without readable
text, the region's appearance differing from its live look. Without the tesseract program, OCR
confirmation falls back to stillness alone, with one warning.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from inference.decode import Frame, iter_frames
from inference.presets import CONFIRM_METHODS, IndicatorConfig

__all__ = [
    "FreezeConfig",
    "FreezeDetection",
    "FreezeSpan",
    "detect_freezes",
    "detect_freezes_in_frames",
]

log = logging.getLogger(__name__)

BLOCK = 8  # analysis block size in pixels of the decimated frame
OCR_AHEAD_RUN = 12  # static frames after which a run is read ahead (shorter ones seldom last)
OCR_REGION_HEIGHT = 180  # pixels: the indicator region is scaled to this height for OCR


@dataclass(frozen=True)
class FreezeConfig:
    """Parameters of freeze detection.

    Attributes
    ----------
    min_static_s : float
        Shortest freeze, in seconds.
    step : int
        Decimation of the luma plane for the change measure (4: 640x480 -> 160x120).
    live_fraction : float
        Blocks that change in more than this share of frames are the live image area.
    noise_level : float
        Mean absolute difference (grey levels) below which a block counts as unchanged.
    threshold : float or None
        Image-area change (mean absolute difference, grey levels) below which a frame is
        static; None: a quarter of the video's median change, at least `noise_level`.
    indicator : inference.presets.IndicatorConfig or None
        The scanner's freeze indicator, which confirms still spans; None (the default): every
        still span is a freeze.
    confirm : {'ocr', 'template', 'appearance', 'none'} or None
        How the indicator confirms (`inference.presets.CONFIRM_METHODS`); None: by what the
        indicator names (its text by OCR, else its template, else its appearance).
    """

    min_static_s: float = 0.5
    step: int = 4
    live_fraction: float = 0.5
    noise_level: float = 1.0
    threshold: float | None = None
    indicator: IndicatorConfig | None = None
    confirm: str | None = None

    def __post_init__(self) -> None:
        if self.confirm is not None and self.confirm not in CONFIRM_METHODS:
            raise ValueError(f"confirm must be one of {', '.join(CONFIRM_METHODS)}, got "
                             f"{self.confirm!r}")
        method = self.method
        if method != "none" and self.indicator is None:
            raise ValueError(f"confirm={method!r} needs an indicator preset")
        if method == "ocr" and not (self.indicator and self.indicator.pattern):
            raise ValueError("confirm='ocr' needs an indicator preset with a text pattern")
        if method == "template" and (self.indicator is None or self.indicator.template is None):
            raise ValueError("confirm='template' needs an indicator preset with a template image")

    @property
    def method(self) -> str:
        """How still spans are confirmed: one of `inference.presets.CONFIRM_METHODS`."""
        if self.indicator is None:
            return "none" if self.confirm in (None, "none") else self.confirm
        return self.confirm or self.indicator.default_confirm


@dataclass(frozen=True)
class FreezeSpan:
    """A frozen span: frames ``[start_frame, end_frame)``, times ``[start_s, end_s)``."""

    start_s: float
    end_s: float
    start_frame: int
    end_frame: int
    confirmed: bool


@dataclass(frozen=True)
class FreezeDetection:
    """The result of `detect_freezes`.

    Attributes
    ----------
    spans : tuple of FreezeSpan
        Confirmed freezes (all candidates when ``confirm='none'``).
    rejected : tuple of FreezeSpan
        Static spans that the indicator did not confirm.
    n_frames : int
    threshold : float
        The static threshold used (grey levels).
    live_blocks : int
        Blocks of the image area that were measured.
    """

    spans: tuple[FreezeSpan, ...]
    rejected: tuple[FreezeSpan, ...]
    n_frames: int
    threshold: float
    live_blocks: int


def _block_changes(previous: np.ndarray, current: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Mean absolute difference of each BLOCK x BLOCK block, (rows * cols,) float32."""
    import cv2

    diff = cv2.absdiff(current, previous).astype(np.float32)
    return cv2.resize(diff, (cols, rows), interpolation=cv2.INTER_AREA).ravel()


def detect_freezes_in_frames(frames: Iterable[Frame], *, config: FreezeConfig | None = None
                             ) -> FreezeDetection:
    """Find freezes in full-resolution greyscale frames, in one pass.

    Parameters
    ----------
    frames : iterable of Frame
        In time order, greyscale (H, W) at full resolution (the indicator is read from them).
    config : FreezeConfig, optional

    Returns
    -------
    FreezeDetection
    """
    config = _without_missing_ocr(config or FreezeConfig())
    with ThreadPoolExecutor(max_workers=1) as pool:
        reader = _IndicatorReader(config.indicator.pattern, pool) \
            if config.method == "ocr" and config.indicator else None
        return _detect(frames, config, reader)


def _without_missing_ocr(config: FreezeConfig) -> FreezeConfig:
    """`config`, or where it confirms by OCR and Tesseract is missing, its stillness-only
    (or template-confirmed, where the preset has a template) equivalent."""
    from inference.screen_text import tesseract_available, warn_tesseract_missing

    if config.method != "ocr" or tesseract_available():
        return config
    fallback = "template" if config.indicator and config.indicator.template else "none"
    warn_tesseract_missing()
    return replace(config, confirm=fallback)


def _detect(frames: Iterable[Frame], config: FreezeConfig,
            reader: _IndicatorReader | None) -> FreezeDetection:
    times: list[float] = []
    changes: list[np.ndarray] = []
    # Indicator regions kept for confirmation: of the first frames of each provisional static
    # run (most blocks unchanged), and of a sample of live frames (the appearance reference).
    static_regions: dict[int, np.ndarray] = {}
    live_regions: list[np.ndarray] = []
    previous = None
    run = 0
    box = config.indicator.box if config.method != "none" and config.indicator else None
    for frame in frames:
        if previous is None:
            small = frame.image[:: config.step, :: config.step]
            rows, cols = small.shape[0] // BLOCK, small.shape[1] // BLOCK
            if rows == 0 or cols == 0:
                raise ValueError(f"frames of {frame.image.shape} are too small to analyse")
            changes.append(np.full(rows * cols, np.inf, np.float32))
            width = frame.image.shape[1]
        # Decimated and cut to whole blocks, contiguous for OpenCV.
        image = np.ascontiguousarray(
            frame.image[: rows * BLOCK * config.step: config.step,
                        : cols * BLOCK * config.step: config.step])
        if previous is not None:
            change = _block_changes(previous, image, rows, cols)
            changes.append(change)
            if np.mean(change > config.noise_level) < 0.1:
                run += 1
                if box and (run in (2, 3, OCR_AHEAD_RUN) or run % 15 == 0):
                    region = _region(frame.image, box)
                    static_regions[frame.index] = region
                    if reader is not None and run == OCR_AHEAD_RUN:
                        reader.look_ahead(frame.index, region)
            else:
                run = 0
                if box and frame.index % 150 == 0 and len(live_regions) < 40:
                    live_regions.append(_region(frame.image, box))
        times.append(frame.t_s)
        previous = image
    n = len(times)
    if n < 2:
        return FreezeDetection((), (), n, float("nan"), 0)
    matrix = np.stack(changes[1:])  # (n - 1, blocks): change into frames 1..n-1
    live = (matrix > config.noise_level).mean(axis=0) > config.live_fraction
    if not live.any():
        log.warning("no block of the video changes in most frames: is it a still image?")
        live = np.ones(matrix.shape[1], bool)
    change = matrix[:, live].mean(axis=1)
    threshold = config.threshold
    if threshold is None:
        threshold = max(config.noise_level, 0.25 * float(np.median(change)))
    static = _static_frames(np.concatenate([[np.inf], change]), threshold)
    times_a = np.asarray(times)
    frame_s = float(np.median(np.diff(times_a)))
    confirm = _confirmer(config, static_regions, live_regions, reader, width)
    spans, rejected = [], []
    k = 1
    while k < n:
        if not static[k]:
            k += 1
            continue
        first = k
        while k < n and static[k]:
            k += 1
        start, end = first - 1, k  # frames [start, end) are identical
        end_s = float(times_a[end]) if end < n else float(times_a[-1] + frame_s)
        if end_s - times_a[start] < config.min_static_s:
            continue
        ok = confirm(start, end)
        (spans if ok else rejected).append(FreezeSpan(float(times_a[start]), end_s, start, end,
                                                      ok))
    return FreezeDetection(tuple(spans), tuple(rejected), n, threshold, int(live.sum()))


# A video encoder needs a few frames to settle on a frozen image (residual changes up to about
# twice the threshold), and a keyframe inside a freeze makes one such jump: tolerated.
SETTLE_FACTOR = 2.0
SETTLE_FRAMES = 4


def _static_frames(change: np.ndarray, threshold: float) -> np.ndarray:
    """``static[k]``: frame k repeats frame k - 1, from the change into each frame.

    Frames below `threshold` are static; a single frame below ``SETTLE_FACTOR * threshold``
    between static frames (a keyframe) is static too, and so are up to ``SETTLE_FRAMES`` such
    frames just before a static run (the encoder settling after the image froze).
    """
    static = change < threshold
    settling = change < SETTLE_FACTOR * threshold
    inner = settling[1:-1] & static[:-2] & static[2:]
    static[1:-1] |= inner
    starts = np.flatnonzero(static[1:] & ~static[:-1]) + 1
    for start in starts:
        k = start
        while k - 1 >= 1 and start - (k - 1) <= SETTLE_FRAMES and settling[k - 1] \
                and not static[k - 1]:
            k -= 1
        static[k:start] = True
    return static


def _region(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    height, width = image.shape[:2]
    x0, y0, x1, y1 = box
    return image[int(y0 * height): int(np.ceil(y1 * height)),
                 int(x0 * width): int(np.ceil(x1 * width))].copy()


class _IndicatorReader:
    """Reads the freeze indicator: OCR (beside the decode, in a thread: Tesseract is a separate
    process and uses the other core) until one region shows the pattern, then template
    matching against that region, which is far cheaper; OCR again where the template fails."""

    def __init__(self, pattern: str, pool: ThreadPoolExecutor) -> None:
        self.pattern = re.compile(pattern, re.IGNORECASE)
        self.pool = pool
        self.template: np.ndarray | None = None
        self.pending: dict[int, tuple[Future[str], np.ndarray]] = {}
        self.confirmed: set[int] = set()

    def look_ahead(self, index: int, region: np.ndarray) -> None:
        """Start reading the region of frame `index` (a likely freeze)."""
        self._adopt_finished()
        if self.template is not None and _same_indicator(region, self.template):
            self.confirmed.add(index)
        else:
            self.pending[index] = (self.pool.submit(_ocr, region), region)

    def shows_indicator(self, index: int, region: np.ndarray) -> bool:
        """Whether the region of frame `index` shows the indicator."""
        if index in self.confirmed:
            return True
        if self.template is not None and _same_indicator(region, self.template):
            return True
        future = self.pending.pop(index, None)
        text = future[0].result() if future else _ocr(region)
        found = bool(self.pattern.search(text))
        if found and self.template is None:
            self.template = region
        return found

    def _adopt_finished(self) -> None:
        if self.template is not None:
            return
        for future, region in self.pending.values():
            if future.done() and self.pattern.search(future.result()):
                self.template = region
                return


def _ink(region: np.ndarray) -> np.ndarray:
    import cv2

    _, binary = cv2.threshold(region, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    return binary > 0


def _same_indicator(region: np.ndarray, template: np.ndarray) -> bool:
    """Whether `region` shows the template's bright marks (the indicator) and little else."""
    import cv2

    if region.shape != template.shape:
        return False
    marks, seen = _ink(template), _ink(region)
    near = cv2.dilate(marks.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    covered = np.count_nonzero(seen & near) / max(np.count_nonzero(marks), 1)
    extra = np.count_nonzero(seen & ~near) / max(np.count_nonzero(seen), 1)
    return covered >= 0.8 and extra <= 0.2


# Normalised cross-correlation at or above which a preset's template is found in its region.
TEMPLATE_MATCH = 0.6


class _TemplateMatcher:
    """Looks for a preset's template image inside the indicator region, scaled to the video:
    by the video's width over the width of the screen the template was cut from."""

    def __init__(self, path: Path, template_width: int, frame_width: int) -> None:
        import cv2

        template = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if template is None:
            raise ValueError(f"cannot read the indicator template {path} (expected a PNG or "
                             f"JPEG picture)")
        factor = frame_width / template_width
        size = (max(1, round(template.shape[1] * factor)),
                max(1, round(template.shape[0] * factor)))
        self.path = path
        self.template = template if factor == 1 else cv2.resize(template, size,
                                                                interpolation=cv2.INTER_AREA)

    def shows_indicator(self, region: np.ndarray) -> bool:
        """Whether `region` (of a still frame) holds the template."""
        import cv2

        height, width = self.template.shape
        if height > region.shape[0] or width > region.shape[1]:
            raise ValueError(
                f"the indicator template {self.path} ({width}x{height} px at this video's "
                f"size) is larger than the preset's region ({region.shape[1]}x"
                f"{region.shape[0]} px): widen the preset's box")
        score = cv2.matchTemplate(region, self.template, cv2.TM_CCOEFF_NORMED)
        return float(score.max()) >= TEMPLATE_MATCH


def _confirmer(config: FreezeConfig, static_regions: dict[int, np.ndarray],
               live_regions: list[np.ndarray], reader: _IndicatorReader | None,
               frame_width: int) -> Callable[[int, int], bool]:
    """A test of a static span ``[start, end)`` against the freeze indicator."""
    method = config.method
    if method == "none":
        return lambda start, end: True
    indices = np.array(sorted(static_regions), dtype=np.int64)

    def regions_in(start: int, end: int) -> list[tuple[int, np.ndarray]]:
        inside = [int(i) for i in indices[(indices >= start) & (indices < end)]]
        # Regions already read ahead first, then the first two of the run.
        ahead = [i for i in inside if reader and (i in reader.pending or i in reader.confirmed)]
        return [(i, static_regions[i]) for i in dict.fromkeys([*ahead, *inside[:2]])]

    if reader is not None:
        return lambda start, end: any(reader.shows_indicator(i, r)
                                      for i, r in regions_in(start, end))
    indicator = config.indicator
    if method == "template" and indicator and indicator.template and indicator.template_width:
        matcher = _TemplateMatcher(indicator.template, indicator.template_width, frame_width)
        return lambda start, end: any(matcher.shows_indicator(r)
                                      for _, r in regions_in(start, end))
    if not live_regions:
        raise ValueError("no live frame to learn the indicator region's appearance from")
    reference = np.median(np.stack(live_regions), axis=0)

    def by_appearance(start: int, end: int) -> bool:
        return any(float(np.mean(np.abs(r.astype(float) - reference) > 40)) > 0.01
                   for _, r in regions_in(start, end))

    return by_appearance


def _ocr(region: np.ndarray) -> str:
    import cv2

    from inference.screen_text import tesseract_engine

    # Tesseract reads text of about 30 px best: scale the region to a fixed height whatever
    # the video's size.
    scale = max(2.0, OCR_REGION_HEIGHT / max(region.shape[0], 1))
    big = cv2.resize(region, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    _, binary = cv2.threshold(big, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    return tesseract_engine(binary, psm=6)


def detect_freezes(path: str | Path, *, config: FreezeConfig | None = None) -> FreezeDetection:
    """Find the freeze frames of a video file, decoding it once.

    Parameters
    ----------
    path : str or Path
    config : FreezeConfig, optional

    Returns
    -------
    FreezeDetection

    Raises
    ------
    DecodeError
        The video cannot be read.
    """
    config = config or FreezeConfig()
    result = detect_freezes_in_frames(iter_frames(path), config=config)
    log.info("%s: %d freezes confirmed, %d static spans rejected", path, len(result.spans),
             len(result.rejected))
    return result
