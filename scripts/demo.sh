#!/usr/bin/env bash
# The main job on the demo cohort, in two parts (`make demo`; about 3-5 minutes on 2 cores):
#
# 1. Real model output: simulate 4 short scans WITH video (3-minute excerpts, 640x480), import
#    their true timelines as the manual run "truth", label the videos with the shipped demo model
#    (data/demo_model.keras, the default model of `fetal-analytics label`) as the automatic run
#    "demo-model", and print how well the model agrees with the truth.
# 2. Group statistics: simulate the 48-scan demo cohort of 12 operators WITHOUT video (labelling
#    48 full-length scans would take hours on 2 cores), so there the simulator's exact timelines
#    stand in for automatic labels (the auto run "simulator-truth"; no model involved), and print
#    the workflow statistics, the manual-vs-"automatic" agreement and expert vs trainee.
#
#   scripts/demo.sh [OUT_DIR]          (default out/demo)
#   DEMO_MODEL=path/to/model.keras scripts/demo.sh   (another model, e.g. while testing)
set -euo pipefail
out=${1:-out/demo}
bin=${BIN:-.venv/bin}
cli="$bin/fetal-analytics"
model=${DEMO_MODEL:-data/demo_model.keras}
if [ ! -f "$model" ]; then
  echo "Error: the demo model $model is missing: make it with \`make demo-model\` (re-trains it" \
       "from a seeded simulated cohort, about 1 h on 2 cores), or set DEMO_MODEL=PATH to a" \
       "model written by \`fetal-analytics train\` or \`combine-models\`" >&2
  exit 1
fi
# Tesseract reads scanner screens (header fields; a freeze preset's indicator). The demo labels
# without it (freezes by stillness alone), so a machine without it and without root goes on.
scripts/system-deps.sh tesseract-ocr tesseract-ocr-eng \
  || echo "(continuing without Tesseract: freezes are found by stillness alone)" >&2
model_args=()
if [ -n "${DEMO_MODEL:-}" ]; then model_args=(--model "$DEMO_MODEL"); fi
mkdir -p "$out"
section() { printf '\n===== %s =====\n' "$*"; }

# ---- Part 1: the demo model on scan videos ------------------------------------------------------
videos="$out/videos-cohort"
ldb="$out/labelled.duckdb"
section "Part 1: REAL MODEL OUTPUT - labelling 4 simulated scan videos with $model"
$cli simulate --out "$videos" --scans 4 --operators 4 --excerpt 3 --seed 7
rm -f "$ldb" "$ldb.wal"  # a fresh database: the run below is this model's output alone
$cli init-db --db "$ldb"
$cli ingest manifest "$videos/manifest.csv" --db "$ldb"
# The true timelines become the manual run "truth"; labels the model has no class for (the rarer
# taxonomy classes) become Bk, background, as they are to the model.
$cli ingest labels "$videos/truth/events.csv" --db "$ldb" --source manual --run-name truth \
  --others-as Bk --classes-of "$model"
$cli label --manifest "$videos/manifest.csv" --db "$ldb" --run-name demo-model "${model_args[@]}"
section "Part 1: $ldb - run 'demo-model' (auto) is the model's output, run 'truth' (manual) the simulator's exact timelines"
$cli info --db "$ldb"
section "Part 1: agreement of the MODEL (auto run 'demo-model') with the TRUTH (manual run 'truth')"
$cli correlate --db "$ldb" --manual truth --auto demo-model --paired

# ---- Part 2: group statistics on the 48-scan cohort (simulator truth, no model) ------------------
db="$out/demo.duckdb"
section "Part 2: SIMULATOR TRUTH, NOT MODEL OUTPUT - 48 scans by 12 operators, no video"
$cli simulate --out "$out/cohort" --scans 48 --operators 12 --seed 2019 --manual-fraction 0.5 \
  --no-video
$cli init-db --db "$db"
$cli ingest manifest "$out/cohort/manifest.csv" --db "$db"
$cli ingest labels "$out/cohort/manual_labels.csv" --db "$db" --source manual
$cli ingest labels "$out/cohort/truth/events.csv" --db "$db" --source auto \
  --run-name simulator-truth
section "Part 2: $db - the auto run 'simulator-truth' is the simulator's exact timelines (no model)"
$cli info --db "$db"
section "Part 2: workflow statistics by group (from 'simulator-truth')"
$cli stats --db "$db" --by group
section "Part 2: simulated annotators' freeze clips (manual) vs 'simulator-truth' (no model)"
$cli correlate --db "$db" --paired
section "Part 2: expert vs trainee (from 'simulator-truth')"
$cli compare --db "$db" --groups expert trainee

section "Dashboard: open it on what was just built with"
echo "$bin/streamlit run dashboard/app.py -- --db $db"
