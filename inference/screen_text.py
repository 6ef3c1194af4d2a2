"""Read the header fields of a scanner screen: frame rate, date and time.

Scanners print their settings around the image: on a GE Voluson E8, a header above the image
reads ``7.5cm / 1.4 / 117Hz`` (depth / gain / frame rate), ``02.10.2015`` and ``10:19:40 AM``.
The frame rate tells how the recording relates to the scanner's own frames, and the clock dates
a frame.

How (`read_screen_text`):

1. The text band is the part of the screen above the ultrasound image
   (`inference.roi.detect_image_mask`); the whole frame when no image is found.
2. Text lines in it are runs of rows with enough text-like pixels: bright (grey level >= 128)
   and sharp (their 3x3 neighbourhood spans >= 64 grey levels).
3. Each line strip is enlarged so that its text is about 36 pixels high (at least 2x, at most 4x),
   binarised by Otsu's threshold to black text on white, and the strips are stacked into one
   image, read by one Tesseract call (``--psm 6``, a uniform block of text; pytesseract spawns a
   process per call, ~75 ms, and the reading of a Voluson header takes ~120 ms in all).
4. The fields are parsed with regular expressions that accept common OCR confusions inside
   numbers (O/o/D/Q for 0, l/I/i/|/! for 1, S/s for 5, B for 8) and check ranges (a month is
   1-12, a minute 0-59, a frame rate 1-1000 Hz).
5. When the header lacks a field, text lines beside the image (side panels) are read the same
   way, one more call.

Privacy: burned-in screen text can identify patients. Only the parsed fields leave this module;
the raw OCR text is neither returned nor logged.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import cv2
import numpy as np

__all__ = [
    "INSTALL_TESSERACT",
    "OcrEngine",
    "ScreenText",
    "parse_screen_text",
    "read_screen_text",
    "read_screen_text_from_frames",
    "tesseract_available",
    "tesseract_engine",
    "warn_tesseract_missing",
]

log = logging.getLogger(__name__)

#: An OCR engine: ``engine(image, psm) -> text``, with `image` a (H, W) uint8 array of black
#: text on white and `psm` a Tesseract page segmentation mode.
OcrEngine = Callable[[np.ndarray, int], str]

# Text-like pixels: bright and sharp.
_TEXT_LEVEL = 128
_TEXT_CONTRAST = 64
# A text line: at least this share of the band's width in text-like pixels per row, at least
# this many rows, lines closer than _LINE_GAP rows merged, _LINE_PAD rows kept around each.
_LINE_FILL = 0.003
_MIN_LINE_ROWS = 5
# A run of text-like rows taller than this share of the frame's height is image, not a line.
_MAX_LINE_SHARE = 0.05
_LINE_GAP = 1
_LINE_PAD = 3
# Strips are enlarged so that their text is about this high, by a factor in [_MIN_ZOOM, _MAX_ZOOM].
_TARGET_TEXT_HEIGHT = 36
_MIN_ZOOM, _MAX_ZOOM = 2.0, 4.0
_PSM_BLOCK = 6

_DIGIT_LIKE = "0-9OoQDIil|!SsB"
_TO_DIGITS = str.maketrans("OoQDIil|!SsB", "000011111558")
_D = f"[{_DIGIT_LIKE}]"
_FRAME_RATE = re.compile(rf"(?<![\w.])({_D}{{1,4}}(?:[.,]{_D})?)\s?[Hh][Zz2]")
_DATE_DMY = re.compile(
    rf"(?<![\w.])({_D}{{1,2}})\s?([./-])\s?({_D}{{1,2}})\s?\2\s?({_D}{{4}}|{_D}{{2}})(?![0-9])"
)
_DATE_YMD = re.compile(rf"(?<![\w.])({_D}{{4}})([./-])({_D}{{1,2}})\2({_D}{{1,2}})(?![0-9])")
_TIME = re.compile(
    rf"(?<![\w.:])({_D}{{1,2}})\s?[:.]\s?({_D}{{2}})(?:\s?:\s?({_D}{{2}}))?"
    r"(?:\s?([AaPp])\.?\s?[Mm]\.?)?(?![\w:])"
)


@dataclass(frozen=True)
class ScreenText:
    """Fields read from a scanner screen; None where a field was not found.

    Attributes
    ----------
    frame_rate_hz : float or None
        The scanner's frame rate in Hz (``117Hz`` -> 117.0).
    date : str or None
        The date as printed, with OCR confusions mended, e.g. ``"02.10.2015"`` or
        ``"2015-10-02"``. Day-first or month-first is the scanner's setting, so it is not
        converted.
    time : str or None
        The time as printed, e.g. ``"10:19:40 AM"`` or ``"09:12:23"`` (seconds when shown;
        ``AM``/``PM`` upper case after one space).
    """

    frame_rate_hz: float | None = None
    date: str | None = None
    time: str | None = None

    def to_dict(self) -> dict[str, float | str | None]:
        """``{"frame_rate_hz": ..., "date": ..., "time": ...}``."""
        return asdict(self)

    @property
    def complete(self) -> bool:
        """Whether every field was found."""
        return None not in (self.frame_rate_hz, self.date, self.time)


def read_screen_text(
    frame: np.ndarray,
    *,
    engine: OcrEngine | None = None,
    image_mask: np.ndarray | None = None,
) -> ScreenText:
    """Read the frame rate, date and time printed on a scanner screen.

    Parameters
    ----------
    frame : (H, W) or (H, W, 3) uint8 ndarray
        A screen frame (RGB or BGR; the grey level is the mean of the channels).
    engine : OcrEngine, optional
        ``engine(image, psm) -> text``; default `tesseract_engine`.
    image_mask : (H, W) bool ndarray, optional
        The ultrasound image's pixels, from `inference.roi.detect_image_mask`; found from
        `frame` when not given. The screen layout rarely changes within a video, so one mask
        can serve every frame read from it.

    Returns
    -------
    ScreenText
        The parsed fields (None for a field not found). The raw text is not kept.

    Raises
    ------
    ValueError
        If `frame` or `image_mask` has the wrong shape or type.
    RuntimeError
        If the default engine is used and Tesseract is not installed.
    """
    from inference.roi import detect_image_mask, grey_level

    grey = grey_level(frame)
    engine = engine or tesseract_engine
    if image_mask is None:
        try:
            image_mask = detect_image_mask(frame)
        except ValueError:
            log.debug("screen text: no image area found; reading the whole frame")
            image_mask = np.zeros(grey.shape, bool)
    image_mask = np.asarray(image_mask, bool)
    if image_mask.shape != grey.shape:
        raise ValueError(
            f"`image_mask` must have the frame's shape {grey.shape}, got {image_mask.shape}"
        )
    result = ScreenText()
    max_rows = max(_MIN_LINE_ROWS, round(_MAX_LINE_SHARE * grey.shape[0]))
    for name, region in _regions(grey, image_mask):
        strips = _line_strips(region, max_rows)
        if not strips:
            continue
        result = _merge(result, parse_screen_text(engine(_stack(strips), _PSM_BLOCK)))
        log.debug(
            "screen text: %s, %d lines; found %s",
            name,
            len(strips),
            [k for k, v in result.to_dict().items() if v is not None],
        )
        if result.complete:
            break
    return result


#: At most this many frames of a video are read (evenly spread) until every field is found.
VIDEO_FRAMES_READ = 3


def read_screen_text_from_frames(
    frames: Sequence[np.ndarray], *, engine: OcrEngine | None = None
) -> ScreenText:
    """Read the frame rate, date and time from the first frames of a video.

    The image's pixels are those that keep changing (`inference.roi.detect_image_mask_from_frames`),
    which leaves static header panels out of it however compression blurred them; the first
    frame is read, then up to `VIDEO_FRAMES_READ` frames in all, evenly spread, until every
    field is found (a field first found in an earlier frame is kept).

    Parameters
    ----------
    frames : sequence of (H, W) or (H, W, 3) uint8 ndarray
        Frames of one video in time order, e.g. its first seconds
        (`inference.decode.sample_frames`); a single frame is read as a still.
    engine : OcrEngine, optional
        As for `read_screen_text`.

    Returns
    -------
    ScreenText

    Raises
    ------
    ValueError
        If `frames` is empty or its frames differ in shape.
    RuntimeError
        If the default engine is used and Tesseract is not installed.
    """
    from inference.roi import detect_image_mask_from_frames

    if len(frames) == 0:
        raise ValueError("`frames` must hold at least one frame")
    mask = None
    if len(frames) > 1:
        try:
            mask = detect_image_mask_from_frames(frames)
        except ValueError:
            log.debug("screen text: no image area found in the frames; reading each as a still")
    picks = np.unique(np.linspace(0, len(frames) - 1, VIDEO_FRAMES_READ).round().astype(int))
    result = ScreenText()
    for index in picks:
        found = read_screen_text(frames[int(index)], engine=engine, image_mask=mask)
        result = _merge(result, found)
        if result.complete:
            break
    return result


def _merge(first: ScreenText, second: ScreenText) -> ScreenText:
    """The fields of `first`, with those it lacks from `second`."""
    return ScreenText(
        first.frame_rate_hz if first.frame_rate_hz is not None else second.frame_rate_hz,
        first.date or second.date,
        first.time or second.time,
    )


def parse_screen_text(text: str) -> ScreenText:
    """Parse the frame rate, date and time out of OCR text.

    Parameters
    ----------
    text : str
        Text read from a screen (any number of lines).

    Returns
    -------
    ScreenText
        The first plausible value of each field, None where there is none: a frame rate is a
        number of 1 to 4 digits (one decimal allowed) followed by ``Hz`` in [1, 1000]; a date
        ``d.m.yyyy``, ``m/d/yyyy``, ``yyyy-mm-dd`` (any of ``./-``) with a valid day, month and
        a year in 1980-2099; a time ``h:mm[:ss] [AM|PM]`` with valid hours, minutes, seconds.

    Examples
    --------
    >>> parse_screen_text("7.5cm / 1.4 / 117Hz  TIs 0.1  02.10.2015  10:19:40 AM").to_dict()
    {'frame_rate_hz': 117.0, 'date': '02.10.2015', 'time': '10:19:40 AM'}
    >>> parse_screen_text("12.0cm/1.5/3GHz 18.O8.2015 O9:54:08").to_dict()
    {'frame_rate_hz': None, 'date': '18.08.2015', 'time': '09:54:08'}
    """
    return ScreenText(_frame_rate(text), _date(text), _time(text))


def tesseract_engine(image: np.ndarray, psm: int = _PSM_BLOCK) -> str:
    """Read `image` with Tesseract (English) through pytesseract.

    Parameters
    ----------
    image : (H, W) uint8 ndarray
        Black text on white.
    psm : int
        Tesseract's page segmentation mode (6: a uniform block of text; 7: one line).

    Returns
    -------
    str
        The text read.

    Raises
    ------
    RuntimeError
        If pytesseract or the ``tesseract`` program is missing.
    """
    try:
        import pytesseract
    except ImportError as error:  # pragma: no cover - a dependency of the package
        raise RuntimeError("OCR needs pytesseract: pip install pytesseract") from error
    try:
        with _single_threaded_tesseract():
            return pytesseract.image_to_string(image, lang="eng", config=f"--psm {int(psm)}")
    except pytesseract.TesseractNotFoundError as error:
        raise RuntimeError(
            f"OCR needs the tesseract program, not found on PATH: {INSTALL_TESSERACT}"
        ) from error


#: How to install Tesseract on Debian or Ubuntu.
INSTALL_TESSERACT = "sudo apt-get install -y tesseract-ocr tesseract-ocr-eng"


def tesseract_available() -> bool:
    """Whether the ``tesseract`` program that pytesseract calls is on PATH."""
    try:
        import pytesseract
    except ImportError:  # pragma: no cover - a dependency of the package
        return False
    return shutil.which(pytesseract.pytesseract.tesseract_cmd) is not None


@functools.cache
def warn_tesseract_missing() -> None:
    """Log, once per process, what is lost without Tesseract."""
    log.warning(
        "the tesseract program is not installed: freezes are found by stillness alone (the "
        "freeze indicator is not read), and the screen's header (frame rate, date, time) is not "
        "read, so the frame rate comes from the video container; install it with: %s",
        INSTALL_TESSERACT,
    )


_ENV_LOCK = threading.Lock()


@contextmanager
def _single_threaded_tesseract() -> Iterator[None]:
    """Run Tesseract with one OpenMP thread unless the environment says otherwise.

    On small images Tesseract's OpenMP threads cost more than they bring: one thread reads a
    header 2-4x faster (measured on 2 cores). pytesseract passes the process environment on, so
    it is set for the duration of the call and restored afterwards.
    """
    with _ENV_LOCK:
        before = os.environ.get("OMP_THREAD_LIMIT")
        if before:
            yield
            return
        os.environ["OMP_THREAD_LIMIT"] = "1"
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("OMP_THREAD_LIMIT", None)
            else:
                os.environ["OMP_THREAD_LIMIT"] = before


# ---------------------------------------------------------------------------------------------
# Finding the text


def _regions(grey: np.ndarray, image_mask: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Where to look, in order: the band above the image, the sides of the image, and then the
    whole frame (where compression joined header panels to the image, the band above it is
    too thin; text lines are then found among the image's rows of speckle)."""
    rows = np.flatnonzero(image_mask.any(axis=1))
    if rows.size == 0:
        return [("whole frame", grey)]
    cols = np.flatnonzero(image_mask.any(axis=0))
    top, left, right = int(rows[0]), int(cols[0]), int(cols[-1]) + 1
    regions = [("header", grey[:top])]
    # Beside the image: outside its mask, below the header.
    side = np.where(image_mask, 0, grey)[top:]
    if left > 0 or right < grey.shape[1]:
        regions.append(("sides", np.hstack([side[:, :left], side[:, right:]])))
    else:
        regions.append(("sides", side))
    regions.append(("whole frame", grey))
    return [(name, region) for name, region in regions if min(region.shape) >= _MIN_LINE_ROWS]


