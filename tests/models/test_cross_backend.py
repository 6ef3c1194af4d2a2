"""A ``.keras`` file saved under one Keras backend loads and predicts identically under another.

The builders of `inference.models` use only ``keras.layers`` / ``keras.ops`` (channels_last), so
a model saved with TensorFlow must give the same outputs under JAX and back. A backend is chosen
once per process (``KERAS_BACKEND``), so each step runs in its own subprocess, doing every model
at once (3 processes in all):

1. TensorFlow builds tiny models (weights set so that the outputs depend on the input), predicts
   on a seeded input and saves input, outputs and the model with `inference.model_file.save_model`
   (``.keras`` + sidecar with sha256).
2. JAX loads those files with `inference.model_file.load_model` (the sidecar's hash checked) and
   predicts; it also builds the same models with the builders, copies the weights in, predicts
   and saves them with `save_model`.
3. TensorFlow loads JAX's files with plain ``keras.saving.load_model`` and predicts.

The test process compares the saved softmax outputs, absolutely (``atol=1e-5``) and as
log-probabilities. A backend-specific default (e.g. a batch-norm epsilon of 1e-3 instead of 1e-4)
moves them by 5e-3 or more; TensorFlow and JAX differ by about 1e-6.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                                reason="JAX is not installed (pip install -e '.[dev]')")

ROOT = Path(__file__).resolve().parents[2]
# SonoNet (2D); Sono-2DtCNN (3D convolutions, the custom ClipPadding layer); a convolutional LSTM
# and an LSTM over a frozen nested frame encoder in TimeDistributed.
ARCHS = ("sononet", "sono_2dtcnn", "temp_sono_clstm_rcn", "feat1d_lstm_rnn")
TINY = {"input_shape": [32, 32, 1], "classes": 5, "width": 2, "frames": 4}
BATCH = 3
ATOL = 1e-5

# Run as `python -c STEP SPEC`, SPEC's "tasks" a list of [mode, src, dst], each done for every model
# of ARCHS: "save" builds it, predicts and saves everything into dst; "rebuild" does the same
# with the weights and input of src's model; "load" / "load_plain" load src's model (with /
# without the sidecar check) and predict on src's input into dst.
STEP = r"""
import json, os, sys
from pathlib import Path

import keras
import numpy as np

from inference import model_file, models

assert keras.backend.backend() == os.environ["KERAS_BACKEND"], keras.backend.backend()
spec = json.loads(sys.argv[1])
tiny = spec["tiny"]


def batch_norms(layer):
    if isinstance(layer, keras.layers.TimeDistributed):
        yield from batch_norms(layer.layer)
    elif isinstance(layer, keras.Model):
        for inner in layer.layers:
            yield from batch_norms(inner)
    elif isinstance(layer, keras.layers.BatchNormalization):
        yield layer


def sidecar(arch):
    return {"arch": arch, "classes": [f"c{i}" for i in range(tiny["classes"])],
            "codes": [None] * tiny["classes"], "input_shape": tiny["input_shape"],
            "frames": tiny["frames"] if arch in models.TEMPORAL else None,
            "backend": keras.backend.backend()}


for mode, src, dst in spec["tasks"]:
    src, dst = Path(src), Path(dst)
    for k, arch in enumerate(spec["archs"]):
        out = dst / arch
        out.mkdir(parents=True)
        if mode == "save":
            keras.utils.set_random_seed(k)
            model = models.build(arch, **tiny)
            rng = np.random.default_rng(k)
            x = rng.normal(size=(spec["batch"], *model.input_shape[1:])).astype("float32")
            # Weights under which the outputs depend on the input (at width 2 and default
            # initialisation they hardly do): random batch-norm scales and offsets, moving
            # statistics set to those of `x` (a training-mode pass with momentum 0, the frozen
            # frame encoder unfrozen for it), dense kernels doubled. Conv kernels keep their
            # seeded initialisation.
            norms = list(batch_norms(model))
            for bn in norms:
                bn.gamma.assign(rng.uniform(0.5, 1.5, bn.gamma.shape).astype("float32"))
                bn.beta.assign(rng.normal(0.0, 0.2, bn.beta.shape).astype("float32"))
                bn.momentum = 0.0
            frozen = [layer.layer for layer in model.layers
                      if isinstance(layer, keras.layers.TimeDistributed)
                      and not layer.layer.trainable]
            for layer in frozen:
                layer.trainable = True
            model(x, training=True)
            for layer in frozen:
                layer.trainable = False
            for bn in norms:
                bn.momentum = 0.99
            for layer in model.layers:
                if isinstance(layer, keras.layers.Dense):
                    layer.kernel.assign(layer.kernel * 2.0)
            np.save(out / "x.npy", x)
            model_file.save_model(model, out / "model.keras", sidecar(arch))
        elif mode == "rebuild":
            # Built by the builder under this backend, with the weights of src's model.
            model = models.build(arch, **tiny)
            source = keras.saving.load_model(src / arch / "model.keras", compile=False)
            model.set_weights(source.get_weights())
            x = np.load(src / arch / "x.npy")
            np.save(out / "x.npy", x)
            model_file.save_model(model, out / "model.keras", sidecar(arch))
        else:
            path = src / arch / "model.keras"
            if mode == "load":
                loaded = model_file.load_model(path)  # checks the sha256 in the sidecar
                assert loaded.sidecar["arch"] == arch
                model = loaded.model
            else:
                model = keras.saving.load_model(path, compile=False)
            x = np.load(src / arch / "x.npy")
        np.save(out / "probs.npy", np.asarray(model.predict_on_batch(x)))
    (dst / "backend.json").write_text(json.dumps(keras.backend.backend()))
