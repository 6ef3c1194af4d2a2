"""Screen reading on real captures as frame grabbers deliver them: JPEG, H.264, rescaled.

Each of the 7 shared GE Voluson E8 captures (``../shared/data/sononet/example_images``, read in
place, never copied) is turned into every variant below, and the screen is read from it as the
commands read it:

- stills: JPEG at quality 95, 90, 70, 50; the lossless PNG rescaled (letterboxed where the
  aspect differs) to 1280x720, 1024x768 and 720x576. Image area by
  `inference.roi.detect_image_area`, header by `inference.screen_text.read_screen_text`.
- videos: a 3.5 s, 30 fps clip per capture (live 1.5 s: the image area with probe jitter of up
  to 2 px and fresh multiplicative speckle every frame; frozen 1 s; live 1 s; a clock ticking
  every second in the bottom-left corner), H.264 yuv420p (libx264, preset veryfast) at CRF
  18, 23, 28, 30 at the capture's size (padded to 976x736), and at CRF 23 rescaled to the three
  sizes. Image area by `detect_image_area_from_frames` over the first 10 s (as ``roi``),
  header by `read_screen_text_from_frames` over the first 2 s (as ``read-header``), freezes by
  `inference.freeze.detect_freezes` with default options (stillness alone, no preset).

Targets (issue 20): image-area IoU >= 0.9 against the area found the same way on the lossless
original (the still; the clip's uncompressed frames at the capture's size), boxes mapped back to
the capture's pixels; frame rate, date and time right in >= 95% of the variants; the one
freeze of each clip found with both ends within 2 frames.

Usage: python benchmarks/screen_robustness.py [--captures DIR] [--only TEXT ...] [--json]

``--only`` keeps the captures whose names contain one of the texts given and the variants
whose names do (where no capture, or no variant, matches, all are kept): ``--only H.264`` for
the videos of every capture, ``--only SPINE "CRF 30"`` for one capture in one variant; a quick
check while developing, not the table.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from fetal_analytics.synth.captures import EXAMPLE_HEADERS
from inference.decode import sample_frames
from inference.freeze import detect_freezes
from inference.roi import (
    ImageArea,
    detect_image_area,
    detect_image_area_from_frames,
    detect_image_mask,
)
from inference.screen_text import ScreenText, read_screen_text, read_screen_text_from_frames

CAPTURES = Path("../shared/data/sononet/example_images")
SIZES = ((1280, 720), (1024, 768), (720, 576))
FPS = 30
LIVE_1, FROZEN, LIVE_2 = 45, 30, 30  # frames: the clip's three parts
FIELDS = ("frame_rate", "date", "time")


@dataclass(frozen=True)
class Variant:
    """One way a capture reaches us: a still or a video, encoded and sized so."""

    name: str
    video: bool
    jpeg: int | None = None
    crf: int | None = None
    size: tuple[int, int] | None = None


VARIANTS = (
    *(Variant(f"JPEG q{q}", False, jpeg=q) for q in (95, 90, 70, 50)),
    *(Variant(f"PNG {w}x{h}", False, size=(w, h)) for w, h in SIZES),
    *(Variant(f"H.264 CRF {c}", True, crf=c) for c in (18, 23, 28, 30)),
    *(Variant(f"H.264 CRF 23 {w}x{h}", True, crf=23, size=(w, h)) for w, h in SIZES),
)


@dataclass(frozen=True)
class Placement:
    """Where the capture sits in a variant's frame: scale, then offset (letterbox), pixels."""

    scale: float
    x: int
    y: int

    def back(self, area: ImageArea) -> ImageArea:
        """`area` in pixels of the capture."""
        return ImageArea(max(0, round((area.x0 - self.x) / self.scale)),
                         max(0, round((area.y0 - self.y) / self.scale)),
                         round((area.x1 - self.x) / self.scale),
                         round((area.y1 - self.y) / self.scale))


