"""One frame at a time, for previews: `inference.decode.frame_at` and
`inference.deidentify.preview_frame`."""

from __future__ import annotations

import numpy as np
import pytest

from inference.crop import video_image_area
from inference.decode import DecodeError, frame_at, iter_frames


def test_frame_at_gives_the_frame_shown_at_that_time_as_decoding_from_the_start_does(
        short_scans):
    video = short_scans / "videos" / "SIM0002.mp4"
    frames = {f.index: f for f in iter_frames(video, colour=True) if f.index in (0, 300, 899)}
    for t_s, index in ((0.0, 0), (10.01, 300), (10.02, 300), (-5.0, 0), (99.0, 899)):
        frame = frame_at(video, t_s)
        assert frame.index == index, t_s
        assert frame.t_s == pytest.approx(frames[index].t_s)
        assert np.array_equal(frame.image, frames[index].image), t_s


def test_preview_frame_blacks_out_everything_outside_the_image_area(short_scans):
    from inference.deidentify import preview_frame

    video = short_scans / "videos" / "SIM0001.mp4"
    image, t_s = preview_frame(video, 12.0)
    original = frame_at(video, 12.0).image
    area = video_image_area(video)
    outside = np.ones(image.shape[:2], bool)
    outside[area.y0:area.y1, area.x0:area.x1] = False
    assert image.shape == original.shape and image.shape[2] == 3
    assert original[outside].any() and not image[outside].any()
    assert np.array_equal(image[area.y0:area.y1, area.x0:area.x1],
                          original[area.y0:area.y1, area.x0:area.x1])
    assert t_s == pytest.approx(12.0, abs=1 / 30)


def test_frame_at_names_a_missing_video(tmp_path):
    with pytest.raises(DecodeError, match="no such file"):
        frame_at(tmp_path / "gone.mp4", 1.0)
