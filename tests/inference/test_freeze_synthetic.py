"""Freeze detection on a hand-made screen video: live speckle, a ticking clock, frozen spans."""

import av
import cv2
import numpy as np
import pytest

from inference.freeze import FreezeConfig, detect_freezes
from inference.presets import IndicatorConfig

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


def test_without_confirmation_every_static_span_is_a_freeze(video):
    result = detect_freezes(video, config=FreezeConfig(confirm="none"))
    assert len(result.spans) == 4
    shortest = FreezeConfig(confirm="none", min_static_s=0.7)
    assert len(detect_freezes(video, config=shortest).spans) == 3  # the 0.6 s one is too short
