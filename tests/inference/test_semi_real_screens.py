"""Screen reading on a semi-real video (issue 20, item 7): real captures, no preset, H.264.

The video is built from the 7 shared GE Voluson E8 captures
(``../shared/data/sononet/example_images``, relative to the repository root) by
`fetal_analytics.synth.captures.capture_video`: each capture live (probe jitter, speckle), then
frozen with no freeze indicator, a clock ticking in the top band, H.264. The real command line
finds its freezes with default options (stillness alone) and reads its header. Skips when the
captures are missing; the header tests also when Tesseract is.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from fetal_analytics.cli import main
from fetal_analytics.synth.captures import EXAMPLE_HEADERS, capture_video

CAPTURES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "sononet" / \
    "example_images"
FPS = 15
pytestmark = pytest.mark.skipif(len(list(CAPTURES.glob("*.png"))) != 7,
                                reason=f"the 7 shared SonoNet example captures are missing "
                                       f"({CAPTURES})")
needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None,
                                     reason="tesseract is not installed")
# The first capture in video order (by name) and its header (the SonoNet data's README).
FIRST = "4CH"
FIRST_HZ, FIRST_DATE, _ = EXAMPLE_HEADERS[FIRST]


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    folder = tmp_path_factory.mktemp("semi-real-screens")
    return capture_video(CAPTURES, folder / "semi_real.mp4", live_s=2.0, frozen_s=1.0, fps=FPS,
                         seed=20)


def cli(*args):
    result = CliRunner().invoke(main, [*map(str, args), "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_default_freeze_finds_every_freeze_of_a_screen_without_a_preset(video):
    found = [(span["start_s"], span["end_s"]) for span in cli("freeze", video.path)]
    assert len(found) == len(video.freezes) == 7
    for (start, end), (true_start, true_end) in zip(found, video.freezes, strict=True):
        assert start == pytest.approx(true_start, abs=2 / FPS)
        assert end == pytest.approx(true_end, abs=2 / FPS)


@needs_tesseract
def test_read_header_reads_the_first_captures_frame_rate_from_the_still_and_the_video(video):
    assert video.segments[0].name == FIRST
    still = cli("read-header", CAPTURES / f"{FIRST}.png")
    assert (still["frame_rate_hz"], still["date"]) == (FIRST_HZ, FIRST_DATE)
    # From the video's first frames: H.264 and a live image beside the header.
    header = cli("read-header", video.path)
    assert (header["frame_rate_hz"], header["date"]) == (FIRST_HZ, FIRST_DATE)
    # Two clocks are on this screen: the capture's own and the ticking one drawn above it; the
    # time read is the first (top) one, whichever it is.
    assert header["time"] in ("10:19:40 AM", "10:00:00")
