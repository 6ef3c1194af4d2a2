"""Time the scan simulator's video rendering: one simulated scan, rendered and encoded to MP4.

Usage: python benchmarks/simulate_speed.py [--minutes M] [--size WxH] [--fps F] [--seed S] [--json]
Prints video_s (length of the video), render_s (wall time of `render_scan`), realtime_factor
(video_s / render_s; the target is >= 3 at 640x480, 30 fps on 2 cores), fps_rendered and file_mb.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _report import report

from fetal_analytics.synth import simulate_cohort
from fetal_analytics.synth.render import render_scan


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WxH, e.g. 640x480, got {text!r}") from None
    return width, height


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="scan length (default 3)")
    parser.add_argument("--size", type=parse_size, default=(640, 480), help="WxH (640x480)")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    options = parser.parse_args()
    cohort = simulate_cohort(scans=1, operators=1, minutes=options.minutes, seed=options.seed,
                             fps=options.fps)
    scan = cohort.scans[0]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{scan.scan_id}.mp4"
        start = time.perf_counter()
        video = render_scan(scan, path, acquired_at=cohort.acquired_at[0], fps=options.fps,
                            size=options.size, seed=options.seed)
        render_s = time.perf_counter() - start
        file_mb = os.path.getsize(path) / 1e6
    result = {
        "size": f"{video.width}x{video.height}",
        "fps": video.fps,
        "n_frames": video.n_frames,
        "video_s": round(video.duration_s, 3),
        "render_s": round(render_s, 3),
        "realtime_factor": round(video.duration_s / render_s, 2),
        "fps_rendered": round(video.n_frames / render_s, 1),
        "file_mb": round(file_mb, 2),
        "mb_per_video_minute": round(file_mb / (video.duration_s / 60), 2),
        "n_events": len(scan.events),
        "n_freezes": len(scan.freezes),
        "cpu_count": os.cpu_count(),
    }
    report(result, as_json=options.json)


if __name__ == "__main__":
    main()
