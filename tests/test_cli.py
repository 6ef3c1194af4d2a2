import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from fetal_analytics import __version__
from fetal_analytics.cli import main
from fetal_analytics.store import SCHEMA_VERSION

CLI = Path(sys.executable).with_name("fetal-analytics")
MAIN = "from fetal_analytics.cli import main; main()"


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args: str, code: int = 0):
        result = runner.invoke(main, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    return invoke


@pytest.fixture
def filled_db(run, db_path, data_dir):
    run("init-db", "--db", db_path)
    run("ingest", "manifest", data_dir / "manifest.csv", "--db", db_path)
    run("ingest", "labels", data_dir / "manual_labels.csv", "--db", db_path)
    run("ingest", "labels", data_dir / "auto_labels_frames.csv", "--db", db_path,
        "--source", "auto", "--run-name", "model-v1")
    return db_path


def test_sample_files_give_the_right_counts(run, filled_db):
    info = json.loads(run("info", "--db", filled_db, "--format", "json").output)
    assert {k: info[k] for k in ("operators", "scans", "runs", "events")} == {
        "operators": 3, "scans": 4, "runs": 2, "events": 16}
    assert (info["manual_events"], info["auto_events"], info["schema_version"]) == (
        11, 5, SCHEMA_VERSION)


def test_info_table_lists_runs(run, filled_db):
    output = run("info", "--db", filled_db).output
    assert "model-v1" in output and "manual_labels.csv" in output
    rows = list(csv.DictReader(io.StringIO(
        run("info", "--db", filled_db, "--format", "csv").output)))
    assert len(rows) == 1
    assert {k: rows[0][k] for k in ("schema_version", "operators", "scans", "runs", "events",
                                    "manual_events", "auto_events")} == {
        "schema_version": str(SCHEMA_VERSION), "operators": "3", "scans": "4", "runs": "2",
        "events": "16", "manual_events": "11", "auto_events": "5"}
    assert (rows[0]["groups.expert"], rows[0]["groups.trainee"]) == ("1", "2")


def test_init_db_reports_creation_then_the_existing_version(run, db_path):
    created = run("init-db", "--db", db_path).output
    assert created == f"{db_path} created with schema v{SCHEMA_VERSION}\n"
    assert run("init-db", "--db", db_path).output == f"{db_path} is at schema v{SCHEMA_VERSION}\n"


def test_ingest_reports_what_it_did(run, filled_db, data_dir):
    manifest = run("ingest", "manifest", data_dir / "manifest.csv", "--db", filled_db).output
    assert manifest.endswith(": 0 operators added, 0 updated; 0 scans added, 0 updated, "
                             "4 unchanged\n")
    labels = json.loads(run("ingest", "labels", data_dir / "manual_labels.csv", "--db", filled_db,
                            "--format", "json").output)
    assert labels == {"run_id": 1, "run_name": "manual_labels.csv", "source": "manual",
                      "status": "unchanged", "n_scans": 4, "n_events": 11, "others_as": None,
                      "relabelled": {}, "n_scans_removed": 0, "n_events_removed": 0}


def test_a_broken_labels_file_is_refused_and_the_database_unchanged(run, filled_db, data_dir):
    before = hashlib.sha256(filled_db.read_bytes()).digest()
    result = run("ingest", "labels", data_dir / "bad" / "overlap.csv", "--db", filled_db, code=1)
    assert result.output == (
        f"Error: {data_dir / 'bad' / 'overlap.csv'}, line 4, column start_s: this HeD event of "
        "scan 'S001' overlaps the Sp event on line 3; events of one scan must not overlap\n")
    assert hashlib.sha256(filled_db.read_bytes()).digest() == before


def test_export_events_round_trip(run, filled_db, tmp_path):
    out = tmp_path / "auto.csv"
    result = run("export", "events", "--db", filled_db, "--source", "auto", "--out", out)
    assert "wrote 5 events of 2 scans from run 2 'model-v1' (auto)" in result.output
    exported = pd.read_csv(out)
    assert list(exported.columns) == ["scan_id", "start_s", "end_s", "label", "confidence"]
    assert exported["end_s"].tolist() == [40.0, 130.0, 400.0, 70.0, 96.0]
    again = run("ingest", "labels", out, "--db", filled_db, "--source", "auto").output
    assert "created: 5 events of 2 scans" in again
    parquet = tmp_path / "manual.parquet"
    run("export", "events", "--db", filled_db, "--run", "1", "--out", parquet)
    assert len(pd.read_parquet(parquet)) == 11


@pytest.mark.parametrize(("args", "message"), [
    (["info", "--db", "{missing}"], "Error: no database at {missing}: create one with "
                                    "`fetal-analytics init-db --db {missing}`"),
    (["ingest", "labels", "{labels}", "--db", "{missing}"], "Error: no database at {missing}"),
    (["export", "events", "--db", "{db}", "--run", "9", "--out", "{out}"],
     "Error: no run '9'; known runs: 1 (manual, 'manual_labels.csv'), 2 (auto, 'model-v1')"),
    (["export", "events", "--db", "{db}", "--out", "{out}", "--source", "bogus"],
     "Error: Invalid value for '--source': 'bogus' is not one of 'manual', 'auto'."),
    (["ingest", "manifest", "{tmp}/nope.csv", "--db", "{db}"], "nope.csv: no such file"),
])
def test_error_messages_and_exit_codes(filled_db, data_dir, tmp_path, args, message):
    values = {"missing": tmp_path / "missing.duckdb", "db": filled_db, "out": tmp_path / "o.csv",
              "labels": data_dir / "manual_labels.csv", "tmp": tmp_path}
    result = CliRunner().invoke(main, [a.format(**values) for a in args])
    assert result.exit_code in (1, 2)
    assert message.format(**values) in result.output
    assert not (tmp_path / "missing.duckdb").exists()


def test_an_empty_database_has_no_runs_to_export(run, db_path, tmp_path):
    run("init-db", "--db", db_path)
    result = run("export", "events", "--db", db_path, "--out", tmp_path / "x.csv", code=1)
    assert "Error: the database has no runs: import labels with" in result.output


def test_version(run):
    assert run("--version").output == f"fetal-analytics, version {__version__}\n"


def test_help_is_fast_and_never_imports_heavy_modules():
    probe = ("import sys, time; t = time.perf_counter(); from fetal_analytics.cli import main\n"
             "try: main(['--help'])\nexcept SystemExit: pass\n"
             "heavy = sorted(m for m in ('tensorflow', 'keras', 'pandas', 'duckdb', 'torch', 'jax')"
             " if m in sys.modules)\nprint('HEAVY', heavy)")
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True).stdout
    assert "HEAVY []" in output
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([CLI, "--help"], check=True, capture_output=True,
                       env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        timings.append(time.perf_counter() - start)
    assert min(timings) < 1.0, timings


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_is_accepted_before_or_after_the_subcommand(tmp_path, data_dir, where):
    db = tmp_path / "v.duckdb"
    command = ["ingest", "manifest", str(data_dir / "manifest.csv"), "--db", str(db)]
    args = ["-v", *command] if where == "before" else [*command, "-v"]
    done = subprocess.run([sys.executable, "-c", MAIN, *args],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "INFO: imported" in done.stderr
    quiet = subprocess.run([sys.executable, "-c", MAIN, *command],
                           capture_output=True, text=True, check=False)
    assert quiet.returncode == 0 and "INFO" not in quiet.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["export", "dfg", "--db", "{db}", "--out", "{tmp}/x.png"],
     "x.png: cannot tell the format from the suffix '.png'; use one of .dot, .gv, .json"),
    (["deidentify", "{still}", "--out", "{still}"],
     "is the source: write the de-identified copy to another file, so the original stays"),
    (["deidentify", "{still}", "--out", "{tmp}/x.mp4"],
     "x.mp4: a still is written as an image; use one of .bmp, .jpeg, .jpg, .png, .tif, .tiff"),
    (["deidentify", "{tmp}/scan.mp4", "--out", "{tmp}/x.png"],
     "x.png: a video is written as H.264 MP4; use one of .mp4"),
])
def test_output_files_that_cannot_be_written_are_usage_errors(filled_db, tmp_path, args, message):
    still = tmp_path / "screen.png"
    still.write_bytes(b"not read: the output is checked first")
    (tmp_path / "scan.mp4").write_bytes(b"")
    values = {"db": filled_db, "tmp": tmp_path, "still": still}
    before = sorted(tmp_path.iterdir())
    result = CliRunner().invoke(main, [a.format(**values) for a in args])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1].startswith("Error: Invalid value for --out: ")
    assert message in result.output
    assert sorted(tmp_path.iterdir()) == before


