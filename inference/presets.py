"""Named presets a user picks by name, as plain data: model sizes and freeze-indicator layouts.

One definition of each, and no heavy imports (no NumPy, no Keras), so the command line builds its
choice lists from them and ``fetal-analytics --help`` stays fast. The code that uses a preset
lives elsewhere: the model builders (`inference.models.build`) and freeze detection
(`inference.freeze.FreezeConfig`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CONFIRM_METHODS", "DEFAULT_SCREEN", "INDICATOR_PRESETS", "MODEL_PRESETS",
           "IndicatorConfig"]

#: Build parameters of the model presets: ``cpu`` trains on 2 cores (width 8, 64 x 64 frames),
#: ``paper`` is the paper's configuration for GPUs (width 64, 224 x 224). ``input_shape`` is one
#: frame's (height, width, channels); ``frames`` the frames per clip of temporal models.
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {"width": 8, "input_shape": (64, 64, 1), "frames": 12},
    "paper": {"width": 64, "input_shape": (224, 224, 1), "frames": 12},
}


@dataclass(frozen=True)
class IndicatorConfig:
    """Where a scanner shows that the image is frozen, and how it reads.

    Attributes
    ----------
    box : (x0, y0, x1, y1)
        The indicator region as fractions of the frame's width and height.
    pattern : str
        Regular expression (case-insensitive) that OCR of the region must match; empty: confirm
        by appearance only.
    """

    box: tuple[float, float, float, float]
    pattern: str = "FREEZE|FRZ|FROZEN"


#: Freeze-indicator layouts by name: one per screen layout of the simulator, with the names of
#: its screen presets (`fetal_analytics.synth.screen.SCREEN_PRESETS`; a test keeps them equal).
INDICATOR_PRESETS: dict[str, IndicatorConfig] = {
    # The simulator's default screen: "FREEZE" above the preset panel at the top right.
    "voluson": IndicatorConfig((0.80, 0.0, 1.0, 0.12), "FREEZE"),
    # The simulator's second layout: "FRZ" at the bottom left.
    "compact": IndicatorConfig((0.0, 0.88, 0.25, 1.0), "FRZ"),
}

#: The screen layout presets assume unless told otherwise.
DEFAULT_SCREEN = "voluson"

#: How a still span is confirmed as a freeze: OCR of the indicator region, its appearance
#: differing from its live look, or not at all (every still span is a freeze).
CONFIRM_METHODS: tuple[str, ...] = ("ocr", "appearance", "none")
