#!/usr/bin/env bash
# Build the dashboard's shipped demo database, data/demo.duckdb (`make demo-data`; a few minutes on
# 2 cores). `make demo` never runs this: the shipped copy changes only when this script is run.
#
# What it holds, so that every view of the dashboard has something to show:
# - 40 scans WITHOUT video by 12 operators (experts and trainees) over several dates: the
#   simulator's freeze-clip manual labels for half of them (manual run "manual-clips") and the
#   simulator's exact timelines as the automatic run "simulator-truth" (no model involved);
# - 4 scans WITH video (4-minute excerpts, scan ids VID*, by 4 of the same operators): labelled by
#   the shipped demo model on the decoded video (automatic run "demo-model", with window
#   probabilities and freeze frames), and their true timelines as the manual run "truth".
# Model output and simulator truth are separate runs. The videos stay in OUT_DIR (not shipped):
# the dashboard's frame preview works where they are on disk and says so where they are not.
#
#   scripts/demo-data.sh [OUT_DIR]        (default out/demo-data; writes data/demo.duckdb)
set -euo pipefail
out=${1:-out/demo-data}
bin=${BIN:-.venv/bin}
cli="$bin/fetal-analytics"
model=data/demo_model.keras
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
rm -rf "$out"
mkdir -p "$out"
db="$out/demo.duckdb"

$cli simulate --out "$out/cohort" --scans 40 --operators 12 --seed 2019 --manual-fraction 0.5 \
  --no-video
$cli simulate --out "$out/video" --scans 4 --operators 4 --excerpt 4 --seed 7
# The video scans get their own ids (both simulations number scans from SIM0001); their
# operators OP01-OP04 are the cohort's (the simulator alternates expert and trainee in both), so
# the video manifest leaves out its own draw of their years of experience (the last column).
for file in manifest.csv truth/events.csv; do
  sed -i 's/^SIM/VID/' "$out/video/$file"
done
cut -d, -f1-6 "$out/video/manifest.csv" > "$out/video/manifest.tmp"
mv "$out/video/manifest.tmp" "$out/video/manifest.csv"

$cli init-db --db "$db"
$cli ingest manifest "$out/cohort/manifest.csv" --db "$db"
$cli ingest labels "$out/cohort/manual_labels.csv" --db "$db" --source manual \
  --run-name manual-clips
$cli ingest labels "$out/cohort/truth/events.csv" --db "$db" --source auto \
  --run-name simulator-truth
$cli ingest manifest "$out/video/manifest.csv" --db "$db"
$cli ingest labels "$out/video/truth/events.csv" --db "$db" --source manual --run-name truth \
  --others-as Bk --classes-of "$model"
$cli label --manifest "$out/video/manifest.csv" --db "$db" --run-name demo-model
$cli info --db "$db"
# A compact copy: the working file's 256 KiB blocks are mostly empty space.
"$bin/python" -c 'import sys; from fetal_analytics.store import compact_copy; compact_copy(*sys.argv[1:])' \
  "$db" data/demo.duckdb
ls -l data/demo.duckdb