@pytest.mark.parametrize(("env", "verbose"), [
    ({"TF_CPP_MIN_LOG_LEVEL": "0", "TF_ENABLE_ONEDNN_OPTS": "1"}, []),
    ({"TF_CPP_MIN_LOG_LEVEL": "0", "TF_ENABLE_ONEDNN_OPTS": "0"}, []),
    ({"TF_CPP_MIN_LOG_LEVEL": "0"}, ["-vv"]),
])
def test_tensorflow_start_up_lines_reach_the_terminal_only_with_vv(tmp_path, env, verbose):
    import cv2
    import numpy as np

    from inference.tf_startup import STARTUP_CHATTER

    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.zeros((64, 64, 3), np.uint8))
    clean = {k: v for k, v in os.environ.items()
             if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")}
    # classify loads the demo model (TensorFlow starts), then refuses its clips in one line
    done = subprocess.run([sys.executable, "-c", MAIN, *verbose, "classify", "demo", str(image)],
                          capture_output=True, text=True, check=False, env={**clean, **env})
    assert done.returncode == 1
    assert "takes clips of frames; classify takes 2D models" in done.stderr
    chatter = [line for line in done.stderr.splitlines() if STARTUP_CHATTER.search(line)]
    assert bool(chatter) == bool(verbose), done.stderr
    if not verbose:
        assert done.stderr.startswith("Error: ") and len(done.stderr.splitlines()) == 1


def test_a_replaced_run_says_what_it_removed(run, filled_db, tmp_path):
    edited = tmp_path / "edited.csv"
    edited.write_text("scan_id,start_s,end_s,label\nS001,0,5,Br\n")
    output = run("ingest", "labels", edited, "--db", filled_db, "--source", "auto",
                 "--run-name", "model-v1").output
    assert output == (f"{edited}: run 2 'model-v1' (auto) replaced: 1 events of 1 scans "
                      f"(replacing 5 events of 2 scans)\n")
