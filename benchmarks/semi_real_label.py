"""The sim-to-real gap: the demo model and SonoNet-16 labelling a video of real scanner captures.

Builds a semi-real video from the 7 shared GE Voluson E8 captures (``../shared/data/sononet/
example_images``) with `fetal_analytics.synth.captures.capture_video` (each capture live for
--live-s seconds with probe jitter and speckle, then frozen for --frozen-s seconds; a ticking
clock; H.264 at 30 fps), labels it with `fetal-analytics label --model NAME` for each model (the
real command: PyAV decode, automatic image area, a DuckDB file) and prints per model:

``segments_right``
    live segments whose majority code (the event label covering most of the live span) is the
    capture's true code, out of 7;
``windows_right``
    share of the windows centred in a live span whose fused most probable code is the true one;
``codes``
    the majority code of each segment, in video order (truth: HeD Ab Br Br Fm HeD Sp);
``label_s``
    wall time of the `label` command, seconds (model loading included).

Usage: python benchmarks/semi_real_label.py [--models demo sononet16] [--live-s 3]
[--frozen-s 2] [--out DIR] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time
from pathlib import Path

import numpy as np
from _report import report

from fetal_analytics.cli import main as cli
from fetal_analytics.store import Store
from fetal_analytics.synth.captures import EXAMPLE_CODES, capture_video

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = ROOT.parent / "shared" / "data" / "sononet" / "example_images"


def label(video, db: Path, model: str) -> float:
    """Run `fetal-analytics label` on the video; its wall time in seconds."""
    manifest = db.with_suffix(".csv")
    manifest.write_text(f"scan_id,operator_id,group,video_path\nSEMI,OP1,expert,{video.path}\n")
    db.unlink(missing_ok=True)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the command's own report
        cli(["label", "--manifest", str(manifest), "--db", str(db), "--model", model,
             "--no-freezes", "--format", "json"], standalone_mode=False)
    return time.perf_counter() - start


def figures(video, db: Path) -> dict:
    with Store(db, read_only=True) as store:
        events = store.query_df("SELECT start_s, end_s, label FROM events")
        codes = json.loads(store.query_df("SELECT params_json FROM runs")["params_json"][0])[
            "classes"]
        probs = store.query_df(
            "SELECT t_s, probs FROM window_probs WHERE stream = 'fused' ORDER BY t_s")
    got = [code or "-" for code in video.live_labels(events)]
    right = sum(code == EXAMPLE_CODES[s.name] for code, s in zip(got, video.segments, strict=True))
    windows = []
    for t, p in zip(probs["t_s"], probs["probs"], strict=True):
        segment = next((s for s in video.segments if s.start_s <= t < s.freeze_s), None)
        if segment is not None:
            windows.append(codes[int(np.argmax(p))] == EXAMPLE_CODES[segment.name])
    return {"segments_right": f"{right}/{len(got)}",
            "windows_right": round(float(np.mean(windows)), 3), "codes": " ".join(got)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["demo", "sononet16"])
    parser.add_argument("--live-s", type=float, default=3.0)
    parser.add_argument("--frozen-s", type=float, default=2.0)
    parser.add_argument("--out", default=str(ROOT / "out" / "semi-real"))
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    options = parser.parse_args()
    if len(list(CAPTURES.glob("*.png"))) != 7:
        raise SystemExit(f"the 7 shared captures are missing: {CAPTURES}")
    out = Path(options.out)
    video = capture_video(CAPTURES, out / "semi_real.mp4", live_s=options.live_s,
                          frozen_s=options.frozen_s, fps=30, seed=0)
    result: dict = {"video_s": round(video.duration_s, 1), "segments": len(video.segments)}
    for model in options.models:
        seconds = label(video, out / f"{model}.duckdb", model)
        result.update({f"{model}_{k}": v for k, v in figures(video, out / f"{model}.duckdb")
                       .items()})
        result[f"{model}_label_s"] = round(seconds, 1)
    report(result, as_json=options.json)


if __name__ == "__main__":
    main()
