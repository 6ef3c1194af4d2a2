import hashlib
import shutil
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from fetal_analytics.events import run_events
from fetal_analytics.ingest import ingest_labels, ingest_manifest, read_labels
from fetal_analytics.runs import UnknownRunError, list_runs, resolve_run
from fetal_analytics.store import Store
from fetal_analytics.tabular import InputError, write_table


@pytest.fixture
def store(db_path, data_dir):
    with Store(db_path) as store:
        ingest_manifest(store, data_dir / "manifest.csv")
        yield store


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- manifest -------------------------------------------------------------------------------

def test_manifest_adds_operators_and_scans(db_path, data_dir):
    with Store(db_path) as store:
        result = ingest_manifest(store, data_dir / "manifest.csv")
        assert (result.operators_added, result.scans_added) == (3, 4)
        scans = store.query_df("SELECT * FROM scans ORDER BY scan_id").set_index("scan_id")
        operators = store.query_df("SELECT * FROM operators ORDER BY 1").set_index("operator_id")
    assert scans.loc["S001", "video_path"] == str((data_dir / "videos" / "S001.mp4").resolve())
    assert pd.isna(scans.loc["S002", "video_path"])
    assert scans.loc["S003", "acquired_at"] == datetime(2024, 3, 5, 14, 2)
    assert scans.loc["S003", "fps"] == 25 and pd.isna(scans.loc["S004", "fps"])
    assert operators.to_dict("index") == {
        "OP1": {"grp": "expert", "years_experience": 12.0},
        "OP2": {"grp": "trainee", "years_experience": 1.0},
        "OP3": {"grp": "trainee", "years_experience": 0.5},
    }


def test_reimporting_a_manifest_changes_nothing(store, data_dir):
    before = store.query_df("SELECT * FROM scans ORDER BY scan_id")
    result = ingest_manifest(store, data_dir / "manifest.csv")
    assert (result.scans_added, result.scans_updated, result.scans_unchanged) == (0, 0, 4)
    pd.testing.assert_frame_equal(store.query_df("SELECT * FROM scans ORDER BY scan_id"), before)


