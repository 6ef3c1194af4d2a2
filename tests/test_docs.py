"""The README documents every command, and every command's help ends with an example."""

import json
import re
import shlex
import shutil
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from fetal_analytics.cli import main

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def commands(group: click.Group, prefix: str = "fetal-analytics"):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, f"{prefix} {name}")
        else:
            yield f"{prefix} {name}", command


ALL = dict(commands(main))


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_command_is_documented_in_the_readme(name):
    assert f"`{name}`" in README or re.search(rf"^\$ {re.escape(name)}\b", README, re.M), name


def examples(name: str) -> list[str]:
    """The example command lines of a command's help, continuation lines joined."""
    help_text = ALL[name].help or ""
    parts = help_text.rsplit("Example:", 1)
    if len(parts) == 1:
        return []
    return parts[1].strip().replace("\\\n", " ").splitlines()


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_command_help_ends_with_an_example(name):
    lines = examples(name)
    assert lines, f"{name} has no example"
    assert all(line.strip().startswith("fetal-analytics") for line in lines), name


# What `make demo` (scripts/demo.sh) leaves under out/demo.
DEMO_FILES = {
    "out/demo/demo.duckdb", "out/demo/cohort/manifest.csv",
    "out/demo/cohort/manual_labels.csv", "out/demo/cohort/truth/events.csv",
    "out/demo/videos-cohort/manifest.csv", "out/demo/videos-cohort/manual_labels.csv",
    "out/demo/videos-cohort/truth/events.csv",
    *(f"out/demo/videos-cohort/videos/SIM000{i}.mp4" for i in range(1, 5)),
}
DOWNLOADED = {"SonoNet16.npz"}  # the published SonoNet weights (see README, SonoNet-16)
WRITES = {"--out", "--db", "--confusion", "--markdown"}


def test_help_examples_use_only_demo_files_and_what_other_examples_write():
    lines = [shlex.split(line) for name in ALL for line in examples(name)]
    written = {args[i + 1] for args in lines for i, arg in enumerate(args[:-1])
               if arg in WRITES}
    demo = (REPO / "scripts" / "demo-db.sh").read_text()
    for part in ('"$out/videos-cohort"', '"$out/cohort"', '"$out/demo.duckdb"',
                 "--run-name manual-clips", "--run-name simulator-truth", "--run-name truth",
                 "--run-name demo-model"):
        assert part in demo  # the demo still writes the files and runs the examples use
    for args in lines:
        for i, arg in enumerate(args[1:], 1):
            if arg.startswith("-") or args[i - 1] in WRITES:
                continue
            if "/" not in arg and "." not in arg:
                continue  # a run name, a group, a number
            if arg.startswith("out/demo/"):
                assert arg in DEMO_FILES, f"{shlex.join(args)}: make demo writes no {arg}"
            else:
                assert arg in DOWNLOADED or any(
                    arg == w or arg.startswith(f"{w}/") for w in written), (
                    f"{shlex.join(args)}: {arg} is neither a demo file nor written by an example")


def test_the_readme_test_command_is_what_ci_runs():
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "make test" in README and "make test" in ci


CHEAP = ("fetal-analytics", "fetal-analytics init-db", "fetal-analytics ingest manifest",
         "fetal-analytics ingest labels", "fetal-analytics info", "fetal-analytics export events",
         "fetal-analytics export features", "fetal-analytics export dfg",
         "fetal-analytics correlate", "fetal-analytics stats", "fetal-analytics compare")


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory):
    """What `make demo` writes that needs no model: out/demo/cohort, demo.duckdb of its scans."""
    root = tmp_path_factory.mktemp("demo")
    db, cohort = root / "out/demo/demo.duckdb", root / "out/demo/cohort"
    for args in (  # the commands of scripts/demo-db.sh for the scans without video
            ["simulate", "--out", cohort, "--scans", 48, "--operators", 12, "--seed", 2019,
             "--manual-fraction", 0.5, "--no-video"],
            ["init-db", "--db", db], ["ingest", "manifest", cohort / "manifest.csv", "--db", db],
            ["ingest", "labels", cohort / "manual_labels.csv", "--db", db, "--source", "manual",
             "--run-name", "manual-clips"],
            ["ingest", "labels", cohort / "truth/events.csv", "--db", db, "--source", "auto",
             "--run-name", "simulator-truth"]):
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code == 0, result.output
    return root


def _run_examples(command: str, root: Path, monkeypatch) -> None:
    monkeypatch.chdir(root)
    for line in examples(command) if command != "fetal-analytics" else (
            main.help.rsplit("Example:", 1)[1].strip().splitlines()):
        result = CliRunner().invoke(main, shlex.split(line)[1:])
        assert result.exit_code == 0, f"{line}\n{result.output}"


@pytest.mark.parametrize("command", CHEAP)
def test_help_examples_run_as_written_after_make_demo(command, demo_folder, monkeypatch,
                                                       tmp_path):
    root = tmp_path / "work"
    shutil.copytree(demo_folder, root)  # each command's examples start from the demo alone
    _run_examples(command, root, monkeypatch)


def test_the_simulate_example_gives_a_cohort_the_analysis_examples_can_compare(tmp_path,
                                                                              monkeypatch):
    line = next(line for line in examples("fetal-analytics simulate") if "--no-video" in line)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(main, shlex.split(line)[1:]).exit_code == 0
    out = Path(shlex.split(line)[shlex.split(line).index("--out") + 1])
    for args in (["ingest", "manifest", out / "manifest.csv"],
                 ["ingest", "labels", out / "truth/events.csv", "--source", "auto"]):
        assert runner.invoke(main, [*map(str, args), "--db", "c.duckdb"]).exit_code == 0
    report = runner.invoke(main, ["compare", "--db", "c.duckdb", "--groups", "expert",
                                  "trainee", "--format", "json"])
    assert report.exit_code == 0, report.output
    features = json.loads(report.stdout)["features"]
    assert all(f["values"][g]["n"] >= 3 for f in features for g in ("expert", "trainee"))
    assert sum(f["p"] is not None for f in features) > len(features) / 2
