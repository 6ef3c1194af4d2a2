"""Reading scanner header fields (`inference.screen_text`): parsing, privacy, real captures."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from fetal_analytics.synth.captures import EXAMPLE_HEADERS
from inference.screen_text import ScreenText, parse_screen_text, read_screen_text

SONONET = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "sononet"
CAPTURES = SONONET / "example_images"


needs_captures = pytest.mark.skipif(
    not CAPTURES.is_dir(), reason=f"the SonoNet example captures are missing ({CAPTURES})"
)
needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None,
    reason="tesseract is not installed (Debian: tesseract-ocr tesseract-ocr-eng)",
)


@pytest.fixture(scope="module")
def read_captures() -> dict[str, ScreenText]:
    """Each capture read once (one Tesseract call each)."""
    out = {}
    for name in EXAMPLE_HEADERS:
        frame = cv2.imread(str(CAPTURES / f"{name}.png"), cv2.IMREAD_COLOR)[:, :, ::-1]
        out[name] = read_screen_text(np.ascontiguousarray(frame))
    return out


# ------------------------------------------------------------------ real captures


@needs_captures
@needs_tesseract
@pytest.mark.parametrize("name", list(EXAMPLE_HEADERS))
def test_frame_rate_of_every_capture(read_captures, name):
    assert read_captures[name].frame_rate_hz == EXAMPLE_HEADERS[name][0]


@needs_captures
@needs_tesseract
@pytest.mark.parametrize("name", list(EXAMPLE_HEADERS))
def test_date_and_time_of_every_capture(read_captures, name):
    # Read correctly on all 7 with Tesseract 5.3 (Debian); they are pinned here so that a
    # regression shows.
    text = read_captures[name]
    assert (text.date, text.time) == EXAMPLE_HEADERS[name][1:]


# ------------------------------------------------------------------ the pipeline, a fake engine


class FakeEngine:
    """Records what it is shown and answers with fixed text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.calls: list[tuple[np.ndarray, int]] = []

    def __call__(self, image: np.ndarray, psm: int) -> str:
        self.calls.append((image, psm))
        return self.text


def _screen_with_header() -> np.ndarray:
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[10:40, 100:620] = 48
    cv2.putText(frame, "SOME HEADER TEXT 12:00", (110, 32), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                (235, 235, 235), 1, cv2.LINE_AA)
    rng = np.random.default_rng(0)
    frame[60:470, 80:560] = rng.integers(20, 200, (410, 480, 1), np.uint8)
    return frame


def test_engine_sees_binarised_header_lines_only():
    engine = FakeEngine("7.5cm / 1.4 / 117Hz   02.10.2015   10:19:40 AM")
    result = read_screen_text(_screen_with_header(), engine=engine)
    assert result == ScreenText(117.0, "02.10.2015", "10:19:40 AM")
    assert len(engine.calls) == 1  # all found in the header: one call
    image, psm = engine.calls[0]
    assert psm == 6
    assert image.ndim == 2 and image.dtype == np.uint8
    assert set(np.unique(image)) <= {0, 255}
    assert image.mean() > 128  # black text on white
    # The header line (30 rows) enlarged 2-4x, not the 410-row image below it.
    assert image.shape[0] < 250


def test_missing_fields_are_looked_for_beside_the_image():
    engine = FakeEngine("nothing useful")
    result = read_screen_text(_screen_with_header(), engine=engine)
    assert result == ScreenText()
    assert len(engine.calls) <= 2


def test_raw_text_is_neither_returned_nor_logged(caplog):
    secret = "DOE^JANE 1234567 St Elsewhere"
    engine = FakeEngine(f"{secret} 50Hz 20.05.2015 2:47:33 PM")
    with caplog.at_level(logging.DEBUG, logger="inference"):
        result = read_screen_text(_screen_with_header(), engine=engine)
    assert result.to_dict() == {"frame_rate_hz": 50.0, "date": "20.05.2015", "time": "2:47:33 PM"}
    assert "DOE" not in caplog.text and "1234567" not in caplog.text
    assert "DOE" not in repr(result)


def test_a_frame_without_text_reads_nothing_and_calls_no_engine():
    engine = FakeEngine("117Hz")
    assert read_screen_text(np.zeros((480, 640), np.uint8), engine=engine) == ScreenText()
    assert engine.calls == []


def test_image_mask_is_checked():
    with pytest.raises(ValueError, match="`image_mask` must have the frame's shape"):
        read_screen_text(np.zeros((48, 64), np.uint8), engine=FakeEngine(""),
                         image_mask=np.zeros((10, 10), bool))
    with pytest.raises(ValueError, match="`frame` must be uint8"):
        read_screen_text(np.zeros((48, 64)), engine=FakeEngine(""))


# ------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7.5cm / 1.4 / 117Hz  TIs 0.1  02.10.2015  10:19:40 AM", (117.0, "02.10.2015",
                                                                  "10:19:40 AM")),
        ("GA=20w3d 15.2cm/2.3/50Hz Tis 0.0 sk 20.05.2015 2:47:33 PM", (50.0, "20.05.2015",
                                                                       "2:47:33 PM")),
        ("JG) &8 15.2cm/2.2/31Hz2 Tis 0.1 18.11.2015 09:12:23", (31.0, "18.11.2015", "09:12:23")),
        # OCR confusions inside numbers: l/I for 1, O for 0, S for 5.
        ("10.4cm / 2.0 / l17Hz  O2.1O.2O15  1O:19:4O am", (117.0, "02.10.2015", "10:19:40 AM")),
        ("12.0cm / 1.5 / 3SHz 18.08.2OIS 9:54:08pm", (35.0, "18.08.2015", "9:54:08 PM")),
        ("C1-6/OB 2015-11-18 09:12:28 AM  22Hz", (22.0, "2015-11-18", "09:12:28 AM")),
        ("8.5 Hz", (8.5, None, None)),
        ("", (None, None, None)),
    ],
)
def test_parse_screen_text(text, expected):
    assert parse_screen_text(text) == ScreenText(*expected)


@pytest.mark.parametrize(
    "text",
    [
        "C1-5 3.5MHz PRF 1.3kHz",  # probe and pulse repetition frequencies are not frame rates
        "0Hz 5000Hz",  # out of range
        "32.13.2015 18.11.1850",  # no such month; implausible year
        "25:61:00 13:00:00 PM",  # no such time
        "TIs 0.1 MI 1.4 10.4cm",  # numbers, not times
    ],
)
def test_parse_screen_text_rejects_look_alikes(text):
    assert parse_screen_text(text) == ScreenText()


def test_screen_text_to_dict():
    text = ScreenText(frame_rate_hz=50.0, date="20.05.2015", time="2:47:33 PM")
    assert text.to_dict() == {"frame_rate_hz": 50.0, "date": "20.05.2015", "time": "2:47:33 PM"}
    assert text.complete and not ScreenText(50.0).complete