def _line_strips(region: np.ndarray, max_rows: int) -> list[np.ndarray]:
    """Row strips of `region` holding text lines, enlarged and binarised to black on white.

    Runs of more than `max_rows` text-like rows are speckle of the image, not text, and are
    left out.
    """
    kernel = np.ones((3, 3), np.uint8)
    spread = cv2.dilate(region, kernel).astype(np.int16) - cv2.erode(region, kernel)
    text = (region >= _TEXT_LEVEL) & (spread >= _TEXT_CONTRAST)
    on = text.sum(axis=1) >= max(3, _LINE_FILL * region.shape[1])
    runs: list[list[int]] = []
    for row in np.flatnonzero(on):
        if runs and row - runs[-1][1] <= _LINE_GAP + 1:
            runs[-1][1] = int(row)
        else:
            runs.append([int(row), int(row)])
    strips = []
    for first, last in runs:
        if not _MIN_LINE_ROWS <= last - first + 1 <= max_rows:
            continue
        cols = np.flatnonzero(text[first : last + 1].any(axis=0))
        y0, y1 = max(0, first - _LINE_PAD), min(region.shape[0], last + 1 + _LINE_PAD)
        x0, x1 = max(0, int(cols[0]) - 4 * _LINE_PAD), int(cols[-1]) + 1 + 4 * _LINE_PAD
        strip = region[y0:y1, x0:x1]
        zoom = float(np.clip(_TARGET_TEXT_HEIGHT / (last + 1 - first), _MIN_ZOOM, _MAX_ZOOM))
        big = cv2.resize(strip, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC)
        _, binary = cv2.threshold(big, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
        strips.append(binary)
    return strips


def _stack(strips: list[np.ndarray]) -> np.ndarray:
    """The strips one below the other, left-aligned on white, with white gaps and margins."""
    gap = 20
    width = max(s.shape[1] for s in strips) + 2 * gap
    height = sum(s.shape[0] for s in strips) + gap * (len(strips) + 1)
    page = np.full((height, width), 255, np.uint8)
    y = gap
    for strip in strips:
        page[y : y + strip.shape[0], gap : gap + strip.shape[1]] = strip
        y += strip.shape[0] + gap
    return page


# ---------------------------------------------------------------------------------------------
# Parsing


def _digits(token: str) -> str:
    return token.translate(_TO_DIGITS)


def _frame_rate(text: str) -> float | None:
    for match in _FRAME_RATE.finditer(text):
        value = float(_digits(match.group(1)).replace(",", "."))
        if 1 <= value <= 1000:
            return value
    return None


def _valid_date(year: int, first: int, second: int) -> bool:
    """A year in 1980-2099 and a day and month in either order."""
    if not 1980 <= year <= 2099:
        return False
    return (1 <= first <= 31 and 1 <= second <= 12) or (1 <= first <= 12 and 1 <= second <= 31)


def _date(text: str) -> str | None:
    candidates = []
    for match in _DATE_DMY.finditer(text):
        a, sep, b, y = match.group(1), match.group(2), match.group(3), match.group(4)
        a, b, y = _digits(a), _digits(b), _digits(y)
        year = int(y) if len(y) == 4 else 2000 + int(y)
        if _valid_date(year, int(a), int(b)):
            candidates.append((match.start(), f"{a}{sep}{b}{sep}{y}"))
            break
    for match in _DATE_YMD.finditer(text):
        y, sep, m, d = (_digits(g) if i != 1 else g for i, g in enumerate(match.groups()))
        if _valid_date(int(y), int(d), int(m)) and 1 <= int(m) <= 12:
            candidates.append((match.start(), f"{y}{sep}{m}{sep}{d}"))
            break
    return min(candidates)[1] if candidates else None


def _time(text: str) -> str | None:
    for match in _TIME.finditer(text):
        hours, minutes, seconds, half = match.groups()
        hours, minutes = _digits(hours), _digits(minutes)
        seconds = _digits(seconds) if seconds else None
        limit = 12 if half else 23
        if int(hours) > limit or int(minutes) > 59 or (seconds and int(seconds) > 59):
            continue
        if seconds is None and half is None and ":" not in match.group(0):
            # "10.45" is a number, not a time: without seconds or AM/PM, ask for a colon.
            continue
        value = f"{hours}:{minutes}" + (f":{seconds}" if seconds else "")
        if half:
            value += " AM" if half.upper() == "A" else " PM"
        return value
    return None
