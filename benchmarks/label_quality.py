"""Quality of `fetal-analytics label` on a held-out simulated cohort, against the true timelines.

Simulates natural-length scans (640x480, 30 fps) with a seed and operators the demo model never
saw (its training cohort is seed 2019; cached in --out), imports their true timelines as the
manual run ``truth`` (``ingest labels --others-as Bk --classes-of MODEL``: labels outside the
model's classes become Bk, since the model has no class for them), labels the videos with the
real command, and prints:

``f1_10``, ``f1_25``, ``f1_50``, ``edit``, ``accuracy``
    segment metrics (MS-TCN semantics, `fetal_analytics.segments`) of the automatic against the
    true timelines over all scans, every class a segment class, frames every
    `DEFAULT_FRAME_STEP_S` (1 s);
``rho_durations``
    the paper's correlation: Spearman's rho across the 11 categories of the mean minutes per
    scan, automatic against true (`analytics.agreement.paper_correlation`);
``per_category_rho_median``
    the median across categories of the per-category correlation over scans;
``label_s``, ``video_s``
    wall time of `label` and the video it labelled.

Targets (issue 6): f1_25 >= 0.85, edit >= 0.80, rho_durations >= 0.95 (all fractions).

Usage: python benchmarks/label_quality.py [--scans N] [--seed S] [--model PATH] [--out DIR] [--json]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _report import report

from analytics.agreement import paired_agreement, paper_correlation
from analytics.selection import select
from fetal_analytics.shipped import shipped_file
from fetal_analytics.store import Store

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).with_name("fetal-analytics"))


def run(*args: str) -> None:
    subprocess.run([CLI, *args], check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=3)
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--model", default=str(shipped_file("demo_model.keras")))
    parser.add_argument("--out", default=str(ROOT / "out" / "quality"))
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    options = parser.parse_args()
    out = Path(options.out)
    cohort = out / f"cohort-{options.scans}-{options.seed}"
    if not (cohort / "manifest.csv").is_file():
        run("simulate", "--out", str(cohort), "--scans", str(options.scans), "--operators",
            str(options.scans), "--seed", str(options.seed))
    db = out / "quality.duckdb"
    db.unlink(missing_ok=True)
    shutil.rmtree(out / "quality.duckdb.wal", ignore_errors=True)
    run("ingest", "manifest", str(cohort / "manifest.csv"), "--db", str(db))
    run("ingest", "labels", str(cohort / "truth" / "events.csv"), "--db", str(db), "--source",
        "manual", "--run-name", "truth", "--others-as", "Bk", "--classes-of", options.model)
    start = time.perf_counter()
    run("label", "--manifest", str(cohort / "manifest.csv"), "--db", str(db), "--model",
        options.model, "--run-name", "quality")
    label_s = time.perf_counter() - start
    with Store(db, read_only=True) as store:
        manual = select(store, run="truth", source="manual")
        auto = select(store, run="quality", source="auto")
        paired = paired_agreement(store, manual, auto, n_boot=200)
        correlation = paper_correlation(store, manual, auto)
        video_s = float(store.scalar("SELECT sum(duration_s) FROM scans"))
    seg = paired.segments
    figures = {
        "scans": paired.n_scans, "video_s": round(video_s, 1), "label_s": round(label_s, 1),
        **{f"f1_{k}": round(seg.f1[k], 3) for k in (10, 25, 50)},
        "edit": round(seg.edit, 3), "accuracy": round(seg.frame_accuracy, 3),
        "rho_durations": round(correlation.spearman_rho, 3),
        "r_durations": round(correlation.pearson_r, 3),
        "per_category_rho_median": round(float(paired.per_category.spearman_rho.median()), 3),
        "kappa": round(paired.kappa.kappa, 3),
    }
    report(figures, as_json=options.json)


if __name__ == "__main__":
    main()
