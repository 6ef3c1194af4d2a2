import subprocess
import sys
import time

import duckdb
import pandas as pd
import pytest

from fetal_analytics import taxonomy
from fetal_analytics.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Store,
    StoreBusyError,
    StoreError,
    migrate,
)

CORE_TABLES = {"schema_version", "event_labels", "operators", "scans", "runs", "events"}
INFERENCE_TABLES = {"freeze_frames", "models", "window_probs"}


def tables(con) -> set[str]:
    return {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}


def test_new_database_has_every_table_at_the_latest_version(db_path):
    with Store(db_path) as store:
        assert store.schema_version == SCHEMA_VERSION == MIGRATIONS[-1].version
        assert tables(store.con) == CORE_TABLES | INFERENCE_TABLES
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

    with pytest.raises(StoreError, match="older than v2: migrate it"):
        Store(db_path, read_only=True)
    with Store(db_path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert tables(store.con) == CORE_TABLES | INFERENCE_TABLES
        assert store.query_df("SELECT scan_id, operator_id FROM scans").to_dict("records") == [
            {"scan_id": "S1", "operator_id": "OP1"}]
    assert migrate(duckdb.connect(str(db_path)), target=SCHEMA_VERSION) == []


def test_a_database_from_a_newer_release_is_refused(db_path):
    with Store(db_path) as store:
        store.con.execute("INSERT INTO schema_version (version, description) VALUES (99, 'x')")
    with pytest.raises(StoreError, match="schema v99, newer than this release's v2"):
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
