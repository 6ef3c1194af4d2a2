"""Image-area detection: where the ultrasound image sits on a scanner's screen.

A screen capture of an ultrasound scanner shows the image (the fan or sector of a curved probe)
among screen furniture: header panels with text, a grey-scale bar and depth ticks on one side, a
preset panel on the other, measurement boxes, coloured markers and calipers. Networks such as
SonoNet are trained on the image only and are sensitive to the crop (see DESIGN.md), and burned-in
text can identify patients, so both the classifier input and de-identification start from the
image area.

The area is derived from the image content, with no per-vendor numbers (every size below is a
fraction of the screen):

1. *Screen furniture* is marked. Panels and bars: flat non-black regions (runs of 9 pixels along
   a row or column within 2 grey levels, filling at least half of their box), taken with their
   whole box and so with the text printed on them; where compression ringing around the text
   (or a median filter wiping the separators between header boxes) leaves a flat component
   filling less than half of its box, its rows flat over half of a span of 15% of the screen's
   width, at least 16 levels above black, are panel all the same. Coloured overlays: small
   components whose RGB channels differ by more than 40 levels (markers, calipers, coloured
   text); when a quarter of the image is coloured (a 3D rendering) colour marks nothing.
   Marks: small bright components on the black background (text, ticks, arrows).
2. *The fan* is found among the non-black pixels that are not furniture nor text on the
   background (small bright components mostly surrounded by background, with their ringing:
   JPEG ringing can otherwise join a column of text to the image): small components are
   dropped (words, ticks, specks), an opening removes thin strokes, a closing joins the speckle
   across dark tissue, a larger opening cuts thin appendages; the fan is the convex hull of the
   large blobs (dark fluid can split what is seen of a sector in two). From a video
   (`detect_image_area_from_frames`), the fan is instead seeded by the pixels that keep
   changing, which leaves out static furniture directly, and grown over the non-background
   pixels of the mean frame joined to it that do not look drawn (flat and lighter than the
   background, or next to bright static marks) and are dark (at most half-way from the
   background to the live pixels' median): compression holds dark tissue still, so change
   alone misses the dark parts of the image, while a still image as bright as the live one (a
   frozen second view) stays out.
3. *The box* starts as the fan's bounding box and is tightened: furniture outside the fan that
   lies within the outer 15% of the box on one side (a grey bar, ticks, a preset panel, a
   measurement box, the orientation marker), widened by a 0.5% margin, is cut off by moving the
   side that loses the least area, as long as all cuts together lose at most 35% of the box.
   Furniture deeper inside (calipers on the anatomy) stays.

On the 975 x 735 GE Voluson E8 captures this gives boxes close to the crop published with SonoNet
(rows 115:734, columns 81:874: IoU 0.92-0.96), which takes in neither the left grey bar nor the
right preset panel.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "SONONET_INPUT_SIZE",
    "ImageArea",
    "crop_and_resize",
    "detect_image_area",
    "detect_image_area_from_frames",
    "detect_image_mask",
    "detect_image_mask_from_frames",
    "grey_level",
    "preprocess",
]

log = logging.getLogger(__name__)

#: SonoNet's input size as (height, width).
SONONET_INPUT_SIZE: tuple[int, int] = (224, 288)

# Grey levels up to this far above the commonest dark level count as screen background.
_BLACK_MARGIN = 4
# Max minus min of the RGB channels above this marks coloured overlays. Tinted grey-scale maps
# (the bluish "CRI" maps of GE scanners) stay below ~35.
_CHROMA_LEVEL = 40
# Coloured components larger than this fraction of the screen are image, not overlays.
_MAX_OVERLAY_AREA = 0.005
# When more than this share of the non-black, non-panel pixels is coloured, the image itself is
# in colour (3D rendering) and colour marks no overlays on it.
_COLOUR_IMAGE_SHARE = 0.25
# A run of _FLAT_RUN pixels along a row or column within _FLAT_TOLERANCE grey levels is flat, and a
# flat component at least _PANEL_CONTRAST above black, of at least _MIN_PANEL_AREA of the screen,
# that fills _PANEL_FILL of its box is a panel (or bar).
_FLAT_RUN = 9
_FLAT_TOLERANCE = 2
_MIN_PANEL_AREA = 2e-4
_PANEL_CONTRAST = 8
_PANEL_FILL = 0.5
# A flat component that fills less of its box (compression ringing around a header's text, or
# the median filter wiping the separators between header boxes) is still panel in its rows that
# are flat over at least half of a span of _WIDE_ROW of the screen's width, at least
# _WIDE_ROW_CONTRAST above black: smooth dark tissue gives flat rows that long only nearer black.
_WIDE_ROW = 0.15
_WIDE_ROW_CONTRAST = 16
# Side of the median filter that wipes text and its compression ringing off panels, as a
# fraction of the screen's smaller side (7 pixels on a 975 x 735 screen).
_TEXT_MEDIAN = 0.01
# Components of the non-black pixels smaller than this fraction of the screen are marks (text,
# ticks) or stray speckle, not the image.
_MIN_BLOB_AREA = 0.002
# Bright marks on black: peak grey level and largest area (fraction of the screen).
_MARK_LEVEL = 100
_MARK_MAX_AREA = 0.002
# Bright marks are text on the background when at least this share of their surroundings (within
# _FURNITURE_MARGIN of the screen) is background (at most _PANEL_CONTRAST above black).
_TEXT_DARK_SHARE = 0.5
# From a video: static components outside the fan of fewer pixels than this are noise.
_MIN_STATIC_PIXELS = 6
# The fan must cover at least this fraction of the screen; its hull takes in the blobs of at
# least _FAN_PART_SHARE of the largest whose area / longest side is at least
# _FAN_PART_THICKNESS of the screen's smaller side.
_MIN_FAN_FRACTION = 0.05
_FAN_PART_SHARE = 0.05
_FAN_PART_THICKNESS = 0.06
# Tightening: furniture within this fraction of the box's size from one side is cut off, as long
# as all cuts together lose at most _MAX_TOTAL_CUT of the box's area; the box keeps
# _FURNITURE_MARGIN of the screen's smaller side away from furniture.
_EDGE_BAND = 0.15
_MAX_TOTAL_CUT = 0.35
_FURNITURE_MARGIN = 0.005
# From a video: a pixel changes between two frames when its grey level moves by more than
# _CHANGE_LEVEL; a pair of frames is moving when more than _MOVING_SHARE of the screen changes; a
# pixel is live when it changes in at least _LIVE_SHARE of the moving pairs, of which there
# must be _MIN_MOVING_PAIRS.
_CHANGE_LEVEL = 2
_MOVING_SHARE = 0.01
_LIVE_SHARE = 1 / 3
_MIN_MOVING_PAIRS = 3
# From a video: still (not live) tissue joined to the live pixels is image when its median grey
# level lies at most this share of the way from the background to the live fan's median.
_STILL_TISSUE_LEVEL = 0.5


@dataclass(frozen=True)
class ImageArea:
    """A pixel box on the screen: rows ``y0:y1`` and columns ``x0:x1`` (``x1``, ``y1`` exclusive).

    Attributes
    ----------
    x0, y0 : int
        First column and first row inside the box.
    x1, y1 : int
        One past the last column and row inside the box.
    """

    x0: int
    y0: int
    x1: int
    y1: int

    def __post_init__(self) -> None:
        for name in ("x0", "y0", "x1", "y1"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise TypeError(f"`{name}` must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.x0 < 0 or self.y0 < 0:
            raise ValueError(f"`x0` and `y0` must be >= 0, got x0={self.x0}, y0={self.y0}")
        if self.x1 <= self.x0 or self.y1 <= self.y0:
            raise ValueError(
                f"the box must not be empty: got x0={self.x0}, x1={self.x1}, "
                f"y0={self.y0}, y1={self.y1}"
            )

    @property
    def width(self) -> int:
        """Number of columns, ``x1 - x0``."""
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        """Number of rows, ``y1 - y0``."""
        return self.y1 - self.y0

    @property
    def area(self) -> int:
        """Number of pixels, ``width * height``."""
        return self.width * self.height

    def crop(self, frame: np.ndarray) -> np.ndarray:
        """The part of `frame` inside the box.

        Parameters
        ----------
        frame : (H, W[, C]) ndarray
            A screen frame that contains the box.

        Returns
        -------
        (height, width[, C]) ndarray
            A view into `frame` (not a copy).
        """
        frame = np.asarray(frame)
        if frame.ndim < 2:
            raise ValueError(f"`frame` must be (H, W) or (H, W, C), got shape {frame.shape}")
        if self.y1 > frame.shape[0] or self.x1 > frame.shape[1]:
            raise ValueError(
                f"the box (rows {self.y0}:{self.y1}, columns {self.x0}:{self.x1}) does not fit "
                f"in `frame` of shape {frame.shape}"
            )
        return frame[self.y0 : self.y1, self.x0 : self.x1]

    def iou(self, other: ImageArea) -> float:
        """Intersection over union with `other`, in [0, 1]."""
        ix = max(0, min(self.x1, other.x1) - max(self.x0, other.x0))
        iy = max(0, min(self.y1, other.y1) - max(self.y0, other.y0))
        inter = ix * iy
        return inter / (self.area + other.area - inter)

    def to_dict(self) -> dict[str, int]:
        """``{"x0": ..., "y0": ..., "x1": ..., "y1": ...}``."""
        return {"x0": self.x0, "y0": self.y0, "x1": self.x1, "y1": self.y1}


def detect_image_area(frame: np.ndarray) -> ImageArea:
    """Find the ultrasound image area on one screen frame.

    Parameters
    ----------
    frame : (H, W) or (H, W, 3) uint8 ndarray
        A screen frame, grey or colour (RGB or BGR: only the mean and the spread of the
        channels are used). A fourth (alpha) channel is ignored.

    Returns
    -------
    ImageArea
        The box of the image region free of screen furniture (see the module docstring).

    Raises
    ------
    ValueError
        If `frame` has the wrong shape or type, or holds no textured region large enough to be
        an ultrasound image (a black or uniform frame).
    """
    grey, black, coloured, panels, fan = _still_masks(frame)
    marks = _marks_on_black(grey, fan, black)
    return _tighten(_bbox(fan), (coloured | panels | marks) & ~fan)


def detect_image_mask(frame: np.ndarray) -> np.ndarray:
    """The pixels of the ultrasound image (the fan) on one screen frame.

    This is the region whose bounding box `detect_image_area` starts from, before it is
    tightened: it may take in furniture drawn over the image and leaves out furniture around it.
    Text outside it is screen text (see `inference.screen_text`).

    Parameters
    ----------
    frame : (H, W) or (H, W, 3) uint8 ndarray
        A screen frame, as for `detect_image_area`.

    Returns
    -------
    (H, W) bool ndarray
        True on the fan: the convex hull of the image's large blobs.

    Raises
    ------
    ValueError
        As `detect_image_area`.
    """
    return _still_masks(frame)[-1]


def _still_masks(
    frame: np.ndarray,
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray, np.ndarray]:
    """Grey image, background level, and the coloured, panel and fan masks of one frame."""
    grey, chroma = _grey_and_chroma(frame, "frame")
    black = _background_level(grey)
    colour = chroma > _CHROMA_LEVEL
    coloured = _overlays(colour)
    panels = _panels(grey, black)
    # Text on black, with its compression ringing, could bridge a column of text to the fan.
    candidate = (grey > black) & ~panels & ~_text_on_black(grey, black)
    if np.count_nonzero(colour) > _COLOUR_IMAGE_SHARE * np.count_nonzero(candidate):
        # The image itself is in colour (a 3D rendering): colour marks no overlays.
        coloured = np.zeros_like(coloured)
    fan = _fan_component(candidate & ~coloured, what="`frame`", grey=grey)
    return grey, black, coloured, panels, fan


def detect_image_area_from_frames(
    frames: Iterable[np.ndarray], *, max_frames: int = 300
) -> ImageArea:
    """Find the ultrasound image area from frames of one video.

    Static screen furniture does not change while the image does. Between consecutive frames
    of the sample, a pixel *changes* when its grey level moves by more than 2 levels, and a pair
    of frames is *moving* when more than 1% of the screen changes (pairs inside a freeze span
    are not). A pixel is live when it changes in at least a third of the moving pairs: the
    speckle of a live image changes nearly every time, while a ticking clock, a freeze indicator
    shown now and then, or compression noise do not. The large live regions seed the fan.

    Video compression (H.264 at CRF 18-30) quantises away the small changes of dark tissue, so
    the live pixels can miss whole dark parts of the image. The image is one region, bounded by
    background: the fan is therefore the convex hull of the seed and of the blobs (as in
    `detect_image_area`) of the mean frame's non-background pixels that touch it, leaving out
    static pixels that look drawn rather than scanned: flat and at least 8 levels above the
    background (panels, bars), or within 0.5% of the screen of a bright pixel (text, ticks,
    markers and their compression ringing). Scanned tissue that stays still is dark and
    speckled, as the speckle of bright tissue always changes: a blob is taken only when its
    median grey level is at most half-way from the background to the seed's median, so a still
    image about as bright as the live one beside it (a frozen second view) stays out. Static
    non-black pixels around the fan, and small bright static marks on it, are furniture. A
    sample without enough moving pairs (frozen throughout) falls back to `detect_image_area` on
    the mean frame.
    Memory use does not grow with the number of frames.

    Parameters
    ----------
    frames : iterable of (H, W) or (H, W, 3) uint8 ndarray
        Frames of one video in time order, all of one shape, e.g. 100-300 frames: every frame
        or every few frames over some seconds of live scanning, or frames sampled over the scan.
    max_frames : int, optional
        At most this many frames are read from `frames`; the rest are not consumed.

    Returns
    -------
    ImageArea
        The box of the image region free of screen furniture.

    Raises
    ------
    ValueError
        If `frames` yields fewer than 2 frames or frames of differing shapes, or no frame shows
        an ultrasound image.
    """
    live = _live_screen(frames, max_frames)
    if live.fan is None:
        return detect_image_area(live.grey)
    return _tighten(_bbox(live.fan), live.furniture)


def detect_image_mask_from_frames(
    frames: Iterable[np.ndarray], *, max_frames: int = 300
) -> np.ndarray:
    """The pixels of the ultrasound image (the fan) from frames of one video.

    The fan of the live pixels that seeds `detect_image_area_from_frames`, before it is grown
    over still dark tissue and before the box is tightened: static header panels and text stay
    out of it however compression blurred them. It can miss dark parts of the image that
    compression holds still; the screen text reader (`inference.screen_text`) wants just that,
    as text lies where nothing changes.

    Parameters
    ----------
    frames : iterable of (H, W) or (H, W, 3) uint8 ndarray
        As for `detect_image_area_from_frames`.
    max_frames : int, optional

    Returns
    -------
    (H, W) bool ndarray
        True on the fan; from the mean frame (`detect_image_mask`) when too little changes.

    Raises
    ------
    ValueError
        As `detect_image_area_from_frames`.
    """
    live = _live_screen(frames, max_frames)
    return detect_image_mask(live.grey) if live.seed is None else live.seed


@dataclass(frozen=True)
class _LiveScreen:
    """What the frames of a video show: the mean grey frame, and where enough of the screen
    changes, the fan of the live pixels (`seed`), the fan grown from it over still tissue
    (`fan`) and the furniture around and on that; all three None otherwise."""

    grey: np.ndarray
    seed: np.ndarray | None
    fan: np.ndarray | None
    furniture: np.ndarray | None


def _live_screen(frames: Iterable[np.ndarray], max_frames: int) -> _LiveScreen:
    if max_frames < 2:
        raise ValueError(f"`max_frames` must be at least 2, got {max_frames}")
    count = moving = 0
    shape: tuple[int, ...] = ()
    total = chroma_total = changes = previous = None
    for frame in itertools.islice(frames, max_frames):
        grey, chroma = _grey_and_chroma(frame, f"frames[{count}]")
        if previous is None:
            shape = grey.shape
            total = np.zeros(shape, np.float64)
            chroma_total = np.zeros(shape, np.float64)
            changes = np.zeros(shape, np.uint32)
        elif grey.shape != shape:
            raise ValueError(
                f"all `frames` must have one shape: frames[0] is {shape}, "
                f"frames[{count}] is {grey.shape}"
            )
        else:
            changed = cv2.absdiff(grey, previous) > _CHANGE_LEVEL
            if np.count_nonzero(changed) > _MOVING_SHARE * changed.size:
                changes += changed
                moving += 1
        cv2.accumulate(grey, total)
        cv2.accumulate(chroma, chroma_total)
        previous = grey
        count += 1
    if count < 2 or total is None or chroma_total is None or changes is None:
        raise ValueError(f"`frames` must yield at least 2 frames, got {count}")
    grey = np.round(total / count).astype(np.uint8)
    if moving < _MIN_MOVING_PAIRS:
        log.info(
            "image area: %d of %d frame pairs change (a frozen or static video); detecting on "
            "the mean frame",
            moving,
            count - 1,
        )
        return _LiveScreen(grey, None, None, None)
    chroma = np.round(chroma_total / count).astype(np.uint8)
    live = changes >= _LIVE_SHARE * moving
    static = changes == 0
    black = _background_level(grey)
    coloured = _overlays(static & (chroma > _CHROMA_LEVEL))
    panels = _panels(grey, black) & static
    try:
        seed = _fan_component(
            live & ~panels & ~coloured, what="`frames` (pixels that change)", grey=None
        )
    except ValueError:
        log.info(
            "image area: too little of the screen changes over %d frames; detecting on the "
            "mean frame",
            count,
        )
        return _LiveScreen(grey, None, None, None)
    # Compression flattens the small changes of dark tissue, so the live pixels can miss dark
    # parts of the image: they are taken back from the mean frame's scanned-looking pixels.
    scanned = (grey > black) & ~coloured & ~_drawn(grey, black, static)
    fan = _grown_fan(seed, scanned, grey, black)
    log.debug(
        "image area: the live pixels' fan covers %.1f%% of the screen, grown over still "
        "tissue to %.1f%%",
        100 * np.count_nonzero(seed) / seed.size,
        100 * np.count_nonzero(fan) / fan.size,
    )
    # Static non-black pixels are furniture around the fan; on the fan, dark tissue that rarely
    # changes is not, but small bright static marks are (text, calipers, markers).
    static &= grey > black
    static_marks = _bright_small(static & fan, grey)
    static_furniture = _drop_small(static & ~fan, _MIN_STATIC_PIXELS)
    furniture = coloured | static_marks | static_furniture | (panels & ~fan)
    return _LiveScreen(grey, seed, fan, furniture)


def crop_and_resize(
    frame: np.ndarray,
    area: ImageArea,
    size: tuple[int, int] = SONONET_INPUT_SIZE,
) -> np.ndarray:
    """Crop `frame` to `area` and resize it.

    Parameters
    ----------
    frame : (H, W[, C]) ndarray
        A screen frame.
    area : ImageArea
        The box to keep.
    size : (height, width)
        Output size in pixels; SonoNet's (224, 288) by default. Note the order: height first,
        unlike OpenCV.

    Returns
    -------
    (height, width[, C]) ndarray
        Same dtype as `frame`; area interpolation when shrinking, bilinear when enlarging.
    """
    height, width = _check_size(size)
    crop = area.crop(frame)
    shrinking = height < crop.shape[0] and width < crop.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(crop), (width, height), interpolation=interpolation)


def preprocess(
    frame: np.ndarray,
    area: ImageArea,
    size: tuple[int, int] = SONONET_INPUT_SIZE,
    *,
    scale: float = 255.0,
) -> np.ndarray:
    """SonoNet's published preprocessing of one screen frame.

    Greyscale as the mean of the colour channels, crop to `area`, resize to `size`, then the
    per-image z-score multiplied by `scale`: ``255 * (x - mean) / std`` for SonoNet.

    Parameters
    ----------
    frame : (H, W) or (H, W, 3) ndarray
        A screen frame (a fourth, alpha, channel is ignored).
    area : ImageArea
        The image area, e.g. from `detect_image_area`.
    size : (height, width)
        Network input size, (224, 288) for SonoNet.
    scale : float
        Factor after the z-score: 255 for the published SonoNet, 1 for the models trained here
        (a model's ``preprocessing.scale``, `inference.model_file.ModelInfo.input_scale`).

    Returns
    -------
    (height, width, 1) float32 ndarray
        Mean 0 and standard deviation `scale`; all zeros when the crop is uniform.
    """
    frame = np.asarray(frame)
    if frame.ndim == 3 and frame.shape[2] in (3, 4):
        grey = frame[..., :3].astype(np.float32).mean(axis=2)
    elif frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        grey = frame.reshape(frame.shape[:2]).astype(np.float32)
    else:
        raise ValueError(f"`frame` must be (H, W) or (H, W, 3), got shape {frame.shape}")
    x = crop_and_resize(grey, area, size)
    std = float(x.std())
    if std == 0.0:
        log.warning("preprocess: the crop is uniform; returning zeros")
        return np.zeros((*x.shape, 1), np.float32)
    return (scale * (x - x.mean()) / std).astype(np.float32)[..., np.newaxis]


# ---------------------------------------------------------------------------------------------
# Internals


_MEAN_OF_CHANNELS = np.full((1, 3), 1 / 3, np.float32)


def _channels(frame: np.ndarray, name: str) -> np.ndarray:
    """`frame` checked: uint8, (H, W) or (H, W, 3|4); a single channel axis dropped."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise ValueError(f"`{name}` must be uint8, got {frame.dtype}")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[..., 0]
    if not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] in (3, 4))):
        raise ValueError(f"`{name}` must be (H, W) or (H, W, 3), got shape {frame.shape}")
    return frame


