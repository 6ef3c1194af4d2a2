#!/usr/bin/env bash
# Regenerate the models section of BENCHMARKS.md (the paper's tables 2 and 3) from seeded
# simulated cohorts.
#
#   scripts/benchmark-models.sh [WORK_DIR]      (default out/bench-models; `make benchmark-models`)
#
# 1. the training cohort: the demo model's (80 five-minute excerpts by 40 operators, seed 2019),
#    taken from out/demo-model/cohort (TRAIN_COHORT) and simulated there when missing;
# 2. the held-out cohort: 3 natural-length scans by 3 operators (seed 4242), the one of
#    benchmarks/label_quality.py, taken from out/quality/cohort-3-4242 (HELDOUT_COHORT) and
#    simulated there when missing;
# 3. both datasets built the paper's way: every stream, 20 windows per labelled span, the events
#    of classes outside the 11 left out (no --others-as);
# 4. `fetal-analytics benchmark-models --preset cpu` trained on the first, tested on every
#    instance of the second, written into BENCHMARKS.md (within an hour on 2 cores).
# Every step is deterministic for the seeds; finished steps and models are skipped on a re-run.
set -euo pipefail
WORK=${1:-out/bench-models}
BIN=${BIN:-.venv/bin}
TRAIN_COHORT=${TRAIN_COHORT:-out/demo-model/cohort}
HELDOUT_COHORT=${HELDOUT_COHORT:-out/quality/cohort-3-4242}
SONONET_NPZ=${SONONET_NPZ:-../shared/data/sononet/SonoNet16.npz}
FA="$BIN/fetal-analytics"

[ -f "$TRAIN_COHORT/manifest.csv" ] || \
  "$FA" simulate --out "$TRAIN_COHORT" --scans 80 --operators 40 --excerpt 5 --seed 2019 --jobs 2
[ -f "$HELDOUT_COHORT/manifest.csv" ] || \
  "$FA" simulate --out "$HELDOUT_COHORT" --scans 3 --operators 3 --seed 4242 --jobs 2
for pair in "dataset:$TRAIN_COHORT" "heldout-dataset:$HELDOUT_COHORT"; do
  name=${pair%%:*} cohort=${pair#*:}
  [ -f "$WORK/$name/dataset.json" ] || \
    "$FA" dataset build --manifest "$cohort/manifest.csv" --labels "$cohort/truth/events.csv" \
      --clips-per-span 20 --streams 2d,fr2,fr4,fr8 --out "$WORK/$name"
done
published=()
[ -f "$SONONET_NPZ" ] && published=(--sononet-npz "$SONONET_NPZ")
"$FA" benchmark-models --dataset "$WORK/dataset" --test-dataset "$WORK/heldout-dataset" \
  --preset cpu --out "$WORK/run" "${published[@]}" --markdown BENCHMARKS.md
