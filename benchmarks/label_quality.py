"""Quality of `fetal-analytics label` on fresh simulated cohorts, against their true timelines.

For each seed, simulates natural-length scans (640x480, 30 fps) by operators the demo model
never saw (its training cohort is seed 2019; cohorts cached in --out), imports their true
timelines as the manual run ``truth`` (``ingest labels --others-as Bk --classes-of MODEL``:
labels outside the model's classes become Bk, since the model has no class for them), labels the
videos with the real command, and measures, per seed:

``f1_10``, ``f1_25``, ``f1_50``, ``edit``, ``accuracy``
    segment metrics (MS-TCN's evaluation, `fetal_analytics.segments`) of the automatic against
    the true timelines over the seed's scans, **Bk as background** (as MS-TCN treats its
    background class), frames every `DEFAULT_FRAME_STEP_S` (1 s);
``f1_25_all``, ``edit_all``
    the same with every class, Bk included, a segment class (the figures BENCHMARKS.md gave
    before issue 21);
``scan_accuracy_min``, ``scan_accuracy_mean``
    frame accuracy of each scan alone: its worst and its mean;
``rho_durations``
    the paper's correlation: Spearman's rho across the 11 categories of the mean minutes per
    scan, automatic against true (`analytics.agreement.paper_correlation`);
``label_s``, ``video_s``, ``speed``
    wall time of `label`, the video it labelled, and their ratio (times real time).

With several seeds it then prints the mean and the sample SD of each figure across seeds.

Targets (issue 21, on the mean of 3 seeds never used for training, model choice or decoding
tuning): f1_25 >= 0.85, edit >= 0.80, rho_durations >= 0.95, per-scan frame accuracy >= 0.90,
speed >= 30. Seeds looked at already (do not report on them as fresh): 2019 (training),
4242-4244; develop on validation seeds of your own and report once on new ones.

Usage: python benchmarks/label_quality.py [--seeds S1,S2,...] [--scans N] [--model PATH]
       [--out DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from _report import report

from analytics.agreement import paired_agreement, paper_correlation
from analytics.selection import EventSelection, select
from fetal_analytics.segments import events_to_frames, frame_accuracy
from fetal_analytics.shipped import shipped_file
from fetal_analytics.store import Store

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).with_name("fetal-analytics"))


def run(*args: str) -> None:
    subprocess.run([CLI, *args], check=True, stdout=subprocess.DEVNULL)


def selected_events(store: Store, selection: EventSelection) -> pd.DataFrame:
    """``scan_id, start_s, end_s, label`` of the events `selection` chooses."""
    head, params = selection.cte("sel")
    return store.query_df(f"WITH {head} SELECT scan_id, start_s, end_s, label FROM sel "
                          f"ORDER BY scan_id, start_s", params)


def scan_accuracies(store: Store, manual: EventSelection, auto: EventSelection) -> list[float]:
    """Frame accuracy of each scan's automatic timeline against its truth (1 s frames)."""
    truth = selected_events(store, manual)
    labelled = selected_events(store, auto)
    out = []
    for scan_id, true_events in truth.groupby("scan_id"):
        end_s = float(true_events.end_s.max())
        expected = events_to_frames(true_events, end_s=end_s)
        got = events_to_frames(labelled[labelled.scan_id == scan_id], end_s=end_s)
        out.append(frame_accuracy(got, expected))
    return out


