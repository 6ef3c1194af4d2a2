"""Validation shared by every part of the package: option values with "did you mean ...?"."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["check_choice", "check_columns", "close_match_hint"]


def close_match_hint(value: object, choices: Iterable[str], *, cutoff: float = 0.5) -> str:
    """`` (did you mean 'x'?)`` for the choice closest to `value`, or ``""`` when none is close."""
    close = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=cutoff)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_choice(argument: str, value: object, choices: Iterable[str], *,
                 error: type[Exception] = ValueError) -> str:
    """Return `value` if it is one of `choices`, else raise `error` naming `argument`.

    The message suggests the closest choice, where one is close, and lists all of them.
    """
    choices = tuple(choices)
    if value in choices:
        return value  # type: ignore[return-value]
    raise error(f"`{argument}` must be one of {', '.join(map(repr, choices))}, got "
                     f"{value!r}{close_match_hint(value, choices)}")


def check_columns(frame: object, argument: str, required: Iterable[str]) -> None:
    """Raise ValueError naming `argument` when the DataFrame `frame` lacks required columns."""
    missing = [c for c in required if c not in frame.columns]  # type: ignore[attr-defined]
    if missing:
        raise ValueError(
            f"`{argument}` lacks the column(s) {', '.join(missing)}; it has "
            f"{', '.join(map(str, frame.columns))}")  # type: ignore[attr-defined]
