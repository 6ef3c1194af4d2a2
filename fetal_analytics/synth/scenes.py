"""What the simulated probe sees: one scene per taxonomy class, moving over time.

A scene draws the echogenicity of the anatomy (before speckle) at reduced resolution on a canvas
a little larger than the view, moves it with the probe (slow pan, rotation, depth changes) and
animates what moves by itself (the beating heart, pulsatile flow, a rotating 3D rendering). The
renderer (`fetal_analytics.synth.render`) upscales the view, multiplies it with speckle, masks it
to the fan and draws the screen around it.

Content follows what makes the classes confusable and separable in Sharma et al. (ISBI 2019):
abdomen (Ab), kidneys (Ki) and heart (HeD) are all a round cross-section of the same size and
brightness, and only the heart beats (2-2.5 Hz) and shows colour Doppler part of the time; 3D mode
(3Dm) is a warm-coloured rendered surface, usually rotating; background search (Bk) is fast
probe motion through changing content; maternal anatomy (MaD) shows placenta and vessels with
Doppler; brain (Br) a skull ellipse with a midline; spine (Sp) a chain of bright vertebrae; femur
(Fm) a bright straight bone; nose and lips (NL) a close-up, face (Fa) a side profile. The rarer
classes reuse these (limbs for Fe/Ha/Ar/Le, a cross-section for Um/BlD, and so on).

Units: positions are in *view widths* (x from 0 at the left to 1 at the right of the image area,
y from 0 at the top down to ``aspect = height / width``); times in seconds from the start of the
event; depths in cm.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Calipers", "HeaderState", "Scene", "make_scene", "scene_kind"]

FLUID, SOFT, ORGAN, BRIGHT, BONE = 0.06, 0.36, 0.42, 0.85, 1.15
_SHIFT = 4  # fixed-point bits for cv2 drawing: sub-pixel motion of what is drawn per frame
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class HeaderState:
    """What the screen header shows for a scene at one moment.

    Attributes
    ----------
    depth_cm : float
        Imaging depth, one decimal.
    gain : float
        Gain setting, one decimal.
    hz : int
        The scanner's frame rate (2 or 3 digits): higher for shallow and narrow cardiac imaging,
        lower with colour Doppler and in 3D.
    preset : tuple of str
        Lines of the preset panel.
    doppler : bool
        Colour Doppler on.
    depth_ticks : float
        Depth shown by the tick scale (the depth, not rounded).
    """

    depth_cm: float
    gain: float
    hz: int
    preset: tuple[str, ...]
    doppler: bool
    depth_ticks: float


@dataclass(frozen=True)
class Calipers:
    """A measurement drawn at the start of a freeze.

    Attributes
    ----------
    segments : tuple of ((x, y), (x, y))
        Caliper pairs, canvas pixels (the renderer maps them to the screen).
    ellipse : ((cx, cy), (ax, ay), angle_deg) or None
        A dotted circumference (HC, AC) in canvas pixels.
    text : tuple of str
        The measurement box, e.g. ``("HC 17.3cm", "GA 20w1d")``.
    """

    segments: tuple[tuple[tuple[float, float], tuple[float, float]], ...]
    ellipse: tuple[tuple[float, float], tuple[float, float], float] | None
    text: tuple[str, ...]


class Canvas:
    """Geometry of the low-resolution drawing canvas: the view plus a margin on every side.

    Parameters
    ----------
    view_shape : (int, int)
        ``(height, width)`` of the low-resolution view in pixels.
    margin : float
        Margin as a fraction of the view, each side (room for pan, rotation and zoom-out).
    """

    def __init__(self, view_shape: tuple[int, int], margin: float = 0.25) -> None:
        self.hv, self.wv = view_shape
        self.mx, self.my = round(margin * self.wv), round(margin * self.hv)
        self.shape = (self.hv + 2 * self.my, self.wv + 2 * self.mx)
        self.aspect = self.hv / self.wv
        ys, xs = np.mgrid[0:self.shape[0], 0:self.shape[1]].astype(np.float32)
        self.x = (xs - self.mx) / self.wv
        self.y = (ys - self.my) / self.wv

    def px(self, x: float, y: float) -> tuple[float, float]:
        """Canvas pixel of view point ``(x, y)`` (view widths)."""
        return self.mx + x * self.wv, self.my + y * self.wv

    def fixed(self, x: float, y: float) -> tuple[int, int]:
        """Fixed-point canvas pixel (for cv2 drawing with ``shift=_SHIFT``)."""
        px, py = self.px(x, y)
        return round(px * _ONE), round(py * _ONE)

    def length(self, value: float) -> float:
        """Pixels of a length in view widths."""
        return value * self.wv

    def ellipse(self, img: np.ndarray, centre: tuple[float, float], axes: tuple[float, float],
                angle: float, value: float, thickness: float = -1,
                arc: tuple[float, float] = (0, 360)) -> None:
        """Draw an ellipse (view-width units; thickness in view widths, -1 filled)."""
        ax = max(1, round(self.length(axes[0]) * _ONE))
        ay = max(1, round(self.length(axes[1]) * _ONE))
        t = -1 if thickness < 0 else max(1, round(self.length(thickness)))
        cv2.ellipse(img, self.fixed(*centre), (ax, ay), angle, arc[0], arc[1], float(value), t,
                    cv2.LINE_8, _SHIFT)

    def line(self, img: np.ndarray, a: tuple[float, float], b: tuple[float, float], value: float,
             thickness: float) -> None:
        cv2.line(img, self.fixed(*a), self.fixed(*b), float(value),
                 max(1, round(self.length(thickness))), cv2.LINE_8, _SHIFT)

    def polyline(self, img: np.ndarray, points: np.ndarray, value: float, thickness: float,
                 closed: bool = False) -> None:
        pts = np.round((np.asarray(points) * self.wv + [self.mx, self.my]) * _ONE).astype(np.int32)
        cv2.polylines(img, [pts], closed, float(value), max(1, round(self.length(thickness))),
                      cv2.LINE_8, _SHIFT)

    def fill(self, img: np.ndarray, points: np.ndarray, value: float) -> None:
        pts = np.round((np.asarray(points) * self.wv + [self.mx, self.my]) * _ONE).astype(np.int32)
        cv2.fillPoly(img, [pts], float(value), cv2.LINE_8, _SHIFT)


# ----------------------------------------------------------------------------- helpers


def _noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Smooth Gaussian noise, zero mean, unit SD, correlation length `sigma` pixels.

    Smooth fields are drawn on a coarser grid and upscaled (the same statistics, far cheaper).
    """
    factor = max(1.0, sigma / 1.5)
    small = (max(2, round(shape[0] / factor)), max(2, round(shape[1] / factor)))
    field = rng.standard_normal(small, dtype=np.float32)
    if sigma / factor > 0.3:
        field = cv2.GaussianBlur(field, (0, 0), sigma / factor)
    if small != tuple(shape):
        field = cv2.resize(field, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    field -= float(field.mean())
    sd = float(field.std()) or 1.0
    return field / sd


def _texture(img: np.ndarray, rng: np.random.Generator, cv: Canvas, amount: float = 0.3,
             scale: float = 0.03) -> None:
    """Multiply `img` in place by a smooth random texture (heterogeneous echogenicity)."""
    img *= np.clip(1 + amount * _noise(rng, img.shape, cv.length(scale)), 0.2, 2.0)


def _shadow(img: np.ndarray, bone: np.ndarray, strength: float = 0.35) -> np.ndarray:
    """Acoustic shadows below bright bone (beams run roughly down the canvas).

    `bone` is a 0-1 map; every pixel of bone above a point attenuates it by ``exp(-strength)``.
    """
    above = np.maximum(np.cumsum(bone, axis=0) - bone, 0)
    shade = cv2.GaussianBlur(np.exp(-strength * above).astype(np.float32), (0, 0), 1.5)
    return img * (0.2 + 0.8 * shade)


def _schedule(rng: np.random.Generator, mean_gap: float, horizon: float = 3600.0
              ) -> list[float]:
    """Times of random changes (exponential gaps), up to `horizon` seconds."""
    times, t = [], 0.0
    while True:
        t += float(rng.exponential(mean_gap))
        if t > horizon:
            return times
        times.append(t)


def _smoothstep(x: np.ndarray | float) -> np.ndarray | float:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _wall_layers(rng: np.random.Generator, cv: Canvas, d: np.ndarray, wall: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The maternal abdominal wall: skin, fat, muscle and fascia layers following the probe
    face, `d` view widths below it, `wall` thick. Returns the layers and where they are."""
    layers = np.full(cv.shape, FLUID, np.float32)
    tissue = d < wall
    layers[tissue] = SOFT * 0.75
    fat = (d > 0.03 * wall) & (d < 0.3 * wall)
    layers[fat] = 0.2
    wobble = _noise(rng, cv.shape, cv.length(0.06))
    stripes = 0.5 + 0.5 * np.sin(d / wall * float(rng.uniform(25, 40)) + 2 * wobble)
    layers[tissue] *= (0.65 + 0.55 * stripes[tissue])
    for depth, width, value in ((0.0, 0.006, 0.8), (0.3, 0.005, 0.62), (0.52, 0.004, 0.55),
                                (0.7, 0.007, 0.7), (0.97, 0.007, 0.6)):
        band = np.abs(d - (depth + 0.03 * wobble) * wall) < width
        layers[band] = value
    layers *= np.clip(1 + 0.2 * _noise(rng, cv.shape, cv.length(0.01)), 0.5, 1.5)
    return layers, d < wall * (1 + 0.05 * wobble)


class Motion:
    """Smooth probe motion: pan, rotation and small zoom as sums of slow sinusoids.

    Parameters
    ----------
    rng : numpy.random.Generator
    pan : float
        Pan amplitude, view widths.
    rotation : float
        Rotation amplitude, degrees.
    speed : float
        Multiplier of the sinusoids' frequencies (1: periods of 3-10 s).
    velocity : (float, float)
        Constant drift, view widths per second (fast background search).
    """

    def __init__(self, rng: np.random.Generator, *, pan: float = 0.03, rotation: float = 3.0,
                 speed: float = 1.0, velocity: tuple[float, float] = (0.0, 0.0)) -> None:
        self.freq = rng.uniform(1 / 10, 1 / 3, size=(3, 2)) * speed
        self.phase = rng.uniform(0, 2 * math.pi, size=(3, 2))
        self.amp = np.array([pan, pan * 0.6, rotation]) * rng.uniform(0.6, 1.0, 3)
        self.velocity = velocity

    def at(self, t: float) -> tuple[float, float, float]:
        """Pan x, pan y (view widths) and rotation (degrees) at time `t`."""
        s = np.sin(2 * math.pi * self.freq * t + self.phase).sum(axis=1) / 2
        return (float(self.amp[0] * s[0] + self.velocity[0] * t),
                float(self.amp[1] * s[1] + self.velocity[1] * t), float(self.amp[2] * s[2]))


# ----------------------------------------------------------------------------- scenes


class Scene:
    """One event's content over time.

    Subclasses fill `static` (the echogenicity canvas) in `build` and may override `animate`
    (draw what moves), `flow` (colour Doppler velocities) and `calipers`.

    Parameters
    ----------
    code : str
        Taxonomy code.
    rng : numpy.random.Generator
        The event's own generator (all of the scene's randomness).
    view_shape : (int, int)
        ``(height, width)`` of the low-resolution view.
    probe : (float, float, float)
        Fan apex ``(x, y)`` and radius of the probe face, in view widths.

    Attributes
    ----------
    kind : str
        ``"2d"`` or ``"3d"``.
    """

    kind = "2d"
    preset = ("Routine", "Har-mid", "Pwr 89 %", "C6 / M7", "P3 / E3", "SRI II 3")
    depth_range = (10.0, 13.0)
    hz_factor = 1.0
    doppler_share = 0.0
    pan, rotation, speed = 0.03, 3.0, 1.0
    margin = 0.25
    wrap = False

    def __init__(self, code: str, rng: np.random.Generator, view_shape: tuple[int, int],
                 probe: tuple[float, float, float]) -> None:
        self.code = code
        self.rng = rng
        self.cv = Canvas(view_shape, self.margin)
        self.apex = probe[:2]
        self.face = probe[2]
        self.depth0 = float(rng.uniform(*self.depth_range))
        self.nominal_depth = sum(self.depth_range) / 2
        self.motion = self._motion()
        self.depth_steps = self._steps(45.0, lambda: float(rng.choice([-1.5, -1.0, 1.0, 1.5])))
        self.gain0 = round(float(rng.uniform(1.4, 2.2)), 1)
        self.gain_steps = self._steps(20.0, lambda: float(rng.choice([-0.3, -0.2, 0.2, 0.3])))
        self.doppler_windows = self._doppler_windows()
        self.static = np.full(self.cv.shape, FLUID, np.float32)
        self.bone = np.zeros(self.cv.shape, np.float32)
        self.flow_static: np.ndarray | None = None
        self.build()
        self.static = self.static.astype(np.float32)
        self._caliper_seed = int(rng.integers(2**31))

    @property
    def caliper_rng(self) -> np.random.Generator:
        """The same generator at every call: a scene measures the same at every freeze."""
        return np.random.default_rng(self._caliper_seed)

    # -- set-up ---------------------------------------------------------------------------

    def _motion(self) -> Motion:
        return Motion(self.rng, pan=self.pan, rotation=self.rotation, speed=self.speed)

    def _steps(self, mean_gap: float, draw: Callable[[], float]) -> list[tuple[float, float]]:
        return [(t, draw()) for t in _schedule(self.rng, mean_gap, 900.0)]

    def _doppler_windows(self) -> list[tuple[float, float]]:
        """Alternating off/on spans with the on share about `doppler_share`."""
        if self.doppler_share <= 0:
            return []
        windows, t = [], 0.0
        on = bool(self.rng.random() < self.doppler_share)
        while t < 900.0:
            mean = 4.0 * (self.doppler_share if on else 1 - self.doppler_share) / 0.5
            span = float(self.rng.uniform(0.5, 1.5) * mean)
            if on:
                windows.append((t, t + span))
            t += span
            on = not on
        return windows

    def build(self) -> None:
        """Draw `static` (and `bone`, used for shadows)."""

    # -- over time --------------------------------------------------------------------------

    def _value_at(self, base: float, steps: list[tuple[float, float]], t: float,
                  ramp: float = 0.0) -> float:
        value = base
        for when, delta in steps:
            if when > t:
                break
            value += delta * (_smoothstep((t - when) / ramp) if ramp > 0 else 1.0)
        return value

    def depth_at(self, t: float, *, smooth: bool = False) -> float:
        value = self._value_at(self.depth0, self.depth_steps, t, 0.4 if smooth else 0.0)
        low, high = self.depth_range
        return float(np.clip(value, low - 2.0, high + 2.0))

    def gain_at(self, t: float, *, smooth: bool = False) -> float:
        value = self._value_at(self.gain0, self.gain_steps, t, 0.3 if smooth else 0.0)
        return float(np.clip(value, 0.8, 2.8))

    def doppler_at(self, t: float) -> bool:
        return any(a <= t < b for a, b in self.doppler_windows)

    def brightness(self, t: float) -> float:
        """Overall brightness factor from the gain setting."""
        return 0.72 + 0.17 * self.gain_at(t, smooth=True)

    def header(self, t: float) -> HeaderState:
        depth = self.depth_at(t)
        doppler = self.doppler_at(t)
        hz = 590.0 / depth * self.hz_factor * (0.45 if doppler else 1.0)
        preset = (*self.preset[:3], f"Gn {round(10 * (self.gain_at(t) - 1.7)):d}",
                  *self.preset[3:])
        return HeaderState(round(depth, 1), round(self.gain_at(t), 1),
                           int(np.clip(round(hz), 12, 199)), preset, doppler, depth)

    def transform(self, t: float) -> np.ndarray:
        """2x3 affine map from canvas pixels to low-resolution view pixels at time `t`."""
        dx, dy, angle = self.motion.at(t)
        zoom = self.nominal_depth / self.depth_at(t, smooth=True)
        cv = self.cv
        centre = (cv.mx + 0.5 * cv.wv, cv.my + (self.apex[1] + self.face) * cv.wv)
        m = cv2.getRotationMatrix2D(centre, angle, zoom)
        m[0, 2] += -cv.mx + dx * cv.wv
        m[1, 2] += -cv.my + dy * cv.wv
        if self.wrap:
            m[0, 2] %= cv.shape[1]
            m[1, 2] %= cv.shape[0]
        return m

    def animate(self, t: float) -> np.ndarray:
        """The canvas at time `t` (default: the static canvas)."""
        return self.static

    def flow(self, t: float) -> np.ndarray | None:
        """Colour Doppler velocities on the canvas in [-1, 1] (+ towards the probe), or None."""
        return None

    def echo(self, t: float) -> tuple[np.ndarray, np.ndarray | None]:
        """Echogenicity and colour flow of the low-resolution view at time `t`.

        Returns
        -------
        echo : (hv, wv) float32 ndarray
            Roughly 0 (fluid) to 1.2 (bone), gain applied.
        flow : (hv, wv) float32 ndarray or None
            Velocities in [-1, 1] while colour Doppler is on.
        """
        m = self.transform(t)
        size = (self.cv.wv, self.cv.hv)
        border = cv2.BORDER_WRAP if self.wrap else cv2.BORDER_REFLECT
        echo = cv2.warpAffine(self.animate(t), m, size, flags=cv2.INTER_LINEAR,
                              borderMode=border)
        echo *= self.brightness(t)
        flow = None
        if self.doppler_at(t):
            canvas_flow = self.flow(t)
            if canvas_flow is not None:
                flow = cv2.warpAffine(canvas_flow, m, size, flags=cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_CONSTANT)
        return echo, flow

    def pan_pixels(self, t: float) -> tuple[float, float]:
        """The probe's pan at `t`, view widths (the renderer moves speckle with it)."""
        dx, dy, _ = self.motion.at(t)
        return dx, dy

    def calipers(self) -> Calipers:
        """The measurement drawn when a freeze of this scene has calipers (default: a
        distance across the middle of the view)."""
        cv = self.cv
        y = 0.55 * cv.aspect
        length = float(self.caliper_rng.uniform(0.12, 0.22))
        p, q = (0.5 - length / 2, y), (0.5 + length / 2, y)
        cm = float(self.caliper_rng.uniform(0.8, 2.5))
        return Calipers(((cv.px(*p), cv.px(*q)),), None, (f"D1 {cm:.2f}cm",))

    @property
    def doppler_roi(self) -> tuple[float, float, float, float]:
        """Colour box as (angle_low, angle_high, depth_low, depth_high) fan fractions."""
        return (-0.45, 0.45, 0.2, 0.85)

    # -- common anatomy -----------------------------------------------------------------------

    def womb(self, wall: float | None = None, *, floor: bool = True) -> None:
        """Maternal abdominal wall and uterus at the top (layers following the probe face),
        amniotic fluid below, the posterior uterine wall deep down and, in some scenes, the
        placenta on the anterior or posterior wall."""
        cv, rng = self.cv, self.rng
        ax, ay = self.apex
        d = np.hypot(cv.x - ax, cv.y - ay) - self.face
        wall = wall if wall is not None else float(rng.uniform(0.10, 0.17))
        layers, inside = _wall_layers(rng, cv, d, wall)
        self.static = np.where(inside, layers, self.static)
        wobble = _noise(rng, cv.shape, cv.length(0.06))
        self.wall = wall
        self.floor_depth = float(rng.uniform(0.7, 0.92)) * cv.aspect
        if floor:
            tilt = float(rng.uniform(-0.25, 0.25))
            edge = self.floor_depth + tilt * (cv.x - 0.5) + 0.02 * wobble
            deep = d > edge
            myometrium = 0.34 * np.clip(1 + 0.4 * _noise(rng, cv.shape, cv.length(0.015)), 0.3, 2)
            self.static = np.where(deep, myometrium, self.static)
            self.static[np.abs(d - edge) < 0.006] = 0.6
        placenta = rng.random()
        if placenta < 0.35:
            self.placenta_band(d, wall, float(rng.uniform(0.08, 0.14)))
        elif placenta < 0.6 and floor:
            thickness = float(rng.uniform(0.08, 0.13))
            self.placenta_band(d, self.floor_depth - thickness, thickness)

    def placenta_band(self, d: np.ndarray, start: float, thickness: float) -> None:
        """A granular placenta between depths `start` and `start + thickness` (view widths
        from the probe face), with dark venous lakes and a bright chorionic plate."""
        cv = self.cv
        band = (d > start) & (d < start + thickness)
        granular = 0.42 * np.clip(1 + 0.25 * _noise(self.rng, cv.shape, cv.length(0.01)), 0.5,
                                  1.5)
        granular[_noise(self.rng, cv.shape, cv.length(0.02)) > 2.3] = 0.1
        self.static = np.where(band, granular, self.static)
        plate = start if start > self.wall + 0.01 else start + thickness
        self.static[np.abs(d - plate) < 0.005] = 0.8

    def tissue_blob(self, centre: tuple[float, float], axes: tuple[float, float], angle: float,
                    value: float = SOFT, texture: float = 0.35) -> None:
        layer = np.zeros(self.cv.shape, np.float32)
        self.cv.ellipse(layer, centre, axes, angle, 1.0)
        layer = cv2.GaussianBlur(layer, (0, 0), 1.2)
        tex = np.clip(1 + texture * _noise(self.rng, self.cv.shape, self.cv.length(0.02)), 0.3, 2)
        self.static = self.static * (1 - layer) + value * tex * layer

    def body_section(self, centre: tuple[float, float], radius: float, angle: float, *,
                     ribs: bool, spine_angle: float) -> None:
        """A round fetal cross-section (thorax or abdomen): skin, tissue, spine, ribs."""
        cv = self.cv
        ecc = 0.92
        self.tissue_blob(centre, (radius, radius * ecc), angle, ORGAN, 0.3)
        cv.ellipse(self.static, centre, (radius, radius * ecc), angle, BRIGHT * 0.85, 0.008)
        sx = centre[0] + 0.74 * radius * math.cos(spine_angle)
        sy = centre[1] + 0.74 * radius * ecc * math.sin(spine_angle)
        perp = spine_angle + math.pi / 2
        for k, (along, across) in enumerate(((0.0, 0.0), (0.12, 0.11), (0.12, -0.11))):
            px = sx + radius * (along * math.cos(spine_angle) + across * math.cos(perp))
            py = sy + radius * (along * math.sin(spine_angle) + across * math.sin(perp))
            size = 0.07 * radius if k == 0 else 0.045 * radius
            cv.ellipse(self.static, (px, py), (size, size), 0, BONE)
            cv.ellipse(self.bone, (px, py), (size, size), 0, 1.0)
        if ribs:
            for k in range(-3, 4):
                a = math.degrees(spine_angle) + 40 * k
                if abs(k) == 0:
                    continue
                cv.ellipse(self.static, centre, (radius * 0.97, radius * ecc * 0.97), 0,
                           BONE * 0.9, 0.012, (a - 7, a + 7))
                cv.ellipse(self.bone, centre, (radius * 0.97, radius * ecc * 0.97), 0, 0.7,
                           0.012, (a - 7, a + 7))

    def finish(self, shadows: bool = True, texture: float = 0.25) -> None:
        if shadows and self.bone.any():
            self.static = _shadow(self.static, cv2.GaussianBlur(self.bone, (0, 0), 1.0))
        if texture:
            _texture(self.static, self.rng, self.cv, texture, 0.015)
        self.static = cv2.GaussianBlur(self.static, (0, 0), 0.7)

    def limbs_around(self, n: int, avoid: tuple[float, float], radius: float) -> None:
        """A few out-of-plane fetal parts (limbs, cord) floating in the fluid."""
        rng, cv = self.rng, self.cv
        for _ in range(n):
            for _try in range(10):
                x, y = rng.uniform(0.1, 0.9), rng.uniform(0.3, cv.aspect - 0.05)
                if math.hypot(x - avoid[0], y - avoid[1]) > radius + 0.12:
                    break
            length = rng.uniform(0.05, 0.12)
            self.tissue_blob((x, y), (length, length * 0.45), rng.uniform(0, 180), SOFT, 0.3)
            if rng.random() < 0.5:
                angle = rng.uniform(0, math.pi)
                a = (x - 0.6 * length * math.cos(angle), y - 0.6 * length * math.sin(angle))
                b = (x + 0.6 * length * math.cos(angle), y + 0.6 * length * math.sin(angle))
                cv.line(self.static, a, b, BONE * 0.9, 0.008)
                cv.line(self.bone, a, b, 0.8, 0.008)


class HeartScene(Scene):
    """Fetal thorax with a four-chamber heart beating at 2-2.5 Hz; colour Doppler part of the
    time (red inflow in diastole, blue outflow in systole)."""

    preset = ("Cardiac", "Har-low", "Pwr 93 %", "C8 / M7", "E2", "SRI 5 / CRI 1")
    depth_range = (7.0, 10.0)
    hz_factor = 1.55
    doppler_share = 0.45
    pan, rotation = 0.02, 4.0

    def build(self) -> None:
        rng, cv = self.rng, self.cv
        self.womb()
        self.rate_hz = float(rng.uniform(2.0, 2.5))
        self.phase0 = float(rng.uniform(0, 1))
        self.centre = (float(rng.uniform(0.44, 0.56)), float(rng.uniform(0.52, 0.6)) * cv.aspect
                       / 0.88)
        self.radius = float(rng.uniform(0.2, 0.23))
        spine = float(rng.uniform(0.3, 2.8))
        self.body_section(self.centre, self.radius, 0.0, ribs=True, spine_angle=spine)
        # lungs: brighter, homogeneous; the heart sits anterior (opposite the spine)
        heart_dir = spine + math.pi + float(rng.uniform(-0.35, 0.35))
        self.heart_c = (self.centre[0] + 0.22 * self.radius * math.cos(heart_dir),
                        self.centre[1] + 0.22 * self.radius * math.sin(heart_dir))
        self.heart_r = 0.56 * self.radius
        self.axis = math.degrees(heart_dir) + float(rng.uniform(25, 45))
        self.limbs_around(2, self.centre, self.radius)
        self.finish()
        # myocardium disc drawn under the chambers
        cv.ellipse(self.static, self.heart_c, (self.heart_r, self.heart_r * 0.82), self.axis,
                   0.62)
        x0, y0 = cv.px(self.heart_c[0] - 1.3 * self.heart_r, self.heart_c[1] - 1.3 * self.heart_r)
        x1, y1 = cv.px(self.heart_c[0] + 1.3 * self.heart_r, self.heart_c[1] + 1.3 * self.heart_r)
        self.roi = (max(0, int(y0)), min(cv.shape[0], int(y1) + 1), max(0, int(x0)),
                    min(cv.shape[1], int(x1) + 1))
        self.flow_canvas = np.zeros(cv.shape, np.float32)

    def _phase(self, t: float) -> tuple[float, float]:
        """Ventricular contraction (systole, a smooth cycle at the heart rate) and atrial
        contraction (late diastole), 0-1."""
        cycle = (t * self.rate_hz + self.phase0) % 1.0
        systole = 0.5 - 0.5 * math.cos(2 * math.pi * cycle)
        atrial = math.sin(math.pi * (cycle - 0.8) / 0.2) ** 2 if cycle > 0.8 else 0.0
        return systole, atrial

    def _chambers(self, systole: float, atrial: float):
        r = self.heart_r
        a = math.radians(self.axis)
        u = (math.cos(a), math.sin(a))
        v = (-u[1], u[0])
        for along, across, (la, lb), squeeze, name in (
                (0.3, -0.3, (0.46, 0.24), 0.45 * systole, "LV"),
                (0.3, 0.32, (0.44, 0.26), 0.42 * systole, "RV"),
                (-0.42, -0.3, (0.26, 0.22), 0.25 * atrial, "LA"),
                (-0.42, 0.32, (0.27, 0.23), 0.25 * atrial, "RA")):
            c = (self.heart_c[0] + r * (along * u[0] + across * v[0]),
                 self.heart_c[1] + r * (along * u[1] + across * v[1]))
            k = 1 - squeeze
            yield name, c, (r * la * k, r * lb * k)

    def animate(self, t: float) -> np.ndarray:
        systole, atrial = self._phase(t)
        img = self.static.copy()
        top, bottom, left, right = self.roi
        for _name, c, axes in self._chambers(systole, atrial):
            self.cv.ellipse(img, c, axes, self.axis, FLUID * 1.3)
        # atrioventricular valves: bright leaflets, open in diastole
        r, a = self.heart_r, math.radians(self.axis)
        opening = 1 - systole
        for across in (-0.3, 0.32):
            base = (self.heart_c[0] + r * (-0.08 * math.cos(a) - across * math.sin(a)),
                    self.heart_c[1] + r * (-0.08 * math.sin(a) + across * math.cos(a)))
            tilt = a + (math.pi / 2) * (0.25 + 0.6 * opening) * (1 if across > 0 else -1)
            tip = (base[0] + 0.16 * r * math.cos(tilt), base[1] + 0.16 * r * math.sin(tilt))
            self.cv.line(img, base, tip, 0.9, 0.006)
        roi = img[top:bottom, left:right]
        roi[:] = cv2.GaussianBlur(roi, (0, 0), 0.8)
        return img

    def flow(self, t: float) -> np.ndarray:
        systole, atrial = self._phase(t)
        flow = self.flow_canvas
        flow[:] = 0
        up = -math.sin(math.radians(self.axis))  # + when the apex points up the screen
        sign = 1.0 if up >= 0 else -1.0
        for name, c, axes in self._chambers(systole, atrial):
            if name in ("LV", "RV"):  # inflow through the open valves in diastole
                value = sign * (0.25 + 0.7 * (1 - systole))
                self.cv.ellipse(flow, c, (axes[0] * 0.85, axes[1] * 0.8), self.axis, value)
            else:
                self.cv.ellipse(flow, c, (axes[0] * 0.7, axes[1] * 0.65), self.axis,
                                sign * 0.45 * (1 - atrial))
        # outflow (aorta) in systole, away from the ventricles' inflow colour
        a = math.radians(self.axis)
        r = self.heart_r
        outflow = (self.heart_c[0] + r * (0.1 * math.cos(a) + 0.05 * math.sin(a)),
                   self.heart_c[1] + r * (0.1 * math.sin(a) - 0.05 * math.cos(a)))
        self.cv.ellipse(flow, outflow, (0.3 * r, 0.08 * r), self.axis + 60,
                        -sign * 0.95 * systole ** 1.5)
        top, bottom, left, right = self.roi
        roi = flow[top:bottom, left:right]
        roi[:] = cv2.GaussianBlur(roi, (0, 0), 1.0)
        return flow

    @property
    def doppler_roi(self) -> tuple[float, float, float, float]:
        return (-0.5, 0.5, 0.25, 0.9)

    def calipers(self) -> Calipers:
        cv = self.cv
        a = math.radians(self.axis)
        r = self.heart_r
        p = (self.heart_c[0] - r * 0.9 * math.cos(a), self.heart_c[1] - r * 0.9 * math.sin(a))
        q = (self.heart_c[0] + r * 0.9 * math.cos(a), self.heart_c[1] + r * 0.9 * math.sin(a))
        width = float(self.caliper_rng.uniform(2.1, 2.7))
        return Calipers(((cv.px(*p), cv.px(*q)),), None,
                        (f"D1 {width:.2f}cm", f"HR {round(60 * self.rate_hz)}bpm"))


class AbdomenScene(Scene):
    """Abdominal circumference plane: round section with stomach bubble and umbilical vein,
    the same size and brightness as the heart's thorax."""

    preset = ("Routine", "Har-mid", "Pwr 89 %", "C6 / M7", "P3 / E3", "SRI II 3")
    depth_range = (9.0, 12.5)

    def build(self) -> None:
        rng, cv = self.rng, self.cv
        self.womb()
        self.centre = (float(rng.uniform(0.44, 0.56)), float(rng.uniform(0.52, 0.6)) * cv.aspect
                       / 0.88)
        self.radius = float(rng.uniform(0.2, 0.23))
        spine = float(rng.uniform(0.3, 2.8))
        self.spine = spine
        self.body_section(self.centre, self.radius, 0.0, ribs=self.code == "Ab",
                          spine_angle=spine)
        self.organs(spine)
        self.limbs_around(2, self.centre, self.radius)
        self.finish()

    def organs(self, spine: float) -> None:
        cv, r, c = self.cv, self.radius, self.centre
        front = spine + math.pi
        side = front + float(self.rng.choice([-1, 1])) * 0.9
        stomach = (c[0] + 0.4 * r * math.cos(side), c[1] + 0.4 * r * math.sin(side))
        cv.ellipse(self.static, stomach, (0.3 * r, 0.2 * r), math.degrees(side) + 90, FLUID * 1.5)
        vein_a = (c[0] + 0.55 * r * math.cos(front), c[1] + 0.55 * r * math.sin(front))
        vein_b = (c[0] + 0.05 * r * math.cos(front + 0.5), c[1] + 0.05 * r * math.sin(front + 0.5))
        cv.line(self.static, vein_a, vein_b, FLUID * 2, 0.018)
        self.stomach = stomach

    def calipers(self) -> Calipers:
        cv, r, c = self.cv, self.radius, self.centre
        ac = float(self.caliper_rng.uniform(14.0, 16.5))
        p = (c[0] - r, c[1])
        q = (c[0] + r, c[1])
        return Calipers(((cv.px(*p), cv.px(*q)),),
                        (cv.px(*c), (cv.length(r), cv.length(r * 0.92)), 0.0),
                        (f"AC {ac:.1f}cm", _ga_text(self.caliper_rng)))


class KidneyScene(AbdomenScene):
    """Renal plane: round section with two hypoechoic kidneys either side of the spine."""

    def organs(self, spine: float) -> None:
        cv, r, c = self.cv, self.radius, self.centre
        sx = c[0] + 0.55 * r * math.cos(spine)
        sy = c[1] + 0.55 * r * math.sin(spine)
        perp = spine + math.pi / 2
        for side in (-1, 1):
            k = (sx + side * 0.42 * r * math.cos(perp) - 0.1 * r * math.cos(spine),
                 sy + side * 0.42 * r * math.sin(perp) - 0.1 * r * math.sin(spine))
            cv.ellipse(self.static, k, (0.26 * r, 0.19 * r), math.degrees(spine), 0.62, 0.006)
            cv.ellipse(self.static, k, (0.24 * r, 0.17 * r), math.degrees(spine), 0.2)
            cv.ellipse(self.static, k, (0.08 * r, 0.05 * r), math.degrees(spine), FLUID * 1.5)
        self.kidney = k

    def calipers(self) -> Calipers:
        cv = self.cv
        k = self.kidney
        p, q = (k[0] - 0.08 * self.radius, k[1]), (k[0] + 0.08 * self.radius, k[1])
        pelvis = float(self.caliper_rng.uniform(0.25, 0.6))
        return Calipers(((cv.px(*p), cv.px(*q)),), None, (f"D1 {pelvis:.2f}cm",))


class CordScene(AbdomenScene):
    """Umbilical cord insertion (Um) or bladder (BlD): abdomen section plus vessels with flow."""

    doppler_share = 0.7

    def organs(self, spine: float) -> None:
        cv, r, c = self.cv, self.radius, self.centre
        front = spine + math.pi
        self.vessels = []
        if self.code == "BlD":
            cv.ellipse(self.static, c, (0.35 * r, 0.3 * r), 0, FLUID * 1.2)
            for side in (-1, 1):
                a = front + side * 0.9
                p = (c[0] + 0.45 * r * math.cos(a), c[1] + 0.45 * r * math.sin(a))
                q = (c[0] + 0.95 * r * math.cos(front + side * 0.3),
                     c[1] + 0.95 * r * math.sin(front + side * 0.3))
                self.vessels.append((p, q, side))
        else:
            base = (c[0] + r * math.cos(front), c[1] + r * math.sin(front))
            for k in range(3):
                p = (base[0] + 0.05 * k * math.cos(front + 1.2),
                     base[1] + 0.05 * k * math.sin(front + 1.2))
                q = (p[0] + 0.18 * math.cos(front + 0.3 * k),
                     p[1] + 0.18 * math.sin(front + 0.3 * k))
                self.vessels.append((p, q, 1 if k % 2 else -1))
        for p, q, _ in self.vessels:
            cv.line(self.static, p, q, 0.45, 0.03)
            cv.line(self.static, p, q, FLUID * 2, 0.016)
        self.rate_hz = float(self.rng.uniform(2.0, 2.5))
        self.flow_canvas = np.zeros(cv.shape, np.float32)

    def flow(self, t: float) -> np.ndarray:
        pulse = 0.55 + 0.45 * math.sin(2 * math.pi * self.rate_hz * t) ** 2
        self.flow_canvas[:] = 0
        for p, q, sign in self.vessels:
            self.cv.line(self.flow_canvas, p, q, sign * pulse, 0.016)
        return self.flow_canvas


class BrainScene(Scene):
    """Transventricular / transthalamic head: bright skull ellipse, midline, cavum, choroid."""

    depth_range = (10.0, 14.0)

    def build(self) -> None:
        rng, cv = self.rng, self.cv
        self.womb()
        c = (float(rng.uniform(0.45, 0.55)), float(rng.uniform(0.5, 0.56)) * cv.aspect / 0.88)
        a, b = float(rng.uniform(0.28, 0.31)), float(rng.uniform(0.22, 0.245))
        angle = float(rng.uniform(-15, 15))
        self.head = (c, (a, b), angle)
        self.tissue_blob(c, (a * 1.04, b * 1.05), angle, SOFT, 0.2)
        cv.ellipse(self.static, c, (a * 0.97, b * 0.97), angle, 0.22)
        _texture(self.static, rng, cv, 0.35, 0.02)
        # skull: a thick bright ring, thinner at the sides (where beams are tangential)
        for arc in ((205, 335), (25, 155)):
            cv.ellipse(self.static, c, (a, b), angle, BONE * 1.2, 0.026, arc)
            cv.ellipse(self.bone, c, (a, b), angle, 1.0, 0.026, arc)
        cv.ellipse(self.static, c, (a, b), angle, 0.8, 0.012)
        rad = math.radians(angle)
        u = (math.cos(rad), math.sin(rad))
        v = (-u[1], u[0])
        # midline (falx), interrupted by the cavum septi pellucidi
        p = (c[0] - 0.93 * a * u[0], c[1] - 0.93 * a * u[1])
        q = (c[0] + 0.93 * a * u[0], c[1] + 0.93 * a * u[1])
        cv.line(self.static, p, q, 0.95, 0.007)
        cav = (c[0] - 0.3 * a * u[0], c[1] - 0.3 * a * u[1])
        cv.ellipse(self.static, cav, (0.09 * a, 0.05 * b), angle, FLUID * 2)
        for side in (-1, 1):
            th = (c[0] + 0.05 * a * u[0] + side * 0.17 * b * v[0],
                  c[1] + 0.05 * a * u[1] + side * 0.17 * b * v[1])
            cv.ellipse(self.static, th, (0.16 * a, 0.13 * b), angle, 0.09)
            ch = (c[0] + 0.55 * a * u[0] + side * 0.45 * b * v[0],
                  c[1] + 0.55 * a * u[1] + side * 0.45 * b * v[1])
            cv.ellipse(self.static, ch, (0.13 * a, 0.1 * b), angle + side * 20, 0.6)
        # neck and shoulder beyond the skull
        self.tissue_blob((c[0] + 1.05 * a * u[0], c[1] + 1.05 * a * u[1] + 0.1), (0.12, 0.16),
                         angle, SOFT, 0.3)
        self.finish()

    def calipers(self) -> Calipers:
        cv = self.cv
        c, (a, b), angle = self.head
        rad = math.radians(angle)
        v = (-math.sin(rad), math.cos(rad))
        p = (c[0] - b * v[0], c[1] - b * v[1])
        q = (c[0] + b * v[0], c[1] + b * v[1])
        hc = float(self.caliper_rng.uniform(16.5, 18.8))  # 19-21 weeks
        bpd = hc / float(self.caliper_rng.uniform(3.5, 3.7))
        return Calipers(((cv.px(*p), cv.px(*q)),),
                        (cv.px(*c), (cv.length(a), cv.length(b)), angle),
                        (f"HC {hc:.1f}cm", f"BPD {bpd:.1f}cm", _ga_text(self.caliper_rng)))


class TopHeadScene(BrainScene):
    """Top of the head with the orbits (Th): skull ellipse, two dark orbits, nose bone."""

    def build(self) -> None:
        super().build()
        cv = self.cv
        c, (a, b), _angle = self.head
        for side in (-1, 1):
            orbit = (c[0] + side * 0.3 * a, c[1] + 0.6 * b)
            cv.ellipse(self.static, orbit, (0.055, 0.04), 0, FLUID * 2)
            cv.ellipse(self.static, orbit, (0.055, 0.04), 0, 0.8, 0.007)
        cv.line(self.static, (c[0], c[1] + 0.55 * b), (c[0], c[1] + 0.85 * b), BONE, 0.01)
        self.static = cv2.GaussianBlur(self.static, (0, 0), 0.6)


class SpineScene(Scene):
    """Sagittal spine: two converging rows of bright vertebrae with shadows, skin above."""

    depth_range = (10.0, 13.0)
    pan = 0.04

    def build(self) -> None:
        rng, cv = self.rng, self.cv
        self.womb()
        y0 = float(rng.uniform(0.42, 0.5)) * cv.aspect / 0.88
        bend = float(rng.uniform(0.05, 0.12))
        tilt = float(rng.uniform(-0.12, 0.12))
        xs = np.linspace(0.08, 0.95, 26)
        curve = y0 + tilt * (xs - 0.5) - bend * np.sin(np.pi * (xs - 0.08) / 0.87)
        top = np.stack([xs, curve - 0.08], axis=1)
        self.tissue_blob((0.52, y0 + 0.12), (0.5, 0.2), math.degrees(tilt), SOFT, 0.3)
        cv.polyline(self.static, top, 0.8, 0.008)  # skin
        n = 20
        for k in range(n):
            f = k / (n - 1)
            x = 0.12 + 0.78 * f
            y = float(np.interp(x, xs, curve))
            gap = 0.035 * (1 - 0.6 * f)
            for dy, size in ((-gap, 0.013), (gap, 0.016)):
                cv.ellipse(self.static, (x, y + dy), (size * 1.2, size * 0.8), 0, BONE)
                cv.ellipse(self.bone, (x, y + dy), (size * 1.2, size * 0.8), 0, 1.0)
        self.cord_line = (xs, curve)
        self.finish()


class FemurScene(Scene):
    """Femur length plane: one bright straight bone with a shadow, thigh tissue around."""

    depth_range = (9.0, 12.0)

    def build(self) -> None:
        rng, cv = self.rng, self.cv
        self.womb()
        c = (float(rng.uniform(0.45, 0.55)), float(rng.uniform(0.45, 0.55)) * cv.aspect / 0.88)
        angle = float(rng.uniform(-18, 18))
        length = float(rng.uniform(0.26, 0.32)) * (0.75 if self.code in ("Ar", "Le") else 1.0)
        rad = math.radians(angle)
        u = (math.cos(rad), math.sin(rad))
        self.tissue_blob(c, (length * 0.75, 0.09), angle, SOFT, 0.3)
        self.tissue_blob((c[0] - 0.4 * u[0], c[1] + 0.12), (0.25, 0.12), angle - 20, SOFT * 0.9,
                         0.3)
        bones = [(0.0, length)]
        if self.code in ("Ar", "Le"):  # forearm / lower leg: two parallel bones
            bones = [(-0.018, length), (0.02, length * 0.95)]
        self.ends = []
        for offset, blen in bones:
            p = (c[0] - blen / 2 * u[0] - offset * u[1], c[1] - blen / 2 * u[1] + offset * u[0])
            q = (c[0] + blen / 2 * u[0] - offset * u[1], c[1] + blen / 2 * u[1] + offset * u[0])
            cv.line(self.static, p, q, BONE * 1.05, 0.014)
            cv.line(self.bone, p, q, 1.0, 0.014)
            self.ends.append((p, q))
        self.length = length
        self.limbs_around(2, c, 0.25)
        self.finish()

    def calipers(self) -> Calipers:
        p, q = self.ends[0]
        name, low, high = {"Le": ("TIB", 25, 31), "Ar": ("HUM", 27, 33)}.get(
            self.code, ("FL", 29, 35))
        length = float(self.caliper_rng.uniform(low, high))
        return Calipers(((self.cv.px(*p), self.cv.px(*q)),), None,
                        (f"{name} {length:.1f}mm", _ga_text(self.caliper_rng)))


class HandFootScene(Scene):
    """Hand (Ha) or foot (Fe): short bright bones radiating like digits, soft tissue around."""

    depth_range = (8.0, 11.0)
    pan = 0.035

    def build(self) -> None:
        rng, cv = self.rng, self.cv
        self.womb()
        c = (float(rng.uniform(0.45, 0.55)), float(rng.uniform(0.5, 0.58)) * cv.aspect / 0.88)
        angle = float(rng.uniform(-40, 40))
        foot = self.code == "Fe"
        self.tissue_blob(c, (0.16, 0.07) if foot else (0.11, 0.09), angle, SOFT, 0.3)
        rad = math.radians(angle)
        digits = 5
        for k in range(digits):
            spread = (k - 2) * (0.08 if foot else 0.28)
            a = rad + spread
            back = 0.1 if foot else 0.03
            start = (c[0] - back * math.cos(rad) - (k - 2) * 0.025 * math.sin(rad),
                     c[1] - back * math.sin(rad) + (k - 2) * 0.025 * math.cos(rad))
            seg = 0.035 if foot else 0.03
            for j in range(3 if not foot else 2):
                p = (start[0] + j * 1.25 * seg * math.cos(a),
                     start[1] + j * 1.25 * seg * math.sin(a))
                q = (p[0] + seg * math.cos(a), p[1] + seg * math.sin(a))
                cv.line(self.static, p, q, BONE, 0.01)
                cv.line(self.bone, p, q, 0.8, 0.01)
        self.limbs_around(2, c, 0.2)
        self.finish()


class FaceProfileScene(Scene):
    """Side profile (Fa; Fb adds the body): bright skin line of forehead, nose, lips and chin
    against dark fluid, head tissue and skull behind."""

    depth_range = (9.0, 12.0)

    def build(self) -> None:
        rng, cv = self.rng, self.cv
        self.womb()
        facing = float(rng.choice([-1, 1]))
        cx = 0.5 + facing * float(rng.uniform(0.0, 0.06))
        cy = float(rng.uniform(0.5, 0.56)) * cv.aspect / 0.88
        s = float(rng.uniform(0.9, 1.05)) * (0.6 if self.code == "Fb" else 1.0)
        # profile curve: t from the forehead (top) to the chin (bottom), x outwards
        t = np.linspace(-1, 1, 60)
        def bump(centre: float, width: float) -> np.ndarray:
            return np.exp(-(((t - centre) / width) ** 2))

        # forehead, nose, upper lip, lower lip; the dips under the nose and above the chin
        out = (0.06 * np.cos(1.3 * t) + 0.045 * bump(-0.05, 0.1) + 0.018 * bump(0.35, 0.06)
               + 0.015 * bump(0.5, 0.06) - 0.012 * bump(0.22, 0.05) - 0.02 * bump(0.63, 0.06))
        xs = cx + facing * s * (out + 0.1)
        ys = cy + s * 0.22 * t
        profile = np.stack([xs, ys], axis=1)
        back = np.stack([cx - facing * s * (0.22 + 0.08 * np.cos(1.6 * t[::-1])), ys[::-1]], axis=1)
        outline = np.concatenate([profile, back])
        layer = np.zeros(cv.shape, np.float32)
        cv.fill(layer, outline, 1.0)
        layer = cv2.GaussianBlur(layer, (0, 0), 1.0)
        tex = np.clip(1 + 0.35 * _noise(rng, cv.shape, cv.length(0.02)), 0.3, 2.0)
        self.static = self.static * (1 - layer) + SOFT * tex * layer
        cv.polyline(self.static, profile, BRIGHT, 0.008)
        # skull vault arc behind the forehead
        cv.ellipse(self.static, (cx - facing * s * 0.08, cy - s * 0.05), (s * 0.17, s * 0.2), 0,
                   BONE, 0.014, (180, 360))
        cv.ellipse(self.bone, (cx - facing * s * 0.08, cy - s * 0.05), (s * 0.17, s * 0.2), 0,
                   0.8, 0.014, (180, 360))
        # orbit and maxilla
        cv.ellipse(self.static, (cx + facing * s * 0.06, cy - s * 0.04), (s * 0.025, s * 0.02), 0,
                   0.1)
        cv.line(self.static, (cx + facing * s * 0.05, cy + s * 0.06),
                (cx + facing * s * 0.13, cy + s * 0.07), BONE * 0.9, 0.008)
        if self.code == "Fb":
            body_c = (cx - facing * s * 0.55, cy + s * 0.25)
            self.tissue_blob(body_c, (s * 0.45, s * 0.22), -facing * 15, SOFT, 0.3)
            xs_sp = np.linspace(body_c[0] - s * 0.35, body_c[0] + s * 0.35, 12)
            for x in xs_sp:
                cv.ellipse(self.static, (x, body_c[1] + s * 0.16), (0.01, 0.008), 0, BONE)
        self.finish()


class NoseLipsScene(Scene):
    """Coronal nose and lips, close up: nostrils, the upper lip line, lower lip and chin."""

    depth_range = (6.5, 9.0)
    pan = 0.025

    def build(self) -> None:
        rng, cv = self.rng, self.cv
        self.womb(float(rng.uniform(0.08, 0.12)))
        c = (float(rng.uniform(0.46, 0.54)), float(rng.uniform(0.5, 0.55)) * cv.aspect / 0.88)
        w = float(rng.uniform(0.26, 0.3))
        # the face surface: soft tissue below a bright skin contour
        t = np.linspace(-1, 1, 50)
        contour = np.stack([c[0] + w * t, c[1] - 0.2 + 0.12 * t ** 2], axis=1)
        bottom = cv.aspect + 0.2
        outline = np.concatenate([contour, [[c[0] + w, bottom], [c[0] - w, bottom]]])
        layer = np.zeros(cv.shape, np.float32)
        cv.fill(layer, outline, 1.0)
        layer = cv2.GaussianBlur(layer, (0, 0), 1.0)
        tex = np.clip(1 + 0.35 * _noise(rng, cv.shape, cv.length(0.02)), 0.3, 2)
        self.static = self.static * (1 - layer) + SOFT * tex * layer
        # nose: tip with two dark nostrils
        nose = (c[0], c[1] - 0.1)
        cv.ellipse(self.static, nose, (0.1, 0.06), 0, 0.55)
        cv.ellipse(self.static, nose, (0.1, 0.06), 0, BRIGHT, 0.008, (180, 360))
        for side in (-1, 1):
            cv.ellipse(self.static, (nose[0] + side * 0.04, nose[1] + 0.012), (0.022, 0.016), 0,
                       FLUID * 2)
        # upper lip (a cupid's bow), the dark mouth line, the lower lip, the chin
        lip_t = np.linspace(-1, 1, 30)
        y_lip = c[1] + 0.03
        bow = 0.012 * lip_t ** 2 - 0.008 * np.exp(-((lip_t / 0.15) ** 2))
        upper = np.stack([c[0] + 0.13 * lip_t, y_lip + bow], axis=1)
        cv.polyline(self.static, upper, BRIGHT, 0.016)
        mouth = np.stack([c[0] + 0.1 * lip_t, y_lip + 0.022 + 0.01 * lip_t ** 2], axis=1)
        cv.polyline(self.static, mouth, FLUID, 0.006)
        lower = np.stack([c[0] + 0.1 * lip_t, y_lip + 0.04 + 0.016 * lip_t ** 2], axis=1)
        cv.polyline(self.static, lower, BRIGHT * 0.9, 0.016)
        cv.ellipse(self.static, (c[0], c[1] + 0.15), (0.11, 0.05), 0, 0.7, 0.01, (20, 160))
        self.finish(shadows=False)


class MaternalScene(Scene):
    """Maternal anatomy: thick wall, placenta, myometrium and uterine vessels with pulsatile
    colour flow at the maternal heart rate (about 1.2 Hz)."""

    depth_range = (12.0, 16.0)
    doppler_share = 0.7
    pan = 0.04
    preset = ("Routine", "Har-mid", "Pwr 89 %", "C6 / M7", "P3 / E3", "SRI II 3")

    def build(self) -> None:
        rng, cv = self.rng, self.cv
        self.womb(float(rng.uniform(0.16, 0.24)), floor=False)
        ax, ay = self.apex
        d = np.hypot(cv.x - ax, cv.y - ay) - self.face
        self.placenta_band(d, self.wall + 0.01, float(rng.uniform(0.16, 0.24)))
        deep = d > self.wall + float(rng.uniform(0.38, 0.46))
        myometrium = 0.4 * np.clip(1 + 0.3 * _noise(rng, cv.shape, cv.length(0.015)), 0.3, 2)
        self.static = np.where(deep, myometrium, self.static)
        self.vessels = []
        for _ in range(int(rng.integers(3, 6))):
            x0 = float(rng.uniform(0.1, 0.9))
            y0 = float(rng.uniform(self.wall + 0.3, cv.aspect * 0.95))
            pts = [(x0, y0)]
            heading = float(rng.uniform(-0.6, 0.6))
            for _k in range(6):
                heading += float(rng.normal(0, 0.4))
                pts.append((pts[-1][0] + 0.04 * math.cos(heading),
                            pts[-1][1] + 0.04 * math.sin(heading)))
            pts_a = np.array(pts)
            cv.polyline(self.static, pts_a, FLUID * 2, 0.016)
            self.vessels.append((pts_a, 1.0 if rng.random() < 0.5 else -1.0))
        self.rate_hz = float(rng.uniform(1.1, 1.4))
        self.finish(shadows=False)
        self.flow_canvas = np.zeros(cv.shape, np.float32)

    def flow(self, t: float) -> np.ndarray:
        pulse = 0.45 + 0.55 * max(0.0, math.sin(2 * math.pi * self.rate_hz * t)) ** 1.5
        self.flow_canvas[:] = 0
        for pts, sign in self.vessels:
            self.cv.polyline(self.flow_canvas, pts, sign * pulse, 0.018)
        return self.flow_canvas

    @property
    def doppler_roi(self) -> tuple[float, float, float, float]:
        return (-0.55, 0.55, 0.3, 0.95)

    def calipers(self) -> Calipers:
        cv = self.cv
        p, q = (0.42, self.wall + 0.3), (0.62, self.wall + 0.36)
        length = float(self.caliper_rng.uniform(3.2, 4.5))
        return Calipers(((cv.px(*p), cv.px(*q)),), None, (f"CL {length:.2f}cm",))


class SexScene(Scene):
    """Girl or boy (sex): two round thigh sections with the small bright genital lines between."""

    depth_range = (8.0, 11.0)

    def build(self) -> None:
        rng, cv = self.rng, self.cv
        self.womb()
        c = (0.5, float(rng.uniform(0.5, 0.56)) * cv.aspect / 0.88)
        for side in (-1, 1):
            p = (c[0] + side * 0.16, c[1] + 0.03)
            self.tissue_blob(p, (0.11, 0.1), 0, SOFT, 0.3)
            cv.ellipse(self.static, p, (0.018, 0.018), 0, BONE)
            cv.ellipse(self.bone, p, (0.018, 0.018), 0, 1.0)
        for dx in (-0.012, 0.0, 0.012):
            cv.line(self.static, (c[0] + dx, c[1] - 0.02), (c[0] + dx, c[1] + 0.05), BRIGHT, 0.005)
        self.finish()


class BackgroundScene(Scene):
    """Background search (Bk): fast probe motion through ever-changing content, drawn on a
    large wrapping canvas of maternal layers, fluid pockets and fetal fragments."""

    margin = 1.2
    wrap = True
    depth_range = (12.0, 16.0)
    rotation = 8.0
    speed = 2.0

    def _motion(self) -> Motion:
        heading = float(self.rng.uniform(0, 2 * math.pi))
        speed = float(self.rng.uniform(0.35, 0.8))
        return Motion(self.rng, pan=0.15, rotation=self.rotation, speed=self.speed,
                      velocity=(speed * math.cos(heading), 0.4 * speed * math.sin(heading)))

    def build(self) -> None:
        rng, cv = self.rng, self.cv
        self.static[:] = SOFT * 0.6
        _texture(self.static, rng, cv, 0.5, 0.05)
        lakes = _noise(rng, cv.shape, cv.length(0.08)) > 0.6
        self.static[lakes] = FLUID
        x0, x1 = -cv.mx / cv.wv, (cv.shape[1] - cv.mx) / cv.wv
        y0, y1 = -cv.my / cv.wv, (cv.shape[0] - cv.my) / cv.wv
        for _ in range(int(rng.integers(8, 14))):
            c = (float(rng.uniform(x0, x1)), float(rng.uniform(y0, y1)))
            r = float(rng.uniform(0.06, 0.2))
            self.tissue_blob(c, (r, r * float(rng.uniform(0.5, 1))), float(rng.uniform(0, 180)),
                             ORGAN, 0.4)
            if rng.random() < 0.5:
                cv.ellipse(self.static, c, (r, r * 0.8), float(rng.uniform(0, 180)), BONE * 0.9,
                           0.012, (float(rng.uniform(0, 180)), float(rng.uniform(200, 360))))
        for _ in range(int(rng.integers(3, 7))):
            y = float(rng.uniform(y0, y1))
            cv.line(self.static, (x0, y), (x1, y + float(rng.uniform(-0.2, 0.2))), 0.7, 0.008)
        self.finish(shadows=False, texture=0.3)
        # the near field is attached to the probe: the maternal wall, drawn in view coordinates
        view = Canvas((cv.hv, cv.wv), 0.0)
        ax, ay = self.apex
        d = np.hypot(view.x - ax, view.y - ay) - self.face
        near, inside = _wall_layers(rng, view, d, float(rng.uniform(0.08, 0.14)))
        self.near_alpha = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), 1.0)
        self.near = near * self.near_alpha

    def echo(self, t: float) -> tuple[np.ndarray, np.ndarray | None]:
        echo, flow = super().echo(t)
        echo = echo * (1 - self.near_alpha) + self.near * self.brightness(t)
        return echo.astype(np.float32), flow