def test_identical_duplicate_rows_are_one_scan(db_path, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("scan_id,operator_id,group\nS1,A,expert\nS1,A,expert\nS2,A,expert\n")
    with Store(db_path) as store:
        assert ingest_manifest(store, manifest).scans_added == 2


def test_conflicting_duplicate_rows_name_both_lines(db_path, data_dir):
    with Store(db_path) as store, pytest.raises(InputError) as error:
        ingest_manifest(store, data_dir / "bad" / "manifest_conflict.csv")
    assert str(error.value) == (
        f"{data_dir / 'bad' / 'manifest_conflict.csv'}, line 3, column operator_id: "
        "scan_id 'S001' was given operator_id 'OP1' on line 2, and 'OP2' here")


def test_an_operator_in_two_groups_is_refused(db_path, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("scan_id,operator_id,group\nS1,A,expert\nS2,A,trainee\n")
    with Store(db_path) as store, pytest.raises(InputError, match=(
            r"line 3, column group: operator_id 'A' was given group 'expert' on line 2, "
            r"and 'trainee' here")):
        ingest_manifest(store, manifest)


def test_malformed_manifest_cells_are_each_reported(db_path, data_dir):
    with Store(db_path) as store, pytest.raises(InputError) as error:
        ingest_manifest(store, data_dir / "bad" / "manifest_malformed.csv")
    lines = str(error.value).splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("line 2, column acquired_at: expected an ISO 8601 date or "
                             "date-time such as 2024-05-01T09:30, got '04/03/2024'")
    assert lines[1].endswith("line 2, column fps: expected a frame rate in frames per second, "
                             "got 'thirty'")


def test_a_manifest_that_contradicts_the_database_needs_replace(store, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("scan_id,operator_id,group,fps\nS001,OP2,trainee,25\n")
    with pytest.raises(InputError) as error:
        ingest_manifest(store, manifest)
    message = str(error.value)
    assert "column scan_id: 'S001' is stored with other data: operator_id 'OP1' -> 'OP2'; " \
           "fps '30.0' -> '25.0'" in message
    assert "pass --replace" in message
    assert store.scalar("SELECT operator_id FROM scans WHERE scan_id = 'S001'") == "OP1"

    result = ingest_manifest(store, manifest, replace=True)
    assert (result.scans_updated, result.scans_added) == (1, 0)
    row = store.con.execute(
        "SELECT operator_id, fps, video_path FROM scans WHERE scan_id = 'S001'").fetchone()
    assert row[:2] == ("OP2", 25.0)
    assert row[2].endswith("S001.mp4")  # an empty cell keeps the stored value


def labelled_store(store, data_dir, tmp_path):
    """The sample store with manual labels and an automatic import (scan S001 in both)."""
    ingest_labels(store, data_dir / "manual_labels.csv")
    ingest_labels(store, data_dir / "auto_labels_frames.csv", source="auto", run_name="v1")
    return store


def event_counts(store) -> dict[str, int]:
    return dict(store.con.execute(
        "SELECT source, count(*) FROM events JOIN runs USING (run_id) WHERE scan_id = 'S001' "
        "GROUP BY source").fetchall())


def test_replace_corrects_the_date_of_a_labelled_scan_and_keeps_its_labels(store, data_dir,
                                                                         tmp_path):
    labelled_store(store, data_dir, tmp_path)
    before = event_counts(store)
    manifest = tmp_path / "m.csv"
    manifest.write_text("scan_id,operator_id,group,acquired_at\nS001,OP1,expert,2024-04-04\n")
    result = ingest_manifest(store, manifest, replace=True)
    assert (result.scans_updated, result.auto_results_removed) == (1, {})
    assert store.scalar("SELECT acquired_at FROM scans WHERE scan_id = 'S001'") == datetime(
        2024, 4, 4)
    assert event_counts(store) == before and before["auto"] > 0


def test_a_video_of_other_content_removes_the_automatic_results_only(store, data_dir, tmp_path):
    labelled_store(store, data_dir, tmp_path)
    manual_before = event_counts(store)["manual"]
    manifest = tmp_path / "m.csv"

    def give_video(content: bytes, name: str):
        video = tmp_path / name
        video.write_bytes(content)
        manifest.write_text(f"scan_id,operator_id,group,video_path\nS001,OP1,expert,{video}\n")
        return ingest_manifest(store, manifest, replace=True)

    # the stored video does not exist here: its content is unknown, so it counts as changed
    first = give_video(b"the video", "a.mp4")
    n_auto = first.auto_results_removed["S001"]
    assert n_auto > 0 and event_counts(store) == {"manual": manual_before}
    ingest_labels(store, data_dir / "auto_labels_frames.csv", source="auto", run_name="v1b")

    moved = give_video(b"the video", "moved.mp4")  # same content, another file: kept
    assert (moved.scans_updated, moved.auto_results_removed) == (1, {})
    assert event_counts(store)["auto"] == n_auto

    other = give_video(b"another scan", "other.mp4")
    assert other.auto_results_removed == {"S001": n_auto}
    assert event_counts(store) == {"manual": manual_before}
    assert store.scalar("SELECT video_sha256 FROM scans WHERE scan_id = 'S001'") == sha(
        tmp_path / "other.mp4")
    assert store.scalar("SELECT count(*) FROM run_scans JOIN runs USING (run_id) "
                        "WHERE scan_id = 'S001' AND source = 'auto'") == 0


def test_moving_a_labelled_scan_to_another_operator_is_refused_naming_it(store, data_dir,
                                                                          tmp_path, db_path):
    labelled_store(store, data_dir, tmp_path)
    manifest = tmp_path / "m.csv"
    manifest.write_text("scan_id,operator_id,group\nS001,OP2,trainee\n")
    store.con.execute("CHECKPOINT")
    before = db_path.read_bytes()
    with pytest.raises(InputError, match="scan 'S001' already has labels, so its operator "
                                         r"\('OP1'\) cannot be changed"):
        ingest_manifest(store, manifest, replace=True)
    store.con.execute("CHECKPOINT")
    assert db_path.read_bytes() == before
    manifest.write_text("scan_id,operator_id,group\nS005,OP3,trainee\n")
    ingest_manifest(store, manifest)
    manifest.write_text("scan_id,operator_id,group\nS005,OP2,trainee\n")  # unlabelled: moves
    assert ingest_manifest(store, manifest, replace=True).scans_updated == 1
    assert store.scalar("SELECT operator_id FROM scans WHERE scan_id = 'S005'") == "OP2"


def test_a_value_filled_in_later_is_no_conflict(store, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("scan_id,operator_id,group,fps\nS004,OP3,trainee,25\n")
    result = ingest_manifest(store, manifest)  # S004 had no fps: no --replace needed
    assert (result.scans_updated, result.scans_unchanged) == (1, 0)
    assert store.scalar("SELECT fps FROM scans WHERE scan_id = 'S004'") == 25.0
    manifest.write_text("scan_id,operator_id,group,fps\nS004,OP3,trainee,30\n")
    with pytest.raises(InputError) as error:
        ingest_manifest(store, manifest)
    assert "fps '25.0' -> '30.0'" in str(error.value) and "nan" not in str(error.value)


def test_missing_required_manifest_columns(db_path, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("scan,operator_id\nS1,A\n")
    with Store(db_path) as store, pytest.raises(InputError, match=(
            r"m.csv: missing columns: scan_id; group. Expected columns: scan_id, operator_id, "
            r"group \(optional: acquired_at, video_path, fps, years_experience\); "
            r"found: scan, operator_id")):
        ingest_manifest(store, manifest)


# --- labels ---------------------------------------------------------------------------------

def test_labels_in_seconds(store, data_dir):
    result = ingest_labels(store, data_dir / "manual_labels.csv")
    assert (result.status, result.n_events, result.n_scans, result.source) == (
        "created", 11, 4, "manual")
    events = run_events(store, resolve_run(store))
    expected = pd.read_csv(data_dir / "manual_labels.csv")
    pd.testing.assert_frame_equal(
        events.drop(columns="confidence"),
        expected.sort_values(["scan_id", "start_s"]).reset_index(drop=True),
        check_dtype=False)


def test_labels_in_frames_use_each_scans_fps(store, data_dir):
    ingest_labels(store, data_dir / "auto_labels_frames.csv", source="auto")
    events = run_events(store, resolve_run(store, source="auto"))
    s003 = events[events.scan_id == "S003"]  # 25 fps
    assert s003[["start_s", "end_s"]].values.tolist() == [[10.0, 70.0], [70.0, 96.0]]
    s001 = events[events.scan_id == "S001"]  # 30 fps
    assert s001["end_s"].tolist() == [40.0, 130.0, 400.0]
    assert s001["confidence"].tolist() == [0.91, 0.88, 0.95]


def test_frames_need_a_known_fps(store, tmp_path):
    labels = tmp_path / "l.csv"
    labels.write_text("scan_id,start_frame,end_frame,label\nS004,0,100,Fm\n")
    with pytest.raises(InputError, match=(
            r"line 2, column start_frame: scan 'S004' has no fps in the manifest, so frames "
            r"cannot be turned into seconds")):
        ingest_labels(store, labels)


def test_frames_must_be_whole_numbers(store, tmp_path):
    labels = tmp_path / "l.csv"
    labels.write_text("scan_id,start_frame,end_frame,label\nS001,0,10.5,Fm\n")
    with pytest.raises(InputError, match=r"column end_frame: expected a frame index \(integer "
                                         r">= 0\), got '10.5'"):
        ingest_labels(store, labels)


@pytest.mark.parametrize(("name", "expected"), [
    ("unknown_label.csv", [
        "line 2, column label: unknown label 'Heart' (did you mean 'HeD'?)",
        "column label: valid label codes: HeD, 3Dm, Bk, Br, MaD, Sp, Ab, NL, Ki, Fa, Fm, Um, Fb, "
        "BlD, Fe, Th, sex, Ha, Ar, Le"]),
    ("end_before_start.csv",
     ["line 2, column end_s: end_s (10) must be greater than start_s (10)"]),
    ("negative_time.csv", ["line 2, column start_s: expected a number >= 0, got '-1'"]),
    ("overlap.csv", ["line 4, column start_s: this HeD event of scan 'S001' overlaps the Sp event "
                     "on line 3; events of one scan must not overlap"]),
    ("unknown_scan.csv", ["column scan_id: scan 'S999' (line 3) is not in the database: ingest a "
                          "manifest that lists it first"]),
    ("malformed_number.csv", ["line 2, column end_s: expected a time in seconds, got 'ten'"]),
    ("missing_column.csv", [
        "missing columns: exactly one of (start_s, end_s or start_frame, end_frame), found "
        "neither. Expected columns: scan_id, start_s,end_s/start_frame,end_frame, label "
        "(optional: confidence); found: scan_id, begin, end_s, label"]),
    ("wrong_field_count.csv", ["line 2: expected 4 fields as in the header, found 3"]),
])
def test_bad_label_files_are_refused_with_precise_messages(store, data_dir, name, expected):
    path = data_dir / "bad" / name
    with pytest.raises(InputError) as error:
        ingest_labels(store, path)
    located = ("line", "column")
    assert str(error.value).splitlines() == [
        f"{path}, {line}" if line.startswith(located) else f"{path}: {line}" for line in expected]
    assert store.counts()["runs"] == 0


def test_a_refused_import_leaves_the_database_file_byte_identical(db_path, data_dir):
    with Store(db_path) as store:
        ingest_manifest(store, data_dir / "manifest.csv")
        ingest_labels(store, data_dir / "manual_labels.csv")
    before = sha(db_path)
    for name in ("overlap.csv", "unknown_scan.csv", "unknown_label.csv"):
        with Store(db_path) as store, pytest.raises(InputError):
            ingest_labels(store, data_dir / "bad" / name)
        assert sha(db_path) == before


def test_every_problem_is_reported_not_just_the_first(store, tmp_path):
    labels = tmp_path / "l.csv"
    rows = "".join(f"S001,{i},x,Br\n" for i in range(30))
    labels.write_text("scan_id,start_s,end_s,label\n" + rows)
    with pytest.raises(InputError) as error:
        ingest_labels(store, labels)
    assert len(error.value.problems) == 30
    assert str(error.value).splitlines()[-1] == "... and 10 more problems"


def test_reimporting_the_same_labels_is_idempotent(store, data_dir, tmp_path):
    first = ingest_labels(store, data_dir / "manual_labels.csv")
    copy = tmp_path / "renamed.csv"
    shutil.copy(data_dir / "manual_labels.csv", copy)
    again = ingest_labels(store, copy)
    assert again.status == "unchanged" and again.run_id == first.run_id
    assert store.counts()["events"] == 11 and store.counts()["runs"] == 1
    # the same file as automatic labels is another run
    assert ingest_labels(store, copy, source="auto").status == "created"


def test_a_named_run_is_replaced_in_place(store, data_dir, tmp_path):
    first = ingest_labels(store, data_dir / "manual_labels.csv", run_name="batch1")
    edited = tmp_path / "edited.csv"
    edited.write_text("scan_id,start_s,end_s,label\nS001,0,5,Br\n")
    second = ingest_labels(store, edited, run_name="batch1")
    assert (second.status, second.run_id) == ("replaced", first.run_id)
    assert store.counts()["events"] == 1
    assert (first.n_events_removed, first.n_scans_removed) == (0, 0)
    assert (second.n_events_removed, second.n_scans_removed) == (first.n_events, first.n_scans)
    assert (first.n_events, first.n_scans) == (11, 4)
    assert ingest_labels(store, edited, run_name="batch1").status == "unchanged"


def test_a_new_file_with_the_same_name_becomes_a_new_run(store, data_dir, tmp_path):
    ingest_labels(store, data_dir / "manual_labels.csv")
    other = tmp_path / "manual_labels.csv"
    other.write_text("scan_id,start_s,end_s,label\nS001,0,5,Br\n")
    result = ingest_labels(store, other)
    assert (result.status, result.run_name) == ("created", "manual_labels.csv (2)")
    assert [r.n_events for r in list_runs(store)] == [11, 1]


def test_adjacent_events_do_not_overlap(store, tmp_path):
    labels = tmp_path / "l.csv"
    labels.write_text("scan_id,start_s,end_s,label\nS001,5,10,Br\nS001,0,5,Bk\nS002,0,5,Br\n")
    events = read_labels(labels, scan_fps={"S001": 30.0, "S002": None})
    assert events[["scan_id", "start_s", "label"]].values.tolist() == [
        ["S001", 0.0, "Bk"], ["S001", 5.0, "Br"], ["S002", 0.0, "Br"]]


def test_export_round_trips_through_csv_and_parquet(store, data_dir, tmp_path):
    ingest_labels(store, data_dir / "auto_labels_frames.csv", source="auto")
    events = run_events(store, resolve_run(store, source="auto"))
    for suffix in ("csv", "parquet"):
        out = write_table(events, tmp_path / f"events.{suffix}")
        reimported = ingest_labels(store, out, source="auto", run_name=f"back-{suffix}")
        assert reimported.status == "created"
        pd.testing.assert_frame_equal(
            run_events(store, resolve_run(store, reimported.run_id)), events)


def test_resolve_run_errors(store, data_dir):
    with pytest.raises(UnknownRunError, match="the database has no runs of source 'auto'"):
        resolve_run(store, source="auto")
    ingest_labels(store, data_dir / "manual_labels.csv", run_name="x")
    ingest_labels(store, data_dir / "auto_labels_frames.csv", source="auto", run_name="x")
    with pytest.raises(UnknownRunError, match=r"no run '7'; known runs: 1 \(manual, 'x'\), 2"):
        resolve_run(store, 7)
    with pytest.raises(UnknownRunError, match="used by runs of both sources: pass --source"):
        resolve_run(store, "x")
    assert resolve_run(store, "x", source="auto").run_id == 2
    assert resolve_run(store, "1").source == "manual"


@pytest.mark.parametrize("separator", [";", "\t"])
def test_files_from_excel_in_europe_are_read(db_path, tmp_path, separator):
    # Excel where the comma is the decimal mark: semicolons (or tabs), decimal commas, a BOM
    # and Windows line endings.
    manifest = tmp_path / "manifest.csv"
    rows = [["scan_id", "operator_id", "group", "fps", "years_experience"],
            ["S1", "OP1", "expert", "29,97", "12,5"], ["S2", "OP2", "trainee", "25", "0,5"]]
    manifest.write_text("\r\n".join(separator.join(r) for r in rows) + "\r\n",
                        encoding="utf-8-sig")
    labels = tmp_path / "labels.csv"
    labels.write_text("\r\n".join(separator.join(r) for r in [
        ["scan_id", "start_s", "end_s", "label"], ["S1", "0", "12,25", "Br"],
        ["S1", "12,25", "30", "HeD"]]) + "\r\n", encoding="utf-8-sig")
    with Store(db_path) as store:
        ingest_manifest(store, manifest)
        ingest_labels(store, labels)
        assert store.con.execute("SELECT scan_id, fps FROM scans ORDER BY scan_id").fetchall() == [
            ("S1", 29.97), ("S2", 25.0)]
        assert store.con.execute(
            "SELECT years_experience FROM operators ORDER BY operator_id").fetchall() == [
            (12.5,), (0.5,)]
        assert store.con.execute("SELECT start_s, end_s, label FROM events ORDER BY start_s"
                                 ).fetchall() == [(0.0, 12.25, "Br"), (12.25, 30.0, "HeD")]


def test_a_comma_separated_file_keeps_quoted_commas_as_text(db_path, tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text('scan_id,operator_id,group\nS1,"Smith, J",expert\n')
    with Store(db_path) as store:
        ingest_manifest(store, manifest)
        assert store.scalar("SELECT operator_id FROM operators") == "Smith, J"


def test_labels_after_the_end_of_a_scan_of_known_length_are_refused_naming_the_line(store,
                                                                                     tmp_path):
    store.con.execute("UPDATE scans SET duration_s = 100 WHERE scan_id = 'S002'")  # as label does
    labels = tmp_path / "labels.csv"
    labels.write_text("scan_id,start_s,end_s,label\nS002,0,60,Br\nS002,60,101,HeD\n"
                      "S002,120,130,Sp\n")
    with pytest.raises(InputError) as error:
        ingest_labels(store, labels)
    assert str(error.value).splitlines() == [
        f"{labels}, line 3, column end_s: this event ends at 101 s, after the end of scan "
        f"'S002' (100 s): check the scan id and the times",
        f"{labels}, line 4, column end_s: this event ends at 130 s, after the end of scan "
        f"'S002' (100 s): check the scan id and the times"]
    assert store.counts()["runs"] == 0

    labels.write_text("scan_id,start_frame,end_frame,label\nS002,0,1800,Br\nS002,1800,3001,HeD\n")
    ingest_labels(store, labels)  # 3001 frames at 30 fps end one frame late: cut at 100 s
    assert store.con.execute("SELECT max(end_s) FROM events").fetchone() == (100.0,)


def test_group_names_differing_only_in_case_are_refused_naming_both(db_path, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("scan_id,operator_id,group\nS1,A,expert\nS2,B,trainee\nS3,C,Expert\n"
                        "S4,D,Expert\n")
    with Store(db_path) as store, pytest.raises(InputError) as error:
        ingest_manifest(store, manifest)
    assert str(error.value).splitlines() == [
        f"{manifest}, line 4, column group: group 'Expert' differs only in case from 'expert' "
        f"on line 2: spell each group one way"]


def test_a_group_differing_in_case_from_a_stored_one_is_refused(store, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("scan_id,operator_id,group\nS9,OP9,Trainee\n")
    with pytest.raises(InputError) as error:
        ingest_manifest(store, manifest)
    assert str(error.value) == (f"{manifest}, column group: group 'Trainee' differs only in "
                                f"case from the database's 'trainee': spell each group one way")
    assert store.scalar("SELECT count(*) FROM scans WHERE scan_id = 'S9'") == 0
