"""Every command, including the next one added, survives the bad arguments a new user gives it.

The commands are enumerated from click's command tree. Each gets, one at a time: no arguments,
an unknown option, and for each path parameter a missing file, an empty file, a file of random
bytes and a folder (a file where a folder is expected), an output file with a suffix nobody
writes and an output into a folder that does not exist; for each number a negative number and a
word. No case may end in a traceback: the exit status is 0, 1 or 2, a failure says ``Error:``,
and the database the command was given is unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from fetal_analytics.cli import main

DATA = Path(__file__).parent / "data"
OUTPUTS = {"out", "confusion", "markdown"}  # parameters the command writes


def commands(group: click.Group = main, prefix: tuple[str, ...] = ()) -> Iterator[tuple]:
    """(words of the command line, command) of every leaf command under `group`."""
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A labelled database and the bad inputs, in one folder."""
    root = tmp_path_factory.mktemp("sweep")
    db = root / "good.duckdb"
    runner = CliRunner()
    for args in (["ingest", "manifest", DATA / "manifest.csv"],
                 ["ingest", "labels", DATA / "manual_labels.csv"],
                 ["ingest", "labels", DATA / "auto_labels_frames.csv", "--source", "auto",
                  "--run-name", "v1"]):
        assert runner.invoke(main, [*map(str, args), "--db", str(db)]).exit_code == 0
    (root / "folder").mkdir()
    return {"db": db, "root": root, "garbage": os.urandom(2048)}


def _reset(files: dict[str, Path]) -> None:
    """Restore the bad input files (a command may have made a database of the empty one)."""
    root = files["root"]
    for name, content in (("empty.csv", b""), ("garbage.csv", files["garbage"])):
        (root / name).write_bytes(content)
        (root / f"{name}.wal").unlink(missing_ok=True)


def _is_output(param: click.Parameter) -> bool:
    return param.name in OUTPUTS


def _good_value(param: click.Parameter, files: dict[str, Path], n: int) -> str:
    """A value that is well formed, so the bad one under test is the only problem."""
    kind = param.type
    if isinstance(kind, click.Path):
        if param.name == "db_path":
            return str(files["db"])
        folder = files["root"] / f"case{n}"
        if not kind.file_okay:
            return str(folder / param.name)  # a folder the command may create
        return str(folder / "new" / "out.csv") if _is_output(param) else str(
            files["root"] / "garbage.csv")
    if isinstance(kind, click.Choice):
        return str(kind.choices[0])
    if isinstance(kind, click.IntRange | click.FloatRange) or kind in (click.INT, click.FLOAT):
        return "1"
    return "x"


def _bad_values(param: click.Parameter, files: dict[str, Path], n: int) -> list[str]:
    kind = param.type
    root = files["root"]
    if isinstance(kind, click.Path):
        if not kind.file_okay:  # a folder: a file in its place, or (input) nothing there
            return [str(root / "garbage.csv")] + (
                [] if _is_output(param) else [str(root / "missing" / "nothing")])
        bad = [str(root / "folder")]
        if _is_output(param):
            return [*bad, str(root / f"case{n}" / "deeper" / "out.xyz")]
        return [*bad, str(root / "missing" / "nothing.csv"), str(root / "empty.csv"),
                str(root / "garbage.csv")]
    if isinstance(kind, click.IntRange | click.FloatRange) or kind in (click.INT, click.FLOAT):
        return ["-5", "many"]
    return []


def cases(command: click.Command, files: dict[str, Path]) -> Iterator[list[str]]:
    """Argument lists with one bad value each (and the two with none of the required ones)."""
    yield []
    yield ["--no-such-option"]
    params = [p for p in command.params if p.name not in ("help",)]
    for n, target in enumerate(params):
        for bad in _bad_values(target, files, n):
            args: list[str] = []
            for param in params:
                if param is not target and not param.required:
                    continue
                value = bad if param is target else _good_value(param, files, n)
                if isinstance(param, click.Argument):
                    args.append(value)
                else:
                    args.extend([param.opts[0], value])
            yield args


@pytest.mark.parametrize(("words", "command"), list(commands()),
                         ids=[" ".join(w) for w, _ in commands()])
def test_bad_arguments_never_end_in_a_traceback(words, command, files):
    db_before = files["db"].read_bytes()
    runner = CliRunner()
    for args in cases(command, files):
        _reset(files)
        result = runner.invoke(main, [*words, *args])
        where = f"fetal-analytics {' '.join(words)} {' '.join(args)}"
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            f"{where}: {result.exception!r}\n{result.output}")
        assert "Traceback" not in result.output, where
        assert result.exit_code in (0, 1, 2), f"{where}: exit {result.exit_code}"
        if result.exit_code:
            assert "Error:" in result.output, f"{where}:\n{result.output}"
        assert files["db"].read_bytes() == db_before, f"{where} changed the database"


def test_the_sweep_covers_every_command():
    names = {" ".join(words) for words, _ in commands()}
    assert {"init-db", "ingest manifest", "export dfg", "label", "deidentify"} <= names
    assert len(names) == sum(1 for _ in commands())