def letterbox(frame: np.ndarray, size: tuple[int, int] | None) -> tuple[np.ndarray, Placement]:
    """`frame` scaled to fit `size` (width, height) on black, centred; even-padded if None."""
    h0, w0 = frame.shape[:2]
    if size is None:
        width, height, scale = w0 + w0 % 2, h0 + h0 % 2, 1.0
        scaled = frame
    else:
        width, height = size
        scale = min(width / w0, height / h0)
        new = (round(w0 * scale), round(h0 * scale))
        method = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        scaled = cv2.resize(frame, new, interpolation=method)
    out = np.zeros((height, width, 3), np.uint8)
    x, y = (width - scaled.shape[1]) // 2, (height - scaled.shape[0]) // 2
    out[y: y + scaled.shape[0], x: x + scaled.shape[1]] = scaled
    return out, Placement(scale, x, y)


def live_frames(capture: np.ndarray, seed: int) -> list[np.ndarray]:
    """The clip's frames (RGB): live with jitter and speckle, frozen, live; a ticking clock."""
    rng = np.random.default_rng(seed)
    fan = detect_image_mask(capture)
    frames, frozen = [], None
    for index in range(LIVE_1 + FROZEN + LIVE_2):
        if LIVE_1 <= index < LIVE_1 + FROZEN and frozen is not None:
            frame = frozen.copy()
        else:
            dx, dy = rng.integers(-2, 3, 2)
            moved = np.roll(capture, (int(dy), int(dx)), axis=(0, 1))
            noise = cv2.GaussianBlur(rng.normal(1.0, 0.25, fan.shape).astype(np.float32),
                                     (3, 3), 0)
            speckled = np.clip(moved * noise[..., None], 0, 255).astype(np.uint8)
            frame = capture.copy()
            frame[fan] = speckled[fan]
            frozen = frame if index == LIVE_1 - 1 else frozen
        frame = frame.copy()
        clock = f"00:00:{index // FPS:02d}"
        cv2.putText(frame, clock, (8, frame.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (220, 220, 220), 1, cv2.LINE_AA)
        frames.append(frame)
    return frames


def write_video(frames: list[np.ndarray], path: Path, crf: int) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS,
                                      options={"crf": str(crf), "preset": "veryfast"})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def fields_right(read: ScreenText, expected: tuple[float, str, str]) -> dict[str, bool]:
    return dict(zip(FIELDS, (read.frame_rate_hz == expected[0], read.date == expected[1],
                             read.time == expected[2]), strict=True))


@dataclass(frozen=True)
class Capture:
    """One capture, its clip's lossless frames, and the image areas found on both lossless."""

    name: str
    still: np.ndarray
    clip: list[np.ndarray]
    still_area: ImageArea
    clip_area: ImageArea


def load_capture(path: Path) -> Capture:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"cannot read {path}")
    still = np.ascontiguousarray(bgr[..., ::-1])
    clip = live_frames(still, seed=len(path.stem))
    return Capture(path.stem, still, clip, detect_image_area(still),
                   detect_image_area_from_frames(clip[::2]))


def measure(capture: Capture, variant: Variant, folder: Path) -> dict:
    """One capture in one variant: IoU, header fields right, and for videos the freeze."""
    name = capture.name
    row: dict = {"capture": name, "variant": variant.name}
    if not variant.video:
        frame, placement = letterbox(capture.still, variant.size)
        reference = capture.still_area
        if variant.jpeg is not None:
            _, data = cv2.imencode(".jpg", frame[..., ::-1],
                                    [cv2.IMWRITE_JPEG_QUALITY, variant.jpeg])
            frame = np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1])
        area = detect_image_area(frame)
        header = read_screen_text(frame)
    else:
        frames, placement = [], None
        for frame in capture.clip:
            boxed, placement = letterbox(frame, variant.size)
            frames.append(boxed)
        reference = capture.clip_area
        video = folder / f"{name}-{variant.name.replace(' ', '_')}.mp4"
        write_video(frames, video, variant.crf or 23)
        area = detect_image_area_from_frames(sample_frames(video))
        header = read_screen_text_from_frames(sample_frames(video, seconds=2.0, every=5,
                                                            colour=True))
        spans = [(s.start_frame, s.end_frame) for s in detect_freezes(video).spans]
        start, end = LIVE_1 - 1, LIVE_1 + FROZEN  # the last live frame is the frozen image
        row["freeze_found"] = (len(spans) == 1 and abs(spans[0][0] - start) <= 2
                               and abs(spans[0][1] - end) <= 2)
        row["freezes"] = spans
    row["iou"] = round(placement.back(area).iou(reference), 3)
    row["read"] = header.to_dict()
    row.update(fields_right(header, EXAMPLE_HEADERS[name]))
    return row