def grey_level(frame: np.ndarray, name: str = "frame") -> np.ndarray:
    """The grey level of a screen frame, (H, W) uint8: the mean of its colour channels.

    Raises
    ------
    ValueError
        Naming `name`, when `frame` is not uint8 (H, W) or (H, W, 3|4).
    """
    frame = _channels(frame, name)
    return frame if frame.ndim == 2 else cv2.transform(frame[..., :3], _MEAN_OF_CHANNELS)


def _grey_and_chroma(frame: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Grey level (mean of channels) and chroma (max minus min of channels), both uint8."""
    frame = _channels(frame, name)
    grey = grey_level(frame, name)
    if frame.ndim == 2:
        chroma = np.zeros_like(frame)
    else:
        c0, c1, c2 = (np.ascontiguousarray(frame[..., i]) for i in range(3))
        chroma = cv2.subtract(cv2.max(cv2.max(c0, c1), c2), cv2.min(cv2.min(c0, c1), c2))
    if min(grey.shape) < 32:
        raise ValueError(f"`{name}` is too small to hold an image area: shape {frame.shape}")
    return np.ascontiguousarray(grey), np.ascontiguousarray(chroma)


def _scale(shape: tuple[int, ...], fraction: float, minimum: int = 3) -> int:
    """An odd kernel size of `fraction` of the screen's smaller side."""
    k = max(minimum, round(fraction * min(shape[:2])))
    return k | 1


def _ellipse(k: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    return cv2.dilate(mask.astype(np.uint8), _ellipse(2 * radius + 1)).astype(bool)


def _background_level(grey: np.ndarray) -> int:
    """Grey level at or below which a pixel is screen background: the commonest dark level + 4."""
    hist = np.bincount(grey.ravel(), minlength=256)
    return int(np.argmax(hist[:64])) + _BLACK_MARGIN


def _flat_mask(grey: np.ndarray) -> np.ndarray:
    """Pixels centred in a run of `_FLAT_RUN` pixels along their row or column that spans at
    most `_FLAT_TOLERANCE` grey levels.

    Panels and bars are drawn with constant rows or columns (flat or with a linear gradient);
    speckle, even smoothed and dim, hardly ever stays that level over that many pixels. The
    tolerance absorbs video compression noise.
    """
    horizontal = np.ones((1, _FLAT_RUN), np.uint8)
    vertical = np.ones((_FLAT_RUN, 1), np.uint8)
    along_row = cv2.subtract(cv2.dilate(grey, horizontal), cv2.erode(grey, horizontal))
    along_col = cv2.subtract(cv2.dilate(grey, vertical), cv2.erode(grey, vertical))
    return (along_row <= _FLAT_TOLERANCE) | (along_col <= _FLAT_TOLERANCE)


def _panels(grey: np.ndarray, black: int) -> np.ndarray:
    """The boxes of flat non-black panels and bars, with the text printed on them.

    Compression ringing around the text on a panel (JPEG, H.264) can leave less than half of it
    flat; a median filter of `_TEXT_MEDIAN` of the screen wipes out the text and most of the
    ringing, so panels are also looked for on the median-filtered screen (on the lossless
    Voluson captures this finds the same panels).
    """
    smooth = cv2.medianBlur(grey, _scale(grey.shape, _TEXT_MEDIAN))
    return _flat_panels(grey, black) | _flat_panels(smooth, black)


def _flat_panels(grey: np.ndarray, black: int) -> np.ndarray:
    """The boxes of the flat components of `grey` that fill most of their box."""
    flat = _flat_mask(grey) & (grey > black + _PANEL_CONTRAST)
    min_panel = max(20, round(_MIN_PANEL_AREA * grey.size))
    _, labels, stats, _ = cv2.connectedComponentsWithStats(flat.astype(np.uint8), connectivity=8)
    x, y, w, h, area = stats[1:].T
    # A panel fills most of its box; scattered flat specks in speckle do not.
    panel = (area >= min_panel) & (area >= _PANEL_FILL * w * h)
    panels = np.zeros(grey.shape, bool)
    for x0, y0, x1, y1 in zip(x[panel], y[panel], (x + w)[panel], (y + h)[panel], strict=True):
        panels[y0:y1, x0:x1] = True
    wide = _WIDE_ROW * grey.shape[1]
    bright_enough = grey > black + _WIDE_ROW_CONTRAST
    for index in np.flatnonzero(~panel & (area >= min_panel) & (w >= wide)):
        _mark_wide_rows(panels, labels, 1 + index, stats[1 + index], bright_enough)
    return panels


def _mark_wide_rows(
    panels: np.ndarray, labels: np.ndarray, label: int, stat: np.ndarray,
    bright_enough: np.ndarray
) -> None:
    """Mark in `panels` the rows of one flat component (its `label` in `labels`, its stats
    row) that are flat, and bright enough, over at least half of a span of `_WIDE_ROW` of the
    width."""
    x0, y0, w, h = (int(v) for v in stat[:4])
    box = (slice(y0, y0 + h), slice(x0, x0 + w))
    member = (labels[box] == label) & bright_enough[box]
    count = member.sum(axis=1)
    first = member.argmax(axis=1)
    last = w - 1 - member[:, ::-1].argmax(axis=1)
    span = last - first + 1
    rows = (count > 0) & (span >= _WIDE_ROW * panels.shape[1]) & (count >= _PANEL_FILL * span)
    for row in np.flatnonzero(rows):
        panels[y0 + row, x0 + first[row]: x0 + last[row] + 1] = True


def _overlays(coloured: np.ndarray) -> np.ndarray:
    """Coloured overlays: small coloured components (markers, text, calipers, colour bars).

    Large coloured regions are image (a 3D rendering in sepia, colour flow) and stay out.
    """
    small = coloured & ~_drop_small(coloured, round(_MAX_OVERLAY_AREA * coloured.size))
    return _dilate(small, 1)


def _drop_small(mask: np.ndarray, min_pixels: int) -> np.ndarray:
    """`mask` without its 8-connected components of fewer than `min_pixels` pixels."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_pixels
    keep[0] = False
    return keep[labels]


def _blobs(candidate: np.ndarray) -> np.ndarray:
    """`candidate` (H, W) bool without small components and thin strokes, its speckle joined
    across dark tissue: (H, W) uint8, 1 on the blobs."""
    shape = candidate.shape
    # Words and ticks on black, and stray specks, are small components: drop them first, so
    # that the closing cannot join them to the fan.
    mask = _drop_small(candidate, round(_MIN_BLOB_AREA * candidate.size)).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _ellipse(_scale(shape, 0.007)))
    return cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _ellipse(_scale(shape, 0.025)))


def _hull(mask: np.ndarray) -> np.ndarray:
    """The convex hull of the True (non-zero) pixels of `mask` (H, W), as an (H, W) bool mask."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    hull = np.zeros(mask.shape, np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.concatenate(contours)), 1)
    return hull.astype(bool)


def _fan_component(candidate: np.ndarray, *, what: str, grey: np.ndarray | None) -> np.ndarray:
    """The convex hull of the large blobs of `candidate` after opening and closing."""
    shape = candidate.shape
    mask = _blobs(candidate)
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    fraction = stats[1:, cv2.CC_STAT_AREA].max(initial=0) / mask.size
    if fraction < _MIN_FAN_FRACTION:
        detail = ""
        if grey is not None:
            detail = f"; grey levels span {int(grey.min())}..{int(grey.max())}"
        raise ValueError(
            f"no ultrasound image area found in {what}: expected a textured (speckled) region "
            f"covering at least {_MIN_FAN_FRACTION:.0%} of the screen, the largest covers "
            f"{fraction:.1%}{detail}"
        )
    # Cut off thin appendages (a separator between header boxes touching the fan's top).
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _ellipse(_scale(shape, 0.03)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:  # pragma: no cover - the opening keeps most of a blob of 5% of the screen
        raise ValueError(f"no ultrasound image area found in {what}")
    # The image area is convex (a sector, a rectangle); dark fluid can split what is seen of it
    # into parts. Its hull is that of the large parts.
    # Thin parts (a header bar whose flat fill was blurred by compression) are not fan.
    areas = stats[1:, cv2.CC_STAT_AREA]
    thickness = areas / np.maximum(stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT])
    big = (areas >= _FAN_PART_SHARE * areas.max()) & (thickness >= _FAN_PART_THICKNESS * min(shape))
    big[np.argmax(areas)] = True
    parts = 1 + np.flatnonzero(big)
    keep = np.zeros(n, np.uint8)
    keep[parts] = 1
    return _hull(keep[labels])


def _drawn(grey: np.ndarray, black: int, static: np.ndarray) -> np.ndarray:
    """Static pixels of a video that look drawn, not scanned: (H, W) bool.

    A drawn pixel never changes and is either flat (in a run of `_FLAT_RUN` pixels, on the
    screen or on its median-filtered copy) and at least `_PANEL_CONTRAST` above the background
    (a panel, a bar), or within `_FURNITURE_MARGIN` of the screen of a pixel at `_MARK_LEVEL` or
    brighter (text, ticks, markers, with their compression ringing). Scanned tissue that
    compression keeps still is dark and speckled: the speckle of bright tissue always changes.

    Parameters
    ----------
    grey : (H, W) uint8 ndarray
        The mean frame.
    black : int
        The background's grey level (`_background_level`).
    static : (H, W) bool ndarray
        Pixels that change in none of the moving frame pairs.
    """
    smooth = cv2.medianBlur(grey, _scale(grey.shape, _TEXT_MEDIAN))
    flat = (_flat_mask(grey) | _flat_mask(smooth)) & (grey > black + _PANEL_CONTRAST)
    margin = max(1, round(_FURNITURE_MARGIN * min(grey.shape)))
    return static & (flat | _dilate(grey >= _MARK_LEVEL, margin))


def _grown_fan(
    seed: np.ndarray, scanned: np.ndarray, grey: np.ndarray, black: int
) -> np.ndarray:
    """The convex hull of `seed` and of the dark blobs of `scanned` (`_blobs`) that touch it.

    The image is one region: what of it does not change enough to be live (dark tissue after
    compression) is still joined to what does by non-background pixels that are not drawn.
    Speckle is multiplicative, so its changes grow with the tissue's brightness, and compression
    holds still only tissue too dark to change much: a blob outside the seed is taken only when
    its median grey level lies at most `_STILL_TISSUE_LEVEL` of the way from the background to
    the seed's median. A still region about as bright as the live image beside it (a frozen
    second view, a static picture) stays out.

    Parameters
    ----------
    seed : (H, W) bool ndarray
        The fan of the live pixels.
    scanned : (H, W) bool ndarray
        Non-background pixels that do not look drawn (`_drawn`).
    grey : (H, W) uint8 ndarray
        The mean frame.
    black : int
        The background's grey level (`_background_level`).

    Returns
    -------
    (H, W) bool ndarray
        A convex mask that contains `seed`.
    """
    outside = (_blobs(scanned) > 0) & ~seed
    n, labels = cv2.connectedComponents(outside.astype(np.uint8), connectivity=8)
    touching = np.zeros(n, bool)
    touching[labels[_dilate(seed, 1) & outside]] = True
    level = black + _STILL_TISSUE_LEVEL * (np.median(grey[seed]) - black)
    dark = [i for i in np.flatnonzero(touching[1:]) + 1 if np.median(grey[labels == i]) <= level]
    return _hull(seed | np.isin(labels, dark))


def _text_on_black(grey: np.ndarray, black: int) -> np.ndarray:
    """Bright marks on the background, with their compression ringing: (H, W) bool.

    The components of pixels at `_MARK_LEVEL` or brighter, of at most `_MARK_MAX_AREA` of the
    screen, whose surroundings within `_FURNITURE_MARGIN` of the screen are mostly
    (`_TEXT_DARK_SHARE`) background, grown by that margin. Small bright specks of tissue are
    surrounded by tissue and stay out.
    """
    margin = max(1, round(_FURNITURE_MARGIN * min(grey.shape)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(
        (grey >= _MARK_LEVEL).astype(np.uint8), connectivity=8
    )
    small = stats[:, cv2.CC_STAT_AREA] <= _MARK_MAX_AREA * grey.size
    small[0] = False
    marks = small[labels]
    # Each pixel around a mark counts for the mark of the highest label within the margin.
    nearest = cv2.dilate(np.where(marks, labels, 0).astype(np.float32), _ellipse(2 * margin + 1))
    nearest = nearest.astype(np.int32)
    around = (nearest > 0) & ~marks
    dark = grey <= black + _PANEL_CONTRAST
    total = np.bincount(nearest[around], minlength=n)
    background = np.bincount(nearest[around & dark], minlength=n)
    text = small & (total > 0) & (background >= _TEXT_DARK_SHARE * total)
    return _dilate(text[labels], margin)


def _marks_on_black(grey: np.ndarray, fan: np.ndarray, black: int) -> np.ndarray:
    """Small bright components on the black background outside the fan: text, ticks, arrows."""
    return _bright_small((grey > black) & ~fan, grey)


def _bright_small(mask: np.ndarray, grey: np.ndarray) -> np.ndarray:
    """The components of `mask` of at most `_MARK_MAX_AREA` of the screen, peaking at
    `_MARK_LEVEL` or brighter."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8)
    if n <= 1:
        return np.zeros(mask.shape, bool)
    peak = np.zeros(n, np.int32)
    np.maximum.at(peak, labels[mask], grey[mask].astype(np.int32))
    keep = (stats[:, cv2.CC_STAT_AREA] <= _MARK_MAX_AREA * grey.size) & (peak >= _MARK_LEVEL)
    keep[0] = False
    return keep[labels]


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the True pixels, exclusive ends."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _tighten(box: tuple[int, int, int, int], furniture: np.ndarray) -> ImageArea:
    """Move the sides of `box` inwards past furniture lying along them (see the module doc)."""
    x0, y0, x1, y1 = box
    # Keep a small margin from furniture (a panel's edge one row above the image, say).
    m = max(1, round(_FURNITURE_MARGIN * min(furniture.shape)))
    n, _, stats, _ = cv2.connectedComponentsWithStats(furniture.astype(np.uint8), connectivity=8)
    parts = [
        (
            int(stats[i, cv2.CC_STAT_LEFT]) - m,
            int(stats[i, cv2.CC_STAT_TOP]) - m,
            int(stats[i, cv2.CC_STAT_LEFT] + stats[i, cv2.CC_STAT_WIDTH]) + m,
            int(stats[i, cv2.CC_STAT_TOP] + stats[i, cv2.CC_STAT_HEIGHT]) + m,
        )
        for i in range(1, n)
    ]
    full_area = (x1 - x0) * (y1 - y0)
    band_x = _EDGE_BAND * (x1 - x0)
    band_y = _EDGE_BAND * (y1 - y0)
    # Limits: a side never moves further in than the edge band of the fan's own box.
    left_max, right_min = x0 + band_x, x1 - band_x
    top_max, bottom_min = y0 + band_y, y1 - band_y
    while True:
        area = (x1 - x0) * (y1 - y0)
        best: tuple[int, str, int] | None = None
        for px0, py0, px1, py1 in parts:
            if px1 <= x0 or px0 >= x1 or py1 <= y0 or py0 >= y1:
                continue
            options = []
            if px1 <= left_max:
                options.append(((px1 - x0) * (y1 - y0), "x0", px1))
            if px0 >= right_min:
                options.append(((x1 - px0) * (y1 - y0), "x1", px0))
            if py1 <= top_max:
                options.append(((py1 - y0) * (x1 - x0), "y0", py1))
            if py0 >= bottom_min:
                options.append(((y1 - py0) * (x1 - x0), "y1", py0))
            if not options:
                continue
            option = min(options)
            if best is None or option < best:
                best = option
        if best is None or full_area - area + best[0] > _MAX_TOTAL_CUT * full_area:
            break
        _, side, value = best
        if side == "x0":
            x0 = value
        elif side == "x1":
            x1 = value
        elif side == "y0":
            y0 = value
        else:
            y1 = value
    return ImageArea(x0, y0, x1, y1)


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"`size` must be (height, width), got {size!r}") from None
    if height < 1 or width < 1:
        raise ValueError(f"`size` must be positive (height, width), got {size!r}")
    return height, width
