"""Freeze detection against plain decoding of the same simulated scan, in one run.

Renders one simulated 640x480, 30 fps scan (default 3 minutes; cached between runs in the temp
folder by its parameters), then times, best of --repeat runs each:

``decode_s``
    decoding every frame with PyAV and touching nothing (the floor for any analysis);
``freeze_s``
    `inference.freeze.detect_freezes` (one pass over the luma plane): by stillness alone, the
    default, or with ``--preset voluson`` confirmed by OCR of the simulator's indicator;

and prints a JSON object with both, their frame rates, ``speed_ratio`` (decode_s / freeze_s:
freeze detection runs at this fraction of the speed of plain decoding; the target is >= 0.8) and
how many freezes were found against the truth.

Usage: python benchmarks/ingest_speed.py [--minutes M] [--size WxH] [--repeat N] [--preset P]
       [--json]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import av
from _report import best_of, report

from fetal_analytics.synth import simulate_cohort, write_cohort
from inference.freeze import FreezeConfig, detect_freezes
from inference.presets import load_indicator_preset


def plain_decode(path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--preset", help="freeze-indicator preset that confirms [default: none]")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    options = parser.parse_args()
    size = tuple(int(v) for v in options.size.split("x"))
    folder = Path(tempfile.gettempdir()) / f"ingest-speed-{options.minutes:g}-{options.size}"
    video = folder / "videos" / "SIM0001.mp4"
    cohort = simulate_cohort(scans=1, operators=1, minutes=options.minutes, seed=1)
    if not video.exists():
        write_cohort(cohort, folder, size=size, seed=1)
    decode_s, n_frames = best_of(options.repeat, lambda: plain_decode(video))
    indicator = load_indicator_preset(options.preset) if options.preset else None
    config = FreezeConfig(indicator=indicator)
    freeze_s, result = best_of(options.repeat, lambda: detect_freezes(video, config=config))
    figures = {
        "video_s": options.minutes * 60, "size": options.size, "n_frames": n_frames,
        "decode_s": round(decode_s, 3), "decode_fps": round(n_frames / decode_s),
        "freeze_s": round(freeze_s, 3), "freeze_fps": round(n_frames / freeze_s),
        "speed_ratio": round(decode_s / freeze_s, 3), "preset": options.preset,
        "freezes_found": len(result.spans), "freezes_true": len(cohort.scans[0].freezes),
    }
    report(figures, as_json=options.json)


if __name__ == "__main__":
    main()
