"""Freeze detection on a hand-made screen video: live speckle, a ticking clock, frozen spans."""

import json
import logging

import av
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from fetal_analytics.cli import main
from inference.freeze import FreezeConfig, detect_freezes
from inference.presets import IndicatorConfig
from inference.screen_text import warn_tesseract_missing

FPS = 30
W, H = 320, 240
INDICATOR = IndicatorConfig((0.75, 0.0, 1.0, 0.15), "FREEZE")
# (start_s, end_s, shows the indicator): the last one is a still image without the indicator.
SPANS = [(1.5, 2.5, True), (4.0, 7.3, True), (9.0, 9.6, True), (11.0, 12.0, False)]


def screen(t: float, image: np.ndarray, indicator: bool) -> np.ndarray:
    frame = np.zeros((H, W), np.uint8)
    frame[60:220, 40:280] = image
    cv2.putText(frame, f"10:00:{int(t):02d}", (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 255, 1)
    if indicator:
        cv2.putText(frame, "FREEZE", (245, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 255, 1)
    return frame


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("freeze") / "screen.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        frozen_image = None
        for index in range(14 * FPS):
            t = index / FPS
            span = next((s for s in SPANS if s[0] <= t < s[1]), None)
            if span is None or frozen_image is None:
                live = cv2.GaussianBlur(rng.integers(0, 255, (160, 240), np.uint8), (3, 3), 0)
                frozen_image = live if span else None
            image = frozen_image if span else live
            grey = screen(t, image, bool(span and span[2]))
            frame = av.VideoFrame.from_ndarray(np.repeat(grey[..., None], 3, 2), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_static_spans_with_the_indicator_are_found_to_the_frame(video):
    result = detect_freezes(video, config=FreezeConfig(indicator=INDICATOR))
    found = [(s.start_frame, s.end_frame) for s in result.spans]
    expected = [(round(a * FPS), round(b * FPS)) for a, b, shown in SPANS if shown]
    assert found == expected
    assert [(s.start_frame, s.end_frame) for s in result.rejected] == [(330, 360)]
    assert result.spans[1].start_s == pytest.approx(4.0, abs=1e-3)
    assert result.n_frames == 14 * FPS


def test_appearance_confirmation_needs_no_ocr(video):
    config = FreezeConfig(indicator=IndicatorConfig(INDICATOR.box, ""), confirm="appearance")
    result = detect_freezes(video, config=config)
    assert len(result.spans) == 3 and len(result.rejected) == 1


def test_by_default_every_still_span_is_a_freeze_whatever_the_clock_does(video):
    result = detect_freezes(video)
    expected = [(round(a * FPS), round(b * FPS)) for a, b, _ in SPANS]
    assert [(s.start_frame, s.end_frame) for s in result.spans] == expected
    assert result.rejected == ()


def test_without_confirmation_every_static_span_is_a_freeze(video):
    result = detect_freezes(video, config=FreezeConfig(confirm="none"))
    assert len(result.spans) == 4
    shortest = FreezeConfig(confirm="none", min_static_s=0.7)
    assert len(detect_freezes(video, config=shortest).spans) == 3  # the 0.6 s one is too short


def test_a_template_image_in_a_users_preset_confirms(video, tmp_path):
    still = screen(2.0, np.zeros((160, 240), np.uint8), True)
    cv2.imwrite(str(tmp_path / "freeze.png"), still[5:28, 240:310])  # "FREEZE", at 320 px
    preset = tmp_path / "mine.json"
    preset.write_text(json.dumps({"indicator": {
        "box": list(INDICATOR.box), "template": "freeze.png", "screen_width": W}}))
    result = CliRunner().invoke(main, ["freeze", str(video), "--preset", str(preset),
                                       "--format", "json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 3


def test_without_tesseract_ocr_confirmation_falls_back_to_stillness_with_one_warning(
        video, monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("PATH", str(tmp_path))  # no tesseract program on it
    warn_tesseract_missing.cache_clear()
    config = FreezeConfig(indicator=INDICATOR)
    with caplog.at_level(logging.WARNING):
        first = detect_freezes(video, config=config)
        second = detect_freezes(video, config=config)
    assert len(first.spans) == len(second.spans) == 4  # stillness alone
    warnings = [r.getMessage() for r in caplog.records if "tesseract" in r.getMessage()]
    assert len(warnings) == 1
    assert "stillness alone" in warnings[0] and "frame rate comes from the video" in warnings[0]
    assert "apt-get install -y tesseract-ocr tesseract-ocr-eng" in warnings[0]


@pytest.mark.parametrize(("args", "message"), [
    (["--preset", "volusn"], "did you mean 'voluson'?"),
    (["--confirm", "ocr"], "needs an indicator preset"),
])
def test_bad_freeze_options_are_usage_errors(video, args, message):
    result = CliRunner().invoke(main, ["freeze", str(video), *args])
    assert result.exit_code == 2 and message in result.output
