"""The dashboard on data that cannot show everything, on a busy file, and without TensorFlow:
a sentence, never a traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest
from dashboard_paths import APP, REPO, SHIPPED_DB, VIEWS

from fetal_analytics.queries import list_scans
from fetal_analytics.runs import list_runs
from fetal_analytics.store import SCHEMA_VERSION, Store


def one_group_store(cohort_store, *, manual: bool):
    """Two scans of one expert, automatic labels only (and manual ones for the first scan)."""
    manifest = pd.DataFrame({"scan_id": ["S1", "S2"], "operator_id": ["E1", "E1"],
                             "group": ["expert", "expert"],
                             "acquired_at": ["2024-03-01", "2024-03-02"]})
    auto = pd.DataFrame({"scan_id": ["S1", "S1", "S2", "S2"], "start_s": [0, 60, 0, 90],
                         "end_s": [60, 120, 90, 150], "label": ["HeD", "Br", "Sp", "HeD"]})
    events = {"auto": auto}
    if manual:
        events = {"manual": auto[auto["scan_id"] == "S1"], **events}
    store = cohort_store(manifest, events)
    store.close()
    return store.path


@pytest.mark.parametrize("view", VIEWS)
def test_one_group_one_operator_no_manual_labels_no_video_give_sentences(app, cohort_store,
                                                                         view):
    at = app(one_group_store(cohort_store, manual=False), view)
    assert not at.exception, [e.value for e in at.exception]
    said = " ".join(i.value for i in at.info)
    expected = {
        "cohort": "each group needs scans of at least 3 operators",
        "scan": "no manual labels",
        "operators": "No group comparison",
        "agreement": "no finished manual run with events",
        "models": "No model has labelled scans",
    }[view]
    assert expected in said, said


def test_agreement_without_shared_scans_says_so(app, cohort_store):
    manifest = pd.DataFrame({"scan_id": ["S1", "S2"], "operator_id": ["E1", "T1"],
                             "group": ["expert", "trainee"]})
    events = pd.DataFrame({"scan_id": ["S1", "S2"], "start_s": [0, 0], "end_s": [60, 60],
                           "label": ["HeD", "Br"]})
    store = cohort_store(manifest, {"manual": events[:1], "auto": events[1:]})
    store.close()
    at = app(store.path, "agreement")
    assert not at.exception
    assert any("No scan is labelled by both runs" in i.value for i in at.info)
    # A filter that leaves a run without events says which.
    at = app(store.path, "agreement", group="trainee")
    assert not at.exception
    assert any("has no events" in i.value and "group trainee" in i.value for i in at.info)


def test_a_missing_database_says_how_to_make_one(app, tmp_path):
    at = app(tmp_path / "none.duckdb", "cohort")
    assert not at.exception
    assert any("no database at" in i.value and "init-db" in i.value for i in at.info)


def test_a_busy_database_gives_a_notice_and_a_retry_then_the_numbers(app, tmp_path):
    db = tmp_path / "busy.duckdb"
    db.write_bytes(SHIPPED_DB.read_bytes())
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from fetal_analytics.store import Store
        store = Store({str(db)!r})
        print("locked", flush=True)
        sys.stdin.readline()
        store.close()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={"PYTHONPATH": str(REPO), "PATH": ""})
    try:
        assert holder.stdout.readline().strip() == "locked"
        at = app(db, "cohort")
        assert not at.exception, [e.value for e in at.exception]
        assert any("being written to by another process" in w.value for w in at.warning)
        retry = at.button(key="retry_busy")
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=30)
    retry.click().run()
    assert not at.warning
    with Store(db, read_only=True) as store:
        n_scans = len(list_scans(store))
    assert {m.label: m.value for m in at.metric}["Scans"] == str(n_scans)


def test_the_dashboard_never_imports_tensorflow_or_keras():
    code = textwrap.dedent(f"""
        import os, sys
        os.environ["FETAL_ANALYTICS_DB"] = {str(SHIPPED_DB)!r}
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file({str(APP)!r}, default_timeout=60).run()
        for view in ("scan", "operators", "agreement", "models"):
            at.switch_page(f"views/{{view}}.py").run()
            assert not at.exception, [e.value for e in at.exception]
        print("HEAVY", sorted(m for m in ("tensorflow", "keras", "torch", "jax")
                              if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO).stdout
    assert out.strip().splitlines()[-1] == "HEAVY []"


def test_the_shipped_demo_database_is_at_the_current_schema():
    """Fails when the code's schema moves on: rebuild it with `make demo-data`."""
    with Store(SHIPPED_DB, read_only=True) as store:
        assert store.schema_version == SCHEMA_VERSION, "run `make demo-data`"
        runs = {r.name: r for r in list_runs(store)}
    assert {"manual-clips", "simulator-truth", "truth", "demo-model"} <= set(runs)
    assert runs["demo-model"].kind == "label" and runs["demo-model"].source == "auto"
    assert SHIPPED_DB.stat().st_size < 5 * 2**20


def test_a_new_run_written_to_the_file_shows_without_a_restart(app, cohort_store):
    db = one_group_store(cohort_store, manual=False)
    at = app(db, "models")
    before = at.dataframe[0].value["name"].tolist()
    time.sleep(0.01)
    from fetal_analytics.ingest import ingest_labels

    labels = db.parent / "more.csv"
    labels.write_text("scan_id,start_s,end_s,label\nS1,0,30,Br\n")
    with Store(db) as store:
        ingest_labels(store, labels, source="manual", run_name="late")
    at.run()
    assert at.dataframe[0].value["name"].tolist() == [*before, "late"]


def test_the_database_is_the_one_given_else_the_environments_else_the_demos(tmp_path,
                                                                          monkeypatch):
    from dashboard.ui import DB_ENV, SHIPPED_DB, default_db

    monkeypatch.chdir(tmp_path)
    env = {DB_ENV: "env.duckdb"}
    assert default_db(["app.py", "--db", "given.duckdb"], env) == "given.duckdb"
    assert default_db(["app.py", "--db=given.duckdb"], env) == "given.duckdb"
    assert default_db(["app.py"], env) == "env.duckdb"
    assert default_db(["app.py"], {}) == str(SHIPPED_DB)
    (tmp_path / "out" / "demo").mkdir(parents=True)
    (tmp_path / "out" / "demo" / "demo.duckdb").write_bytes(b"")
    assert default_db(["app.py"], {}) == "out/demo/demo.duckdb"
