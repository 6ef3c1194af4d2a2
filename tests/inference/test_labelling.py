"""Labelling full-length scans (`inference.labelling`, `fetal-analytics label`).

Three simulated 30 s scans at 320x240 and an untrained two-stream model (Sono-2DtCNN on fr4 and
SonoNet on 2d, width 4, 32 px) keep the file fast: what is tested is the pipeline and the store,
not the labels' quality. A run is killed with SIGKILL after its first scan is committed and
resumed, and the database must then equal a clean run's. Readers in other processes share the
database file with a running `label`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading

import keras
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from analytics.features import scan_features
from analytics.selection import select
from fetal_analytics import run_writing, taxonomy
from fetal_analytics.cli import main
from fetal_analytics.run_writing import FREEZE_METHOD
from fetal_analytics.store import Store
from inference import labelling
from inference.clips import ClipRequest, sample_clips, window_centres, window_times
from inference.crop import cropped_frame, cropped_frames, video_image_area
from inference.decode import iter_frames
from inference.labelling import ModelStream, decode_windows
from inference.model_file import load_model, save_model
from inference.models import build, combine_streams
from inference.pipeline import standardise
from inference.training import DECODING_DEFAULTS, PREPROCESSING_DATASET

pytestmark = pytest.mark.filterwarnings(  # raised inside Keras predict by TensorFlow 2.21
    "ignore:__array__ implementation:DeprecationWarning")

SIZE = 32
SQUARE = (SIZE, SIZE)
CODES = list(taxonomy.default_model_codes())
# The rows a clean run writes, compared after kills, resumes and forced re-runs.
TABLES = {
    "events": "SELECT run_id, scan_id, start_s, end_s, label, confidence FROM events",
    "window_probs": "SELECT run_id, scan_id, t_s, stream, probs FROM window_probs",
    "freeze_frames": "SELECT run_id, scan_id, t_s, end_s, frame, method FROM freeze_frames",
    "run_scans": "SELECT run_id, scan_id, freezes_detected FROM run_scans",
    "scans": "SELECT scan_id, video_path, fps, n_frames, duration_s FROM scans",
}


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _tiny_model(stream: str, path):
    clip = stream != "2d"
    arch = "sono_2dtcnn" if clip else "sononet"
    model = build(arch, input_shape=(SIZE, SIZE, 1), frames=12, classes=len(CODES), width=4)
    sidecar = {"arch": arch, "input_shape": [SIZE, SIZE, 1], "frames": 12 if clip else None,
               "classes": CODES, "codes": CODES,
               "preprocessing": {**PREPROCESSING_DATASET, "size": [SIZE, SIZE]},
               "stream": {"name": stream, "spacing_s": 2 / 15 if clip else None,
                          "frames": 12 if clip else 1},
               "decoding": dict(DECODING_DEFAULTS)}
    return save_model(model, path, sidecar)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """An untrained two-stream model (fr4 + 2d): real shapes, arbitrary probabilities."""
    folder = tmp_path_factory.mktemp("model")
    keras.utils.set_random_seed(0)
    members = [_tiny_model("fr4", folder / "fr4.keras"), _tiny_model("2d", folder / "2d.keras")]
    return combine_streams(members, folder / "two_streams.keras")


@pytest.fixture(scope="module")
def clean_db(short_scans, model_path, tmp_path_factory):
    """A database labelled in one uninterrupted run."""
    db = tmp_path_factory.mktemp("clean") / "clean.duckdb"
    result = run("label", "--manifest", short_scans / "manifest.csv", "--db", db, "--model",
                 model_path)
    assert result.exit_code == 0, result.output
    return db


def _contents(db) -> dict[str, pd.DataFrame]:
    with Store(db, read_only=True) as store:
        frames = {name: store.query_df(sql) for name, sql in TABLES.items()}
    for name, frame in frames.items():
        frames[name] = frame.sort_values(
            [c for c in frame.columns if c != "probs"]).reset_index(drop=True)
    return frames


def _assert_same_contents(db, reference) -> None:
    got, want = _contents(db), _contents(reference)
    for name in TABLES:
        a, b = got[name], want[name]
        assert len(a) == len(b), name
        pd.testing.assert_frame_equal(a.drop(columns=["probs", "confidence"], errors="ignore"),
                                      b.drop(columns=["probs", "confidence"], errors="ignore"),
                                      check_exact=False, rtol=1e-9)
        if "probs" in a:
            np.testing.assert_allclose(np.stack(a["probs"]), np.stack(b["probs"]), atol=1e-5)
        if "confidence" in a:
            np.testing.assert_allclose(a["confidence"], b["confidence"], atol=1e-5)


# --- windows ------------------------------------------------------------------------------------

def test_windows_are_the_clips_the_dataset_would_cut(short_scans):
    video = short_scans / "videos" / "SIM0001.mp4"
    streams = (ModelStream("fr4", 2 / 15, 12, SQUARE), ModelStream("2d", None, 1, SQUARE))
    batches = []
    decoded = decode_windows(video, streams, hop_s=1.0, batch_size=8, freezes=None,
                             on_batch=batches.append)
    centres = np.concatenate([b.centres_s for b in batches])
    assert decoded.n_frames == 900 and decoded.duration_s == pytest.approx(30.0)
    np.testing.assert_allclose(centres, window_centres(30.0, 1.0, streams=["fr4"]))
    np.testing.assert_array_equal(decoded.centres_s, centres)
    assert [len(b.centres_s) for b in batches] == [8, 8, 8, 5]
    assert batches[0].inputs[0].shape == (8, 12, SIZE, SIZE, 1)
    assert batches[0].inputs[1].shape == (8, SIZE, SIZE, 1)
    # The dataset's own sampler over the dataset's own crop gives the same standardised inputs.
    area = video_image_area(video)
    assert area == decoded.area
    requests = [ClipRequest(("fr4", i), window_times(c, "fr4")) for i, c in enumerate(centres)]
    requests += [ClipRequest(("2d", i), np.array([c])) for i, c in enumerate(centres)]
    reference = {clip.key: clip.images
                 for clip in sample_clips(cropped_frames(iter_frames(video), area, SIZE), requests)}
    clips = np.concatenate([b.inputs[0] for b in batches])
    frames = np.concatenate([b.inputs[1] for b in batches])
    for i in range(len(centres)):
        np.testing.assert_allclose(clips[i], standardise(reference["fr4", i][None])[0], atol=1e-5)
        np.testing.assert_allclose(frames[i], standardise(reference["2d", i])[0], atol=1e-5)


def test_a_2d_model_takes_the_frame_nearest_each_centre_from_the_start(short_scans):
    video = short_scans / "videos" / "SIM0002.mp4"
    batches = []
    decoded = decode_windows(video, (ModelStream("2d", None, 1, SQUARE),), hop_s=2.5,
                             batch_size=64, freezes=None, on_batch=batches.append)
    np.testing.assert_allclose(decoded.centres_s, np.arange(0.0, 30.0, 2.5))
    assert [b.inputs[0].shape for b in batches] == [(12, SIZE, SIZE, 1)]
    frames = {round(f.t_s, 6): f.image for f in cropped_frames(iter_frames(video), decoded.area,
                                                                SIZE)}
    for centre, x in zip(decoded.centres_s, batches[0].inputs[0], strict=True):
        np.testing.assert_allclose(x, standardise(frames[round(centre, 6)][None])[0], atol=1e-5)


def test_only_the_frames_windows_sample_are_cropped_and_resized(short_scans, monkeypatch):
    # The producer shrinks a frame only when a window samples it (fr4 clips every second use
    # about 12 frames in 30); the windows equal those cut from every frame shrunk, exactly,
    # also for dense, overlapping windows of several streams.
    video = short_scans / "videos" / "SIM0003.mp4"
    shrunk = []

    def counting(image, area, size):
        shrunk.append(image)
        return cropped_frame(image, area, size)

    monkeypatch.setattr(labelling, "cropped_frame", counting)
    area = video_image_area(video)
    every = list(cropped_frames(iter_frames(video), area, SIZE))
    times = np.array([f.t_s for f in every])
    for streams, hop_s, most in [((ModelStream("fr4", 2 / 15, 12, SQUARE),), 1.0, 0.45),
                                 ((ModelStream("fr2", 1 / 15, 12, SQUARE),
                                   ModelStream("fr8", 4 / 15, 12, SQUARE),
                                   ModelStream("2d", None, 1, SQUARE)), 0.3, 1.0)]:
        shrunk.clear()
        batches = []
        decoded = decode_windows(video, streams, hop_s=hop_s, batch_size=16,
                                 freezes=None, on_batch=batches.append)
        assert len(shrunk) <= most * decoded.n_frames
        for k, stream in enumerate(streams):
            got = np.concatenate([b.inputs[k] for b in batches])
            for i, centre in enumerate(decoded.centres_s):
                sampled = (np.array([centre]) if stream.name == "2d"
                           else window_times(centre, stream.name, stream.frames))
                nearest = [int(np.argmin(np.abs(times - t))) for t in sampled]
                images = np.stack([every[j].image for j in nearest])
                want = standardise(images[None] if stream.name != "2d" else images)[0]
                np.testing.assert_array_equal(got[i], want)


def test_streams_of_other_sizes_and_classes_sharing_codes_label_from_one_decode(
        short_scans, tmp_path, monkeypatch):
    # A clip stream at 24 x 40 and a 2D stream at 32 x 48 (neither square), 3 classes of which
    # two share HeD: one decode serves both streams, and every stored probability is per code.
    classes, codes = ["heart-a", "heart-b", "other"], ["HeD", "HeD", "Bk"]
    members = []
    for stream, arch, shape in (("fr4", "sono_2dtcnn", (24, 40, 1)),
                                ("2d", "sononet", (32, 48, 1))):
        clip = stream != "2d"
        model = build(arch, input_shape=shape, frames=12, classes=3, width=2)
        members.append(save_model(model, tmp_path / f"{stream}.keras", {
            "arch": arch, "input_shape": list(shape), "frames": 12 if clip else None,
            "classes": classes, "codes": codes, "decoding": dict(DECODING_DEFAULTS),
            "stream": {"name": stream, "spacing_s": 2 / 15 if clip else None,
                       "frames": 12 if clip else 1}}))
    loaded = load_model(combine_streams(members, tmp_path / "two.keras"))
    spec = labelling.model_spec(loaded)
    assert [s.size for s in spec.streams] == [(24, 40), (32, 48)]
    assert spec.codes == ("HeD", "Bk") and spec.classes == tuple(classes)
    decodes = []

    def counting(video, *args, **kwargs):
        decodes.append(video)
        return iter_frames(video, *args, **kwargs)

    monkeypatch.setattr(labelling, "iter_frames", counting)
    video = short_scans / "videos" / "SIM0001.mp4"
    batches = []
    decode_windows(video, spec.streams, hop_s=1.0, batch_size=64, freezes=None,
                   on_batch=batches.append)
    assert batches[0].inputs[0].shape[1:] == (12, 24, 40, 1)
    assert batches[0].inputs[1].shape[1:] == (32, 48, 1)
    labels = labelling.label_video(video, loaded, freezes=None)
    assert len(decodes) == 2  # one decode each for decode_windows and label_video
    assert labels.codes == ("HeD", "Bk") and set(labels.probs) == {"fr4", "2d", "fused"}
    raw = loaded.predict_streams(batches[0].inputs)
    for stream, out in zip(("fr4", "2d"), raw, strict=True):
        summed = np.stack([out[:, 0] + out[:, 1], out[:, 2]], axis=1)
        np.testing.assert_allclose(labels.probs[stream], summed, atol=1e-5)
    np.testing.assert_allclose(labels.probs["fused"].sum(axis=1), 1.0, atol=1e-5)


# --- the store ----------------------------------------------------------------------------------

def test_label_writes_one_run_of_events_window_probabilities_and_freezes(clean_db, model_path):
    with Store(clean_db, read_only=True) as store:
        runs = store.query_df("SELECT * FROM runs")
        probs = store.query_df("SELECT * FROM window_probs ORDER BY scan_id, stream, t_s")
        events = store.query_df("SELECT * FROM events ORDER BY scan_id, start_s")
        freezes = store.query_df("SELECT * FROM freeze_frames")
        scans = store.query_df("SELECT * FROM scans ORDER BY scan_id")
        models = store.query_df("SELECT * FROM models")
    assert len(runs) == 1
    run_row = runs.iloc[0]
    assert (run_row["source"], run_row["kind"], run_row["status"]) == ("auto", "label", "finished")
    assert run_row["finished_at"] is not pd.NaT and run_row["model_id"] == models["model_id"][0]
    params = json.loads(run_row["params_json"])
    assert params["classes"] == CODES and params["hop_s"] == 1.0
    assert [s["name"] for s in params["streams"]] == ["fr4", "2d"]
    assert params["model"]["path"] == str(model_path) and params["model"]["arch"]
    assert params["decoding"]["hop_s"] == 1.0
    assert list(models["classes"][0]) == CODES

    centres = window_centres(30.0, 1.0, streams=["fr4"])
    assert set(probs["stream"]) == {"fr4", "2d", "fused"}
    for (_scan, _stream), rows in probs.groupby(["scan_id", "stream"]):
        np.testing.assert_allclose(rows["t_s"], centres, atol=1e-9)
    matrix = {s: np.stack(rows["probs"]) for s, rows in probs.groupby("stream")}
    assert matrix["fused"].shape == (3 * len(centres), len(CODES))
    np.testing.assert_allclose(matrix["fused"].sum(axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(matrix["fused"], (matrix["fr4"] + matrix["2d"]) / 2, atol=1e-6)

    assert set(events["label"]) <= set(CODES) and set(events["scan_id"]) == set(scans["scan_id"])
    for _scan, rows in events.groupby("scan_id"):  # events tile each scan
        assert rows["start_s"].iloc[0] == 0.0 and rows["end_s"].iloc[-1] == pytest.approx(30.0)
        np.testing.assert_allclose(rows["start_s"].iloc[1:], rows["end_s"].iloc[:-1])
    assert events["confidence"].between(0, 1).all()

    assert len(freezes) >= 3 and set(freezes["method"]) == {FREEZE_METHOD}
    assert set(freezes["run_id"]) == {run_row["run_id"]}
    assert (freezes["end_s"] > freezes["t_s"]).all()
    assert list(scans["n_frames"]) == [900] * 3
    np.testing.assert_allclose(scans["duration_s"], 30.0)


def _label_cli(short_scans, db, model_path, *extra):
    """The label command in a fresh process (-v: one log line per committed scan)."""
    return subprocess.Popen(
        [sys.executable, "-c", "from fetal_analytics.cli import main; main()", "-v", "label",
         "--manifest", str(short_scans / "manifest.csv"), "--db", str(db), "--model",
         str(model_path), *extra],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


def test_a_killed_run_keeps_finished_scans_and_resumes_to_a_clean_runs_contents(
        short_scans, model_path, clean_db, tmp_path):
    db = tmp_path / "killed.duckdb"
    process = _label_cli(short_scans, db, model_path)
    watchdog = threading.Timer(300, process.kill)
    watchdog.start()
    try:
        lines = []
        for line in process.stderr:
            lines.append(line)
            if "labelled scan" in line:
                # Between scans the labeller holds no lock: a reader can open the database.
                with Store(db, read_only=True) as store:
                    finished = store.scalar("SELECT count(DISTINCT scan_id) FROM window_probs")
                process.send_signal(signal.SIGKILL)
                break
        process.wait(timeout=60)
    finally:
        watchdog.cancel()
    assert process.returncode == -signal.SIGKILL, "".join(lines)
    assert finished == 1
    with Store(db, read_only=True) as store:
        assert store.scalar("SELECT status FROM runs") == "running"
        assert store.scalar("SELECT count(DISTINCT scan_id) FROM events") == 1

    resumed = run("label", "--manifest", short_scans / "manifest.csv", "--db", db,
                  "--model", model_path, "--format", "json")
    assert resumed.exit_code == 0, resumed.output
    assert resumed.output.count('"status": "labelled"') == 2
    assert resumed.output.count('"status": "skipped"') == 1
    _assert_same_contents(db, clean_db)
    with Store(db, read_only=True) as store:
        assert store.query_df("SELECT status FROM runs")["status"].tolist() == ["finished"]

    again = run("label", short_scans / "videos" / "SIM0002.mp4", "--db", db, "--model", model_path,
                "--force")
    assert again.exit_code == 0, again.output
    assert "1 labelled, 0 skipped, 0 failed" in again.output
    _assert_same_contents(db, clean_db)  # replaced, not added


def test_a_corrupt_video_is_reported_and_the_others_are_labelled(short_scans, model_path, tmp_path):
    db = tmp_path / "bad.duckdb"
    assert run("ingest", "manifest", short_scans / "manifest.csv", "--db", db).exit_code == 0
    good = short_scans / "videos" / "SIM0001.mp4"
    truncated = tmp_path / "truncated.mp4"
    data = (short_scans / "videos" / "SIM0002.mp4").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video " * 100)
    result = run("label", truncated, good, garbage, "--scan-id", "SIM0002", "--scan-id",
                 "SIM0001", "--scan-id", "SIM0003", "--db", db, "--model", model_path,
                 "--no-freezes")
    assert result.exit_code == 1, result.output
    assert "1 labelled, 0 skipped, 2 failed" in result.output
    assert f"Error: scan SIM0002: {truncated}: the file is truncated" in result.output
    assert f"Error: scan SIM0003: {garbage}: not a readable video" in result.output
    with Store(db, read_only=True) as store:
        assert store.query_df("SELECT DISTINCT scan_id FROM window_probs")["scan_id"].tolist() \
            == ["SIM0001"]
        assert store.query_df("SELECT DISTINCT scan_id FROM events")["scan_id"].tolist() \
            == ["SIM0001"]
        assert store.scalar("SELECT count(*) FROM freeze_frames") == 0  # --no-freezes
        assert store.scalar("SELECT status FROM runs") == "finished"


def test_scans_must_be_registered_and_run_names_keep_their_model(short_scans, model_path, clean_db,
                                                                  tmp_path):
    db = tmp_path / "copy.duckdb"
    shutil.copy(clean_db, db)
    video = short_scans / "videos" / "SIM0001.mp4"
    result = run("label", video, "--scan-id", "NOPE", "--db", db, "--model", model_path)
    assert result.exit_code == 1
    assert "scans not in" in result.output and "NOPE" in result.output
    assert "fetal-analytics ingest manifest" in result.output
    other = _tiny_model("fr4", tmp_path / "other.keras")
    name = f"label-{model_path.stem}-"
    with Store(db, read_only=True) as store:
        run_name = store.scalar("SELECT name FROM runs")
    assert run_name.startswith(name)
    result = run("label", video, "--db", db, "--model", other, "--run-name", run_name)
    assert result.exit_code == 1
    assert f"run {run_name!r} (run 1) was labelled with another model" in result.output
    with Store(db, read_only=True) as store:  # the refusal left no trace
        assert store.scalar("SELECT count(*) FROM models") == 1
    _assert_same_contents(db, clean_db)


# A dashboard-like reader: open read-only, read, close, again and again, until told to stop
# (and once more after that); a busy file (the labeller writing) is retried.
READER = r"""
import json, sys, time
from pathlib import Path
from fetal_analytics.store import Store, StoreBusyError
db, stop = Path(sys.argv[1]), Path(sys.argv[2])
reads, busy, seen, stopping = 0, 0, set(), False
while not stopping:
    stopping = stop.exists()
    try:
        store = Store(db, read_only=True)
    except StoreBusyError:
        busy += 1
        stopping = False
        time.sleep(0.02)
        continue
    try:
        seen.add(store.scalar("SELECT count(*) FROM run_scans"))
    finally:
        store.close()
    reads += 1
    if reads == 1:
        print("reading", flush=True)
    time.sleep(0.01)