"""


def _run(backend: str, tasks: list[tuple[str, Path, Path]]) -> None:
    """Run STEP's `tasks` in one subprocess under `backend`, on the CPU."""
    root = tasks[0][2].parent
    env = {**os.environ, "KERAS_BACKEND": backend, "KERAS_HOME": str(root / "keras_home"),
           # Both backends on the CPU: a GPU (TF32 convolutions) would differ beyond ATOL.
           "CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    if backend == "jax":
        # XLA compiles each weight initialiser (one per kernel shape) when a model is built or
        # loaded: LLVM -O0 makes that several times faster. Convolutions and matrix products
        # are library calls either way.
        env["XLA_FLAGS"] = " ".join(filter(None, [os.environ.get("XLA_FLAGS"),
                                                  "--xla_backend_optimization_level=0"]))
    spec = json.dumps({"tasks": [[m, str(s), str(d)] for m, s, d in tasks], "archs": ARCHS,
                       "tiny": TINY, "batch": BATCH})
    proc = subprocess.run([sys.executable, "-c", STEP, spec], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, (f"{backend} {tasks} failed:\n{proc.stdout[-3000:]}\n"
                                  f"{proc.stderr[-6000:]}")
    for _, _, dst in tasks:
        assert json.loads((dst / "backend.json").read_text()) == backend


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Output folders: tf, tf_on_jax, jax, jax_on_tf (3 subprocesses)."""
    root = tmp_path_factory.mktemp("cross_backend")
    out = {name: root / name for name in ("tf", "tf_on_jax", "jax", "jax_on_tf")}
    _run("tensorflow", [("save", root, out["tf"])])
    _run("jax", [("load", out["tf"], out["tf_on_jax"]), ("rebuild", out["tf"], out["jax"])])
    _run("tensorflow", [("load_plain", out["jax"], out["jax_on_tf"])])
    return out


def _assert_same(saved: Path, loaded: Path) -> None:
    probs, probs2 = np.load(saved / "probs.npy"), np.load(loaded / "probs.npy")
    assert probs.shape == probs2.shape == (BATCH, TINY["classes"])
    # Not a trivial comparison: the inputs get different, unsaturated probabilities.
    assert np.abs(probs - probs[0]).max() > 1e-2 and probs.max() < 0.99, probs
    assert np.allclose(probs2, probs, atol=ATOL, rtol=0), np.abs(probs2 - probs).max()
    # Log-probabilities (logits up to a constant): relative agreement of the small ones too.
    assert np.allclose(np.log(probs2), np.log(probs), atol=1e-4, rtol=0), (
        np.abs(np.log(probs2) - np.log(probs)).max())


@pytest.mark.parametrize("arch", ARCHS)
def test_saved_with_tensorflow_predicts_identically_with_jax(runs, arch):
    _assert_same(runs["tf"] / arch, runs["tf_on_jax"] / arch)


@pytest.mark.parametrize("arch", ARCHS)
def test_saved_with_jax_predicts_identically_with_tensorflow(runs, arch):
    _assert_same(runs["jax"] / arch, runs["jax_on_tf"] / arch)


def test_the_sidecars_name_the_saving_backend(runs):
    """`save_model` wrote a sidecar under each backend (`load_model` under JAX checked one)."""
    for arch in ARCHS:
        for name, backend in (("tf", "tensorflow"), ("jax", "jax")):
            sidecar = json.loads((runs[name] / arch / "model.json").read_text())
            assert sidecar["arch"] == arch and sidecar["backend"] == backend
            assert len(sidecar["sha256"]) == 64