def measure_seed(seed: int, scans: int, model: str, out: Path) -> dict:
    """Simulate (or reuse) the seed's cohort, label it with `model`, and score it."""
    cohort = out / f"cohort-{scans}-{seed}"
    if not (cohort / "manifest.csv").is_file():
        run("simulate", "--out", str(cohort), "--scans", str(scans), "--operators", str(scans),
            "--seed", str(seed), "--jobs", "2")
    db = out / f"quality-{seed}.duckdb"
    db.unlink(missing_ok=True)
    shutil.rmtree(out / f"quality-{seed}.duckdb.wal", ignore_errors=True)
    run("ingest", "manifest", str(cohort / "manifest.csv"), "--db", str(db))
    run("ingest", "labels", str(cohort / "truth" / "events.csv"), "--db", str(db), "--source",
        "manual", "--run-name", "truth", "--others-as", "Bk", "--classes-of", model)
    start = time.perf_counter()
    run("label", "--manifest", str(cohort / "manifest.csv"), "--db", str(db), "--model", model,
        "--run-name", "quality")
    label_s = time.perf_counter() - start
    with Store(db, read_only=True) as store:
        manual = select(store, run="truth", source="manual")
        auto = select(store, run="quality", source="auto")
        paired = paired_agreement(store, manual, auto, n_boot=200)
        correlation = paper_correlation(store, manual, auto)
        video_s = float(store.scalar("SELECT sum(duration_s) FROM scans"))
        per_scan = scan_accuracies(store, manual, auto)
    seg, seg_all = paired.segments_bk_as_background, paired.segments
    return {
        "seed": seed, "scans": paired.n_scans, "video_s": round(video_s, 1),
        "label_s": round(label_s, 1), "speed": round(video_s / label_s, 1),
        **{f"f1_{k}": round(seg.f1[k], 3) for k in (10, 25, 50)},
        "edit": round(seg.edit, 3), "accuracy": round(seg.frame_accuracy, 3),
        "f1_25_all": round(seg_all.f1[25], 3), "edit_all": round(seg_all.edit, 3),
        "scan_accuracy_min": round(min(per_scan), 3),
        "scan_accuracy_mean": round(statistics.fmean(per_scan), 3),
        "rho_durations": round(correlation.spearman_rho, 3),
        "kappa": round(paired.kappa.kappa, 3),
    }


def across_seeds(rows: list[dict]) -> dict[str, str]:
    """Mean ± sample SD of every figure across the seeds' rows."""
    keys = [k for k in rows[0] if k not in ("seed", "scans")]
    summary = {}
    for key in keys:
        values = [row[key] for row in rows]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        summary[key] = f"{statistics.fmean(values):.3f} ± {sd:.3f}"
    return summary


def print_markdown(rows: list[dict], summary: dict[str, str]) -> None:
    columns = ["f1_10", "f1_25", "f1_50", "edit", "accuracy", "scan_accuracy_min",
               "scan_accuracy_mean", "rho_durations", "f1_25_all", "edit_all", "speed"]
    print("| seed | scans | video min | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 3) + "|")
    for row in rows:
        print(f"| {row['seed']} | {row['scans']} | {row['video_s'] / 60:.0f} | "
              + " | ".join(str(row[c]) for c in columns) + " |")
    if len(rows) > 1:
        print("| **mean ± SD** | | | " + " | ".join(summary[c] for c in columns) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="4242",
                        help="comma-separated simulator seeds, one cohort each (default 4242)")
    parser.add_argument("--scans", type=int, default=3, help="natural-length scans per seed")
    parser.add_argument("--model", default=str(shipped_file("demo_model.keras")))
    parser.add_argument("--out", default=str(ROOT / "out" / "quality"))
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    options = parser.parse_args()
    try:
        seeds = [int(s) for s in options.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds takes comma-separated integers, got {options.seeds!r}")
    if not seeds:
        parser.error("--seeds names no seed")
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in seeds:
        rows.append(measure_seed(seed, options.scans, options.model, out))
        print(f"seed {seed}: {json.dumps(rows[-1])}", file=sys.stderr, flush=True)
    summary = across_seeds(rows)
    if options.json:
        print(json.dumps({"model": options.model, "seeds": rows, "mean_sd": summary}))
    elif options.markdown:
        print_markdown(rows, summary)
    elif len(rows) == 1:
        report(rows[0], as_json=False)
    else:
        for row in rows:
            report(row, as_json=False)
            print()
        report(summary, as_json=False)


if __name__ == "__main__":
    main()
