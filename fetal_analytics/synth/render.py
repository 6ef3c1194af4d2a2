"""Render a simulated scan's timeline as screen video: the video half of the scan simulator.

`render_scan` turns a `~fetal_analytics.synth.workflow.ScanTimeline` into an H.264 MP4 of the
whole scanner screen (`fetal_analytics.synth.screen`) with the moving ultrasound image of each
event (`fetal_analytics.synth.scenes`), so that every later stage (decoding, image-area crop,
freeze detection, OCR, models) runs on video whose ground truth is exact:

- while frozen (every span of ``scan.freezes``) the image area is pixel-identical from frame to
  frame before encoding, the freeze indicator and its cine bar are shown, the clock keeps
  ticking, and measurement calipers are drawn when the freeze has them;
- outside freezes the image never stands still (speckle decorrelates every frame, the probe
  moves) and the indicator is not shown;
- events cross-fade into each other over up to 0.8 s, always finished before the event's first
  freeze, so a frozen image shows one class.

How it stays fast (>= 3x real time at 640x480 on 2 cores): scenes are drawn at 0.4x resolution and
upscaled; speckle is cut from a few precomputed textures (one moving with the probe, one at a
random offset every frame) instead of being drawn afresh; the screen furniture is drawn once and
only changed fields (clock, depth/gain/Hz, preset panel, indicator) are pasted; frames are
converted to YUV by OpenCV and encoded by libx264 (``ultrafast``, CRF 23) as they are made, so
the video is never held in memory.

Everything is a deterministic function of ``(seed, scan.scan_id)`` and the timeline.
"""

from __future__ import annotations

import bisect
import logging
import math
import os
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from fetal_analytics.synth.scenes import Calipers, HeaderState, Scene, make_scene
from fetal_analytics.synth.screen import (
    SCREEN_PRESETS,
    ScreenConfig,
    background_patch,
    colour_bar_patch,
    doppler_lut,
    draw_base,
    field_boxes,
    image_area,
    indicator_box,
    indicator_patch,
    panel_patch,
    paste,
    screen_layout,
    text_patch,
    ticks_patch,
)
from fetal_analytics.synth.workflow import Event, Freeze, ScanTimeline

__all__ = [
    "SCREEN_PRESETS",
    "RenderedVideo",
    "ScreenConfig",
    "class_gallery",
    "contact_sheet",
    "field_boxes",
    "image_area",
    "indicator_box",
    "render_scan",
]

log = logging.getLogger(__name__)

LOW_RES = 0.4            # scenes are drawn at this fraction of the image area's resolution
MAX_TRANSITION_S = 0.8   # longest cross-fade between two events
CRF = 23
PRESET = "ultrafast"
# Speckle = weights[0] x a texture moving with the probe (and drifting SPECKLE_DRIFT pixels per
# second at 640x480, as tissue and probe never stand quite still) + weights[1] x a texture at a
# fresh random offset every frame: the live image decorrelates every frame (~2-13 grey levels
# mean absolute difference after encoding) while a frozen one is pixel-identical.
SPECKLE_WEIGHTS = (0.6, 0.3)
SPECKLE_DRIFT = 20.0


@dataclass(frozen=True)
class RenderedVideo:
    """A rendered scan video.

    Attributes
    ----------
    path : Path
        The MP4 file (H.264, yuv420p).
    n_frames : int
        Frames written: ``round(duration_s * fps)``.
    fps : float
        Frame rate, frames per second.
    width, height : int
        Frame size in pixels.
    """

    path: Path
    n_frames: int
    fps: float
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        """Length of the video in seconds."""
        return self.n_frames / self.fps


# ----------------------------------------------------------------------------- randomness


def _scan_key(scan_id: str) -> int:
    return zlib.crc32(scan_id.encode("utf-8"))


