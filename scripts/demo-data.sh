#!/usr/bin/env bash
# Build the dashboard's shipped demo database, data/demo.duckdb (`make demo-data`; a few minutes
# on 2 cores): the database `make demo` builds (scripts/demo-db.sh says what it holds), as a
# compact copy. `make demo` never runs this: the shipped copy changes only when this script is
# run. The videos stay in OUT_DIR (not shipped): the dashboard's frame preview works where they
# are on disk and says so where they are not.
#
#   scripts/demo-data.sh [OUT_DIR]        (default out/demo-data; writes data/demo.duckdb)
set -euo pipefail
out=${1:-out/demo-data}
bin=${BIN:-.venv/bin}
rm -rf "$out"
"$(dirname "$0")/demo-db.sh" "$out"
"$bin/fetal-analytics" info --db "$out/demo.duckdb"
# A compact copy: the working file's 256 KiB blocks are mostly empty space.
"$bin/python" -c 'import sys; from fetal_analytics.store import compact_copy; compact_copy(*sys.argv[1:])' \
  "$out/demo.duckdb" data/demo.duckdb
ls -l data/demo.duckdb
