"""Time `fetal-analytics report --all` (HTML, PDF and JSON) on the demo cohort, as users run it.

Usage: python benchmarks/report_speed.py [--db PATH] [--repeat N] [--json]
The database defaults to out/demo/demo.duckdb (written by `make demo`), else the shipped
data/demo.duckdb. Prints the wall time of the fresh process (start-up, the skill estimate,
every operator's three files and the index included), the operators, files and pages written.
The target (issue 19): under 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import report

ROOT = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).with_name("fetal-analytics")


def _command() -> list[str]:
    if CLI.exists():
        return [str(CLI)]
    return [sys.executable, "-c", "from fetal_analytics.cli import main; main()"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = ROOT / "out/demo/demo.duckdb"
    parser.add_argument("--db", type=Path,
                        default=default if default.exists() else ROOT / "data/demo.duckdb")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    options = parser.parse_args()
    times = []
    with tempfile.TemporaryDirectory() as folder:
        for i in range(options.repeat):
            out = Path(folder) / f"reports{i}"
            start = time.perf_counter()
            subprocess.run([*_command(), "report", "--db", str(options.db), "--all", "--out",
                            str(out), "--format", "html,pdf,json"], check=True,
                           capture_output=True, cwd=ROOT)
            times.append(time.perf_counter() - start)
        from pypdf import PdfReader

        pdfs = sorted(out.glob("*.pdf"))
        pages = sum(len(PdfReader(p).pages) for p in pdfs)
        files = len(list(out.iterdir()))
    report({"db": str(options.db), "operators": len(pdfs), "files": files, "pdf_pages": pages,
            "report_all_best_s": round(min(times), 2),
            "per_operator_s": round(min(times) / max(len(pdfs), 1), 2),
            "cpus": os.cpu_count(), "python": platform.python_version()}, as_json=options.json)


if __name__ == "__main__":
    main()
