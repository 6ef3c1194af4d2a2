"""Named presets a user picks by name, as plain data: model sizes and freeze-indicator layouts.

One definition of each, and no heavy imports (no NumPy, no Keras), so the command line builds its
choice lists from them and ``fetal-analytics --help`` stays fast. The code that uses a preset
lives elsewhere: the model builders (`inference.models.build`) and freeze detection
(`inference.freeze.FreezeConfig`).

Freeze-indicator presets are JSON files (`load_indicator_preset`): one shipped for each of the
simulator's screen layouts (``data/screen_<name>.json``), or a user's own file for another
scanner. Freeze detection needs none: a still image area is a freeze; a preset's indicator only
confirms it.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CONFIRM_METHODS", "DEFAULT_SCREEN", "MODEL_PRESETS", "SHIPPED_SCREENS",
           "IndicatorConfig", "load_indicator_preset", "shipped_indicator_presets"]

#: Build parameters of the model presets: ``cpu`` trains on 2 cores (width 8, 64 x 64 frames),
#: ``paper`` is the paper's configuration for GPUs (width 64, 224 x 224). ``input_shape`` is one
#: frame's (height, width, channels); ``frames`` the frames per clip of temporal models.
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {"width": 8, "input_shape": (64, 64, 1), "frames": 12},
    "paper": {"width": 64, "input_shape": (224, 224, 1), "frames": 12},
}

#: The simulator's screen layouts (`fetal_analytics.synth.screen.SCREEN_PRESETS`; a test keeps
#: them equal), each with a shipped freeze-indicator preset ``data/screen_<name>.json``.
SHIPPED_SCREENS: tuple[str, ...] = ("voluson", "compact")

#: The simulator's screen layout unless told otherwise.
DEFAULT_SCREEN = "voluson"

#: How a still span is confirmed as a freeze when a preset names an indicator: OCR of its region
#: for the preset's text, matching the preset's template image, the region's appearance
#: differing from its live look, or not at all (every still span is a freeze).
CONFIRM_METHODS: tuple[str, ...] = ("ocr", "template", "appearance", "none")


@dataclass(frozen=True)
class IndicatorConfig:
    """Where a scanner shows that the image is frozen, and how it reads.

    Attributes
    ----------
    box : (x0, y0, x1, y1)
        The indicator region as fractions of the frame's width and height.
    pattern : str
        Regular expression (case-insensitive) that OCR of the region must match; empty: no text.
    template : Path or None
        A greyscale picture of the indicator (cut from a screen `template_width` pixels wide),
        looked for inside the region; None: no template.
    template_width : int or None
        Width in pixels of the screen `template` was cut from: the template is scaled by the
        video's width over this.
    """

    box: tuple[float, float, float, float]
    pattern: str = ""
    template: Path | None = None
    template_width: int | None = None

    def __post_init__(self) -> None:
        x0, y0, x1, y1 = self.box
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise ValueError(f"the indicator box must be fractions x0 < x1 and y0 < y1 in "
                             f"[0, 1], got {list(self.box)}")
        if (self.template is None) != (self.template_width is None):
            raise ValueError("an indicator template needs the width of the screen it was cut "
                             "from (`screen_width`), and only a template needs it")

    @property
    def default_confirm(self) -> str:
        """How this indicator confirms by default: its text, else its template, else its look."""
        if self.pattern:
            return "ocr"
        return "template" if self.template is not None else "appearance"


def load_indicator_preset(name_or_path: str | Path) -> IndicatorConfig:
    """A freeze-indicator preset: a shipped name (`SHIPPED_SCREENS`) or a JSON file's path.

    An existing path wins over a shipped name. The file holds::

        {"description": "...",
         "indicator": {"box": [x0, y0, x1, y1], "text": "FREEZE|FRZ",
                       "template": "indicator.png", "screen_width": 1024}}

    ``box`` is the indicator region as fractions of the screen's width and height; ``text`` a
    regular expression (case-insensitive) that OCR of the region matches while frozen;
    ``template`` a picture of the indicator (relative to the JSON file's folder) cut from a screen
    ``screen_width`` pixels wide. ``box`` and at least one of ``text`` and ``template`` are
    required.

    Raises
    ------
    ValueError
        Naming the file and what is wrong, or the shipped names when neither a file nor a
        shipped name matches.
    """
    from fetal_analytics.shipped import shipped_file

    path = Path(name_or_path)
    if not path.is_file():
        name = str(name_or_path)
        if name not in SHIPPED_SCREENS:
            close = difflib.get_close_matches(name, SHIPPED_SCREENS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"no freeze preset file {name} and no shipped preset of that name "
                             f"(shipped: {', '.join(SHIPPED_SCREENS)}){hint}")
        path = shipped_file(f"screen_{name}.json")
    return _parse_preset(path)


def shipped_indicator_presets() -> dict[str, IndicatorConfig]:
    """The shipped freeze-indicator presets by name: the simulator's screen layouts."""
    return {name: load_indicator_preset(name) for name in SHIPPED_SCREENS}


def _parse_preset(path: Path) -> IndicatorConfig:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable JSON freeze preset ({error})") from None
    indicator = data.get("indicator") if isinstance(data, dict) else None
    if not isinstance(indicator, dict):
        raise ValueError(f'{path}: expected an object with an "indicator" object')
    unknown = set(indicator) - {"box", "text", "template", "screen_width"}
    if unknown:
        raise ValueError(f"{path}: unknown indicator keys {sorted(unknown)}; expected box, "
                         f"text, template, screen_width")
    box = indicator.get("box")
    if not (isinstance(box, list) and len(box) == 4
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in box)):
        raise ValueError(f'{path}: "box" must be [x0, y0, x1, y1], fractions of the screen, '
                         f"got {box!r}")
    text = indicator.get("text", "")
    template = indicator.get("template")
    if not isinstance(text, str) or (template is not None and not isinstance(template, str)):
        raise ValueError(f'{path}: "text" and "template" must be strings')
    if not text and template is None:
        raise ValueError(f'{path}: the indicator needs "text" (what OCR reads while frozen) or '
                         f'"template" (a picture of it)')
    template_path = None
    if template is not None:
        template_path = (path.parent / template).resolve()
        if not template_path.is_file():
            raise ValueError(f"{path}: the template {template_path} does not exist")
    width = indicator.get("screen_width")
    if width is not None and (not isinstance(width, int) or isinstance(width, bool) or width < 1):
        raise ValueError(f'{path}: "screen_width" must be a positive integer, got {width!r}')
    try:
        return IndicatorConfig(tuple(float(v) for v in box), text, template_path, width)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
