#!/usr/bin/env bash
# The main job on the demo cohort: simulate it, build its database, then print the workflow
# analytics a clinician reads (the dashboard will show the same numbers).
# Until automatic labelling lands, the simulator's exact timelines stand in for automatic labels
# (imported as the auto run "simulator-truth").
set -euo pipefail
out=${1:-out/demo}
cli=.venv/bin/fetal-analytics
db="$out/demo.duckdb"
mkdir -p "$out"
$cli simulate --out "$out/cohort" --scans 48 --operators 12 --seed 2019 --manual-fraction 0.5 \
  --no-video
$cli init-db --db "$db"
$cli ingest manifest "$out/cohort/manifest.csv" --db "$db"
$cli ingest labels "$out/cohort/manual_labels.csv" --db "$db" --source manual
$cli ingest labels "$out/cohort/truth/events.csv" --db "$db" --source auto \
  --run-name simulator-truth
$cli info --db "$db"
echo
$cli stats --db "$db" --by group
echo
$cli correlate --db "$db" --paired
echo
$cli compare --db "$db" --groups expert trainee