def _mix(*values: int) -> int:
    """A 64-bit hash of integers (splitmix64 steps): per-frame randomness by frame index."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (v & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h = (h ^ (h >> 27)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h


# ----------------------------------------------------------------------------- image helpers


@lru_cache(maxsize=4)
def _speckle_textures(shape: tuple[int, int], grain: float, seed: int) -> np.ndarray:
    """Precomputed speckle: (3, h, w) uint8, mean ~100, grain `grain` pixels (lateral x2).

    Speckle is the magnitude of complex Gaussian noise blurred by the point-spread function
    (wider laterally than axially), then gently log-compressed.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0x5BEC,)))
    textures = []
    for _ in range(3):
        parts = []
        for _part in range(2):
            noise = rng.standard_normal(shape).astype(np.float32)
            parts.append(cv2.GaussianBlur(noise, (0, 0), 2.2 * grain, sigmaY=0.75 * grain))
        magnitude = cv2.magnitude(parts[0], parts[1]) ** 0.8
        magnitude *= 100.0 / float(magnitude.mean())
        textures.append(np.clip(magnitude, 0, 255).astype(np.uint8))
    return np.stack(textures)


def _tint_luts(tint: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One 256-entry uint8 LUT per RGB channel: a slight gamma and the screen's tint."""
    ramp = np.arange(256, dtype=np.float32)
    ramp = 255 * (ramp / 255) ** 0.92
    luts = tuple(np.clip(ramp * c, 0, 255).astype(np.uint8) for c in tint)
    return luts  # type: ignore[return-value]


@lru_cache(maxsize=1)
def _sepia_lut() -> np.ndarray:
    """(1, 256, 3) uint8 warm 3D rendering colour map (dark brown to pale gold)."""
    x = np.linspace(0, 1, 256, dtype=np.float32)
    r = 255 * np.clip(1.15 * x ** 0.75, 0, 1)
    g = 255 * np.clip(0.95 * x ** 1.15, 0, 1)
    b = 255 * np.clip(0.75 * x ** 1.9, 0, 1)
    return np.stack([r, g, b], axis=1).astype(np.uint8)[None]


def _triangle(value: float, span: int) -> int:
    """Fold `value` into ``[0, span]`` by reflection (a smooth, bounded speckle offset)."""
    if span <= 0:
        return 0
    period = 2 * span
    v = value % period
    return round(v if v <= span else period - v)


# ----------------------------------------------------------------------------- the renderer


class _Renderer:
    """Frame-by-frame compositor of one scan (random access by frame index)."""

    def __init__(self, scan: ScanTimeline, *, fps: float, size: tuple[int, int], seed: int,
                 screen: ScreenConfig | None, acquired_at: datetime) -> None:
        self.scan = scan
        self.fps = float(fps)
        self.screen = screen or SCREEN_PRESETS["voluson"]
        self.layout = screen_layout(tuple(size), self.screen)
        self.seed = int(seed)
        self.key = _scan_key(scan.scan_id)
        self.acquired_at = acquired_at
        top, bottom, left, right = self.layout.boxes["image"]
        self.area_box = (top, bottom, left, right)
        self.ah, self.aw = bottom - top, right - left
        self.hv = max(24, round(self.ah * LOW_RES))
        self.wv = max(24, round(self.aw * LOW_RES))
        fan = self.layout.fan
        self.probe = (0.5, (fan.apex_y - top) / self.aw, fan.r0 / self.aw)
        self.fan_gain = self._fan_gain()
        self.margin = max(8, round(0.08 * self.aw))
        grain = max(0.45, self.layout.width / 640)
        self.speckle = _speckle_textures((self.ah + 2 * self.margin, self.aw + 2 * self.margin),
                                         round(grain, 3), self.seed)
        luts = _tint_luts(self.screen.tint)
        unique = {lut.tobytes(): lut for lut in luts}
        self.tint_luts = list(unique.values())
        self.tint_index = [list(unique).index(lut.tobytes()) for lut in luts]
        self.doppler_lut3 = doppler_lut()[None]
        self.base = draw_base(self.layout, self.screen)
        self.frame_buffer = self.base.copy()
        self.shown: dict[str, object] = {}
        self.patches: dict[tuple, np.ndarray] = {}
        self.scenes: dict[int, Scene] = {}
        self.roi_cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self.starts = [e.start_s for e in scan.events]
        self.transitions = [self._transition(k, e) for k, e in enumerate(scan.events)]
        self.freezes = sorted(scan.freezes, key=lambda f: f.start_s)
        self.freeze_starts = [f.start_s for f in self.freezes]
        self.frozen: tuple[Freeze, np.ndarray, HeaderState] | None = None

    # -- geometry -------------------------------------------------------------------------

    def _fan_gain(self) -> np.ndarray:
        """uint8 (ah, aw): fan mask x time-gain profile x lateral fall-off (255 = 1)."""
        fan = self.layout.fan
        mask = fan.mask(self.area_box)
        depth, angle = fan.polar(self.area_box)
        depth = np.clip(depth, 0, 1)
        profile = (1.0 - 0.3 * depth ** 1.5) * (0.75 + 0.25 * np.clip(depth * 12, 0, 1))
        lateral = 1.0 - 0.3 * np.clip(np.abs(angle), 0, 1) ** 6
        return np.clip(255 * mask * profile * lateral, 0, 255).astype(np.uint8)

    def _roi(self, roi: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
        """Low-resolution float mask and full-resolution outline polygon of a colour box."""
        if roi not in self.roi_cache:
            fan = self.layout.fan
            a0, a1, d0, d1 = roi
            top, _bottom, left, _right = self.area_box
            depth, angle = fan.polar(self.area_box)
            mask = ((angle >= a0) & (angle <= a1) & (depth >= d0) & (depth <= d1))
            low = cv2.resize(mask.astype(np.float32), (self.wv, self.hv),
                             interpolation=cv2.INTER_AREA)
            pts = []
            for a in np.linspace(a0, a1, 24):
                pts.append(self._polar_point(d0, a))
            for a in np.linspace(a1, a0, 24):
                pts.append(self._polar_point(d1, a))
            poly = np.round(np.array(pts) - [left, top]).astype(np.int32)
            self.roi_cache[roi] = (low, poly)
        return self.roi_cache[roi]

    def _polar_point(self, depth: float, angle: float) -> tuple[float, float]:
        fan = self.layout.fan
        r = fan.r0 + depth * (fan.r1 - fan.r0)
        a = angle * fan.half_angle
        return fan.apex_x + r * math.sin(a), fan.apex_y + r * math.cos(a)

    # -- timeline -------------------------------------------------------------------------

    def _transition(self, k: int, event: Event) -> float:
        """Cross-fade length into event `k`: up to 0.8 s, done before its first freeze."""
        if k == 0:
            return 0.0
        length = event.end_s - event.start_s
        d = min(MAX_TRANSITION_S, 0.45 * length)
        for f in self.scan.freezes:
            if event.start_s <= f.start_s < event.end_s:
                d = min(d, 0.8 * (f.start_s - event.start_s))
        return max(d, 1e-3)

    def _event_index(self, t: float) -> int:
        return max(0, bisect.bisect_right(self.starts, t) - 1)

    def _scene(self, k: int) -> Scene:
        scene = self.scenes.get(k)
        if scene is None:
            event = self.scan.events[k]
            rng = np.random.default_rng(np.random.SeedSequence(self.seed,
                                                               spawn_key=(self.key, 1, k)))
            scene = make_scene(event.label, rng, (self.hv, self.wv), self.probe)
            for old in [j for j in self.scenes if j < k - 4 or j > k + 4]:
                del self.scenes[old]
            self.scenes[k] = scene
        return scene

    def weights(self, t: float) -> list[tuple[int, float]]:
        """Active events and their weights at `t`: the newest fades in over the older mix."""
        k = self._event_index(t)
        out: list[tuple[int, float]] = []
        remaining = 1.0
        j = k
        while j >= 0 and remaining > 0.02 and len(out) < 3:
            d = self.transitions[j]
            w = 1.0 if d <= 0 else float(_smooth((t - self.starts[j]) / d))
            if remaining * w > 0:
                out.append((j, remaining * w))
            remaining *= 1 - w
            j -= 1
        total = sum(w for _, w in out)
        return [(j, w / total) for j, w in out]

    def freeze_at(self, t: float) -> Freeze | None:
        i = bisect.bisect_right(self.freeze_starts, t) - 1
        if i >= 0 and t < self.freezes[i].end_s:
            return self.freezes[i]
        return None

    # -- the image area -------------------------------------------------------------------

    def _crop(self, texture: int, oy: int, ox: int) -> np.ndarray:
        return self.speckle[texture, oy:oy + self.ah, ox:ox + self.aw]

    def _random_crop(self, index: int, salt: int) -> np.ndarray:
        h = _mix(self.seed, self.key, index, salt)
        span = 2 * self.margin
        return self._crop(1 + (h & 1), (h >> 8) % (span + 1), (h >> 24) % (span + 1))

    def live_area(self, index: int) -> tuple[np.ndarray, HeaderState, Scene, np.ndarray | None]:
        """The unfrozen image area at frame `index`: (ah, aw, 3) uint8 RGB, the header state,
        the dominant scene and its canvas-to-view transform (None in 3D)."""
        t = index / self.fps
        weights = self.weights(t)
        dominant_k = max(weights, key=lambda kw: kw[1])[0]
        dominant = self._scene(dominant_k)
        local = {j: t - self.starts[j] for j, _ in weights}
        flat = [(self._scene(j), w, local[j]) for j, w in weights]
        two_d = [(s, w, lt) for s, w, lt in flat if s.kind == "2d"]
        three_d = [(s, w, lt) for s, w, lt in flat if s.kind == "3d"]
        noise = self._random_crop(index, 0)
        rgb = None
        if two_d:
            total = sum(w for _, w, _ in two_d)
            echo = None
            flow = None
            roi = None
            for scene, w, lt in two_d:
                e, f = scene.echo(lt)
                echo = e * (w / total) if echo is None else cv2.scaleAdd(e, w / total, echo)
                if f is not None:
                    low_mask, _ = self._roi(scene.doppler_roi)
                    f = f * low_mask * (w / total)
                    flow = f if flow is None else flow + f
                    roi = scene.doppler_roi if roi is None else roi
            pan = dominant.pan_pixels(local[dominant_k]) if dominant.kind == "2d" else (0, 0)
            rgb = self._compose_2d(echo, flow, roi, t, pan, noise)
            if three_d:
                total_3d = 1 - total
                rgb3 = self._compose_3d(three_d[0][0], three_d[0][2], noise)
                rgb = cv2.addWeighted(rgb, total, rgb3, total_3d, 0)
        else:
            rgb = self._compose_3d(three_d[0][0], three_d[0][2], noise)
        header = dominant.header(local[dominant_k])
        transform = dominant.transform(local[dominant_k]) if dominant.kind == "2d" else None
        return rgb, header, dominant, transform

    def _compose_2d(self, echo: np.ndarray, flow: np.ndarray | None,
                    roi: tuple[float, float, float, float] | None, t: float,
                    pan: tuple[float, float], noise: np.ndarray) -> np.ndarray:
        u8 = cv2.convertScaleAbs(echo, alpha=215.0)
        up = cv2.resize(u8, (self.aw, self.ah), interpolation=cv2.INTER_CUBIC)
        span = 2 * self.margin
        drift = SPECKLE_DRIFT * self.aw / 486 * t
        ox = _triangle(self.margin + pan[0] * self.aw + drift, span)
        oy = _triangle(self.margin + pan[1] * self.aw + 0.45 * drift, span)
        coherent = self._crop(0, oy, ox)
        wa, wb = SPECKLE_WEIGHTS
        speckle = cv2.addWeighted(coherent, wa, noise, wb, (1 - wa - wb) * 100)
        img = cv2.multiply(up, speckle, scale=1 / 100)
        # specular reflectors (bone, skin) are bright and smooth: add what exceeds a level
        img = cv2.addWeighted(img, 1.0, cv2.subtract(up, 150), 1.3, 0)
        img = cv2.multiply(img, self.fan_gain, scale=1 / 255)
        channels = [cv2.LUT(img, lut) for lut in self.tint_luts]
        rgb = cv2.merge([channels[k] for k in self.tint_index])
        if flow is not None and roi is not None:
            flow_up = cv2.resize(flow, (self.aw, self.ah), interpolation=cv2.INTER_LINEAR)
            index = cv2.convertScaleAbs(flow_up, alpha=127.0, beta=128.0)
            magnitude = cv2.absdiff(index, np.full_like(index, 128))
            _, mask = cv2.threshold(magnitude, 22, 255, cv2.THRESH_BINARY)
            _, holes = cv2.threshold(noise, 55, 255, cv2.THRESH_BINARY)
            mask = cv2.bitwise_and(mask, holes)
            colour = cv2.LUT(cv2.merge((index, index, index)), self.doppler_lut3)
            cv2.copyTo(colour, mask, rgb)
            _, poly = self._roi(roi)
            cv2.polylines(rgb, [poly], True, (150, 150, 150), 1, cv2.LINE_AA)
        return rgb

    def _compose_3d(self, scene: Scene, local_t: float, noise: np.ndarray) -> np.ndarray:
        low = scene.render(local_t)  # type: ignore[attr-defined]
        up = cv2.resize(low, (self.aw, self.ah), interpolation=cv2.INTER_CUBIC)
        up = cv2.addWeighted(up, 1.0, noise, 0.1, -10)
        rgb = cv2.LUT(cv2.merge((up, up, up)), _sepia_lut())
        cv2.rectangle(rgb, (0, 0), (self.aw - 1, self.ah - 1), (80, 80, 80), 1)
        return rgb

    # -- calipers -------------------------------------------------------------------------

    def _draw_calipers(self, rgb: np.ndarray, calipers: Calipers, transform: np.ndarray
                       ) -> None:
        sx, sy = self.aw / self.wv, self.ah / self.hv
        colour = self.screen.caliper_colour

        def to_area(p: tuple[float, float]) -> tuple[float, float]:
            x = transform[0, 0] * p[0] + transform[0, 1] * p[1] + transform[0, 2]
            y = transform[1, 0] * p[0] + transform[1, 1] * p[1] + transform[1, 2]
            return x * sx, y * sy

        cross = max(3, round(0.011 * self.layout.height))
        step = max(3, round(0.009 * self.layout.height))

        def dotted(points: Iterable[tuple[float, float]]) -> None:
            pts = np.array(list(points), np.float32)
            if len(pts) < 2:
                return
            seg = np.hypot(*np.diff(pts, axis=0).T)
            along = np.concatenate([[0], np.cumsum(seg)])
            for s in np.arange(0, along[-1], step):
                x = np.interp(s, along, pts[:, 0])
                y = np.interp(s, along, pts[:, 1])
                xi, yi = round(x), round(y)
                if 0 <= xi < self.aw and 0 <= yi < self.ah:
                    rgb[yi, xi] = colour

        if calipers.ellipse is not None:
            (cx, cy), (ax, ay), angle = calipers.ellipse
            a = np.radians(angle)
            theta = np.linspace(0, 2 * np.pi, 180)
            xs = cx + ax * np.cos(theta) * np.cos(a) - ay * np.sin(theta) * np.sin(a)
            ys = cy + ax * np.cos(theta) * np.sin(a) + ay * np.sin(theta) * np.cos(a)
            dotted(to_area(p) for p in zip(xs, ys, strict=True))
        for p, q in calipers.segments:
            pa, qa = to_area(p), to_area(q)
            dotted([pa, qa])
            for x, y in (pa, qa):
                xi, yi = round(x), round(y)
                cv2.line(rgb, (xi - cross, yi), (xi + cross, yi), colour, 1, cv2.LINE_AA)
                cv2.line(rgb, (xi, yi - cross), (xi, yi + cross), colour, 1, cv2.LINE_AA)
        # the measurement box at the bottom right of the image area
        scale = self.layout.font_scale
        lines = calipers.text
        sizes = [cv2.getTextSize(s, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0] for s in lines]
        line_h = self.layout.line_height
        width = max(w for w, _ in sizes) + 8
        height = line_h * len(lines) + 4
        x0, y0 = self.aw - width - 2, self.ah - height - 2
        cv2.rectangle(rgb, (x0, y0), (self.aw - 2, self.ah - 2), (0, 0, 0), -1)
        cv2.rectangle(rgb, (x0, y0), (self.aw - 2, self.ah - 2), (90, 90, 90), 1)
        for row, (text, (_w, h)) in enumerate(zip(lines, sizes, strict=True)):
            y = y0 + 2 + round(line_h * (row + 0.5) + h / 2)
            cv2.putText(rgb, text, (x0 + 4, y), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        self.screen.text_colour, 1, cv2.LINE_AA)

    # -- the screen -----------------------------------------------------------------------

    def _patch(self, field: str, key: object, make: Callable[[], np.ndarray]) -> None:
        """Paste the patch of `field` for `key` unless it is already shown."""
        if self.shown.get(field) == key:
            return
        cache_key = (field, key)
        patch = self.patches.get(cache_key)
        if patch is None:
            if len(self.patches) > 256:
                self.patches.clear()
            patch = self.patches[cache_key] = make()
        paste(self.frame_buffer, self.layout.boxes[field], patch)
        self.shown[field] = key

    def frame(self, index: int) -> np.ndarray:
        """The screen at frame `index`: (height, width, 3) uint8 RGB (a view of an internal
        buffer, valid until the next call)."""
        t = index / self.fps
        freeze = self.freeze_at(t)
        if freeze is not None:
            if self.frozen is None or self.frozen[0] is not freeze:
                first = math.ceil(freeze.start_s * self.fps - 1e-9)
                rgb, header, scene, transform = self.live_area(first)
                rgb = rgb.copy()
                if freeze.calipers and transform is not None:
                    self._draw_calipers(rgb, scene.calipers(), transform)
                self.frozen = (freeze, rgb, header)
            _, rgb, header = self.frozen
            fill = min(1.0, (t - freeze.start_s) / 0.8)
            self._patch("indicator", ("on", round(fill * 16)),
                        lambda: indicator_patch(round(fill * 16) / 16, self.layout, self.screen,
                                                self.base))
        else:
            self.frozen = None
            rgb, header, _scene, _transform = self.live_area(index)
            self._patch("indicator", "off",
                        lambda: background_patch(self.base, self.layout.boxes["indicator"]))
        top, bottom, left, right = self.area_box
        self.frame_buffer[top:bottom, left:right] = rgb
        self._header(header, t)
        return self.frame_buffer

    def _header(self, header: HeaderState, t: float) -> None:
        layout, screen = self.layout, self.screen
        scan_text = f"{header.depth_cm:.1f}cm / {header.gain:.1f} / {header.hz}Hz"
        self._patch("scan", scan_text,
                    lambda: text_patch(scan_text, layout.boxes["scan"], layout, screen))
        self._patch("panel", header.preset, lambda: panel_patch(header.preset, layout, screen))
        depth = round(header.depth_ticks, 1)
        self._patch("ticks", depth, lambda: ticks_patch(depth, layout, screen, self.base))
        self._patch("colour_bar", header.doppler,
                    lambda: colour_bar_patch(layout, self.base) if header.doppler
                    else background_patch(self.base, layout.boxes["colour_bar"]))
        start = self.acquired_at
        seconds = math.floor(t + start.microsecond / 1e6)
        if self.shown.get("clock") != seconds:
            now = start.replace(microsecond=0) + timedelta(seconds=seconds)
            clock, date = now.strftime(screen.clock_format), now.strftime(screen.date_format)
            self._patch("date", date, lambda: text_patch(date, layout.boxes["date"], layout,
                                                         screen))
            paste(self.frame_buffer, layout.boxes["clock"],
                  text_patch(clock, layout.boxes["clock"], layout, screen))
            self.shown["clock"] = seconds


def _smooth(x: float) -> float:
    x = min(1.0, max(0.0, x))
    return x * x * (3 - 2 * x)


# ----------------------------------------------------------------------------- public API


def _check(scan: ScanTimeline, fps: float, acquired_at: datetime, seed: int) -> None:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(scan, ScanTimeline):
        raise TypeError(f"scan must be a ScanTimeline, got {type(scan).__name__}")
    if not scan.events or scan.duration_s <= 0:
        raise ValueError(f"scan {scan.scan_id}: empty timeline (duration {scan.duration_s} s)")
    if not (math.isfinite(fps) and 1 <= fps <= 240):
        raise ValueError(f"fps must be between 1 and 240, got {fps}")
    if not isinstance(acquired_at, datetime):
        raise TypeError(f"acquired_at must be a datetime, got {type(acquired_at).__name__}")


def render_scan(scan: ScanTimeline, path: str | Path, *, acquired_at: datetime,
                fps: float = 30.0, size: tuple[int, int] = (640, 480), seed: int = 0,
                screen: ScreenConfig | None = None,
                progress: Callable[[int], None] | None = None) -> RenderedVideo:
    """Render the whole of a simulated scan as an H.264 MP4 of the scanner screen.

    Parameters
    ----------
    scan : ScanTimeline
        Events covering ``[0, scan.duration_s)`` and the frozen spans.
    path : str or Path
        Output file (``.mp4``); parent folders are created. Written to ``<path>.part`` and
        renamed when complete, so a crash never leaves a truncated video under `path`.
    acquired_at : datetime
        When the scan started: the date and the clock on the screen (the clock ticks once
        per second of video).
    fps : float
        Video frame rate, frames per second (the scanner's own frame rate, shown as ``NNHz``,
        is separate).
    size : (int, int)
        ``(width, height)`` in pixels, even, at least 96x72. Text is sized for 640x480.
    seed : int
        With ``scan.scan_id``, determines every pixel: the same scan and seed give the same
        frames.
    screen : ScreenConfig, optional
        Screen layout; default the ``voluson`` preset.
    progress : callable, optional
        Called with the number of frames done since its last call, about once per second of
        video and once at the end.

    Returns
    -------
    RenderedVideo
        With ``n_frames = round(scan.duration_s * fps)``; frame ``i`` shows time ``i / fps``.
    """
    import av

    _check(scan, fps, acquired_at, seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    renderer = _Renderer(scan, fps=fps, size=size, seed=seed, screen=screen,
                         acquired_at=acquired_at)
    width, height = renderer.layout.width, renderer.layout.height
    n_frames = round(scan.duration_s * fps)
    rate = Fraction(fps).limit_denominator(1001)
    partial = path.with_name(path.name + ".part")
    step = max(1, round(fps))
    started = time.perf_counter()
    log.info("rendering %s: %d frames, %dx%d at %g fps -> %s", scan.scan_id, n_frames, width,
             height, fps, path)
    try:
        # faststart puts the index first: a copy cut short still decodes up to the cut.
        with av.open(str(partial), mode="w", format="mp4",
                     options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=rate, options={
                "preset": PRESET, "crf": str(CRF),
                "threads": str(max(1, min(4, os.cpu_count() or 1)))})
            stream.width, stream.height = width, height
            stream.pix_fmt = "yuv420p"
            time_base = Fraction(1) / rate
            done = 0
            for index in range(n_frames):
                rgb = renderer.frame(index)
                frame = av.VideoFrame.from_ndarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420),
                                                   format="yuv420p")
                frame.pts = index
                frame.time_base = time_base
                container.mux(stream.encode(frame))
                if progress is not None and (index + 1) % step == 0:
                    progress(index + 1 - done)
                    done = index + 1
            container.mux(stream.encode(None))
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if progress is not None and n_frames > done:
        progress(n_frames - done)
    elapsed = time.perf_counter() - started
    log.info("rendered %s: %d frames in %.1f s (%.0f fps)", scan.scan_id, n_frames, elapsed,
             n_frames / max(elapsed, 1e-9))
    return RenderedVideo(path, n_frames, float(fps), width, height)


def class_gallery(*, size: tuple[int, int] = (640, 480), seed: int = 0,
                  codes: Iterable[str] | None = None,
                  screen: ScreenConfig | None = None) -> dict[str, np.ndarray]:
    """One screen frame per class, unfrozen, in the middle of a 10 s event of that class.

    Parameters
    ----------
    size : (int, int)
        ``(width, height)`` of the frames.
    seed : int
    codes : iterable of str, optional
        Taxonomy codes; default all of them, in taxonomy order.
    screen : ScreenConfig, optional

    Returns
    -------
    dict of str to ndarray
        Code -> (height, width, 3) uint8 RGB frame.
    """
    from fetal_analytics import taxonomy

    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    codes = list(codes) if codes is not None else list(taxonomy.codes())
    for code in codes:
        taxonomy.validate_code(code)
    frames = {}
    for code in codes:
        scan = ScanTimeline(f"gallery-{code}", "gallery", 10.0, (Event(code, 0.0, 10.0),), ())
        renderer = _Renderer(scan, fps=30.0, size=size, seed=seed, screen=screen,
                             acquired_at=datetime(2024, 1, 8, 9, 0))
        frames[code] = renderer.frame(150).copy()
    return frames


def contact_sheet(frames: dict[str, np.ndarray], *, columns: int = 5) -> np.ndarray:
    """A labelled grid of frames (e.g. from `class_gallery`).

    Parameters
    ----------
    frames : dict of str to ndarray
        Label -> (height, width, 3) uint8 RGB frame; all the same size.
    columns : int
        Frames per row.

    Returns
    -------
    (rows * (height + label), columns * width, 3) uint8 ndarray
        Each frame under a bar with its label (the taxonomy name too, for taxonomy codes).
    """
    from fetal_analytics import taxonomy

    if not frames:
        raise ValueError("frames must not be empty")
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")
    shapes = {f.shape for f in frames.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise ValueError(f"frames must all be (height, width, 3) of one size, got {shapes}")
    height, width, _ = next(iter(shapes))
    label_h = max(14, height // 14)
    rows = math.ceil(len(frames) / columns)
    sheet = np.full((rows * (height + label_h), columns * width, 3), 255, np.uint8)
    scale = label_h / 36
    for n, (label, image) in enumerate(frames.items()):
        r, c = divmod(n, columns)
        y, x = r * (height + label_h), c * width
        text = label
        try:
            cls = taxonomy.get(label)
            text = f"{label}: {cls.name}"
        except ValueError:
            pass
        cv2.putText(sheet, text, (x + 4, y + label_h - max(3, label_h // 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
        sheet[y + label_h:y + label_h + height, x:x + width] = image
        cv2.rectangle(sheet, (x, y + label_h), (x + width - 1, y + label_h + height - 1),
                      (255, 255, 255), 1)
    return sheet
