"""Does a clip stream use time? Its recall per class on real clips against clips without motion.

A 2D+t model (Sono-2DtCNN) that learned the heartbeat should lose heart recall when the motion is
taken away. For one clip stream of a model (a single-stream model or a member of a multi-stream
one) and a dataset split, this scores the stream on:

``real``
    the clips as stored;
``frozen``
    every frame replaced by the clip's middle frame (no motion at all);
``shuffled``
    the clip's frames in a random order (motion kept, its time course destroyed).

and prints the recall of each output code (dataset labels mapped to codes as `evaluate` does)
and the top-1 accuracy. Where ``frozen`` scores as ``real`` on HeD, the stream tells the heart
by its look alone.

Usage: python benchmarks/temporal_use.py --dataset DIR [--model PATH] [--stream fr4]
       [--split test] [--json]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from fetal_analytics.shipped import shipped_file
from inference.evaluation import fit_input
from inference.model_file import load_model
from inference.pipeline import clip_batches, load_metadata

VARIANTS = ("real", "frozen", "shuffled")


def stream_model(loaded, stream: str):
    """The Keras model of `stream`: the model itself, or its member in a multi-stream model."""
    names = [s["name"] for s in loaded.streams]
    if stream not in names:
        raise SystemExit(f"{loaded.path} has no stream {stream!r} (it has {', '.join(names)})")
    if len(names) == 1:
        return loaded.model
    return next(layer for layer in loaded.model.layers
                if layer.name.startswith(f"{stream}_") and hasattr(layer, "layers"))


def without_motion(x: np.ndarray, variant: str, rng: np.random.Generator) -> np.ndarray:
    """`x` (batch, frames, H, W, 1) as `variant` says (see the module docstring)."""
    if variant == "frozen":
        middle = x.shape[1] // 2
        return np.repeat(x[:, middle:middle + 1], x.shape[1], axis=1)
    if variant == "shuffled":
        return np.stack([clip[rng.permutation(len(clip))] for clip in x])
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--model", default=str(shipped_file("demo_model.keras")))
    parser.add_argument("--stream", default="fr4")
    parser.add_argument("--split", default="test")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    loaded = load_model(options.model)
    model = stream_model(loaded, options.stream)
    height, width = model.input_shape[-3:-1]
    metadata = load_metadata(options.dataset)
    dataset_codes = metadata.get("codes", metadata["classes"])
    codes = list(loaded.output_codes)
    label_code = np.array([codes.index(c) if c in codes else -1 for c in dataset_codes])
    to_codes = loaded.code_matrix()
    rng = np.random.default_rng(0)
    predicted: dict[str, list[np.ndarray]] = {v: [] for v in VARIANTS}
    truth = []
    for x, y in clip_batches(options.dataset, options.split, options.stream, batch_size=32,
                             shuffle=False):
        x = fit_input(x, height, width) * np.float32(loaded.input_scale)
        for variant in VARIANTS:
            probs = np.asarray(model.predict_on_batch(without_motion(x, variant, rng)))
            predicted[variant].append((probs @ to_codes).argmax(axis=1))
        truth.append(label_code[y])
    y_true = np.concatenate(truth)
    result: dict = {"model": options.model, "stream": options.stream, "split": options.split,
                    "n": len(y_true), "recall": {}, "top1": {}}
    for variant in VARIANTS:
        y_pred = np.concatenate(predicted[variant])
        result["top1"][variant] = round(float(np.mean(y_pred == y_true)), 3)
        result["recall"][variant] = {
            code: round(float(np.mean(y_pred[y_true == k] == k)), 3)
            for k, code in enumerate(codes) if np.any(y_true == k)}
    if options.json:
        print(json.dumps(result))
        return
    print(f"{options.model} stream {options.stream}, {options.split}: {result['n']} clips")
    print(f"{'code':<6}" + "".join(f"{v:>10}" for v in VARIANTS))
    for code in result["recall"]["real"]:
        print(f"{code:<6}" + "".join(f"{result['recall'][v][code]:>10.3f}" for v in VARIANTS))
    print(f"{'top-1':<6}" + "".join(f"{result['top1'][v]:>10.3f}" for v in VARIANTS))


if __name__ == "__main__":
    main()
