"""The read layer on a real DuckDB file built through the import users run."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from fetal_analytics import queries
from fetal_analytics.ingest import ingest_labels
from fetal_analytics.queries import UnknownScanError
from fetal_analytics.runs import UnknownRunError


@pytest.fixture
def store(cohort_store, tmp_path):
    video = tmp_path / "S2.mp4"
    video.write_bytes(b"not decoded by the read layer")
    manifest = pd.DataFrame({
        "scan_id": ["S1", "S2", "S3"], "operator_id": ["A", "B", "B"],
        "group": ["expert", "trainee", "trainee"],
        "acquired_at": ["2024-01-05 10:00", "2024-02-01", ""],
        "video_path": ["", str(video), str(tmp_path / "missing.mp4")]})
    manual = pd.DataFrame({"scan_id": ["S1", "S1", "S2"], "start_s": [0.0, 30.0, 5.0],
                           "end_s": [30.0, 50.0, 10.0], "label": ["HeD", "Br", "Sp"]})
    auto = pd.DataFrame({"scan_id": ["S1", "S3"], "start_s": [0.0, 0.0],
                         "end_s": [50.0, 20.0], "label": ["HeD", "Bk"]})
    built = cohort_store(manifest, {"manual": manual, "auto": auto})
    # A second manual import of S1 only: the newest manual run of S1 is now run 3.
    again = tmp_path / "manual-v2.csv"
    manual[manual.scan_id == "S1"].assign(label="Fm").to_csv(again, index=False)
    ingest_labels(built, again, source="manual", run_name="v2")
    return built


def test_overview_counts_what_the_store_holds(store):
    summary = queries.overview(store)
    assert (summary.operators, summary.scans, summary.runs, summary.events) == (2, 3, 3, 7)
    assert (summary.manual_events, summary.auto_events) == (5, 2)
    assert summary.scans_with_video == 1  # S2's file exists, S3's does not
    assert summary.groups == {"expert": 1, "trainee": 1}
    assert summary.first_scan.isoformat() == "2024-01-05T10:00:00"
    record = summary.to_dict()
    assert json.loads(json.dumps(record)) == record
    assert record["last_scan"] == "2024-02-01T00:00:00"


def test_list_scans_with_runs_video_and_filters(store):
    scans = queries.list_scans(store)
    assert list(scans.columns) == list(queries.SCAN_COLUMNS)
    assert list(scans["scan_id"]) == ["S1", "S2", "S3"]  # by date, undated last
    by_id = scans.set_index("scan_id")
    assert by_id.loc["S1", "manual_runs"] == ["manual1.csv", "v2"]
    assert by_id.loc["S1", "auto_runs"] == ["auto1.csv"]
    assert by_id.loc["S3", "manual_runs"] == []
    assert list(scans["video_present"]) == [False, True, False]
    assert by_id.loc["S2", "group"] == "trainee"
    assert list(queries.list_scans(store, groups="trainee")["scan_id"]) == ["S2", "S3"]
    assert list(queries.list_scans(store, operators=["A"])["scan_id"]) == ["S1"]
    # Whole days: a scan at 10:00 on the 5th is in a range ending on the 5th.
    dated = queries.list_scans(store, date_from="2024-01-05", date_to="2024-01-05")
    assert list(dated["scan_id"]) == ["S1"]
    assert queries.list_scans(store, groups=["fellow"]).empty


def test_scan_events_default_to_the_newest_manual_and_automatic_run(store):
    events = queries.scan_events(store, "S1")
    assert list(events["run_name"].unique()) == ["v2", "auto1.csv"]
    assert list(events["label"]) == ["Fm", "Fm", "HeD"]
    assert list(events.columns) == ["run_id", "run_name", "source", "start_s", "end_s", "label",
                                    "confidence"]
    chosen = queries.scan_events(store, "S1", runs=["auto1.csv", 1])  # in the order asked
    assert list(chosen["run_id"]) == [2, 1, 1]
    assert queries.scan_events(store, "S3", runs=[1]).empty
    assert [r.name for r in queries.newest_runs_of_scan(store, "S3")] == ["auto1.csv"]
    with pytest.raises(UnknownScanError, match="no scan 'S9'"):
        queries.scan_events(store, "S9")
    with pytest.raises(UnknownRunError):
        queries.scan_events(store, "S1", runs=["nope"])


def test_scan_timeline_names_a_row_per_run_in_order(store):
    timeline = queries.scan_timeline(store, "S1")
    assert timeline.rows == ["run 3 'v2' (manual)", "run 2 'auto1.csv' (auto)"]
    assert list(timeline.events["row"]) == [timeline.rows[0]] * 2 + [timeline.rows[1]]
    assert timeline.freezes.empty
    chosen = queries.scan_timeline(store, "S1", ["auto1.csv", 1])
    assert chosen.rows == ["run 2 'auto1.csv' (auto)", "run 1 'manual1.csv' (manual)"]
    record = chosen.to_dict()
    assert json.loads(json.dumps(record)) == record
    with pytest.raises(UnknownScanError, match="no scan 'S9'"):
        queries.scan_timeline(store, "S9")


def test_freezes_models_and_window_probabilities_of_an_unlabelled_scan(store):
    assert queries.scan_freezes(store, "S1").empty
    assert queries.list_models(store).empty
    probs = queries.window_probabilities(store, "S1", "auto1.csv")
    assert probs.times_s.shape == (0,) and probs.probs == {}
    assert probs.to_frame().empty


def write_label_run(db, name: str, *, classes=("HeD", "Br", "Bk"), freeze_s=(12.0,)):
    """A labelling run of scan S1 written through the public run-writing API."""
    import numpy as np

    from fetal_analytics.run_writing import (
        ModelRecord,
        finish_run,
        open_for_write,
        start_label_run,
        write_scan,
    )

    model = ModelRecord(model_id=f"m-{name}", path=db.parent / f"{name}.keras", sha256="0" * 64,
                        arch="sononet", input_shape=(64, 64, 1), classes=tuple(classes))
    with open_for_write(db, wait_s=5) as store:
        run = start_label_run(store, name, model=model, params={"classes": list(classes)})
        times = np.array([0.5, 1.5, 2.5])
        probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]], dtype=np.float32)
        write_scan(store, run.run_id, "S1",
                   events=pd.DataFrame({"start_s": [0.0, 1.0], "end_s": [1.0, 3.0],
                                        "label": ["HeD", "Br"], "confidence": [0.8, 0.7]}),
                   window_probs=pd.DataFrame({"t_s": np.concatenate([times, times]),
                                              "stream": ["fused"] * 3 + ["fr4"] * 3,
                                              "probs": [*probs, *probs[::-1]]}),
                   freezes=pd.DataFrame({"t_s": list(freeze_s)}))
        finish_run(store, run.run_id)
    return run.run_id, probs


def test_a_labelling_runs_probabilities_freezes_and_model(store):
    db = store.path
    store.close()
    _, probs = write_label_run(db, "first", freeze_s=(12.0, 40.0))
    second, _ = write_label_run(db, "second", freeze_s=(20.0,))
    from fetal_analytics.store import Store

    with Store(db, read_only=True) as reader:
        window = queries.window_probabilities(reader, "S1", "first")
        assert window.classes == ("HeD", "Br", "Bk")
        assert window.times_s.tolist() == [0.5, 1.5, 2.5]
        assert sorted(window.probs) == ["fr4", "fused"]
        np_probs = window.probs["fused"]
        assert np_probs.shape == (3, 3) and np_probs[1].tolist() == pytest.approx(probs[1])
        long = window.to_frame("fr4")
        assert len(long) == 9 and set(long["label"]) == {"HeD", "Br", "Bk"}
        # Freezes are kept per run; the default is the run that wrote the scan last.
        assert queries.scan_freezes(reader, "S1")["t_s"].tolist() == [20.0]
        assert queries.scan_freezes(reader, "S1", "first")["t_s"].tolist() == [12.0, 40.0]
        models = queries.list_models(reader)
        assert list(models["model_id"]) == ["m-first", "m-second"]
        assert list(models["n_runs"]) == [1, 1]
        # The newest automatic run of S1 is the one written last, then the imported one.
        assert [r.run_id for r in queries.newest_runs_of_scan(reader, "S1")] == [3, second]
        assert queries.list_scans(reader).set_index("scan_id").loc["S1", "auto_runs"] == [
            "auto1.csv", "first", "second"]


def test_run_pairs_counts_the_scans_a_manual_and_an_automatic_run_both_label(tmp_path):
    from fetal_analytics.ingest import ingest_labels, ingest_manifest
    from fetal_analytics.queries import run_pairs
    from fetal_analytics.store import Store

    (tmp_path / "m.csv").write_text("scan_id,operator_id,group\nS1,A,expert\nS2,B,trainee\n"
                                    "S3,B,trainee\n")

    def labels(name: str, scans: list[str]):
        (tmp_path / name).write_text("scan_id,start_s,end_s,label\n"
                                     + "".join(f"{s},0,10,HeD\n" for s in scans))
        return tmp_path / name

    with Store(tmp_path / "pairs.duckdb") as store:
        ingest_manifest(store, tmp_path / "m.csv")
        ingest_labels(store, labels("clips.csv", ["S1", "S2"]), source="manual")
        ingest_labels(store, labels("model.csv", ["S1", "S2", "S3"]), source="auto")
        ingest_labels(store, labels("other.csv", ["S3"]), source="auto")
        pairs = run_pairs(store)
    assert pairs.to_dict(orient="records") == [
        {"manual_run_id": 1, "manual_run": "clips.csv", "auto_run_id": 2,
         "auto_run": "model.csv", "n_scans": 2}]
