"""A semi-real scan through `fetal-analytics label --model sononet16` (issue 20, item 7).

The video is built from the 7 shared real GE Voluson E8 captures
(``../shared/data/sononet/example_images``, relative to the repository root) by
`fetal_analytics.synth.captures.capture_video`: each capture live (probe jitter, speckle), then
frozen, a ticking clock, H.264. It is labelled by the real command line (PyAV decode, the
automatic image area, a real DuckDB file) with the shipped SonoNet-16, whose 14 classes are summed
into taxonomy codes. Skips when the captures or the shipped model are missing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fetal_analytics.cli import main
from fetal_analytics.store import Store
from fetal_analytics.synth.captures import EXAMPLE_CODES, capture_video
from inference.model_file import SONONET16_MODEL

pytestmark = pytest.mark.filterwarnings(  # raised inside Keras predict by TensorFlow 2.21
    "ignore:__array__ implementation:DeprecationWarning")

CAPTURES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "sononet" / \
    "example_images"
needs_captures = pytest.mark.skipif(
    len(list(CAPTURES.glob("*.png"))) != 7 or not SONONET16_MODEL.is_file(),
    reason=f"the 7 shared SonoNet example captures ({CAPTURES}) or the shipped "
           f"{SONONET16_MODEL.name} are missing")


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("semi-real")
    video = capture_video(CAPTURES, folder / "semi_real.mp4", live_s=2.5, frozen_s=1.5, fps=15,
                          seed=20)
    manifest = folder / "manifest.csv"
    manifest.write_text("scan_id,operator_id,group,video_path\nSEMI1,OP1,expert,semi_real.mp4\n")
    db = folder / "semi.duckdb"
    result = CliRunner().invoke(main, ["label", "--manifest", str(manifest), "--db", str(db),
                                       "--model", "sononet16", "--no-freezes", "--format",
                                       "json"])
    assert result.exit_code == 0, result.output
    return video, db, json.loads(result.stdout)


@needs_captures
def test_sononet16_labels_the_live_segments_of_real_captures(labelled):
    video, db, outcome = labelled
    assert [s["status"] for s in outcome["scans"]] == ["labelled"]
    with Store(db, read_only=True) as store:
        events = store.query_df("SELECT start_s, end_s, label FROM events WHERE scan_id = 'SEMI1'")
    got = dict(zip((s.name for s in video.segments), video.live_labels(events), strict=True))
    right = [name for name, code in got.items() if code == EXAMPLE_CODES[name]]
    assert len(right) >= 6, got


@needs_captures
def test_window_probabilities_are_stored_per_taxonomy_code(labelled):
    _, db, _ = labelled
    with Store(db, read_only=True) as store:
        params = json.loads(store.query_df("SELECT params_json FROM runs")["params_json"][0])
        probs = store.query_df("SELECT stream, probs FROM window_probs")
        model = store.query_df("SELECT classes, input_shape FROM models")
    # SonoNet's 14 classes: the 4 heart views, 2 brain and 2 spine planes each summed into one.
    assert params["classes"] == ["HeD", "Ab", "Bk", "Br", "Fm", "Ki", "NL", "Fa", "Sp"]
    assert params["summed_classes"]["HeD"] == ["3VV", "4CH", "LVOT", "RVOT"]
    assert params["streams"] == [{"name": "2d", "spacing_s": None, "frames": 1,
                                  "size": [224, 288]}]
    assert params["scale"] == 255.0
    assert set(probs["stream"]) == {"2d", "fused"}
    stacked = np.stack(probs["probs"])
    assert stacked.shape[1] == 9
    np.testing.assert_allclose(stacked.sum(axis=1), 1.0, atol=1e-4)
    assert list(model["classes"][0]) == params["classes"]
    assert list(model["input_shape"][0]) == [224, 288, 1]
