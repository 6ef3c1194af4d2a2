"""The scanner screen around the simulated ultrasound image: layout presets and screen furniture.

A clinical ultrasound recording is a capture of the whole scanner screen, not just the image:
header boxes with the probe, acoustic output (MI, TIs), depth / gain / frame rate, the date and a
ticking clock; a preset panel; a grey-scale bar with depth ticks; and, while the operator has
frozen the image, a freeze indicator with a cine bar. This module describes where each of those
sits (`ScreenConfig`, in fractions of the screen so that one preset serves every size) and draws
them; `fetal_analytics.synth.render` puts the image in and encodes the video.

Boxes are ``(top, bottom, left, right)`` in pixels, half-open (``frame[top:bottom, left:right]``).
Nothing drawn here looks like a patient identifier: the only personal-looking fields are the date
and time of the scan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache

import cv2
import numpy as np

from fetal_analytics.checks import check_choice

__all__ = [
    "SCREEN_PRESETS",
    "FanGeometry",
    "ScreenConfig",
    "ScreenLayout",
    "field_boxes",
    "image_area",
    "indicator_box",
    "screen_layout",
]

Box = tuple[int, int, int, int]
FracBox = tuple[float, float, float, float]
RGB = tuple[int, int, int]

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_REFERENCE_SCALE = 0.45  # cv2 font scale at a 480-pixel-high screen: text ~12 px high


@dataclass(frozen=True)
class ScreenConfig:
    """Layout and wording of a simulated scanner screen.

    Every box is ``(top, bottom, left, right)`` as fractions of the screen height (top, bottom)
    and width (left, right), so a preset serves every video size. Colours are RGB.

    Attributes
    ----------
    name : str
        Preset name (``"voluson"``, ``"compact"``).
    brand, model : str
        Text of the logo box (a made-up brand: no real trademark).
    probe : str
        Probe name in the header.
    mi, tis : float
        Mechanical and soft-tissue thermal index shown in the header.
    indicator_text : str
        Freeze indicator wording, e.g. ``"FREEZE"`` or ``"FRZ"``.
    indicator : FracBox
        Where the freeze indicator (text and cine bar) is drawn.
    image : FracBox
        The image area: the bounding box of the sector (fan); no other furniture is drawn in it.
    header_bars : tuple of FracBox
        Filled header background rectangles.
    brand_box, probe_box, mi_box, scan_box, tis_box, date_box, clock_box : FracBox
        Text fields. `scan_box` holds ``"<depth>cm / <gain> / <NN>Hz"`` (NN: the scanner's
        frame rate, 2 or 3 digits).
    panel : FracBox
        The preset panel (several lines of text).
    panel_align : str
        ``"right"`` or ``"left"``.
    grey_bar : FracBox
        The grey-scale bar.
    ticks : FracBox
        The column of depth ticks (one per cm over the image height).
    marker : tuple of float
        ``(y, x)`` fractions of the orientation marker (a small green dot), outside `image`.
    date_format, clock_format : str
        `datetime.strftime` formats; the clock ticks once per second of video time.
    background, header_fill, text_colour, accent_colour, caliper_colour, indicator_colour : RGB
    tint : tuple of float
        Multipliers of the R, G, B channels applied to the grey image (scanners tint slightly).
    text_scale : float
        Font size relative to the reference (cv2 scale 0.45 at 480 px high, ~12 px text).
    """

    name: str = "voluson"
    brand: str = "SonoSim"
    model: str = "S8"
    probe: str = "C2-7-D/OB"
    mi: float = 0.9
    tis: float = 0.1
    indicator_text: str = "FREEZE"
    indicator: FracBox = (0.006, 0.056, 0.800, 0.990)
    image: FracBox = (0.105, 0.995, 0.12, 0.875)
    header_bars: tuple[FracBox, ...] = (
        (0.020, 0.059, 0.330, 0.600), (0.020, 0.059, 0.605, 0.690),
        (0.061, 0.099, 0.159, 0.995), (0.0, 0.098, 0.0, 0.064))
    brand_box: FracBox = (0.0, 0.098, 0.0, 0.064)
    probe_box: FracBox = (0.020, 0.059, 0.330, 0.600)
    mi_box: FracBox = (0.020, 0.059, 0.605, 0.690)
    scan_box: FracBox = (0.061, 0.099, 0.330, 0.600)
    tis_box: FracBox = (0.061, 0.099, 0.605, 0.690)
    date_box: FracBox = (0.061, 0.099, 0.735, 0.855)
    clock_box: FracBox = (0.061, 0.099, 0.860, 0.995)
    panel: FracBox = (0.105, 0.335, 0.880, 0.990)
    panel_align: str = "right"
    grey_bar: FracBox = (0.136, 0.408, 0.002, 0.013)
    ticks: FracBox = (0.105, 0.995, 0.026, 0.040)
    marker: tuple[float, float] = (0.135, 0.100)
    date_format: str = "%d.%m.%Y"
    clock_format: str = "%H:%M:%S"
    background: RGB = (0, 0, 0)
    header_fill: RGB = (44, 48, 54)
    text_colour: RGB = (236, 236, 236)
    accent_colour: RGB = (120, 120, 255)
    caliper_colour: RGB = (232, 232, 60)
    indicator_colour: RGB = (250, 250, 250)
    tint: tuple[float, float, float] = (0.93, 0.93, 1.0)
    text_scale: float = 1.0

    def __post_init__(self) -> None:
        if not self.indicator_text.strip():
            raise ValueError("ScreenConfig: indicator_text must not be empty")
        if self.panel_align not in ("left", "right"):
            raise ValueError(f"ScreenConfig: panel_align must be 'left' or 'right', "
                             f"got {self.panel_align!r}")
        for name in ("indicator", "image", "panel", "grey_bar", "ticks", "clock_box"):
            top, bottom, left, right = getattr(self, name)
            if not (0 <= top < bottom <= 1 and 0 <= left < right <= 1):
                raise ValueError(f"ScreenConfig: {name} must be (top, bottom, left, right) "
                                 f"fractions in [0, 1], got {getattr(self, name)}")
        if _overlap(self.indicator, self.image):
            raise ValueError("ScreenConfig: the freeze indicator must lie outside the image area")

    @classmethod
    def preset(cls, name: str, **changes: object) -> ScreenConfig:
        """A named layout preset, optionally with some fields changed.

        Parameters
        ----------
        name : str
            ``"voluson"`` (the default screen: header across the top, preset panel on the
            right, ``FREEZE`` at the top right above the date and clock) or ``"compact"``
            (panel on the left, ``FRZ`` at the bottom left, 12-hour clock, ISO date). The
            shipped freeze-indicator presets of the same names (``data/screen_<name>.json``,
            `inference.presets.load_indicator_preset`) find their indicators.
        **changes
            Fields to override, e.g. ``indicator_text="Frozen"``.
        """
        check_choice("preset", name, SCREEN_PRESETS)
        return replace(SCREEN_PRESETS[name], **changes)


def _overlap(a: FracBox, b: FracBox) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


SCREEN_PRESETS: dict[str, ScreenConfig] = {
    "voluson": ScreenConfig(),
    "compact": ScreenConfig(
        name="compact", brand="EchoSim", model="X5", probe="C1-6/OB", mi=1.1, tis=0.3,
        indicator_text="FRZ", indicator=(0.900, 0.985, 0.006, 0.200),
        image=(0.105, 0.990, 0.262, 0.990),
        header_bars=((0.0, 0.095, 0.0, 1.0),),
        brand_box=(0.0, 0.095, 0.004, 0.150),
        probe_box=(0.004, 0.048, 0.170, 0.420), mi_box=(0.050, 0.094, 0.170, 0.290),
        tis_box=(0.050, 0.094, 0.295, 0.420), scan_box=(0.050, 0.094, 0.430, 0.730),
        date_box=(0.004, 0.048, 0.620, 0.790), clock_box=(0.004, 0.048, 0.800, 0.995),
        panel=(0.130, 0.370, 0.006, 0.190), panel_align="left",
        grey_bar=(0.420, 0.700, 0.205, 0.218), ticks=(0.105, 0.990, 0.232, 0.248),
        marker=(0.125, 0.240), date_format="%Y-%m-%d", clock_format="%I:%M:%S %p",
        header_fill=(22, 34, 52), text_colour=(228, 232, 238), accent_colour=(90, 200, 255),
        caliper_colour=(80, 240, 120), indicator_colour=(255, 210, 60),
        tint=(1.0, 0.97, 0.92)),
}


@dataclass(frozen=True)
class FanGeometry:
    """The sector (fan) of a curved-array probe, in screen pixels.

    The fan is the annular sector between radii `r0` and `r1` around the apex ``(apex_x,
    apex_y)`` (above the screen's image area), within `half_angle` radians either side of
    straight down, clipped by the image area (its bounding box).
    """

    apex_x: float
    apex_y: float
    r0: float
    r1: float
    half_angle: float

    def mask(self, box: Box) -> np.ndarray:
        """Float32 ``(bottom - top, right - left)`` map of the fan in `box`, softened edges."""
        top, bottom, left, right = box
        ys, xs = np.mgrid[top:bottom, left:right].astype(np.float32) + 0.5
        dx, dy = xs - self.apex_x, ys - self.apex_y
        radius = np.hypot(dx, dy)
        angle = np.abs(np.arctan2(dx, dy))
        inside_r = np.clip(np.minimum(radius - self.r0, self.r1 - radius) + 0.5, 0, 1)
        inside_a = np.clip((self.half_angle - angle) * radius + 0.5, 0, 1)
        return (inside_r * inside_a).astype(np.float32)

    def polar(self, box: Box) -> tuple[np.ndarray, np.ndarray]:
        """Depth fraction (0 at the probe face, 1 at the bottom arc) and angle fraction
        (-1 at the left edge, +1 at the right edge) of every pixel of `box`, float32."""
        top, bottom, left, right = box
        ys, xs = np.mgrid[top:bottom, left:right].astype(np.float32) + 0.5
        dx, dy = xs - self.apex_x, ys - self.apex_y
        depth = (np.hypot(dx, dy) - self.r0) / (self.r1 - self.r0)
        return depth.astype(np.float32), (np.arctan2(dx, dy) / self.half_angle).astype(np.float32)


@dataclass(frozen=True)
class ScreenLayout:
    """A `ScreenConfig` resolved for one screen size: pixel boxes and the fan.

    Attributes
    ----------
    width, height : int
        Screen size in pixels.
    boxes : dict of str to Box
        ``image``, ``indicator``, ``brand``, ``probe``, ``mi``, ``scan``, ``tis``, ``date``,
        ``clock``, ``panel``, ``grey_bar``, ``ticks``, ``colour_bar``, ``marker``.
    fan : FanGeometry
    font_scale : float
        cv2 font scale of the screen text.
    line_height : int
        Pixels between lines of the preset panel.
    """

    width: int
    height: int
    boxes: dict[str, Box] = field(hash=False)
    fan: FanGeometry
    font_scale: float
    line_height: int


def _to_pixels(frac: FracBox, width: int, height: int) -> Box:
    top, bottom, left, right = frac
    return (round(top * height), round(bottom * height), round(left * width),
            round(right * width))


def _fan_for(box: Box, half_angle_deg: float = 30.0, face: float = 0.42) -> FanGeometry:
    """The fan of a curved-array probe clipped by the image area `box`.

    The probe face (the top arc, `face` of the box width wide) touches the top of the box; the
    straight sides open at `half_angle_deg` either side of straight down until they meet the
    sides of the box, which clip the fan below (as the screen edge clips a real scanner's
    sector); the far end is clipped by the bottom of the box. So the fan's bounding box is
    `box`.
    """
    top, bottom, left, right = box
    width = right - left
    a = math.radians(half_angle_deg)
    r0 = face * width / 2 / math.sin(a)
    apex_y = top - r0 * math.cos(a)
    r1 = math.hypot(width / 2, bottom - apex_y) + 1
    return FanGeometry(apex_x=(left + right) / 2, apex_y=apex_y, r0=r0, r1=r1, half_angle=a)


@lru_cache(maxsize=32)
def screen_layout(size: tuple[int, int], screen: ScreenConfig | None = None) -> ScreenLayout:
    """Resolve `screen` for a screen of `size` = ``(width, height)`` pixels."""
    screen = screen or SCREEN_PRESETS["voluson"]
    width, height = _check_size(size)
    names = {"image": screen.image, "indicator": screen.indicator, "brand": screen.brand_box,
             "probe": screen.probe_box, "mi": screen.mi_box, "scan": screen.scan_box,
             "tis": screen.tis_box, "date": screen.date_box, "clock": screen.clock_box,
             "panel": screen.panel, "grey_bar": screen.grey_bar, "ticks": screen.ticks}
    boxes = {name: _to_pixels(frac, width, height) for name, frac in names.items()}
    gt, gb, gl, gr = boxes["grey_bar"]
    bar_height = gb - gt
    boxes["colour_bar"] = (min(height - 1, gb + bar_height // 8),
                           min(height, gb + bar_height // 8 + bar_height // 2), gl, gr)
    my, mx = screen.marker
    radius = max(2, round(0.011 * height))
    boxes["marker"] = (round(my * height) - radius, round(my * height) + radius + 1,
                       round(mx * width) - radius, round(mx * width) + radius + 1)
    font_scale = _FONT_REFERENCE_SCALE * screen.text_scale * height / 480
    line_height = max(3, round(0.031 * height * screen.text_scale))
    return ScreenLayout(width, height, boxes, _fan_for(boxes["image"]), font_scale, line_height)


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (width, height), got {size!r}") from None
    if width < 96 or height < 72 or width % 2 or height % 2:
        raise ValueError(f"size must be even and at least 96x72 (H.264 yuv420p), got {size!r}")
    return width, height


def image_area(size: tuple[int, int], screen: ScreenConfig | None = None
               ) -> tuple[int, int, int, int]:
    """The true image area of the simulated screen: the ultrasound image region.

    It is the bounding box of the fan; no screen furniture (text, bars, panels, indicator) is
    drawn inside it, only the image and, while frozen, measurement calipers and their text.

    Parameters
    ----------
    size : (int, int)
        Screen ``(width, height)`` in pixels.
    screen : ScreenConfig, optional
        Default: the ``voluson`` preset.

    Returns
    -------
    (top, bottom, left, right) : tuple of int
        Pixel box, half-open: ``frame[top:bottom, left:right]``.
    """
    return screen_layout(tuple(size), screen).boxes["image"]


def indicator_box(size: tuple[int, int], screen: ScreenConfig | None = None
                  ) -> tuple[int, int, int, int]:
    """Where the freeze indicator (text and cine bar) is drawn while the image is frozen.

    Outside freezes the box shows the plain screen background.

    Returns
    -------
    (top, bottom, left, right) : tuple of int
        Pixel box, half-open.
    """
    return screen_layout(tuple(size), screen).boxes["indicator"]


def field_boxes(size: tuple[int, int], screen: ScreenConfig | None = None
                ) -> dict[str, tuple[int, int, int, int]]:
    """Pixel boxes of every screen element, for tests and OCR of the screen text.

    Keys: ``image``, ``indicator``, ``brand``, ``probe``, ``mi``, ``scan`` (``"12.0cm / 1.9 /
    49Hz"``), ``tis``, ``date``, ``clock``, ``panel``, ``grey_bar``, ``ticks``, ``colour_bar``,
    ``marker``. Boxes are ``(top, bottom, left, right)``, half-open.
    """
    return dict(screen_layout(tuple(size), screen).boxes)


# ----------------------------------------------------------------------------- drawing


def _text_block(lines: list[tuple[str, RGB]], box: Box, layout: ScreenLayout, *, fill: RGB,
                align: str = "centre", valign: str = "centre", bold: bool = False
                ) -> np.ndarray:
    """An RGB patch of `box` filled with `fill` and the text `lines` in it."""
    top, bottom, left, right = box
    patch = np.empty((bottom - top, right - left, 3), np.uint8)
    patch[:] = fill
    scale = layout.font_scale * (1.1 if bold else 1.0)
    thickness = 2 if bold and layout.height >= 360 else 1
    y = None
    for row, (text, colour) in enumerate(lines):
        if not text:
            continue
        (w, h), _ = cv2.getTextSize(text, _FONT, scale, thickness)
        fit = scale
        if w > patch.shape[1] - 2:  # shrink a field that does not fit
            fit = scale * (patch.shape[1] - 2) / w
            (w, h), _ = cv2.getTextSize(text, _FONT, fit, thickness)
        if valign == "centre" and len(lines) == 1:
            y = (patch.shape[0] + h) // 2
        else:
            y = round(layout.line_height * (row + 0.5) + h / 2) + 1
        if align == "centre":
            x = (patch.shape[1] - w) // 2
        elif align == "right":
            x = patch.shape[1] - w - 2
        else:
            x = 2
        x = max(0, x)
        cv2.putText(patch, text, (x, y), _FONT, fit, colour, thickness, cv2.LINE_AA)
    return patch


def draw_base(layout: ScreenLayout, screen: ScreenConfig) -> np.ndarray:
    """The static screen: background, header boxes, brand, probe, MI, TIs, grey bar, marker.

    Returns
    -------
    (height, width, 3) uint8 ndarray, RGB
    """
    frame = np.empty((layout.height, layout.width, 3), np.uint8)
    frame[:] = screen.background
    for bar in screen.header_bars:
        top, bottom, left, right = _to_pixels(bar, layout.width, layout.height)
        frame[top:bottom, left:right] = screen.header_fill
    b = layout.boxes
    fill = screen.header_fill
    if screen.name == "voluson":
        brand = [(screen.brand, screen.text_colour), (screen.model, screen.text_colour)]
        paste(frame, b["brand"], _text_block(brand, b["brand"], layout, fill=fill,
                                             valign="top"))
    else:
        paste(frame, b["brand"], _text_block([(f"{screen.brand} {screen.model}",
                                               screen.accent_colour)], b["brand"], layout,
                                             fill=fill))
    for name, text in (("probe", screen.probe), ("mi", f"MI {screen.mi:.1f}"),
                       ("tis", f"TIs {screen.tis:.1f}")):
        paste(frame, b[name], _text_block([(text, screen.text_colour)], b[name], layout,
                                          fill=fill))
    top, bottom, left, right = b["grey_bar"]
    ramp = np.linspace(255, 0, bottom - top, dtype=np.float32)[:, None, None]
    frame[top:bottom, left:right] = (ramp * np.array(screen.tint, np.float32)).astype(np.uint8)
    top, bottom, left, right = b["marker"]
    cy, cx = (top + bottom) // 2, (left + right) // 2
    cv2.circle(frame, (cx, cy), max(1, (bottom - top) // 2), (40, 200, 60), -1, cv2.LINE_AA)
    return frame


def paste(frame: np.ndarray, box: Box, patch: np.ndarray) -> None:
    """Copy `patch` into `frame` at `box` (shapes must agree)."""
    top, bottom, left, right = box
    frame[top:bottom, left:right] = patch


def background_patch(base: np.ndarray, box: Box) -> np.ndarray:
    """The base screen's pixels under `box` (a copy), to erase a patch."""
    top, bottom, left, right = box
    return base[top:bottom, left:right].copy()


def text_patch(text: str, box: Box, layout: ScreenLayout, screen: ScreenConfig) -> np.ndarray:
    """A header field (`scan`, `date`, `clock`) with `text` centred on the header colour."""
    return _text_block([(text, screen.text_colour)], box, layout, fill=screen.header_fill)


def panel_patch(lines: tuple[str, ...], layout: ScreenLayout, screen: ScreenConfig
                ) -> np.ndarray:
    """The preset panel: `lines` in the text colour, the last one in the accent colour."""
    coloured = [(line, screen.accent_colour if i == len(lines) - 1 else screen.text_colour)
                for i, line in enumerate(lines)]
    return _text_block(coloured, layout.boxes["panel"], layout, fill=screen.background,
                       align=screen.panel_align, valign="top")


def ticks_patch(depth_cm: float, layout: ScreenLayout, screen: ScreenConfig,
                base: np.ndarray) -> np.ndarray:
    """The depth scale: one tick per cm over the image height, a longer one every 5 cm."""
    box = layout.boxes["ticks"]
    patch = background_patch(base, box)
    height, width = patch.shape[:2]
    image_top, image_bottom = layout.boxes["image"][:2]
    pixels_per_cm = (image_bottom - image_top) / depth_cm
    offset = image_top - box[0]
    for cm in range(int(depth_cm) + 1):
        y = round(offset + cm * pixels_per_cm)
        if 0 <= y < height:
            length = width if cm % 5 == 0 else max(1, width // 2)
            patch[y, :length] = (200, 200, 200) if cm % 5 == 0 else (150, 150, 150)
    # the focal zone marker, a small triangle at about 60 % depth
    y = round(offset + 0.6 * (image_bottom - image_top))
    size = max(2, width // 3)
    pts = np.array([[width - 1, y], [width - 1 - size, y - size], [width - 1 - size, y + size]],
                   np.int32)
    cv2.fillPoly(patch, [pts], (230, 230, 80))
    return patch


def colour_bar_patch(layout: ScreenLayout, base: np.ndarray) -> np.ndarray:
    """The colour Doppler scale (red over blue), shown while colour flow is on."""
    box = layout.boxes["colour_bar"]
    patch = background_patch(base, box)
    height = patch.shape[0]
    if height < 2:
        return patch
    ramp = np.linspace(1, -1, height, dtype=np.float32)
    colours = doppler_lut()[np.clip(np.round(128 + 127 * ramp), 0, 255).astype(np.uint8)]
    patch[:] = colours[:, None, :]
    return patch


def indicator_patch(fill: float, layout: ScreenLayout, screen: ScreenConfig,
                    base: np.ndarray) -> np.ndarray:
    """The freeze indicator: the configured text (bold) over a thin cine bar filled to `fill`
    (0-1), kept apart so that OCR reads the text alone."""
    box = layout.boxes["indicator"]
    patch = background_patch(base, box)
    height, width = patch.shape[:2]
    text_h = max(1, round(height * 0.7))
    text_box = (0, text_h, 0, width)
    patch[:text_h] = _text_block([(screen.indicator_text, screen.indicator_colour)], text_box,
                                 layout, fill=screen.background, bold=True)
    y0 = min(height - 1, round(height * 0.8))
    y1 = min(height, max(y0 + 2, round(height * 0.92)))
    x0, x1 = round(width * 0.08), round(width * 0.92)
    if x1 > x0 + 1:
        patch[y0:y1, x0:x1] = (70, 70, 70)
        xf = x0 + round((x1 - x0) * float(np.clip(fill, 0, 1)))
        patch[y0:y1, x0:xf] = (120, 160, 220)
    return patch


@lru_cache(maxsize=1)
def doppler_lut() -> np.ndarray:
    """(256, 3) uint8 RGB colour-flow map: index 128 = no flow, above red-yellow (towards the
    probe), below blue-cyan (away)."""
    v = (np.arange(256, dtype=np.float32) - 128) / 127
    lut = np.zeros((256, 3), np.float32)
    pos, neg = np.clip(v, 0, 1), np.clip(-v, 0, 1)
    lut[:, 0] = 90 + 165 * np.sqrt(pos)
    lut[:, 1] = 230 * pos ** 2.2 + 200 * neg ** 2.2
    lut[:, 2] = 90 + 165 * np.sqrt(neg)
    lut[:, 0] *= pos > 0
    lut[:, 2] *= neg > 0
    return np.clip(lut, 0, 255).astype(np.uint8)


def format_clock(acquired_at: datetime, seconds: int, screen: ScreenConfig) -> str:
    """The clock text `seconds` after `acquired_at`."""
    from datetime import timedelta

    return (acquired_at + timedelta(seconds=seconds)).strftime(screen.clock_format)
