"""Markdown for reports: tables of records, and generated sections kept up to date in a file.

A generated section is text whose first and last lines are HTML comments (invisible when the
markdown is rendered), e.g. ``<!-- benchmark-models:start -->`` and
``<!-- benchmark-models:end -->``; `write_section` replaces the text between the same two lines in
a file and leaves the rest of the file as it is, so a document can hold hand-written text around
figures that a command regenerates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fetal_analytics.errors import UserError

__all__ = ["MarkdownError", "markdown_table", "write_section"]


class MarkdownError(UserError, ValueError):
    """A markdown file's generated section cannot be written (markers missing or unpaired)."""


def markdown_table(records: Sequence[Mapping[str, Any]], *, digits: int = 3,
                   column_digits: Mapping[str, int] | None = None) -> list[str]:
    """Records as the lines of a markdown (GitHub) table: a header row, then one row each.

    Parameters
    ----------
    records : sequence of mappings
        The rows; the first record's keys are the columns, in order (every record has them).
    digits : int
        Decimals of float cells.
    column_digits : mapping, optional
        Column -> decimals, for the columns that differ from `digits`.

    Returns
    -------
    list of str
        Without trailing newlines; an empty list when there are no records. None and NaN cells
        are empty; a ``|`` inside a cell is escaped.
    """
    if not records:
        return []
    column_digits = column_digits or {}
    head = list(records[0])

    def cell(key: str, value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        if isinstance(value, float):
            return f"{value:.{column_digits.get(key, digits)}f}"
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(cell("", k) for k in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(k, record[k]) for k in head) + " |" for record in records]
    return lines


def _is_marker(line: str) -> bool:
    return line.startswith("<!--") and line.endswith("-->")


def write_section(path: str | Path, section: str) -> Path:
    """Put a generated section into a markdown file, replacing the one between its markers.

    Parameters
    ----------
    path : str or Path
        The markdown file (created when missing).
    section : str
        Text whose first and last lines are its start and end markers: HTML comments such as
        ``<!-- name:start -->`` and ``<!-- name:end -->``. In the file, the text from the start
        marker to the end marker (both included) is replaced; a file without the markers gets
        the section appended after a blank line. Nothing else in the file changes, so writing
        twice leaves one section.

    Returns
    -------
    Path
        `path`.

    Raises
    ------
    MarkdownError
        `section` does not start and end with marker lines, or the file has one of the markers
        without the other (the message names the file).
    """
    path = Path(path)
    body = section.strip("\n")
    lines = body.split("\n")
    start, end = lines[0], lines[-1]
    if len(lines) < 2 or not (_is_marker(start) and _is_marker(end)) or start == end:
        raise MarkdownError("`section` must start and end with two different marker lines "
                            "(HTML comments such as <!-- name:start --> and <!-- name:end -->)")
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    at, to = text.find(start), text.find(end)
    if at >= 0 and to > at:
        text = text[:at] + body + text[to + len(end):]
    elif at >= 0 or to >= 0:
        raise MarkdownError(f"{path} has only one of the markers {start} and {end}: fix the "
                            "file by hand")
    else:
        text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + body + "\n"
    path.write_text(text, encoding="utf-8")
    return path
