"""The README's sample outputs are what the current code prints.

The cheap samples are run in README order in a folder holding a copy of tests/data and the part
of what `make demo` writes that needs no model (``out/demo/cohort``, ``out/demo/demo.duckdb``
without the video scans): the tests/data files
imported into ``cohort.duckdb``, the small simulated cohort in ``small``, and the analyses of
``out/demo/demo.duckdb``. Each command's output is compared with the lines under it (up to a
final ``...``, where the sample is cut short; samples without output are not compared).
Absolute paths print as ``/…``; messages on stderr come before the output on stdout. Samples
that need a file the README only names (``corrected.csv``) or another database are not run here.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from fetal_analytics.cli import main

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
CHECKED_DBS = ("cohort.duckdb", "small.duckdb", "out/demo/demo.duckdb")
CHEAP = ("init-db", "ingest", "info", "export", "simulate", "correlate", "stats", "compare")
DEMO_PART_2 = (  # the commands of scripts/demo-db.sh for the scans without video
    "simulate --out out/demo/cohort --scans 48 --operators 12 --seed 2019 --manual-fraction 0.5 "
    "--no-video",
    "init-db --db out/demo/demo.duckdb",
    "ingest manifest out/demo/cohort/manifest.csv --db out/demo/demo.duckdb",
    "ingest labels out/demo/cohort/manual_labels.csv --db out/demo/demo.duckdb --source manual "
    "--run-name manual-clips",
    "ingest labels out/demo/cohort/truth/events.csv --db out/demo/demo.duckdb --source auto "
    "--run-name simulator-truth",
)


def samples() -> list[tuple[str, str]]:
    """(command line, documented output) of every console sample, in README order."""
    pairs = []
    for block in re.findall(r"```console\n(.*?)```", README, re.S):
        for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, _, output = chunk.partition("\n")
            pairs.append((command, output))
    return pairs


def checked(command: str, folder: Path) -> bool:
    if not command.startswith("fetal-analytics "):
        return False
    args = shlex.split(command)
    if args[1] not in CHEAP:
        return False
    if args[1] == "simulate":
        return "small" in args
    if not any(db in args for db in CHECKED_DBS):
        return False
    inputs = [a for a in args[2:] if a.endswith((".csv", ".parquet")) and not
              args[args.index(a) - 1].startswith("--out")]
    return all((folder / a).exists() for a in inputs)


def test_the_readme_samples_are_what_the_code_prints(tmp_path, monkeypatch):
    shutil.copytree(REPO / "tests" / "data", tmp_path / "tests" / "data")
    monkeypatch.chdir(tmp_path)  # the samples' relative paths
    for command in DEMO_PART_2:
        assert CliRunner().invoke(main, shlex.split(command)).exit_code == 0, command
    started = False
    n_checked = 0
    for command, documented in samples():
        started = started or command.startswith("fetal-analytics init-db --db cohort.duckdb")
        if not started or not documented or not checked(command, tmp_path):
            continue
        # A process of its own, as a user runs it: log warnings print as they do there.
        result = subprocess.run(
            [sys.executable, "-c", "from fetal_analytics.cli import main; main()",
             *shlex.split(command)[1:]], capture_output=True, text=True, check=False)
        printed = (result.stderr + result.stdout).replace(str(tmp_path.resolve()), "/…")
        if documented.endswith("...\n"):  # cut short
            documented = documented[:-len("...\n")]
            printed = "".join(printed.splitlines(True)[:len(documented.splitlines())])
        assert printed == documented, f"$ {command}"
        n_checked += 1
    assert n_checked >= 14
