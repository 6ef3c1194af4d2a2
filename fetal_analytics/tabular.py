"""Users' tabular files (CSV, Parquet): read with exact locations for error messages, written
in the format their name says.

Every value is read as text and each row keeps its location (the physical line of a CSV, counting
the header as line 1, or the row of a Parquet file), so validation can say "labels.csv, line 7,
column end_s: expected ...".
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fetal_analytics.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TABLE_FORMATS", "InputError", "InputTable", "OutputFormatError", "Problem",
           "read_table", "table_format", "write_table"]

MAX_PROBLEMS_SHOWN = 20

TABLE_FORMATS = {".csv": "csv", ".parquet": "parquet"}
"""File suffixes of the tables the package writes, and their formats."""

CSV_SEPARATORS = (",", ";", "\t")
"""Field separators a CSV may use: comma, or semicolon and tab as Excel writes them where the
comma is the decimal mark."""

_DECIMAL_COMMA = re.compile(r"[+-]?\d*,\d+(?:[eE][+-]?\d+)?")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file.

    Attributes
    ----------
    path : Path
        The file.
    location : str or None
        ``"line 7"`` (CSV) or ``"row 7"`` (Parquet); None for the file as a whole.
    column : str or None
        The column, where one is at fault.
    message : str
        What was expected and what was found.
    """

    path: Path
    location: str | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = [str(self.path)]
        if self.location:
            where.append(self.location)
        if self.column:
            where.append(f"column {self.column}")
        return f"{', '.join(where)}: {self.message}"


class InputError(UserError, ValueError):
    """An input file was refused; `problems` lists every problem found (the message the first 20).

    Nothing is written to the store when this is raised.
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        if not problems:
            raise ValueError("InputError needs at least one problem")
        self.problems = list(problems)
        shown = [str(p) for p in self.problems[:MAX_PROBLEMS_SHOWN]]
        hidden = len(self.problems) - len(shown)
        if hidden:
            shown.append(f"... and {hidden} more problems")
        super().__init__("\n".join(shown))


@dataclass
class InputTable:
    """The text of a tabular file: column name -> values, and each row's location.

    Column names are stripped and lower-cased. Empty cells are empty strings.
    """

    path: Path
    unit: str  # "line" or "row"
    numbers: list[int]
    columns: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.numbers)

    def location(self, index: int) -> str:
        """The location of the row at `index` (0-based position in the table)."""
        return f"{self.unit} {self.numbers[index]}"

    def problem(self, index: int | None, column: str | None, message: str) -> Problem:
        """A `Problem` at row `index` (None: the whole file) and `column`."""
        return Problem(self.path, None if index is None else self.location(index), column, message)


def read_table(
    path: str | Path, *, required: Iterable[str] | Iterable[Iterable[str]],
    optional: Iterable[str] = (),
) -> InputTable:
    """Read a CSV or Parquet file as text, checking its columns.

    Parameters
    ----------
    path : str or Path
        ``.parquet`` files are read with pyarrow; anything else as UTF-8 CSV (a byte-order mark is
        allowed, as Excel writes one). The CSV separator is the one of `CSV_SEPARATORS` the
        header line holds most of; in a file separated by semicolons or tabs a number with a
        decimal comma (``12,5``) is read as ``12.5``.
    required : iterable of str, or of alternatives
        Columns that must be present. An item that is itself a tuple of column groups, e.g.
        ``(("start_s", "end_s"), ("start_frame", "end_frame"))``, requires exactly one group.
    optional : iterable of str
        Columns that are read when present. Other columns are ignored.

    Raises
    ------
    InputError
        The file is missing, unreadable, has no header, lacks a required column, or a row has
        the wrong number of fields.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError([Problem(path, None, None, "no such file")])
    table = _read_parquet(path) if path.suffix.lower() == ".parquet" else _read_csv(path)
    _check_columns(table, list(required), list(optional))
    return table


def _separator(header_line: str) -> str:
    """The separator of `CSV_SEPARATORS` the header line holds most of (comma on a tie)."""
    return max(CSV_SEPARATORS, key=header_line.count)


