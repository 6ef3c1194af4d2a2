#!/usr/bin/env bash
# Build the demo database OUT_DIR/demo.duckdb: what `make demo` analyses and the dashboard shows
# (`make demo-data` compacts the same database into the shipped data/demo.duckdb). About 2-4
# minutes on 2 cores. What it holds, so that every view of the dashboard has something to show:
#
# - 48 scans WITHOUT video (OUT_DIR/cohort, seed 2019) by 12 operators, experts and trainees,
#   over several dates: the simulator's freeze-clip manual labels for half of them (manual run
#   "manual-clips") and its exact timelines as the automatic run "simulator-truth" (no model
#   involved: labelling 48 full-length scans would take hours on 2 cores);
# - 4 scans WITH video (OUT_DIR/videos-cohort, seed 7, 3-minute excerpts, scan ids VID0001-4, by
#   4 of the same operators): labelled by the demo model on the decoded video (automatic run
#   "demo-model", with window probabilities and freezes), their true timelines as the manual run
#   "truth" (labels the model has no class for become Bk, background, as they are to the model).
#
# Model output and simulator truth are separate runs: analyse one at a time (--run).
#
#   scripts/demo-db.sh [OUT_DIR]                   (default out/demo)
#   DEMO_MODEL=path/to/model.keras scripts/demo-db.sh   (another model, e.g. while testing)
set -euo pipefail
out=${1:-out/demo}
bin=${BIN:-.venv/bin}
cli="$bin/fetal-analytics"
model=${DEMO_MODEL:-data/demo_model.keras}
model_args=()
if [ -n "${DEMO_MODEL:-}" ]; then model_args=(--model "$DEMO_MODEL"); fi
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
cohort="$out/cohort"
videos="$out/videos-cohort"
db="$out/demo.duckdb"
mkdir -p "$out"
rm -f "$db" "$db.wal"  # a fresh database: its runs are this script's alone

$cli simulate --out "$cohort" --scans 48 --operators 12 --seed 2019 --manual-fraction 0.5 \
  --no-video
$cli simulate --out "$videos" --scans 4 --operators 4 --excerpt 3 --seed 7
# Both simulations number scans from SIM0001: the video scans get ids of their own in copies of
# their manifest and truth. Their operators OP01-OP04 are the cohort's (the simulator alternates
# expert and trainee in both), so the copy leaves out the video cohort's own draw of their years
# of experience (the manifest's last column).
sed 's/^SIM/VID/' "$videos/manifest.csv" | cut -d, -f1-6 > "$videos/manifest-demo.csv"
sed 's/^SIM/VID/' "$videos/truth/events.csv" > "$videos/truth/events-demo.csv"

$cli init-db --db "$db"
$cli ingest manifest "$cohort/manifest.csv" --db "$db"
$cli ingest labels "$cohort/manual_labels.csv" --db "$db" --source manual \
  --run-name manual-clips
$cli ingest labels "$cohort/truth/events.csv" --db "$db" --source auto \
  --run-name simulator-truth
$cli ingest manifest "$videos/manifest-demo.csv" --db "$db"
$cli ingest labels "$videos/truth/events-demo.csv" --db "$db" --source manual --run-name truth \
  --others-as Bk --classes-of "$model"
$cli label --manifest "$videos/manifest-demo.csv" --db "$db" --run-name demo-model \
  "${model_args[@]}"
