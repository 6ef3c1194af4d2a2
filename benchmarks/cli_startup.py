"""Time `fetal-analytics --help`, `--version` and `info` as a user runs them (fresh processes).

Usage: python benchmarks/cli_startup.py [--repeat N] [--json]
Prints the best and median wall time of each command, in seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = Path(sys.executable).with_name("fetal-analytics")


def wall_times(args: list[str], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([str(CLI), *args], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "demo.duckdb"
        cohort = Path(folder) / "cohort"
        subprocess.run([str(CLI), "simulate", "--out", str(cohort), "--scans", "12",
                        "--no-video"], check=True, capture_output=True)
        for args in (["init-db"], ["ingest", "manifest", str(cohort / "manifest.csv")],
                     ["ingest", "labels", str(cohort / "manual_labels.csv")]):
            subprocess.run([str(CLI), *args, "--db", str(db)], check=True, capture_output=True)
        commands = {"--help": ["--help"], "--version": ["--version"],
                    "info": ["info", "--db", str(db), "--format", "json"]}
        results = {}
        for name, args in commands.items():
            times = wall_times(args, options.repeat)
            results[name] = {"best_s": round(min(times), 3),
                             "median_s": round(statistics.median(times), 3)}
    if options.json:
        print(json.dumps(results))
    else:
        for name, figures in results.items():
            print(f"fetal-analytics {name:<10} best {figures['best_s']:.3f} s, "
                  f"median {figures['median_s']:.3f} s")


if __name__ == "__main__":
    main()
