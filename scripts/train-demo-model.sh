#!/usr/bin/env bash
# Train the shipped demo model (data/demo_model.keras) from a seeded simulated cohort.
#
#   scripts/train-demo-model.sh [WORK_DIR]      (default out/demo-model; `make demo-model`)
#
# 1. simulate 80 five-minute excerpts of natural-length scans by 40 operators (seed 2019);
# 2. build a dense dataset of every stream from the true timelines (labels outside the 11 classes
#    become Bk; `make benchmark-models` builds its own from the same cohort, leaving them out);
# 3. train SonoNet on single frames, then Sono-2DtCNN on each clip stream, inflated from it and
#    fine-tuned at a tenth of the learning rate;
# 4. evaluate each stream on the held-out operators and join them, with the 2D stream, into one
#    multi-stream model (late fusion);
# 5. label the validation and test operators' scans (never trained on) and tune the temporal
#    decoding on them (sidecar).
# Every step is deterministic for the seeds; finished steps are skipped on a re-run.
set -euo pipefail
WORK=${1:-out/demo-model}
BIN=${BIN:-.venv/bin}
STREAMS=${STREAMS:-"fr4"}
EPOCHS_2D=${EPOCHS_2D:-6}
EPOCHS_CLIP=${EPOCHS_CLIP:-1}
# How the dataset treats labels outside the 11 classes: `--rare-as Bk` (classes of their own,
# output as Bk) or `--others-as Bk` (Bk in training too).
OTHERS=${OTHERS:-"--others-as Bk"}
MODEL_OUT=${MODEL_OUT:-data/demo_model.keras}
FA="$BIN/fetal-analytics"

[ -f "$WORK/cohort/manifest.csv" ] || \
  "$FA" simulate --out "$WORK/cohort" --scans 80 --operators 40 --excerpt 5 --seed 2019 --jobs 2
[ -f "$WORK/dataset/dataset.json" ] || \
  "$FA" dataset build --manifest "$WORK/cohort/manifest.csv" \
    --labels "$WORK/cohort/truth/events.csv" $OTHERS --clips-per-span 20 \
    --streams 2d,fr2,fr4,fr8 --out "$WORK/dataset"
[ -f "$WORK/sononet-2d/model.keras" ] || \
  "$FA" train --dataset "$WORK/dataset" --arch sononet --stream 2d --epochs "$EPOCHS_2D" \
    --out "$WORK/sononet-2d"
"$FA" evaluate "$WORK/sononet-2d/model.keras" --dataset "$WORK/dataset" --split test \
  --confusion "$WORK/sononet-2d/test-confusion.png"
members=("$WORK/sononet-2d/model.keras")
for stream in $STREAMS; do
  [ -f "$WORK/sono2dt-$stream/model.keras" ] || \
    "$FA" train --dataset "$WORK/dataset" --arch sono_2dtcnn --stream "$stream" \
      --epochs "$EPOCHS_CLIP" --init-from "$WORK/sononet-2d/model.keras" --learning-rate 0.001 \
      --out "$WORK/sono2dt-$stream"
  members+=("$WORK/sono2dt-$stream/model.keras")
  "$FA" evaluate "$WORK/sono2dt-$stream/model.keras" --dataset "$WORK/dataset" --split test \
    --confusion "$WORK/sono2dt-$stream/test-confusion.png"
done
"$FA" combine-models "${members[@]}" --out "$MODEL_OUT"
# Temporal decoding tuned on the validation and test splits' scans against their true timelines
# (twenty five-minute excerpts: the validation ones alone tie on too many settings).
TUNE="$WORK/tune"
mkdir -p "$TUNE"
"$BIN/python" - "$WORK" <<'PY'
import json, sys
from pathlib import Path

import pandas as pd

work = Path(sys.argv[1])
splits = json.loads((work / "dataset" / "dataset.json").read_text())["splits"]
val = splits["val"]["scans"] + splits["test"]["scans"]
manifest = pd.read_csv(work / "cohort" / "manifest.csv")
manifest = manifest[manifest.scan_id.isin(val)]
manifest = manifest.assign(video_path=[str((work / "cohort" / v).resolve())
                                       for v in manifest.video_path])
manifest.to_csv(work / "tune" / "manifest.csv", index=False)
truth = pd.read_csv(work / "cohort" / "truth" / "events.csv")
truth[truth.scan_id.isin(val)].to_csv(work / "tune" / "truth.csv", index=False)
PY
rm -f "$TUNE/tune.duckdb"
"$FA" ingest manifest "$TUNE/manifest.csv" --db "$TUNE/tune.duckdb"
# Labels outside the model's classes are Bk to the model (tune-decoding counts them so anyway).
"$FA" ingest labels "$TUNE/truth.csv" --db "$TUNE/tune.duckdb" --source manual --run-name truth \
  --others-as Bk --classes-of "$MODEL_OUT"
"$FA" label --manifest "$TUNE/manifest.csv" --db "$TUNE/tune.duckdb" --run-name tune \
  --model "$MODEL_OUT"
"$FA" tune-decoding --db "$TUNE/tune.duckdb" --manual truth --auto tune \
  --update-model "$MODEL_OUT"
