"""Freeze-indicator presets are JSON files: one shipped per simulator screen, or a user's own."""

import json
import re
from pathlib import Path

import pytest

from fetal_analytics.synth.screen import SCREEN_PRESETS
from inference.presets import (
    DEFAULT_SCREEN,
    SHIPPED_SCREENS,
    load_indicator_preset,
    shipped_indicator_presets,
)


def test_indicator_presets_are_named_after_the_simulators_screens():
    assert set(SHIPPED_SCREENS) == set(SCREEN_PRESETS)
    assert DEFAULT_SCREEN in SCREEN_PRESETS


@pytest.mark.parametrize("name", sorted(SCREEN_PRESETS))
def test_each_shipped_preset_finds_its_screens_indicator(name):
    screen, preset = SCREEN_PRESETS[name], shipped_indicator_presets()[name]
    top, bottom, left, right = screen.indicator
    x0, y0, x1, y1 = preset.box
    assert x0 <= left and right <= x1 and y0 <= top and bottom <= y1
    assert re.fullmatch(preset.pattern, screen.indicator_text, re.IGNORECASE)
    assert preset.default_confirm == "ocr"


def test_a_users_file_wins_over_a_shipped_name_and_reads_its_template(tmp_path, monkeypatch):
    (tmp_path / "frz.png").write_bytes(b"")  # existence is checked on loading, content on use
    (tmp_path / "voluson").write_text(json.dumps(
        {"indicator": {"box": [0.9, 0.0, 1.0, 0.1], "template": "frz.png",
                       "screen_width": 1024}}))
    monkeypatch.chdir(tmp_path)
    preset = load_indicator_preset("voluson")
    assert preset.box == (0.9, 0.0, 1.0, 0.1) and preset.pattern == ""
    assert preset.template == tmp_path / "frz.png" and preset.template_width == 1024
    assert preset.default_confirm == "template"


@pytest.mark.parametrize(("content", "message"), [
    ("{", "not a readable JSON freeze preset"),
    ('{"box": [0, 0, 1, 1]}', 'expected an object with an "indicator" object'),
    ('{"indicator": {"box": [0, 0, 1], "text": "F"}}', '"box" must be [x0, y0, x1, y1]'),
    ('{"indicator": {"box": [0.5, 0, 0.2, 1], "text": "F"}}', "fractions x0 < x1"),
    ('{"indicator": {"box": [0, 0, 1, 1]}}', 'needs "text"'),
    ('{"indicator": {"box": [0, 0, 1, 1], "txt": "F"}}', "unknown indicator keys ['txt']"),
    ('{"indicator": {"box": [0, 0, 1, 1], "template": "x.png", "screen_width": 640}}',
     "does not exist"),
])
def test_a_bad_preset_file_is_named_with_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "mine.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        load_indicator_preset(path)
    assert str(path) in str(error.value)


def test_an_unknown_name_lists_the_shipped_ones():
    expected = "(shipped: voluson, compact); did you mean 'voluson'?"
    with pytest.raises(ValueError, match=re.escape(expected)):
        load_indicator_preset("volusn")


def test_the_readmes_example_preset_loads(tmp_path):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = readme[readme.index("**A preset for your scanner**"):]
    text = example[example.index("```json\n") + 8: example.index("\n```", example.index("```json"))]
    data = json.loads(text)
    (tmp_path / data["indicator"]["template"]).write_bytes(b"")
    (tmp_path / "acme_u9.json").write_text(text)
    preset = load_indicator_preset(tmp_path / "acme_u9.json")
    assert preset.default_confirm == "ocr" and preset.template_width == 1280
