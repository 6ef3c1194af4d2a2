"""The README documents every command, and every command's help ends with an example."""

import re
from pathlib import Path

import click
import pytest

from fetal_analytics.cli import main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


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


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_command_help_ends_with_an_example(name):
    help_text = ALL[name].help or ""
    example = help_text.rsplit("Example:", 1)
    assert len(example) == 2, f"{name} has no example"
    assert all(line.strip().startswith("fetal-analytics") for line in
               example[1].strip().splitlines()), name


def test_the_readme_test_command_is_what_ci_runs():
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "make test" in README and "make test" in ci
