import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from click.testing import CliRunner

from analytics.features import scan_features
from analytics.selection import select
from fetal_analytics import taxonomy
from fetal_analytics.cli import main
from fetal_analytics.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Store,
    StoreBusyError,
    StoreError,
    migrate,
)

CORE_TABLES = {"schema_version", "event_labels", "operators", "scans", "runs", "events"}
DATA = Path(__file__).parent / "data"
INFERENCE_TABLES = {"freeze_frames", "models", "window_probs"}
RUN_TABLES = {"run_scans"}
ALL_TABLES = CORE_TABLES | INFERENCE_TABLES | RUN_TABLES


def tables(con) -> set[str]:
    return {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}


def test_new_database_has_every_table_at_the_latest_version(db_path):
    with Store(db_path) as store:
        assert store.schema_version == SCHEMA_VERSION == MIGRATIONS[-1].version
        assert tables(store.con) == ALL_TABLES
        versions = store.con.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
        assert [v for (v,) in versions] == [m.version for m in MIGRATIONS]


def test_event_labels_mirror_the_taxonomy(db_path):
    with Store(db_path) as store:
        rows = store.con.execute(
            "SELECT code, colour, fasp_required FROM event_labels ORDER BY ordinal").fetchall()
    assert rows == [(c.code, c.colour, c.fasp_required) for c in taxonomy.all_classes()]