def _read_csv(path: Path) -> InputTable:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            separator = _separator(handle.readline())
            handle.seek(0)
            reader = csv.reader(handle, delimiter=separator)
            header = next(reader, None)
            if header is None or not any(cell.strip() for cell in header):
                raise InputError(
                    [Problem(path, "line 1", None, "expected a header row, found none")])
            names = [cell.strip().lower() for cell in header]
            values: list[list[str]] = [[] for _ in names]
            numbers: list[int] = []
            problems: list[Problem] = []
            start = reader.line_num + 1
            for row in reader:
                if not any(cell.strip() for cell in row):
                    start = reader.line_num + 1
                    continue
                if len(row) != len(names):
                    problems.append(Problem(
                        path, f"line {start}", None,
                        f"expected {len(names)} fields as in the header, found {len(row)}",
                    ))
                else:
                    numbers.append(start)
                    for column, cell in zip(values, row, strict=True):
                        cell = cell.strip()
                        if separator != "," and _DECIMAL_COMMA.fullmatch(cell):
                            cell = cell.replace(",", ".")
                        column.append(cell)
                start = reader.line_num + 1
    except UnicodeDecodeError as exc:
        raise InputError([Problem(path, None, None, f"expected UTF-8 text: {exc}")]) from exc
    except csv.Error as exc:
        raise InputError([Problem(path, f"line {reader.line_num}", None, str(exc))]) from exc
    if problems:
        raise InputError(problems)
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise InputError([Problem(path, "line 1", None,
                                  f"column names appear twice: {', '.join(duplicated)}")])
    return InputTable(path, "line", numbers, dict(zip(names, values, strict=True)))


def _read_parquet(path: Path) -> InputTable:
    import pyarrow.parquet as pq

    try:
        arrow = pq.read_table(path)
    except Exception as exc:
        raise InputError([Problem(path, None, None, f"cannot read as Parquet: {exc}")]) from exc
    columns = {}
    for name, column in zip(arrow.column_names, arrow.columns, strict=True):
        columns[name.strip().lower()] = ["" if v is None else _text(v) for v in column.to_pylist()]
    return InputTable(path, "row", list(range(1, arrow.num_rows + 1)), columns)


def _text(value: object) -> str:
    # repr keeps every digit of a float, so parsing the text back is exact.
    return repr(value) if isinstance(value, float) else str(value).strip()


def _check_columns(table: InputTable, required: list, optional: list[str]) -> None:
    present = set(table.columns)
    missing = []
    for item in required:
        if isinstance(item, str):
            if item not in present:
                missing.append(item)
            continue
        groups = [tuple(group) for group in item]
        complete = [g for g in groups if present.issuperset(g)]
        if len(complete) != 1:
            options = " or ".join(", ".join(g) for g in groups)
            found = "found both" if complete else "found neither"
            missing.append(f"exactly one of ({options}), {found}")
    if missing:
        expected = [i if isinstance(i, str) else "/".join(",".join(g) for g in i) for i in required]
        raise InputError([table.problem(None, None, (
            f"missing columns: {'; '.join(missing)}. Expected columns: "
            f"{', '.join(expected)}" + (f" (optional: {', '.join(optional)})" if optional else "")
            + f"; found: {', '.join(table.columns) or 'none'}"
        ))])
    if not table.numbers:
        raise InputError([table.problem(None, None, "the file has a header but no data rows")])


class OutputFormatError(UserError, ValueError):
    """An output file name and format that do not go together."""


def table_format(path: str | Path, fmt: str | None = None,
                 formats: dict[str, str] = TABLE_FORMATS) -> str:
    """The format to write `path` in: `fmt` if given, else the one its suffix names.

    Raises
    ------
    OutputFormatError
        The suffix names no format of `formats`, or contradicts `fmt`; the message lists the
        valid suffixes.
    """
    suffix = Path(path).suffix.lower()
    valid = ", ".join(formats)
    named = formats.get(suffix)
    if fmt is None:
        if named is None:
            raise OutputFormatError(f"{path}: cannot tell the format from the suffix "
                                    f"{suffix or '(none)'!r}; use one of {valid}")
        return named
    if named is not None and named != fmt:
        raise OutputFormatError(f"{path}: the suffix {suffix} contradicts the format {fmt!r}; "
                                f"use one of {valid} to match it")
    return fmt


def write_table(frame: pd.DataFrame, path: str | Path, *, fmt: str | None = None) -> Path:
    """Write a DataFrame to CSV or Parquet, the format from `fmt` or else the file's suffix.

    The folder is created when missing. CSV floats keep all their digits (a file read back
    gives the same values); Parquet holds the same table with its types.

    Raises
    ------
    OutputFormatError
        See `table_format`.
    """
    path = Path(path)
    fmt = table_format(path, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path
