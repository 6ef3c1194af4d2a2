"""Writing label runs (`fetal_analytics.run_writing`) on real database files, without a model."""

from __future__ import annotations

import subprocess
import sys
import time

import duckdb
import numpy as np
import pandas as pd
import pytest

from fetal_analytics.ingest import ingest_labels, ingest_manifest
from fetal_analytics.run_writing import (
    FREEZE_METHOD,
    ModelRecord,
    RunWritingError,
    ScanFacts,
    finish_run,
    finished_scans,
    open_for_write,
    register_model,
    start_label_run,
    stored_videos,
    write_scan,
)
from fetal_analytics.store import Store, StoreBusyError

CODES = ("HeD", "Br", "Bk")
PARAMS = {"classes": list(CODES), "decoding": {"hop_s": 1.0}, "streams": [{"name": "fr4"}],
          "hop_s": 1.0, "size": 32, "model": {"path": "m.keras"}}


def model(n: int = 1) -> ModelRecord:
    return ModelRecord(model_id=f"{n:016x}", path=f"m{n}.keras", sha256=f"{n:064x}",
                       arch="sononet", input_shape=(32, 32, 1), classes=CODES)


def events(*spans: tuple[float, float, str]) -> pd.DataFrame:
    return pd.DataFrame(spans, columns=["start_s", "end_s", "label"])


def windows(n: int) -> pd.DataFrame:
    return pd.DataFrame({"t_s": np.arange(n, dtype=float), "stream": "fused",
                         "probs": [np.full(len(CODES), 1 / len(CODES), np.float32)] * n})


def freezes(*starts: float) -> pd.DataFrame:
    return pd.DataFrame({"t_s": list(starts), "end_s": [t + 1 for t in starts]},
                        columns=["t_s", "end_s"])


