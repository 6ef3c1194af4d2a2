#!/usr/bin/env bash
# The main job on the demo cohort: build its database and show what it holds.
set -euo pipefail
out=${1:-out/demo}
cli=.venv/bin/fetal-analytics
mkdir -p "$out"
db="$out/demo.duckdb"
$cli init-db --db "$db"
$cli ingest manifest data/demo/manifest.csv --db "$db"
$cli ingest labels data/demo/manual_labels.csv --db "$db" --source manual
$cli ingest labels data/demo/auto_labels.csv --db "$db" --source auto
$cli info --db "$db"
$cli export events --db "$db" --source auto --out "$out/auto_events.csv"
