"""One vocabulary of screen presets: the freeze-indicator presets are the simulator's screens."""

import re

import pytest

from fetal_analytics.synth.screen import SCREEN_PRESETS
from inference.presets import DEFAULT_SCREEN, INDICATOR_PRESETS


def test_indicator_presets_are_named_after_the_simulators_screens():
    assert set(INDICATOR_PRESETS) == set(SCREEN_PRESETS)
    assert DEFAULT_SCREEN in SCREEN_PRESETS


@pytest.mark.parametrize("name", sorted(SCREEN_PRESETS))
def test_each_indicator_preset_finds_its_screens_indicator(name):
    screen, preset = SCREEN_PRESETS[name], INDICATOR_PRESETS[name]
    top, bottom, left, right = screen.indicator
    x0, y0, x1, y1 = preset.box
    assert x0 <= left and right <= x1 and y0 <= top and bottom <= y1
    assert re.fullmatch(preset.pattern, screen.indicator_text, re.IGNORECASE)
