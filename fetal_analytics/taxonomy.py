"""The event taxonomy: the anatomy and activity classes of a fetal anomaly scan.

The classes are data, kept in ``taxonomy.csv`` beside this module, and this module is the only
reader of that file. The 11 classes of Sharma et al. (ISBI 2019) come first, in the paper's order of
frequency, then the 9 rarer classes that exist in manual labels.

Columns of ``taxonomy.csv``:

code
    Short label used in files, the store and the models (``HeD``, ``Br``, ...).
name
    Human-readable name.
colour
    Hex colour used by every plot, so a class looks the same everywhere.
fasp_required
    Whether the UK Fetal Anomaly Screening Programme (FASP) 18+0-20+6 week base menu requires the
    structure to be seen (head, face/lips, spine, heart, abdomen incl. kidneys, bladder and cord
    insertion, limbs incl. femur, hands and feet). Activities such as 3D mode, background search
    and maternal anatomy are not required.
default_model
    Whether the default models are trained on it (the paper's 11 most frequent classes).
paper_share_pct
    Share of labelled time reported by the paper (%), empty for the rarer classes.
"""

from __future__ import annotations

import csv
import difflib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from fetal_analytics.errors import UserError

__all__ = [
    "BACKGROUND",
    "FASP_REQUIRED",
    "FASP_REQUIRED_RARE",
    "EventClass",
    "UnknownLabelError",
    "all_classes",
    "codes",
    "default_model_codes",
    "fasp_required_codes",
    "get",
    "unknown_label_message",
    "validate_code",
]


BACKGROUND = "Bk"
"""The code of background search and transitions between structures."""

FASP_REQUIRED: tuple[str, ...] = ("HeD", "Br", "Sp", "Ab", "NL", "Ki", "Fm")
"""The FASP-required structures among the paper's 11 classes: the fixed denominator of protocol
coverage, whatever labels a cohort holds (checked against ``taxonomy.csv`` by the tests)."""

FASP_REQUIRED_RARE: tuple[str, ...] = ("Um", "BlD", "Fe", "Ha", "Ar", "Le")
"""FASP-required structures outside the paper's 11 classes: rarely labelled, so reported apart
(seen or not) and never part of the coverage denominator."""


@dataclass(frozen=True)
class EventClass:
    """One class of the taxonomy.

    Attributes
    ----------
    code : str
        Short code, e.g. ``"HeD"``.
    name : str
        Human-readable name.
    colour : str
        Hex colour, ``"#rrggbb"``.
    fasp_required : bool
        Required by the FASP base menu.
    default_model : bool
        One of the 11 classes the default models are trained on.
    paper_share_pct : float or None
        Share of labelled time in the paper's cohort (%), None for the rarer classes.
    """

    code: str
    name: str
    colour: str
    fasp_required: bool
    default_model: bool
    paper_share_pct: float | None


class UnknownLabelError(UserError, ValueError):
    """A label that is not a taxonomy code."""


def _parse_bool(text: str) -> bool:
    if text not in ("true", "false"):
        raise ValueError(f"taxonomy.csv: expected true or false, got {text!r}")
    return text == "true"


@cache
def all_classes() -> tuple[EventClass, ...]:
    """Every class of the taxonomy, paper classes first, in the order of ``taxonomy.csv``."""
    text = resources.files(__package__).joinpath("taxonomy.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(text.splitlines())
    return tuple(
        EventClass(
            code=row["code"],
            name=row["name"],
            colour=row["colour"],
            fasp_required=_parse_bool(row["fasp_required"]),
            default_model=_parse_bool(row["default_model"]),
            paper_share_pct=float(row["paper_share_pct"]) if row["paper_share_pct"] else None,
        )
        for row in rows
    )


@cache
def _by_code() -> dict[str, EventClass]:
    return {c.code: c for c in all_classes()}


def codes() -> tuple[str, ...]:
    """All class codes, in taxonomy order."""
    return tuple(c.code for c in all_classes())


def default_model_codes() -> tuple[str, ...]:
    """The 11 codes the default models are trained on (the paper's classes)."""
    return tuple(c.code for c in all_classes() if c.default_model)


def fasp_required_codes() -> tuple[str, ...]:
    """Codes of the structures the FASP base menu requires."""
    return tuple(c.code for c in all_classes() if c.fasp_required)


def get(code: str) -> EventClass:
    """Return the class with this code; raise `UnknownLabelError` listing valid codes if none."""
    return _by_code()[validate_code(code)]


def validate_code(code: str) -> str:
    """Return `code` unchanged if it is a taxonomy code, else raise `UnknownLabelError`.

    The message names the valid codes and, where one is close, suggests it.
    """
    if code in _by_code():
        return code
    raise UnknownLabelError(unknown_label_message(code))


def unknown_label_message(code: str) -> str:
    """The message for an unknown label: a suggestion where one is close, and the valid codes."""
    valid = codes()
    # Match the text against codes and class names alike ("heart" -> HeD, "bd" -> Bk).
    candidates = {c.code.lower(): c.code for c in all_classes()}
    for c in all_classes():
        candidates.setdefault(c.name.lower(), c.code)
        candidates.setdefault(c.name.split()[0].lower(), c.code)
    close = difflib.get_close_matches(code.strip().lower(), candidates, n=1, cutoff=0.6)
    hint = f" (did you mean {candidates[close[0]]!r}?)" if close else ""  # a code, not the match
    return f"unknown label {code!r}{hint}; valid codes: {', '.join(valid)}"
