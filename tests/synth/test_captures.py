"""The semi-real video builder: real captures live (jitter, speckle), then frozen, with a clock.

Uses the real GE Voluson E8 captures in ``../shared/data/sononet/example_images`` (relative to
the repository root); skips when they are missing.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from fetal_analytics.synth.captures import (
    VOLUSON_E8_CLOCK,
    VOLUSON_E8_IMAGE_BOX,
    CaptureSegment,
    CaptureVideo,
    capture_video,
)

CAPTURES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "sononet" / \
    "example_images"
needs_captures = pytest.mark.skipif(
    len(list(CAPTURES.glob("*.png"))) != 7,
    reason=f"the 7 shared SonoNet example captures are missing ({CAPTURES})")


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="gray") for f in container.decode(video=0)]


@needs_captures
def test_live_moves_frozen_stands_still_and_the_clock_ticks(tmp_path):
    video = capture_video(CAPTURES, tmp_path / "semi.mp4", names=["4CH", "FEMUR"], live_s=1.0,
                          frozen_s=1.2, fps=10, seed=3)
    assert video.segments == (CaptureSegment("4CH", 0.0, 1.0, 2.2),
                              CaptureSegment("FEMUR", 2.2, 3.2, 4.4))
    assert video.freezes == [(1.0, 2.2), (3.2, 4.4)]
    assert (video.width, video.height, video.n_frames, video.duration_s) == (976, 736, 44, 4.4)
    frames = _frames(video.path)
    assert len(frames) == 44 and frames[0].shape == (736, 976)
    top, bottom, left, right = VOLUSON_E8_IMAGE_BOX

    def image_change(i: int) -> float:
        a, b = frames[i][top:bottom, left:right], frames[i + 1][top:bottom, left:right]
        return float(np.abs(a.astype(int) - b).mean())

    live = min(image_change(i) for i in range(0, 8))
    frozen = max(image_change(i) for i in range(11, 21))
    # Live, every frame differs; frozen, the input is still and H.264 only refines its residue.
    assert live > 2 and frozen < 1 and frozen < live / 4
    c_top, c_bottom, c_left, c_right = VOLUSON_E8_CLOCK
    clock = [f[c_top:c_bottom, c_left:c_right].astype(int) for f in frames]
    ticked = np.abs(clock[19] - clock[21]).mean()                 # 1 s -> 2 s, while frozen
    assert ticked > 1 and np.abs(clock[11] - clock[19]).mean() < ticked / 4  # within 1 s
    # The scanner's own header (depth / gain / frame rate, date, time) is left as captured.
    assert np.abs(frames[5][40:75].astype(int) - frames[15][40:75]).mean() < 1


@needs_captures
def test_same_seed_same_video(tmp_path):
    a = capture_video(CAPTURES, tmp_path / "a.mp4", names=["RVOT"], live_s=0.5, frozen_s=0,
                      fps=10, seed=1)
    b = capture_video(CAPTURES, tmp_path / "b.mp4", names=["RVOT"], live_s=0.5, frozen_s=0,
                      fps=10, seed=1)
    assert a.path.read_bytes() == b.path.read_bytes()


@needs_captures
def test_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="no capture named NOPE"):
        capture_video(CAPTURES, tmp_path / "x.mp4", names=["NOPE"])
    with pytest.raises(ValueError, match=r"live_s must be >= 0\.5"):
        capture_video(CAPTURES, tmp_path / "x.mp4", live_s=0.1)
    with pytest.raises(ValueError, match=r"clock_box \(0, 10, 0, 2000\).*975x735"):
        capture_video(CAPTURES, tmp_path / "x.mp4", clock_box=(0, 10, 0, 2000))
    with pytest.raises(FileNotFoundError, match="no such folder of screen captures"):
        capture_video(tmp_path / "none", tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()


def test_live_labels_are_the_labels_covering_most_of_each_live_span():
    video = CaptureVideo(Path("v.mp4"), 30.0, 300, 976, 736,
                         (CaptureSegment("4CH", 0.0, 3.0, 5.0),
                          CaptureSegment("FEMUR", 5.0, 8.0, 10.0)))
    events = pd.DataFrame({"start_s": [0.0, 1.0, 4.0], "end_s": [1.0, 4.0, 5.0],
                           "label": ["Bk", "HeD", "Fm"]})
    # HeD covers 2 of the first live span's 3 s; nothing overlaps the second's [5, 8).
    assert video.live_labels(events) == ["HeD", None]
