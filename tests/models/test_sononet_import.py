"""The published SonoNet-16 weights: import, sidecar, hash check, and the 7 real frames.

Uses ``../shared/data/sononet`` (weights and real GE Voluson E8 captures); skips when it is
missing. Everything goes through the real command line (click's CliRunner).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fetal_analytics import taxonomy
from fetal_analytics.cli import main

pytestmark = pytest.mark.filterwarnings(
    # Keras's own model.save() on TensorFlow 2.21 with numpy 2.
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

SONONET = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "sononet"
NPZ = SONONET / "SonoNet16.npz"
IMAGES = sorted((SONONET / "example_images").glob("*.png"))
needs_sononet = pytest.mark.skipif(
    not NPZ.is_file() or len(IMAGES) != 7,
    reason=f"the SonoNet-16 weights and the 7 example captures are missing ({SONONET})")

# File name (the true standard plane) -> SonoNet class -> taxonomy code.
TRUTH = {
    "4CH": ("4CH", "HeD"),
    "ABDOMINAL": ("Abdominal", "Ab"),
    "BRAIN-CB": ("Brain (Cb.)", "Br"),
    "BRAIN-TV": ("Brain (Tv.)", "Br"),
    "FEMUR": ("Femur", "Fm"),
    "RVOT": ("RVOT", "HeD"),
    "SPINE-SAGITTAL": ("Spine (sag.)", "Sp"),
}
README_CLASSES = ["3VV", "4CH", "Abdominal", "Background", "Brain (Cb.)", "Brain (Tv.)", "Femur",
                  "Kidneys", "Lips", "LVOT", "Profile", "RVOT", "Spine (cor.)", "Spine (sag.)"]
README_CODES = ["HeD", "HeD", "Ab", "Bk", "Br", "Br", "Fm", "Ki", "NL", "HeD", "Fa", "HeD", "Sp",
                "Sp"]


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sononet") / "sononet16.keras"
    result = invoke("import-sononet", NPZ, "--out", out)
    assert result.exit_code == 0, result.output
    assert (f"wrote {out} (SonoNet-16 (published weights, Baumgartner et al. 2017): 14 classes, "
            f"930,796 trainable parameters) and {out.with_suffix('.json')}") in result.stdout
    return out


@needs_sononet
def test_sidecar_holds_classes_codes_input_and_hash(imported):
    sidecar = json.loads(imported.with_suffix(".json").read_text())
    assert sidecar["classes"] == README_CLASSES
    assert sidecar["codes"] == README_CODES
    assert sidecar["codes_without_class"] == ["3Dm", "MaD"]
    assert set(sidecar["codes"]) | {"3Dm", "MaD"} == set(taxonomy.default_model_codes())
    assert sidecar["input_shape"] == [224, 288, 1]
    assert sidecar["preprocessing"]["function"] == "inference.roi.preprocess"
    assert sidecar["sha256"] == hashlib.sha256(imported.read_bytes()).hexdigest()
    assert sidecar["params"]["trainable"] == 930_796


@needs_sononet
def test_weights_are_converted_without_flip_and_with_lasagne_batch_norm(imported):
    from inference.model_file import load_model

    model = load_model(imported).model
    with np.load(NPZ) as npz:
        w, beta, gamma, mean, inv_std = (npz[f"arr_{i}"] for i in range(5, 10))  # block1_conv2
    np.testing.assert_array_equal(model.get_layer("block1_conv2").kernel.numpy(),
                                  w.transpose(2, 3, 1, 0))
    bn = model.get_layer("block1_bn2")
    assert bn.epsilon == 1e-4
    got_gamma, got_beta, got_mean, got_var = bn.get_weights()
    np.testing.assert_array_equal(got_gamma, gamma)
    np.testing.assert_array_equal(got_beta, beta)
    np.testing.assert_array_equal(got_mean, mean)
    # inv_std = 1 / sqrt(var + eps), so Keras's 1 / sqrt(var + eps) gives inv_std back.
    np.testing.assert_allclose(1 / np.sqrt(got_var + 1e-4), inv_std, rtol=1e-5)


@needs_sononet
def test_classify_gets_all_seven_real_frames_right(imported):
    result = invoke("classify", imported, *IMAGES, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [Path(r["image"]).stem for r in rows] == [p.stem for p in IMAGES]
    got = {Path(r["image"]).stem: (r["class"], r["code"]) for r in rows}
    assert got == TRUTH
    assert all(set(r) == {"image", "class", "code", "probability", "class_probability"}
               for r in rows)
    assert min(r["probability"] for r in rows) > 0.5
    # The code's probability sums its classes' (RVOT's HeD takes in 3VV, 4CH and LVOT too).
    assert all(r["probability"] >= r["class_probability"] for r in rows)


@needs_sononet
def test_classify_table_lists_each_image_with_class_code_and_probability(imported):
    result = invoke("classify", imported, IMAGES[0])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.stdout.splitlines() if "4CH.png" in line)
    assert line.split()[2:6] == ["4CH", "│", "HeD", "│"], line


@needs_sononet
def test_a_changed_model_file_is_refused(imported, tmp_path):
    copy = tmp_path / "changed.keras"
    copy.write_bytes(imported.read_bytes() + b"\0")
    copy.with_suffix(".json").write_text(imported.with_suffix(".json").read_text())
    result = invoke("classify", copy, IMAGES[0])
    assert result.exit_code == 1
    assert f"Error: {copy}: sha256 " in result.output
    assert "the model file was changed after it was written: re-create it" in result.output


def test_a_model_without_its_sidecar_is_refused(tmp_path):
    model = tmp_path / "m.keras"
    model.write_bytes(b"not a model")
    result = invoke("classify", model, "frame.png")
    assert result.exit_code == 1
    assert f"Error: {model}: its sidecar {tmp_path / 'm.json'} is missing" in result.output


def test_import_refuses_a_file_that_is_not_sononet_weights(tmp_path):
    npz = tmp_path / "other.npz"
    np.savez(npz, np.zeros(3), np.ones(2))
    result = invoke("import-sononet", npz, "--out", tmp_path / "x.keras")
    assert result.exit_code == 1
    assert "expected 75 arrays (5 per convolution), got 2" in result.output


def test_the_shipped_sononet16_is_the_published_weights_and_its_licence_ships_beside_it():
    from inference.model_file import BUILTIN_MODELS, SONONET16_MODEL, read_model_info

    assert BUILTIN_MODELS["sononet16"] == SONONET16_MODEL
    info = read_model_info("sononet16")
    assert info.sidecar["source"]["file"] == "SonoNet16.npz"
    assert info.input_shape[:2] == (224, 288) and len(info.sidecar["classes"]) == 14
    licence = SONONET16_MODEL.with_name("LICENSE-SonoNet").read_text(encoding="utf-8")
    assert "Apache License" in licence and "Version 2.0" in licence
    notice = SONONET16_MODEL.with_name("NOTICE-SonoNet.md").read_text(encoding="utf-8")
    assert "Baumgartner" in notice and "Medical Imaging" in notice


@needs_sononet
def test_the_shipped_sononet16_converts_from_the_published_file_and_classifies_by_name():
    import hashlib

    from inference.model_file import read_model_info
    from inference.sononet import classify_images

    digest = hashlib.sha256(NPZ.read_bytes()).hexdigest()
    assert read_model_info("sononet16").sidecar["source"]["sha256"] == digest
    rows = classify_images("sononet16", IMAGES)
    assert [r["code"] for r in rows] == [TRUTH[Path(r["image"]).stem][1] for r in rows]
