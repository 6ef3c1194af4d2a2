"""Multi-stream model files (`inference.models.combine_streams`): one file, one input and one
softmax per stream, each output equal to its member's."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from fetal_analytics.cli import main
from inference.model_file import ModelFileError, load_model, save_model
from inference.models import build, combine_streams

pytestmark = pytest.mark.filterwarnings(  # raised inside Keras by TensorFlow 2.21
    "ignore:__array__ implementation:DeprecationWarning")

CLASSES = ["Bk", "HeD", "Ab", "Ki", "Br"]


def _member(tmp_path, stream, *, classes=CLASSES):
    temporal = stream != "2d"
    model = build("sono_2dtcnn" if temporal else "sononet", width=2, input_shape=(32, 32, 1),
                  frames=4, classes=len(classes))
    sidecar = {"arch": model.name, "classes": classes, "codes": classes,
               "input_shape": [32, 32, 1], "frames": 4 if temporal else None,
               "stream": {"name": stream, "spacing_s": 0.1 if temporal else None,
                          "frames": 4 if temporal else 1},
               "decoding": {"hop_s": 1.0}}
    return save_model(model, tmp_path / f"{stream}.keras", sidecar)


def test_a_combined_model_predicts_what_its_members_predict(tmp_path):
    paths = [_member(tmp_path, s) for s in ("fr4", "fr8", "2d")]
    combined = load_model(combine_streams(paths, tmp_path / "all.keras"))
    assert [s["name"] for s in combined.streams] == ["fr4", "fr8", "2d"]
    assert combined.frames == 4 and combined.classes == tuple(CLASSES)
    side = json.loads((tmp_path / "all.json").read_text())
    assert [m["stream"] for m in side["members"]] == ["fr4", "fr8", "2d"]
    rng = np.random.default_rng(0)
    clips = rng.normal(size=(3, 4, 32, 32, 1)).astype("float32")
    frames = rng.normal(size=(3, 32, 32, 1)).astype("float32")
    got = combined.predict_streams([clips, clips, frames])
    members = [load_model(p) for p in paths]
    want = [members[0].predict_streams([clips])[0], members[1].predict_streams([clips])[0],
            members[2].predict_streams([frames])[0]]
    for g, w in zip(got, want, strict=True):
        assert g.shape == (3, len(CLASSES))
        np.testing.assert_allclose(g, w, atol=1e-6)
    with pytest.raises(ValueError, match="3 input streams"):
        combined.predict_streams([clips])


def test_members_must_agree_on_classes_and_streams(tmp_path):
    fr4 = _member(tmp_path, "fr4")
    other = _member(tmp_path / "other", "fr8", classes=["Bk", "HeD", "Ab", "Ki", "Sp"])
    with pytest.raises(ModelFileError, match="classes or codes differ"):
        combine_streams([fr4, other], tmp_path / "bad.keras")
    with pytest.raises(ModelFileError, match="share a stream"):
        combine_streams([fr4, fr4], tmp_path / "bad.keras")


def test_the_combine_models_command(tmp_path):
    paths = [str(_member(tmp_path, s)) for s in ("fr4", "2d")]
    result = CliRunner().invoke(main, ["combine-models", *paths, "--out",
                                       str(tmp_path / "multi.keras")])
    assert result.exit_code == 0, result.output
    assert "streams fr4, 2d" in result.stdout
    assert [s["name"] for s in load_model(tmp_path / "multi.keras").streams] == ["fr4", "2d"]
    bad = CliRunner().invoke(main, ["combine-models", paths[0], paths[0], "--out",
                                    str(tmp_path / "bad.keras")])
    assert bad.exit_code == 1 and "share a stream" in bad.output
