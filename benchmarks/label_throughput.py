"""Labelling throughput on a simulated full-length scan: decoding, network and both pipelined.

Renders one simulated 640x480, 30 fps scan (default 45 minutes) once into ``out/bench/`` and
reuses it, then measures in one run, with one loaded model:

``decode_s``
    the labeller's own decoding without the network (`inference.labelling.decode_windows`:
    decode, crop and resize, window assembly and standardisation for every stream, freeze
    detection unless --no-freezes);
``infer_s``
    the network alone on as many windows, in batches of the same size, inputs made beforehand;
``total_s``
    `fetal-analytics label`'s code path end to end (`inference.labelling.label_scans` into a
    fresh database: decoding in a thread beside the network, fusion, temporal decoding and the
    store write);

and prints a JSON object with ``video_s, decode_s, infer_s, total_s, realtime_factor``
(video_s / total_s), ``overlap_ratio`` (total_s / max(decode_s, infer_s): 1 is perfect
pipelining, 2 no overlap at all for equal stages) and ``peak_rss_mb`` (the process's peak
resident memory). Targets with the demo model on 2 cores: realtime_factor >= 10,
overlap_ratio <= 1.25, peak_rss_mb <= 2000.

Usage: python benchmarks/label_throughput.py [--minutes M] [--model PATH] [--batch-size N]
       [--no-freezes] [--json]
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import tempfile
import time
from pathlib import Path

from _report import report

from fetal_analytics.synth import simulate_cohort, write_cohort
from inference.labelling import (
    DEFAULT_FREEZES,
    decode_windows,
    label_scans,
    load_labelling_model,
    model_spec,
)

CACHE = Path(__file__).resolve().parents[1] / "out" / "bench"


def scan_video(minutes: float) -> tuple[Path, Path]:
    """The cached simulated scan (rendered on first use): (manifest, video)."""
    folder = CACHE / f"label-{minutes:g}min-640x480"
    manifest, video = folder / "manifest.csv", folder / "videos" / "SIM0001.mp4"
    if not (manifest.is_file() and video.is_file()):
        print(f"rendering a {minutes:g}-minute scan into {folder} (once)...", flush=True)
        write_cohort(simulate_cohort(scans=1, operators=1, minutes=minutes, seed=1), folder,
                     size=(640, 480), seed=1)
    return manifest, video


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=45.0, help="scan length (default 45)")
    parser.add_argument("--model", type=Path, default=None,
                        help="model file (default: the demo model data/demo_model.keras)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--no-freezes", action="store_true", help="skip freeze detection")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    options = parser.parse_args()
    freezes = None if options.no_freezes else DEFAULT_FREEZES
    manifest, video = scan_video(options.minutes)
    loaded = load_labelling_model(options.model)
    spec = model_spec(loaded)

    # Decoding alone; one batch is kept as the network's input below.
    kept = []
    start = time.perf_counter()
    decoded = decode_windows(video, spec.streams, scale=spec.scale, hop_s=spec.hop_s,
                             batch_size=options.batch_size, freezes=freezes,
                             on_batch=lambda b: kept.append(b) if not kept else None)
    decode_s = time.perf_counter() - start

    # The network alone, on as many windows, after one call that builds the graph.
    inputs = kept[0].inputs
    n_windows = len(decoded.centres_s)
    loaded.predict_streams(inputs)
    start = time.perf_counter()
    full, rest = divmod(n_windows, len(inputs[0]))
    for _ in range(full):
        loaded.predict_streams(inputs)
    if rest:
        loaded.predict_streams([x[:rest] for x in inputs])
    infer_s = time.perf_counter() - start

    # End to end, as `fetal-analytics label` runs it.
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        result = label_scans(Path(folder) / "bench.duckdb", manifest=manifest, model=loaded,
                             batch_size=options.batch_size, freezes=freezes)
        total_s = time.perf_counter() - start
    if result.failed:
        raise SystemExit(f"labelling failed: {result.failed[0].reason}")
    outcome = result.labelled[0]
    video_s = decoded.duration_s
    figures = {
        "video_s": round(video_s, 3),
        "decode_s": round(decode_s, 3),
        "infer_s": round(infer_s, 3),
        "total_s": round(total_s, 3),
        "realtime_factor": round(video_s / total_s, 2),
        "overlap_ratio": round(total_s / max(decode_s, infer_s), 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "n_frames": decoded.n_frames,
        "n_windows": n_windows,
        "streams": [s.name for s in spec.streams],
        "size": list(spec.input_shape[:2]),
        "batch_size": options.batch_size,
        "freezes": None if freezes is None else outcome.n_freezes,
        "n_events": outcome.n_events,
        "decode_fps": round(decoded.n_frames / decode_s),
        "clips_per_s": round(n_windows * len(spec.streams) / infer_s, 1)
        if infer_s > 0 else math.inf,
        "model": str(spec.path),
        "cpu_count": os.cpu_count(),
    }
    report(figures, as_json=options.json)


if __name__ == "__main__":
    main()