@pytest.fixture
def store(tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("scan_id,operator_id,group,video_path\nS1,OP1,expert,s1.mp4\n"
                        "S2,OP1,expert,\n")
    with Store(tmp_path / "runs.duckdb") as store:
        ingest_manifest(store, manifest)
        yield store


def rows(store, sql, params=()):
    return store.con.execute(sql, list(params)).fetchall()


def test_a_scan_write_replaces_only_that_scans_rows_of_that_run(store):
    a = start_label_run(store, "a", model=model(), params=PARAMS, input_path="manifest.csv")
    assert (a.run_id, a.name, a.continued) == (1, "a", False)
    write_scan(store, a.run_id, "S1", events=events((0, 10, "HeD"), (10, 30, "Br")),
               window_probs=windows(3), freezes=freezes(2, 12),
               facts=ScanFacts(900, 30.0, "elsewhere/s1.mp4"))
    write_scan(store, a.run_id, "S2", events=events((0, 5, "Bk")), window_probs=windows(2),
               facts=ScanFacts(250, 10.0, store.path.parent / "videos" / "s2.mp4"))
    b = start_label_run(store, "b", model=model(), params=PARAMS)
    write_scan(store, b.run_id, "S1", events=events((0, 30, "Bk")), window_probs=windows(1),
               freezes=freezes(5))
    # Run a labels S1 again: its S1 rows are replaced; its S2 and run b's S1 stay.
    write_scan(store, a.run_id, "S1", events=events((0, 30, "Fm")), window_probs=windows(4),
               freezes=freezes(3))
    assert rows(store, "SELECT run_id, scan_id, label FROM events ORDER BY ALL") == [
        (1, "S1", "Fm"), (1, "S2", "Bk"), (2, "S1", "Bk")]
    assert rows(store, "SELECT run_id, scan_id, count(*) FROM window_probs GROUP BY ALL "
                       "ORDER BY ALL") == [(1, "S1", 4), (1, "S2", 2), (2, "S1", 1)]
    assert rows(store, "SELECT run_id, scan_id, t_s, end_s, method FROM freeze_frames "
                       "ORDER BY ALL") == [(1, "S1", 3.0, 4.0, FREEZE_METHOD),
                                           (2, "S1", 5.0, 6.0, FREEZE_METHOD)]
    written = dict(((r, s), (t, f)) for r, s, t, f in rows(
        store, "SELECT run_id, scan_id, written_at, freezes_detected FROM run_scans"))
    assert written.keys() == {(1, "S1"), (1, "S2"), (2, "S1")}
    assert written[1, "S1"][0] > written[2, "S1"][0] > written[1, "S2"][0]  # the last write
    assert [f for _, f in sorted(written.values())] == [False, True, True]
    assert finished_scans(store, a.run_id) == {"S1", "S2"}
    assert finished_scans(store, b.run_id) == {"S1"}
    # The facts of the video; a stored video path is kept, an empty one filled.
    assert rows(store, "SELECT scan_id, n_frames, duration_s, fps, video_path FROM scans "
                       "ORDER BY 1") == [
        ("S1", 900, 30.0, 30.0, str(store.path.parent / "s1.mp4")),
        ("S2", 250, 10.0, 25.0, str(store.path.parent / "videos" / "s2.mp4"))]
    assert stored_videos(store, ["S1", "S2", "S9"]) == {
        "S1": store.path.parent / "s1.mp4", "S2": store.path.parent / "videos" / "s2.mp4"}


def test_freezes_none_keeps_the_runs_freezes_and_an_empty_frame_records_none(store):
    run = start_label_run(store, "a", model=model(), params=PARAMS).run_id
    write_scan(store, run, "S1", events=events((0, 9, "Br")), window_probs=windows(1),
               freezes=freezes(1, 2))
    write_scan(store, run, "S1", events=events((0, 9, "Br")), window_probs=windows(1))
    assert rows(store, "SELECT count(*) FROM freeze_frames") == [(2,)]
    assert rows(store, "SELECT freezes_detected FROM run_scans") == [(True,)]
    write_scan(store, run, "S1", events=events((0, 9, "Br")), window_probs=windows(1),
               freezes=freezes())
    assert rows(store, "SELECT count(*) FROM freeze_frames") == [(0,)]
    assert rows(store, "SELECT freezes_detected FROM run_scans") == [(True,)]


def test_a_failed_write_leaves_the_scans_rows_as_they_were(store):
    run = start_label_run(store, "a", model=model(), params=PARAMS).run_id
    write_scan(store, run, "S1", events=events((0, 9, "Br")), window_probs=windows(1))
    before = rows(store, "SELECT * FROM run_scans")
    with pytest.raises(duckdb.ConstraintException, match="foreign key"):  # not a taxonomy code
        write_scan(store, run, "S1", events=events((0, 9, "Brain")), window_probs=windows(5))
    assert rows(store, "SELECT label FROM events") == [("Br",)]
    assert rows(store, "SELECT count(*) FROM window_probs") == [(1,)]
    assert rows(store, "SELECT * FROM run_scans") == before


def test_continuing_a_run_checks_its_model_and_settings(store, tmp_path):
    labels = tmp_path / "manual.csv"
    labels.write_text("scan_id,start_s,end_s,label\nS1,0,10,Br\n")
    ingest_labels(store, labels, source="auto", run_name="imported")
    run = start_label_run(store, "a", model=model(), params=PARAMS)
    write_scan(store, run.run_id, "S1", events=events((0, 9, "Br")), window_probs=windows(1))
    finish_run(store, run.run_id)
    again = start_label_run(store, "a", model=model(), params={**PARAMS, "model": {"x": 1}})
    assert (again.run_id, again.continued) == (run.run_id, True)
    assert rows(store, "SELECT status, finished_at FROM runs WHERE name = 'a'") == [
        ("running", None)]
    with pytest.raises(RunWritingError, match=r"^run 'a' \(run 2\) was labelled with another "
                                              r"model, decoding, hop_s; continue it with"):
        start_label_run(store, "a", model=model(2),
                        params={**PARAMS, "decoding": {"hop_s": 2.0}, "hop_s": 2.0})
    with pytest.raises(RunWritingError, match=r"^run name 'imported' belongs to an import of "
                                              r"labels \(run 1\); choose another --run-name"):
        start_label_run(store, "imported", model=model(3), params=PARAMS)
    # The refusals left no trace: no model registered, no run started.
    assert rows(store, "SELECT model_id FROM models") == [(model().model_id,)]
    assert rows(store, "SELECT count(*) FROM runs") == [(2,)]
    with pytest.raises(RunWritingError, match=r"run 1 of .* is an import; scans are written to "
                                              r"label runs"):
        write_scan(store, 1, "S1", events=events((0, 9, "Br")), window_probs=windows(1))


def test_register_model_adds_a_model_once(store):
    assert register_model(store, model()) is True
    assert register_model(store, model()) is False
    assert rows(store, "SELECT model_id, arch, input_shape, classes FROM models") == [
        (model().model_id, "sononet", [32, 32, 1], list(CODES))]


def test_frames_without_the_required_columns_are_refused(store):
    run = start_label_run(store, "a", model=model(), params=PARAMS).run_id
    with pytest.raises(ValueError, match=r"`events` lacks the column\(s\) label; it has "
                                         r"start_s, end_s"):
        write_scan(store, run, "S1", events=events((0, 1, "Br")).drop(columns="label"),
                   window_probs=windows(1))
    with pytest.raises(ValueError, match=r"`freezes` lacks the column\(s\) t_s"):
        write_scan(store, run, "S1", events=events((0, 1, "Br")), window_probs=windows(1),
                   freezes=pd.DataFrame({"start": [1.0]}))


def test_finish_run_fails_a_run_without_scans(store):
    empty = start_label_run(store, "empty", model=model(), params=PARAMS).run_id
    full = start_label_run(store, "full", model=model(), params=PARAMS).run_id
    write_scan(store, full, "S2", events=events((0, 1, "Br")), window_probs=windows(1))
    assert finish_run(store, empty) == "failed"
    assert finish_run(store, full) == "finished"
    assert finish_run(store, full, status="failed") == "failed"
    assert rows(store, "SELECT status, finished_at IS NOT NULL FROM runs ORDER BY run_id") == [
        ("failed", True), ("failed", True)]
    with pytest.raises(ValueError, match="`status` must be 'finished' or 'failed'"):
        finish_run(store, full, status="running")


def test_open_for_write_waits_a_bounded_time_for_a_busy_file(tmp_path):
    db = tmp_path / "busy.duckdb"
    Store(db).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, time; "
         f"c = duckdb.connect({str(db)!r}, read_only=True); print('holding', flush=True); "
         "time.sleep(1.5)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        start = time.monotonic()
        with pytest.raises(StoreBusyError, match="in use by another process"):
            open_for_write(db, wait_s=0.3)
        assert 0.3 <= time.monotonic() - start < 1.2
        open_for_write(db, wait_s=30).close()  # in once the holder is gone
        assert holder.poll() is not None
    finally:
        holder.kill()
        holder.wait()