class VolumeScene(Scene):
    """3D / 3D+t mode (3Dm): a smooth rendered surface (face, shoulders, sometimes a hand) in a
    warm colour map, usually rotating; the renderer colours `render` with a sepia map."""

    kind = "3d"
    depth_range = (10.0, 14.0)
    hz_factor = 0.45
    preset = ("3D Face", "HDlive", "Qual mid2", "Vol 60°", "Light 2", "SRI II 4")
    margin = 0.0

    def build(self) -> None:
        rng, cv = self.rng, self.cv
        hv, wv = cv.shape
        ys, xs = np.mgrid[0:hv, 0:wv].astype(np.float32)
        scale = 0.34 * hv * float(rng.uniform(0.9, 1.1))
        cx = wv * float(rng.uniform(0.45, 0.55))
        cy = hv * float(rng.uniform(0.42, 0.5))
        x, y = (xs - cx) / scale, (ys - cy) / scale
        head = np.sqrt(np.clip(1 - (x / 0.78) ** 2 - (y / 1.0) ** 2, 0, None))

        def bump(x0: float, y0: float, sx: float, sy: float, h: float) -> np.ndarray:
            return h * np.exp(-(((x - x0) / sx) ** 2 + ((y - y0) / sy) ** 2))

        face = (head + bump(0, 0.08, 0.1, 0.24, 0.22) + bump(0, 0.26, 0.14, 0.05, 0.08)
                - bump(-0.27, -0.12, 0.12, 0.08, 0.12) - bump(0.27, -0.12, 0.12, 0.08, 0.12)
                + bump(0, 0.43, 0.16, 0.035, 0.08) + bump(0, 0.53, 0.13, 0.035, 0.07)
                - bump(0, 0.48, 0.16, 0.015, 0.05) + bump(0, 0.72, 0.2, 0.08, 0.06)
                + bump(-0.38, 0.3, 0.16, 0.16, 0.06) + bump(0.38, 0.3, 0.16, 0.16, 0.06))
        face *= head > 0
        shoulders = 0.55 * np.sqrt(np.clip(1 - (x / 1.5) ** 2 - ((y - 1.45) / 0.55) ** 2, 0,
                                           None))
        surface = np.maximum(face, shoulders)
        if rng.random() < 0.5:  # a hand near the face
            hx, hy = float(rng.choice([-0.62, 0.62])), float(rng.uniform(0.35, 0.8))
            hand = 0.5 * np.sqrt(np.clip(1 - ((x - hx) / 0.22) ** 2 - ((y - hy) / 0.16) ** 2, 0,
                                         None))
            surface = np.maximum(surface, hand + 0.2 * (hand > 0))
        self.alpha = cv2.GaussianBlur((surface > 0.02).astype(np.float32), (0, 0), 1.2)
        self.height = cv2.GaussianBlur((surface * scale).astype(np.float32), (0, 0), 1.0)
        gy, gx = np.gradient(self.height)
        norm = np.sqrt(gx ** 2 + gy ** 2 + 1)
        self.normals = (-gx / norm, -gy / norm, 1 / norm)
        self.depth_cue = np.clip(0.75 + 0.25 * surface, 0, 1).astype(np.float32)
        self.background = np.clip(0.03 + 0.02 * _noise(rng, (hv, wv), 4), 0, 1).astype(
            np.float32)
        self.rotating = bool(rng.random() < 0.75)
        self.spin_amp = float(rng.uniform(20, 35)) if self.rotating else 4.0
        self.spin_hz = float(rng.uniform(0.05, 0.12))
        self.spin_phase = float(rng.uniform(0, 2 * math.pi))
        self.xs, self.ys = xs, ys
        self.scale = scale
        self.static = np.zeros((hv, wv), np.float32)

    def render(self, t: float) -> np.ndarray:
        """Shaded surface at time `t`: (hv, wv) uint8 intensities of the low-resolution view.

        Rotation about the vertical axis is approximated by turning the light the other way and
        shifting points sideways in proportion to their height (parallax).
        """
        angle = math.radians(self.spin_amp * math.sin(2 * math.pi * self.spin_hz * t
                                                      + self.spin_phase) + 2 * math.sin(t))
        lx, ly, lz = -0.6 * math.sin(angle) - 0.25, -0.45, 1.0
        norm = math.sqrt(lx * lx + ly * ly + lz * lz)
        nx, ny, nz = self.normals
        diffuse = np.clip((nx * lx + ny * ly + nz * lz) / norm, 0, 1)
        shade = (0.2 + 0.72 * diffuse + 0.3 * diffuse ** 16) * self.depth_cue
        image = self.alpha * shade + (1 - self.alpha) * self.background
        map_x = (self.xs + self.height * (0.3 * math.sin(angle))).astype(np.float32)
        image = cv2.remap(image.astype(np.float32), map_x, self.ys, cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)
        image *= self.brightness(t)
        return cv2.convertScaleAbs(image, alpha=230.0)

    def echo(self, t: float) -> tuple[np.ndarray, np.ndarray | None]:
        return self.render(t).astype(np.float32) / 230.0, None