def summary(rows: list[dict]) -> list[dict]:
    """Per variant: IoU min and mean, captures with IoU >= 0.9, fields right, freezes found."""
    out = []
    for variant in VARIANTS:
        group = [r for r in rows if r["variant"] == variant.name]
        if not group:
            continue
        ious = [r["iou"] for r in group]
        line = {"variant": variant.name, "iou_min": min(ious),
                "iou_mean": round(float(np.mean(ious)), 3),
                "iou_ok": sum(i >= 0.9 for i in ious)}
        line.update({f: sum(r[f] for r in group) for f in FIELDS})
        line["freezes_found"] = (sum(r["freeze_found"] for r in group) if variant.video
                                 else None)
        line["n"] = len(group)
        out.append(line)
    return out


def failures(rows: list[dict]) -> list[str]:
    """Each miss, named: capture, variant and what went wrong."""
    named = []
    for r in rows:
        where = f"{r['capture']} @ {r['variant']}"
        if r["iou"] < 0.9:
            named.append(f"{where}: image-area IoU {r['iou']}")
        for field, key in zip(FIELDS, ("frame_rate_hz", "date", "time"), strict=True):
            if not r[field]:
                named.append(f"{where}: {field} read as {r['read'][key]!r}")
        if r.get("freeze_found") is False:
            named.append(f"{where}: freezes found {r['freezes']}")
    return named


def print_markdown(table: list[dict], rows: list[dict], seconds: float) -> None:
    n = len(rows)
    print("| variant | IoU min | IoU mean | IoU >= 0.9 | frame rate | date | time | freeze |")
    print("|---|---|---|---|---|---|---|---|")
    for t in table:
        freeze = "" if t["freezes_found"] is None else f"{t['freezes_found']}/{t['n']}"
        print(f"| {t['variant']} | {t['iou_min']:.3f} | {t['iou_mean']:.3f} | "
              f"{t['iou_ok']}/{t['n']} | {t['frame_rate']}/{t['n']} | {t['date']}/{t['n']} | "
              f"{t['time']}/{t['n']} | {freeze} |")
    videos = [r for r in rows if "freeze_found" in r]
    print(f"| **all** | {min(r['iou'] for r in rows):.3f} | "
          f"{np.mean([r['iou'] for r in rows]):.3f} | {sum(r['iou'] >= 0.9 for r in rows)}/{n} "
          + "".join(f"| {sum(r[f] for r in rows)}/{n} ({100 * sum(r[f] for r in rows) / n:.0f}%) "
                    for f in FIELDS)
          + f"| {sum(r['freeze_found'] for r in videos)}/{len(videos)} |")
    print()
    print("Failures:" if failures(rows) else "Failures: none")
    for line in failures(rows):
        print(f"- {line}")
    print(f"\n{n} capture variants in {seconds:.0f} s")


def _selected(only: list[str] | None) -> tuple[list[str], list[Variant]]:
    """The captures and variants to measure: all, or those `only` names (see the usage)."""
    if not only:
        return list(EXAMPLE_HEADERS), list(VARIANTS)
    names = [n for n in EXAMPLE_HEADERS if any(t in n for t in only)] or list(EXAMPLE_HEADERS)
    variants = [v for v in VARIANTS if any(t in v.name for t in only)] or list(VARIANTS)
    return names, variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captures", type=Path, default=CAPTURES,
                        help=f"folder of the 7 captures [default: {CAPTURES}]")
    parser.add_argument("--only", nargs="+", metavar="TEXT",
                        help="only captures or variants whose names contain one of these")
    parser.add_argument("--json", action="store_true", help="print every row as JSON")
    options = parser.parse_args()
    names, variants = _selected(options.only)
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            capture = load_capture(options.captures / f"{name}.png")
            rows.extend(measure(capture, variant, Path(folder)) for variant in variants)
    if options.json:
        print(json.dumps(rows))
        return
    print_markdown(summary(rows), rows, time.perf_counter() - start)


if __name__ == "__main__":
    main()
