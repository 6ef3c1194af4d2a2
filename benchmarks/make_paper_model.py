"""Build an untrained multi-stream labelling model of a preset, for throughput benchmarks.

One Sono-2DtCNN per clip stream (default the paper's fr2, fr4, fr8), built with
`inference.models.build` from a preset (default ``paper``: width 64, 224 x 224, 12 frames) for the
11 classes of the default models, each saved with the sidecar `inference.training.train` writes
(stream, classes, codes, input shape, frames, preprocessing with its size, decoding defaults),
then joined with `inference.models.combine_streams` into one file that `fetal-analytics label`
and `benchmarks/label_throughput.py --model` take. The weights are random (seeded): they decide
nothing about throughput, and the labels it gives mean nothing.

Usage: python benchmarks/make_paper_model.py --out MODEL.keras [--preset paper|cpu]
       [--streams fr2,fr4,fr8] [--arch sono_2dtcnn] [--seed 0]

Imports nothing of TensorFlow unless KERAS_BACKEND is tensorflow (Keras's default).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="model file to write (.keras)")
    parser.add_argument("--preset", default="paper", help="inference.presets.MODEL_PRESETS key")
    parser.add_argument("--streams", default="fr2,fr4,fr8", help="clip streams, comma-separated")
    parser.add_argument("--arch", default="sono_2dtcnn", help="a temporal architecture")
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()

    import keras

    from fetal_analytics import taxonomy
    from inference.model_file import save_model
    from inference.models import build, combine_streams, count_params
    from inference.presets import MODEL_PRESETS
    from inference.streams import STREAMS
    from inference.training import DECODING_DEFAULTS, PREPROCESSING_DATASET

    streams = [s.strip() for s in options.streams.split(",") if s.strip()]
    unknown = [s for s in streams if s not in STREAMS]
    if unknown or not streams:
        raise SystemExit(f"unknown stream(s) {unknown}; valid: {', '.join(STREAMS)}")
    if options.preset not in MODEL_PRESETS:
        raise SystemExit(f"unknown preset {options.preset!r}; valid: {', '.join(MODEL_PRESETS)}")
    preset = MODEL_PRESETS[options.preset]
    size = int(preset["input_shape"][0])
    frames = int(preset["frames"])
    classes = list(taxonomy.default_model_codes())
    keras.utils.set_random_seed(options.seed)

    with tempfile.TemporaryDirectory() as folder:
        members = []
        for stream in streams:
            model = build(options.arch, preset=options.preset, classes=len(classes),
                          input_shape=(size, size, 1), name=f"{options.arch}_{stream}")
            sidecar = {
                "arch": options.arch,
                "name": f"{options.arch} ({options.preset} preset, untrained) for {stream}",
                "preset": options.preset,
                "width": int(preset["width"]),
                "input_shape": [size, size, 1],
                "frames": frames,
                "classes": classes,
                "codes": classes,
                "preprocessing": {**PREPROCESSING_DATASET, "size": [size, size]},
                "stream": {"name": stream, "spacing_s": STREAMS[stream], "frames": frames},
                "decoding": dict(DECODING_DEFAULTS),
                "params": count_params(model),
            }
            members.append(save_model(model, Path(folder) / f"{stream}.keras", sidecar))
        out = combine_streams(members, options.out, name=f"{options.preset}_multi_stream")
    params = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))["params"]
    print(f"wrote {out}: {options.arch} x {len(streams)} streams ({', '.join(streams)}), "
          f"{options.preset} preset ({size}x{size}, {frames} frames, width {preset['width']}), "
          f"{params['total']:,} parameters, backend {keras.backend.backend()}", file=sys.stderr)


if __name__ == "__main__":
    main()