_SCENES: dict[str, type[Scene]] = {
    "HeD": HeartScene, "3Dm": VolumeScene, "Bk": BackgroundScene, "Br": BrainScene,
    "MaD": MaternalScene, "Sp": SpineScene, "Ab": AbdomenScene, "NL": NoseLipsScene,
    "Ki": KidneyScene, "Fa": FaceProfileScene, "Fm": FemurScene, "Um": CordScene,
    "Fb": FaceProfileScene, "BlD": CordScene, "Fe": HandFootScene, "Th": TopHeadScene,
    "sex": SexScene, "Ha": HandFootScene, "Ar": FemurScene, "Le": FemurScene,
}


def scene_kind(code: str) -> str:
    """``"3d"`` for rendered 3D content, else ``"2d"``."""
    return _SCENES[code].kind


def make_scene(code: str, rng: np.random.Generator, view_shape: tuple[int, int],
               probe: tuple[float, float, float]) -> Scene:
    """The scene of one event of class `code`.

    Parameters
    ----------
    code : str
        A taxonomy code (unknown codes raise `fetal_analytics.taxonomy.UnknownLabelError`).
    rng : numpy.random.Generator
        The event's generator.
    view_shape : (int, int)
        ``(height, width)`` of the low-resolution view.
    probe : (float, float, float)
        The fan apex ``(x, y)`` and the radius of the probe face, in view widths.
    """
    from fetal_analytics import taxonomy

    taxonomy.validate_code(code)
    return _SCENES[code](code, rng, view_shape, probe)


def _ga_text(rng: np.random.Generator) -> str:
    days = int(rng.integers(0, 7))
    weeks = int(rng.integers(19, 22))
    return f"GA {weeks}w{days}d"
