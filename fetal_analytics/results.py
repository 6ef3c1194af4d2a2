"""Result objects that serialise themselves: ``to_dict()`` for JSON, ``to_frame()`` for tables.

Every analysis returns a frozen dataclass of named fields (in the manner of scipy.stats'
result objects). Deriving from `Result` gives it

``to_dict()``
    Plain JSON-safe Python: DataFrames as lists of row dicts, numpy scalars and arrays as
    Python numbers and lists, non-finite floats (NaN, inf) as None, nested results as dicts.
    Fields declared with ``field(metadata={"serialise": False})`` (large intermediate arrays)
    are left out.
``to_frame()``
    The result's main table as a DataFrame, for results that have one (the field named by the
    class attribute ``frame_field``).

The command line's JSON and CSV, the dashboard's tables and the reports all come from these two
methods, so a number is formatted for output in one place.
"""

from __future__ import annotations

import math
from dataclasses import fields, is_dataclass
from datetime import date, datetime
from typing import Any, ClassVar

__all__ = ["P_FLOOR", "Result", "format_p", "is_p_value", "plain"]


P_FLOOR = 1e-16
"""Below this a p-value is printed as "< 1e-16": a double cannot resolve it from 0."""


def format_p(p: float, spec: str = ".2g") -> str:
    """A p-value for people: ``"< 1e-16"`` below `P_FLOOR` (never 0), blank when NaN."""
    if p != p:
        return ""
    return f"< {P_FLOOR:g}" if p < P_FLOOR else format(p, spec)


def is_p_value(column: str) -> bool:
    """Whether a table column holds p-values (``p``, ``*_p``, ``p_adjusted``, ``cox_p``...)."""
    return column == "p" or column.endswith("_p") or column.startswith("p_")


def plain(value: Any) -> Any:
    """`value` as JSON-safe Python (see the module docstring)."""
    import numpy as np
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return [{str(k): plain(v) for k, v in row.items()}
                for row in value.to_dict(orient="records")]
    if isinstance(value, pd.Series):
        return [plain(v) for v in value.tolist()]
    if is_dataclass(value) and not isinstance(value, type):
        if hasattr(value, "to_dict"):
            return value.to_dict()
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [plain(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    if pd.isna(value):
        return None
    return str(value)


class Result:
    """Base of the result dataclasses: JSON-safe `to_dict` and, where tabular, `to_frame`."""

    frame_field: ClassVar[str | None] = None
    """The field holding the result's main table, returned by `to_frame`."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe values: tables as lists of row dicts, NaN as None."""
        return {f.name: plain(getattr(self, f.name))
                for f in fields(self)  # type: ignore[arg-type]
                if f.metadata.get("serialise", True)}

    def to_frame(self) -> Any:
        """The main table of the result as a pandas DataFrame (a copy).

        Raises
        ------
        TypeError
            The result has no table.
        """
        if self.frame_field is None:
            raise TypeError(f"{type(self).__name__} has no table; use to_dict()")
        return getattr(self, self.frame_field).copy()
