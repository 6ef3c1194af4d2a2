#!/usr/bin/env bash
# The main job on the demo cohort (`make demo`; about 3-5 minutes on 2 cores): build the demo
# database out/demo/demo.duckdb (scripts/demo-db.sh says what it holds), then print
#
# 1. real model output: how well the demo model's labels of the 4 scan videos (automatic run
#    "demo-model") agree with their true timelines (manual run "truth");
# 2. group statistics on the 48 scans without video, from the simulator's exact timelines (the
#    automatic run "simulator-truth"; no model involved): workflow statistics, the simulated
#    annotators' freeze clips against them, and expert vs trainee;
#
# and the command that opens the dashboard on the database.
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
db="$out/demo.duckdb"
section() { printf '\n===== %s =====\n' "$*"; }

section "Building $db: 48 scans without video, 4 scan videos labelled by $model"
"$(dirname "$0")/demo-db.sh" "$out"
$cli info --db "$db"

section "Part 1: REAL MODEL OUTPUT - the model (auto run 'demo-model') against the TRUTH (manual run 'truth') on the 4 scan videos"
$cli correlate --db "$db" --manual truth --auto demo-model --paired

section "Part 2: SIMULATOR TRUTH, NOT MODEL OUTPUT - workflow statistics by group (auto run 'simulator-truth')"
$cli stats --db "$db" --run simulator-truth --by group
section "Part 2: simulated annotators' freeze clips (manual run 'manual-clips') vs 'simulator-truth' (no model)"
$cli correlate --db "$db" --manual manual-clips --auto simulator-truth --paired
section "Part 2: expert vs trainee (from 'simulator-truth')"
$cli compare --db "$db" --run simulator-truth --groups expert trainee

section "Dashboard: open it on what was just built with"
echo "$bin/streamlit run dashboard/app.py -- --db $db"