def test_an_old_database_is_migrated_and_keeps_its_data(db_path):
    con = duckdb.connect(str(db_path))
    assert migrate(con, target=1) == [1]
    con.execute("INSERT INTO operators VALUES ('OP1', 'expert', 3)")
    con.execute("INSERT INTO scans (scan_id, operator_id) VALUES ('S1', 'OP1')")
    assert tables(con) == CORE_TABLES
    con.close()

    with pytest.raises(StoreError, match=f"older than v{SCHEMA_VERSION}: migrate it"):
        Store(db_path, read_only=True)
    with Store(db_path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert tables(store.con) == ALL_TABLES
        assert store.query_df("SELECT scan_id, operator_id FROM scans").to_dict("records") == [
            {"scan_id": "S1", "operator_id": "OP1"}]
    assert migrate(duckdb.connect(str(db_path)), target=SCHEMA_VERSION) == []


def test_a_v2_database_gets_freezes_per_run_and_run_scans_from_its_rows(db_path):
    # A v2 file as the release before wrote it: freeze frames per scan, no record of when a run
    # wrote a scan. Run 3 labelled S1 first; run 2 (an older run) labelled S1 again and finished
    # last, so run 2 is S1's newest automatic run, though its id is lower.
    con = duckdb.connect(str(db_path))
    assert migrate(con, target=2) == [1, 2]
    con.execute("INSERT INTO operators VALUES ('OP1', 'expert', 3)")
    con.execute("INSERT INTO scans (scan_id, operator_id) VALUES ('S1', 'OP1'), ('S2', 'OP1'), "
                "('S3', 'OP1')")
    con.execute(
        "INSERT INTO runs (run_id, name, source, kind, started_at, finished_at, status) VALUES "
        "(1, 'manual.csv', 'manual', 'import', '2026-01-01 09:00', '2026-01-01 09:00', "
        "'finished'), "
        "(2, 'label-a', 'auto', 'label', '2026-01-02 09:00', '2026-01-05 09:00', 'finished'), "
        "(3, 'label-b', 'auto', 'label', '2026-01-03 09:00', '2026-01-04 09:00', 'finished')")
    for run_id, scan_id, label in [(1, "S1", "Br"), (1, "S2", "Br"), (1, "S3", "Br"),
                                   (2, "S1", "HeD"), (2, "S2", "Sp"), (3, "S1", "Fm")]:
        con.execute("INSERT INTO events VALUES (?, ?, 0, 60, ?, NULL)", [run_id, scan_id, label])
    for run_id, scan_id in [(2, "S1"), (2, "S2"), (3, "S1")]:
        con.execute("INSERT INTO window_probs VALUES (?, ?, 1.0, 'fused', [1.0])",
                    [run_id, scan_id])
    con.execute("INSERT INTO freeze_frames (scan_id, t_s, method) VALUES "
                "('S1', 10, 'detected'), ('S1', 20, 'detected'), ('S1', 30, 'by hand'), "
                "('S2', 10, 'detected'), ('S3', 5, 'detected')")
    con.close()

    with Store(db_path) as store:
        assert store.schema_version == SCHEMA_VERSION == 3
        assert tables(store.con) == ALL_TABLES
        run_scans = store.con.execute(
            "SELECT run_id, scan_id, strftime(written_at, '%m-%d'), freezes_detected "
            "FROM run_scans ORDER BY ALL").fetchall()
        freezes = store.con.execute(
            "SELECT scan_id, t_s, method, run_id FROM freeze_frames ORDER BY ALL").fetchall()
        auto = select(store, source="auto")
        auto_events = store.con.execute(
            f"WITH {auto.cte()[0]} SELECT scan_id, run_id, label FROM sel ORDER BY ALL",
            auto.cte()[1]).fetchall()
        manual = scan_features(store, select(store, source="manual"))
        with pytest.raises(duckdb.ConstraintException):  # the run is a foreign key now
            store.con.execute("INSERT INTO freeze_frames (run_id, scan_id, t_s, method) "
                              "VALUES (99, 'S1', 1.0, 'detected')")
        # The tables the new ones reference can still be updated (their foreign keys follow).
        store.con.execute("UPDATE scans SET fps = 30 WHERE scan_id = 'S1'")
        store.con.execute("UPDATE runs SET status = 'failed' WHERE run_id = 1")
    # Each run's scans, written when the run finished; freezes recorded where the run owns some.
    assert run_scans == [(1, "S1", "01-01", False), (1, "S2", "01-01", False),
                         (1, "S3", "01-01", False), (2, "S1", "01-05", True),
                         (2, "S2", "01-05", True), (3, "S1", "01-04", False)]
    # Detected freezes go to the scan's newest label run with window probabilities; the rest
    # keep no run.
    assert freezes == [("S1", 10.0, "detected", 2), ("S1", 20.0, "detected", 2),
                       ("S1", 30.0, "by hand", None), ("S2", 10.0, "detected", 2),
                       ("S3", 5.0, "detected", None)]
    assert auto_events == [("S1", 2, "HeD"), ("S2", 2, "Sp")]
    # Manual labels record no freezes: each scan counts its newest automatic run's (S1: the
    # two detected, not the one by hand), or else the freezes that have no run (S3).
    assert manual.set_index("scan_id")["n_freezes"].to_dict() == {"S1": 2, "S2": 1, "S3": 1}


def test_a_database_from_a_newer_release_is_refused(db_path):
    with Store(db_path) as store:
        store.con.execute("INSERT INTO schema_version (version, description) VALUES (99, 'x')")
    with pytest.raises(StoreError, match=f"schema v99, newer than this release's "
                                         f"v{SCHEMA_VERSION}"):
        Store(db_path)


def test_read_only_needs_an_existing_file(tmp_path):
    missing = tmp_path / "missing.duckdb"
    with pytest.raises(StoreError, match=r"no database at .*missing.duckdb: create one with"):
        Store(missing, read_only=True)
    assert not missing.exists()


def test_a_file_that_is_not_a_database_is_refused(tmp_path):
    junk = tmp_path / "junk.duckdb"
    junk.write_text("not a database\n" * 100)
    with pytest.raises(StoreError, match=r"cannot open .*junk.duckdb as a DuckDB database"):
        Store(junk)


def test_read_only_store_cannot_write(db_path):
    Store(db_path).close()
    with Store(db_path, read_only=True) as store, pytest.raises(duckdb.Error, match="read-only"):
        store.con.execute("INSERT INTO operators VALUES ('OP1', 'expert', NULL)")


def test_transaction_rolls_back_every_row_on_error(db_path):
    with Store(db_path) as store:
        operators = pd.DataFrame({"operator_id": ["A", "B"], "grp": ["expert", "trainee"]})
        with pytest.raises(duckdb.ConstraintException), store.transaction():
            assert store.insert_frame("operators", operators) == 2
            store.con.execute("INSERT INTO operators VALUES ('A', 'expert', NULL)")
        assert store.counts()["operators"] == 0
        with store.transaction():
            store.insert_frame("operators", operators)
        assert store.counts() == {"operators": 2, "scans": 0, "runs": 0, "events": 0}


def test_schema_constraints_refuse_impossible_events(db_path):
    with Store(db_path) as store:
        store.con.execute("INSERT INTO operators VALUES ('A', 'expert', NULL)")
        store.con.execute("INSERT INTO scans (scan_id, operator_id) VALUES ('S1', 'A')")
        run_id = store.scalar("INSERT INTO runs (name, source, kind, status) "
                              "VALUES ('r', 'manual', 'import', 'finished') RETURNING run_id")
        insert = ("INSERT INTO events (run_id, scan_id, start_s, end_s, label) "
                  "VALUES (?, ?, ?, ?, ?)")
        for bad, error in [
            ((run_id, "S1", 5.0, 5.0, "Br"), duckdb.ConstraintException),  # empty interval
            ((run_id, "S1", -1.0, 5.0, "Br"), duckdb.ConstraintException),  # negative time
            ((run_id, "S1", 0.0, 5.0, "Brain"), duckdb.ConstraintException),  # not in taxonomy
            ((run_id, "S2", 0.0, 5.0, "Br"), duckdb.ConstraintException),  # unknown scan
        ]:
            with pytest.raises(error):
                store.con.execute(insert, list(bad))
        store.con.execute(insert, [run_id, "S1", 0.0, 5.0, "Br"])
        assert store.counts()["events"] == 1


def test_a_locked_database_reports_who_holds_it(db_path):
    Store(db_path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"import duckdb, time; c = duckdb.connect({str(db_path)!r}); print('ready', flush=True); "
         "time.sleep(30)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        busy = rf"in use by another process \(process {holder.pid}\)"
        with pytest.raises(StoreBusyError, match=busy):
            Store(db_path, read_only=True)
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 10
    while True:  # the lock goes with the process
        try:
            Store(db_path, read_only=True).close()
            break
        except StoreBusyError:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_a_database_in_a_read_only_folder_is_refused_in_one_line(db_path, monkeypatch):
    Store(db_path).close()
    before = db_path.read_bytes()
    real_access = os.access
    # The folder as a user without write permission sees it (the tests may run as root).
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: (
        False if Path(path) == db_path.parent and mode == os.W_OK else real_access(path, mode)))
    result = CliRunner().invoke(main, ["ingest", "manifest", str(DATA / "manifest.csv"),
                                       "--db", str(db_path)])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: cannot write {db_path}: its folder {db_path.parent} is read-only (DuckDB writes "
        f"a {db_path.name}.wal file beside the database); copy the database into a folder you "
        f"can write, or give a --db there\n")
    assert db_path.read_bytes() == before
    reading = CliRunner().invoke(main, ["info", "--db", str(db_path)])
    assert reading.exit_code == 0, reading.output  # reading needs no write access


def test_a_compact_copy_holds_the_same_rows_in_less_space_and_takes_new_runs(tmp_path, data_dir):
    from fetal_analytics.ingest import ingest_labels, ingest_manifest
    from fetal_analytics.store import compact_copy

    with Store(tmp_path / "big.duckdb") as store:
        ingest_manifest(store, data_dir / "manifest.csv")
        ingest_labels(store, data_dir / "manual_labels.csv", source="manual")
        events = store.query_df("SELECT * FROM events ORDER BY ALL")
    compact_copy(tmp_path / "big.duckdb", tmp_path / "small.duckdb")
    assert (tmp_path / "small.duckdb").stat().st_size < (tmp_path / "big.duckdb").stat().st_size
    with Store(tmp_path / "small.duckdb") as store:
        assert store.schema_version == SCHEMA_VERSION
        pd.testing.assert_frame_equal(store.query_df("SELECT * FROM events ORDER BY ALL"),
                                      events)
        again = ingest_labels(store, data_dir / "manual_labels.csv", source="auto")
        assert again.run_id == 2
