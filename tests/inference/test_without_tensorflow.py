"""What the command line and the dashboard use to describe models and to preview frames works
without TensorFlow or Keras: each check runs in a fresh interpreter, then reads `sys.modules`."""

from __future__ import annotations

import subprocess
import sys
import textwrap

HEAVY = ("tensorflow", "keras", "torch", "jax")


def run_probe(body: str) -> str:
    """Run `body` in a new interpreter; return its output, which ends with the heavy modules
    it imported (``HEAVY [...]``)."""
    code = textwrap.dedent(body) + (
        "\nimport sys\n"
        f"print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout


def test_the_probe_sees_keras_when_a_module_imports_it():
    assert "'keras'" in run_probe("import inference.models").splitlines()[-1]


def test_a_models_sidecar_is_read_without_keras():
    output = run_probe("""
        from fetal_analytics import taxonomy
        from inference.model_file import read_model_info
        from inference.sononet import CODES_WITHOUT_CLASS, SONONET_TO_TAXONOMY

        info = read_model_info("demo")
        assert info.output_codes == taxonomy.default_model_codes(), info.output_codes
        print("STREAMS", [s["name"] for s in info.streams], info.input_shape, info.frames)
        print("SONONET", CODES_WITHOUT_CLASS, SONONET_TO_TAXONOMY["4CH"])
    """)
    assert "STREAMS ['2d', 'fr4'] (64, 64, 1) 12" in output
    assert "SONONET ('3Dm', 'MaD') HeD" in output
    assert output.endswith("HEAVY []\n")


def test_a_frame_is_previewed_de_identified_and_cropped_without_keras():
    output = run_probe("""
        import numpy as np

        from fetal_analytics.synth.render import class_gallery
        from inference.crop import cropped_frame
        from inference.deidentify import deidentify_frame, preview_frame
        from inference.roi import detect_image_area

        frame = class_gallery(size=(320, 240))["HeD"]
        area = detect_image_area(frame)
        hidden = deidentify_frame(frame, area)
        outside = np.ones(frame.shape[:2], bool)
        outside[area.y0:area.y1, area.x0:area.x1] = False
        print("SCREEN", bool(frame[outside].any()), "BLACKED", not hidden[outside].any())
        print("CROP", cropped_frame(frame, area, 32).shape)
    """)
    assert "SCREEN True BLACKED True" in output
    assert "CROP (32, 32, 3)" in output
    assert output.endswith("HEAVY []\n")
