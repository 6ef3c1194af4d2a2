"""Validation shared by the analytics modules: option values with "did you mean ...?"."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["check_choice", "check_columns"]


def check_choice(argument: str, value: object, choices: Iterable[str]) -> str:
    """Return `value` if it is one of `choices`, else raise ValueError naming `argument`.

    The message suggests the closest choice, where one is close, and lists all of them.
    """
    choices = tuple(choices)
    if value in choices:
        return value  # type: ignore[return-value]
    close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(
        f"`{argument}` must be one of {', '.join(map(repr, choices))}, got {value!r}{hint}")


def check_columns(frame: object, argument: str, required: Iterable[str]) -> None:
    """Raise ValueError naming `argument` when the DataFrame `frame` lacks required columns."""
    missing = [c for c in required if c not in frame.columns]  # type: ignore[attr-defined]
    if missing:
        raise ValueError(
            f"`{argument}` lacks the column(s) {', '.join(missing)}; it has "
            f"{', '.join(map(str, frame.columns))}")  # type: ignore[attr-defined]