print(json.dumps({"reads": reads, "busy": busy, "seen": sorted(seen)}), flush=True)
"""


def test_a_reader_opening_the_file_again_and_again_and_label_both_finish(short_scans, model_path,
                                                                         tmp_path):
    db, stop = tmp_path / "shared.duckdb", tmp_path / "stop"
    assert run("ingest", "manifest", short_scans / "manifest.csv", "--db", db).exit_code == 0
    reader = subprocess.Popen([sys.executable, "-c", READER, str(db), str(stop)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "reading"
        result = run("label", short_scans / "videos" / "SIM0001.mp4",
                     short_scans / "videos" / "SIM0002.mp4", "--db", db, "--model", model_path,
                     "--no-freezes")
    finally:
        stop.touch()
        out, err = reader.communicate(timeout=60)
    assert result.exit_code == 0, result.output
    assert "2 labelled, 0 skipped, 0 failed" in result.output
    assert reader.returncode == 0, err
    report = json.loads(out)
    # The reader read before, between and after the two scans' writes.
    assert report["reads"] >= 10 and report["seen"] == [0, 1, 2], report


@pytest.fixture
def hold_file():
    """Start a process that holds a database file open (read-only); returns a function that
    ends it (called at the end of the test at the latest)."""
    holders = []

    def release():
        for holder in holders:
            holder.kill()
            holder.wait()

    def hold(db):
        holder = subprocess.Popen(
            [sys.executable, "-c", "import duckdb, time; "
             f"c = duckdb.connect({str(db)!r}, read_only=True); print('holding', flush=True); "
             "time.sleep(120)"], stdout=subprocess.PIPE, text=True)
        holders.append(holder)
        assert holder.stdout.readline().strip() == "holding"
        return release

    yield hold
    release()


def test_a_run_that_cannot_be_marked_finished_exits_1_naming_the_command_that_finishes_it(
        short_scans, model_path, tmp_path, monkeypatch, caplog, hold_file):
    # A reader opens the file just after the last scan is committed and keeps it open past
    # the labeller's wait: the run stays `running`, which used to end with exit status 0.
    db = tmp_path / "busy.duckdb"
    video = short_scans / "videos" / "SIM0001.mp4"
    assert run("ingest", "manifest", short_scans / "manifest.csv", "--db", db).exit_code == 0
    monkeypatch.setattr(run_writing, "DEFAULT_WRITE_WAIT_S", 0.5)

    releases = []

    class HoldAfterTheCommit(logging.Handler):
        def emit(self, record):
            if record.getMessage().startswith("labelled scan SIM0001"):
                releases.append(hold_file(db))

    logger = logging.getLogger("inference.labelling")
    handler = HoldAfterTheCommit()
    caplog.set_level(logging.INFO, logger=logger.name)
    logger.addHandler(handler)
    try:
        result = run("label", video, "--db", db, "--model", model_path, "--no-freezes")
    finally:
        logger.removeHandler(handler)
    assert result.exit_code == 1, result.output
    name = f"label-{model_path.stem}-"
    assert "run 1 'label-" in result.output and "(auto, running): 1 labelled" in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"Error: run 1 '{name}") and "is left running" in last
    assert f"{db} was in use by another process" in last
    command = last.split("`")[1]
    assert command.startswith(f"fetal-analytics label {video} --scan-id SIM0001 --db {db} "
                              f"--model {model_path} --run-name {name}")
    with Store(db, read_only=True) as store:
        assert store.scalar("SELECT status FROM runs") == "running"
        assert store.scalar("SELECT count(*) FROM events") > 0  # the scan is stored

    releases[0]()
    monkeypatch.undo()
    finished = run(*shlex.split(command)[1:])  # the command the message names finishes it
    assert finished.exit_code == 0, finished.output
    assert "(auto, finished): 0 labelled, 1 skipped, 0 failed" in finished.output


def test_a_second_run_keeps_the_first_runs_freezes(short_scans, model_path, clean_db, tmp_path):
    db = tmp_path / "two-runs.duckdb"
    shutil.copy(clean_db, db)
    with Store(db, read_only=True) as store:
        first = store.query_df("SELECT * FROM freeze_frames ORDER BY scan_id, t_s")
    result = run("label", short_scans / "videos" / "SIM0001.mp4", "--db", db, "--model",
                 model_path, "--run-name", "second")
    assert result.exit_code == 0, result.output
    with Store(db, read_only=True) as store:
        freezes = store.query_df("SELECT * FROM freeze_frames ORDER BY scan_id, t_s")
        counts = {ref: scan_features(store, select(store, source="auto", run=ref))
                  .set_index("scan_id")["n_freezes"].to_dict() for ref in ("1", "second")}
        newest = scan_features(store, select(store, source="auto"))
    # Run 1's freezes are all still there, and run 2 has its own of SIM0001 (the same video).
    pd.testing.assert_frame_equal(freezes[freezes["run_id"] == 1].reset_index(drop=True), first)
    second = freezes[freezes["run_id"] == 2].reset_index(drop=True)
    assert len(second) > 0 and set(second["scan_id"]) == {"SIM0001"}
    pd.testing.assert_frame_equal(second.drop(columns="run_id"),
                                  first[first["scan_id"] == "SIM0001"].drop(columns="run_id"))
    per_scan = first.groupby("scan_id").size().to_dict()
    assert counts["1"] == per_scan and counts["second"] == {"SIM0001": per_scan["SIM0001"]}
    assert newest.set_index("scan_id")["n_freezes"].to_dict() == per_scan  # never both runs'


def test_progress_goes_to_a_callback(short_scans, model_path, clean_db, tmp_path):
    db = tmp_path / "progress.duckdb"
    shutil.copy(clean_db, db)
    reports = []
    videos = [labelling.ScanVideo(s, short_scans / "videos" / f"{s}.mp4")
              for s in ("SIM0001", "SIM0003")]
    result = labelling.label_scans(db, videos, model=model_path, run_name="progress",
                                   freezes=None, progress=reports.append)
    assert [o.status for o in result.outcomes] == ["labelled", "labelled"]
    assert [(r.scan_id, r.status) for r in reports if r.status != "labelling"] == [
        ("SIM0001", "labelled"), ("SIM0003", "labelled")]
    first, last = reports[0], reports[-1]
    assert (first.scan_id, first.scan_done_s, first.done_s) == ("SIM0001", 0.0, 0.0)
    assert first.total_s == pytest.approx(60.0) and first.scan_total_s == pytest.approx(30.0)
    assert last.done_s == last.total_s == pytest.approx(60.0)
    assert len(reports) > 4  # one per batch of windows besides the start and the end
    done = [r.done_s for r in reports]
    assert done == sorted(done)


def test_a_missing_demo_model_names_its_path_and_the_command_that_makes_it(
        short_scans, tmp_path, monkeypatch):
    missing = tmp_path / "data" / "demo_model.keras"
    monkeypatch.setattr(labelling, "DEMO_MODEL", missing)
    result = run("label", "--manifest", short_scans / "manifest.csv", "--db", tmp_path / "x.duckdb")
    assert result.exit_code == 1
    assert str(missing) in result.output and labelling.DEMO_MODEL_COMMAND in result.output


def test_videos_or_a_manifest_are_required(tmp_path):
    result = run("label", "--db", tmp_path / "x.duckdb")
    assert result.exit_code == 2 and "give the VIDEOs to label" in result.output
    result = run("label", "a.mp4", "b.mp4", "--scan-id", "S1", "--db", tmp_path / "x.duckdb")
    assert result.exit_code == 2 and "one --scan-id per video" in result.output


def test_ctrl_c_keeps_the_finished_scans_prints_the_resume_command_and_exits_130(
        short_scans, model_path, clean_db, tmp_path):
    db = tmp_path / "interrupted.duckdb"
    process = _label_cli(short_scans, db, model_path)
    watchdog = threading.Timer(300, process.kill)
    watchdog.start()
    try:
        lines = []
        for line in process.stderr:
            lines.append(line)
            if "labelled scan" in line:
                process.send_signal(signal.SIGINT)
                break
        lines.extend(process.stderr)
        process.wait(timeout=60)
    finally:
        watchdog.cancel()
    output = "".join(lines)
    assert process.returncode == 130, output
    assert "Traceback" not in output
    last = output.strip().splitlines()[-1]
    # The interrupt lands during the second scan, or, on a loaded machine, as late as the third.
    kept = int(re.search(r"keeps the (\d+) scans", last).group(1))
    assert last.startswith("interrupted: run 1 'label-two_streams-") and kept in (1, 2)
    command = last.split("`")[1]
    assert command.startswith(f"fetal-analytics label --manifest {short_scans / 'manifest.csv'} "
                              f"--db {db} --model {model_path} --run-name label-two_streams-")
    with Store(db, read_only=True) as store:
        assert store.scalar("SELECT status FROM runs") == "failed"
        assert store.scalar("SELECT count(DISTINCT scan_id) FROM events") == kept
    resumed = run(*shlex.split(command)[1:])
    assert resumed.exit_code == 0, resumed.output
    assert f"(auto, finished): {3 - kept} labelled, {kept} skipped, 0 failed" in resumed.output
    _assert_same_contents(db, clean_db)


def test_a_rerun_that_skips_every_scan_leaves_the_file_untouched(short_scans, model_path,
                                                                  clean_db, tmp_path):
    db = tmp_path / "again.duckdb"
    shutil.copy(clean_db, db)
    before = (db.read_bytes(), db.stat().st_mtime_ns)
    again = run("label", "--manifest", short_scans / "manifest.csv", "--db", db, "--model",
                model_path)
    assert again.exit_code == 0, again.output
    assert "(auto, finished): 0 labelled, 3 skipped, 0 failed" in again.output
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before
    assert not db.with_name(db.name + ".wal").exists()


def test_label_replace_corrects_the_manifest_and_a_refused_one_leaves_no_new_file(
        short_scans, model_path, clean_db, tmp_path):
    manifest = tmp_path / "manifest.csv"
    rows = (short_scans / "manifest.csv").read_text().splitlines()
    header = rows[0].split(",")
    first = rows[1].split(",")
    first[header.index("video_path")] = str(short_scans / "videos" / "SIM0001.mp4")
    first[header.index("acquired_at")] = "2025-01-02T10:00"
    manifest.write_text("\n".join([rows[0], ",".join(first)]) + "\n")
    db = tmp_path / "corrected.duckdb"
    shutil.copy(clean_db, db)
    refused = run("label", "--manifest", manifest, "--db", db, "--model", model_path)
    assert refused.exit_code == 1 and "pass --replace" in refused.output
    done = run("label", "--manifest", manifest, "--db", db, "--model", model_path, "--replace")
    assert done.exit_code == 0, done.output
    assert "0 labelled, 1 skipped" in done.output  # the same video: its labels are kept
    with Store(db, read_only=True) as store:
        assert str(store.scalar("SELECT acquired_at FROM scans WHERE scan_id = 'SIM0001'")) == (
            "2025-01-02 10:00:00")

    new_db = tmp_path / "new" / "fresh.duckdb"
    new_db.parent.mkdir()
    manifest.write_text("scan_id,operator_id\nS1,A\n")  # no group column
    refused = run("label", "--manifest", manifest, "--db", new_db, "--model", model_path)
    assert refused.exit_code == 1 and "group" in refused.output
    assert list(new_db.parent.iterdir()) == []


def test_without_tesseract_labelling_finds_freezes_by_stillness_with_one_warning(
        short_scans, model_path, clean_db, tmp_path, monkeypatch, caplog):
    """A machine where Tesseract was never installed: even a preset that reads its indicator by
    OCR labels every scan, with the same freezes as stillness alone and one warning."""
    from inference.screen_text import warn_tesseract_missing

    db = tmp_path / "no-tesseract.duckdb"
    shutil.copy(clean_db, db)
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing named tesseract on it
    warn_tesseract_missing.cache_clear()
    with caplog.at_level(logging.WARNING):
        result = run("label", *(short_scans / "videos" / f"SIM000{i}.mp4" for i in (1, 2)),
                     "--db", db, "--model", model_path, "--run-name", "no-ocr",
                     "--freeze-preset", "voluson")
    assert result.exit_code == 0, result.output
    assert "2 labelled, 0 skipped, 0 failed" in result.output
    lost = [r.getMessage() for r in caplog.records if "tesseract" in r.getMessage()]
    assert len(lost) == 1 and "freezes are found by stillness alone" in lost[0]
    with Store(db, read_only=True) as store:
        freezes = store.query_df("SELECT run_id, scan_id, t_s FROM freeze_frames "
                                 "ORDER BY scan_id, t_s")
    by_run = {run_id: rows.drop(columns="run_id").reset_index(drop=True)
              for run_id, rows in freezes.groupby("run_id")}
    assert len(by_run[2]) > 0
    default = by_run[1][by_run[1]["scan_id"].isin(["SIM0001", "SIM0002"])]
    pd.testing.assert_frame_equal(by_run[2], default.reset_index(drop=True))
