"""Ingestion on simulated scans: freezes against the truth, image area, datasets for Keras."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from fetal_analytics.cli import main
from fetal_analytics.synth import simulate_cohort, write_cohort
from fetal_analytics.synth.render import image_area
from inference.dataset import DatasetSpec, build_dataset
from inference.decode import sample_frames
from inference.freeze import FreezeConfig, detect_freezes
from inference.pipeline import class_weights, clip_batches, load_metadata
from inference.presets import load_indicator_preset
from inference.roi import ImageArea, detect_image_area_from_frames

SIZE = (320, 240)
FPS = 30


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Three one-minute scans by three operators (a subject-wise split needs three)."""
    out = tmp_path_factory.mktemp("sim") / "cohort"
    write_cohort(simulate_cohort(scans=3, operators=3, minutes=1, seed=4), out, size=SIZE,
                 seed=4)
    return out


@pytest.mark.parametrize("preset", [None, "voluson"])
def test_freezes_are_found_with_their_boundaries(cohort, preset):
    """By stillness alone (the default) and confirmed by the simulator's indicator (OCR)."""
    indicator = load_indicator_preset(preset) if preset else None
    truth = pd.read_csv(cohort / "truth" / "freezes.csv")
    found_total, matched = 0, 0
    for scan_id, spans in truth.groupby("scan_id"):
        result = detect_freezes(cohort / "videos" / f"{scan_id}.mp4",
                                config=FreezeConfig(indicator=indicator))
        found = [(s.start_frame, s.end_frame) for s in result.spans]
        found_total += len(found)
        expected = [(int(np.ceil(a * FPS)), int(np.ceil(b * FPS)))
                    for a, b in zip(spans.start_s, spans.end_s, strict=True)]
        for start, end in expected:
            matched += any(abs(f[0] - start) <= 2 and abs(f[1] - end) <= 2 for f in found)
    assert len(truth) >= 10
    assert matched / len(truth) >= 0.95  # recall, boundaries within 2 frames
    assert matched / found_total >= 0.95  # precision


def test_the_image_area_of_a_video_matches_the_screen_layout(cohort):
    top, bottom, left, right = image_area(SIZE)
    truth = ImageArea(left, top, right, bottom)
    detected = detect_image_area_from_frames(sample_frames(cohort / "videos" / "SIM0001.mp4"))
    assert detected.iou(truth) >= 0.8


def test_freeze_and_roi_commands(cohort):
    video = cohort / "videos" / "SIM0002.mp4"
    runner = CliRunner()
    spans = json.loads(runner.invoke(main, ["freeze", str(video), "--format", "json"]).stdout)
    truth = pd.read_csv(cohort / "truth" / "freezes.csv").query("scan_id == 'SIM0002'")
    assert len(spans) == len(truth)
    assert spans[0]["start_s"] == pytest.approx(truth.start_s.iloc[0], abs=2.5 / FPS)
    box = json.loads(runner.invoke(main, ["roi", str(video), "--format", "json"]).stdout)
    assert set(box) == {"x0", "y0", "x1", "y1"} and box["x1"] <= SIZE[0]


@pytest.fixture(scope="module")
def dataset(cohort, tmp_path_factory):
    spec = DatasetSpec(size=32, streams=("fr4", "2d"), split_fractions=(0.34, 0.33, 0.33),
                       shard_size=40)
    return build_dataset(cohort / "manifest.csv", cohort / "manual_labels.csv",
                         tmp_path_factory.mktemp("ds") / "ds", spec=spec)


def test_the_dataset_splits_by_operator_and_counts_its_clips(dataset, cohort):
    manifest = pd.read_csv(cohort / "manifest.csv").set_index("scan_id")
    splits = dataset.splits
    operators = [set(splits[s]["operators"]) for s in ("train", "val", "test")]
    assert all(len(o) == 1 for o in operators) and len(set.union(*operators)) == 3
    for split in ("train", "val", "test"):
        assert {manifest.loc[s, "operator_id"] for s in splits[split]["scans"]} <= set(
            splits[split]["operators"])
    metadata = load_metadata(dataset.out)
    assert metadata["streams"] == {"fr4": pytest.approx(2 / 15), "2d": None}
    assert metadata["counts"] == dataset.counts
    labels = pd.read_csv(cohort / "manual_labels.csv")
    kept = labels[labels.label.isin(metadata["classes"])]
    train_scan = splits["train"]["scans"][0]
    n_spans = (kept.scan_id == train_scan).sum()
    n_2d = sum(dataset.counts["train"]["2d"].values())
    assert n_2d == 10 * n_spans  # ten frames per labelled span


def test_shards_stream_as_standardised_batches(dataset):
    batches = list(clip_batches(dataset.out, "train", "fr4", batch_size=8, augment=True))
    x, _ = batches[0]
    assert x.shape == (8, 12, 32, 32, 1) and x.dtype == np.float32
    assert np.allclose(x.mean(axis=(1, 2, 3, 4)), 0, atol=1e-4)
    n = sum(len(b[1]) for b in batches)
    assert n == sum(dataset.counts["train"]["fr4"].values())
    again = list(clip_batches(dataset.out, "train", "fr4", batch_size=8, augment=True))
    assert np.array_equal(batches[0][1], again[0][1])  # a seed and epoch fix the order
    weights = class_weights(dataset.out, "fr4")
    counts = dataset.counts["train"]["fr4"]
    rarest = min(counts, key=counts.get)
    assert max(weights.values()) == pytest.approx(
        weights[load_metadata(dataset.out)["classes"].index(rarest)])


def test_the_dataset_command_reports_clips_per_class(cohort, tmp_path):
    result = CliRunner().invoke(main, [
        "dataset", "build", "--manifest", str(cohort / "manifest.csv"), "--labels",
        str(cohort / "manual_labels.csv"), "--out", str(tmp_path / "ds"), "--size", "24",
        "--streams", "fr8"])
    assert result.exit_code == 0, result.output
    assert "clips per class" in result.stdout and (tmp_path / "ds" / "dataset.json").exists()
    bad = CliRunner().invoke(main, [
        "dataset", "build", "--manifest", str(cohort / "manifest.csv"), "--labels",
        str(cohort / "manual_labels.csv"), "--out", str(tmp_path / "x"), "--streams", "fr3"])
    assert bad.exit_code == 2 and "unknown stream 'fr3'" in bad.output


def _keys(folder, stream):
    keys = []
    for shard in sorted(folder.glob(f"*/{stream}/shard-*.npz")):
        with np.load(shard) as data:
            keys += [(str(sc), round(float(t), 3), int(y))
                     for sc, t, y in zip(data["scan_id"], data["t_s"], data["y"], strict=True)]
    return sorted(keys)


def test_every_stream_holds_the_same_instances(dataset):
    # Late fusion pairs the streams' clips by scan and centre time: they must be the same set.
    assert _keys(dataset.out, "fr4") == _keys(dataset.out, "2d")
    assert load_metadata(dataset.out)["aligned"] is True


def test_dense_timelines_keep_unlisted_labels_as_background(cohort, tmp_path):
    out = tmp_path / "dense"
    result = CliRunner().invoke(main, [
        "dataset", "build", "--manifest", str(cohort / "manifest.csv"), "--labels",
        str(cohort / "truth" / "events.csv"), "--out", str(out), "--size", "24",
        "--streams", "2d", "--others-as", "Bk", "--clips-per-span", "3"])
    assert result.exit_code == 0, result.output
    metadata = load_metadata(out)
    truth = pd.read_csv(cohort / "truth" / "events.csv")
    unlisted = ~truth.label.isin(metadata["classes"])
    assert unlisted.any() and metadata["dropped_labels"] == {}
    # At most three centres per true segment, and every segment (unlisted ones as Bk) has one.
    n = sum(sum(c["2d"].values()) for c in metadata["counts"].values())
    assert len(truth) <= n <= 3 * len(truth)
    bk = sum(c["2d"].get("Bk", 0) for c in metadata["counts"].values())
    assert bk >= ((truth.label == "Bk") | unlisted).sum()
    bad = CliRunner().invoke(main, [
        "dataset", "build", "--manifest", str(cohort / "manifest.csv"), "--labels",
        str(cohort / "truth" / "events.csv"), "--out", str(tmp_path / "x"), "--others-as", "Xx"])
    assert bad.exit_code == 2 and "others_as 'Xx'" in bad.output


def test_keras_fits_from_the_shards(dataset):
    keras = pytest.importorskip("keras")
    from inference.pipeline import keras_sequence

    sequence = keras_sequence(dataset.out, "train", "2d", batch_size=16)
    n = sum(dataset.counts["train"]["2d"].values())
    assert len(sequence) == -(-n // 16)
    x, y = sequence[0]
    assert x.shape == (16, 32, 32, 1) and y.shape == (16,)
    model = keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(len(load_metadata(dataset.out)["classes"]),
                                                 activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    history = model.fit(sequence, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()


def test_a_deidentified_copy_keeps_only_the_image_area(cohort, tmp_path):
    from inference.decode import iter_frames

    source = cohort / "videos" / "SIM0003.mp4"
    out = tmp_path / "clean.mp4"
    result = CliRunner().invoke(main, ["deidentify", str(source), "--out", str(out)])
    assert result.exit_code == 0, result.output
    box = json.loads(CliRunner().invoke(main, ["roi", str(source), "--format", "json"]).stdout)
    original = list(iter_frames(source))
    copy = list(iter_frames(out))
    assert len(copy) == len(original)
    # Outside the box (4 px away from its edge, where the codec rings): the screen text was
    # bright before and is black (luma 16) now.
    outside = np.ones(original[0].image.shape, bool)
    outside[box["y0"] - 4:box["y1"] + 4, box["x0"] - 4:box["x1"] + 4] = False
    for before, after in zip(original[::300], copy[::300], strict=True):
        assert before.image[outside].max() > 100
        assert after.image[outside].max() <= 20
        inside = (slice(box["y0"] + 4, box["y1"] - 4), slice(box["x0"] + 4, box["x1"] - 4))
        # re-encoding speckle loses a little: a few grey levels on average
        assert abs(after.image[inside].astype(int) - before.image[inside]).mean() < 5


def _shard_clips(folder):
    """(scan_id, class index) of every clip in a dataset's shards, per (split, stream)."""
    found = {}
    for shard in sorted(folder.rglob("shard-*.npz")):
        split, stream = shard.parent.parent.name, shard.parent.name
        with np.load(shard) as data:
            found.setdefault((split, stream), []).extend(
                zip(data["scan_id"].tolist(), data["y"].tolist(), strict=True))
    return found


def test_a_scan_whose_video_fails_part_way_leaves_no_clips_behind(cohort, dataset, tmp_path):
    # Regression: `dataset build` kept the clips it had cut from a scan before its video failed,
    # in the shards and in the counts, and then reported the scan as skipped.
    manifest = pd.read_csv(cohort / "manifest.csv")
    manifest["video_path"] = [str(cohort / v) for v in manifest.video_path]
    broken = manifest.scan_id.iloc[1]
    whole = cohort / "videos" / f"{broken}.mp4"
    cut = tmp_path / f"{broken}-cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])
    manifest.loc[manifest.scan_id == broken, "video_path"] = str(cut)
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    spec = DatasetSpec(size=32, streams=("fr4", "2d"), split_fractions=(0.34, 0.33, 0.33),
                       shard_size=4)  # small shards: some are written while the scan is read
    summary = build_dataset(tmp_path / "manifest.csv", cohort / "manual_labels.csv",
                            tmp_path / "ds", spec=spec)
    assert "the file is truncated" in summary.skipped_scans[broken]
    assert all(broken not in members["scans"] for members in summary.splits.values())
    clips = _shard_clips(tmp_path / "ds")
    assert broken not in {scan for found in clips.values() for scan, _ in found}
    classes = load_metadata(tmp_path / "ds")["classes"]
    for split, by_stream in summary.counts.items():
        for stream, counts in by_stream.items():
            in_shards = pd.Series([classes[y] for _, y in clips.get((split, stream), [])])
            assert counts == in_shards.value_counts().to_dict()
            # The other scans give the clips they give when every video is whole.
            assert counts == (dataset.counts[split][stream] if summary.splits[split]["scans"]
                              else {})
    assert load_metadata(tmp_path / "ds")["counts"] == summary.counts


def test_others_as_gives_labels_outside_the_classes_the_code(cohort, tmp_path):
    labels = pd.read_csv(cohort / "manual_labels.csv")
    classes = ("HeD", "Br", "Bk")
    other = labels[~labels.label.isin(classes)]
    assert len(other) and (labels.label == "Bk").any()
    spec = DatasetSpec(size=24, streams=("2d",), classes=classes, others_as="Bk",
                       split_fractions=(0.34, 0.33, 0.33))
    summary = build_dataset(cohort / "manifest.csv", cohort / "manual_labels.csv",
                            tmp_path / "ds", spec=spec)
    assert summary.relabelled_labels == other.label.value_counts().sort_index().to_dict()
    assert summary.dropped_labels == {}
    # Each span gives the frames it gives when its class is kept, now all under Bk.
    every_class = DatasetSpec(size=24, streams=("2d",), classes=tuple(sorted(set(labels.label))),
                              split_fractions=(0.34, 0.33, 0.33))
    kept = build_dataset(cohort / "manifest.csv", cohort / "manual_labels.csv",
                         tmp_path / "all", spec=every_class)
    for split, by_stream in summary.counts.items():
        own = kept.counts[split]["2d"]
        assert by_stream["2d"] == {
            **{code: own[code] for code in ("HeD", "Br") if code in own},
            "Bk": sum(n for code, n in own.items() if code not in ("HeD", "Br"))}
    assert load_metadata(tmp_path / "ds")["relabelled_labels"] == summary.relabelled_labels


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_rare_as_gives_labels_outside_the_classes_classes_of_their_own(cohort, tmp_path):
    from fetal_analytics import taxonomy
    from inference.evaluation import evaluate
    from inference.model_file import read_model_info
    from inference.training import train

    labels = pd.read_csv(cohort / "manual_labels.csv")
    classes = ("HeD", "Br", "Bk")
    rare = tuple(c for c in taxonomy.codes() if c in set(labels.label) and c not in classes)
    assert rare
    spec = DatasetSpec(size=24, streams=("2d",), classes=classes, rare_as="Bk",
                       split_fractions=(0.34, 0.33, 0.33))
    summary = build_dataset(cohort / "manifest.csv", cohort / "manual_labels.csv",
                            tmp_path / "ds", spec=spec)
    metadata = load_metadata(tmp_path / "ds")
    assert summary.classes == classes + rare == tuple(metadata["classes"])
    assert metadata["codes"] == [*classes, *["Bk"] * len(rare)]
    assert summary.dropped_labels == {} and summary.relabelled_labels == {}
    # Every span gives the frames it gives when every class is kept, under its own class.
    every_class = DatasetSpec(size=24, streams=("2d",), classes=tuple(sorted(set(labels.label))),
                              split_fractions=(0.34, 0.33, 0.33))
    kept = build_dataset(cohort / "manifest.csv", cohort / "manual_labels.csv",
                         tmp_path / "all", spec=every_class)
    for split, by_stream in summary.counts.items():
        assert by_stream["2d"] == kept.counts[split]["2d"]
    # A model trained on it has a class per dataset class and outputs the three codes only.
    result = train(tmp_path / "ds", "sononet", stream="2d", epochs=1, width=4, progress=0,
                   out=tmp_path / "model")
    info = read_model_info(result.model_path)
    assert info.classes == classes + rare and info.output_codes == classes
    with warnings.catch_warnings():  # a tiny split may lack a code (undefined precision)
        warnings.simplefilter("ignore", RuntimeWarning)
        scored = evaluate(result.model_path, tmp_path / "ds")
    assert scored.classes == classes
    test_counts = summary.counts["test"]["2d"]
    expected = [test_counts.get(c, 0) for c in classes[:2]]
    expected.append(sum(test_counts.get(c, 0) for c in ("Bk", *rare)))
    assert np.bincount(scored.labels, minlength=3).tolist() == expected
    assert np.allclose(scored.probabilities.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="not both"):
        DatasetSpec(classes=classes, others_as="Bk", rare_as="Bk")


def test_labels_in_frames_take_the_fps_of_the_manifest(cohort, tmp_path):
    # Regression: `dataset build` ignored the manifest's fps, so labels in frames were refused.
    labels = pd.read_csv(cohort / "manual_labels.csv")
    fps = pd.read_csv(cohort / "manifest.csv").set_index("scan_id")["fps"]
    in_frames = labels.assign(
        start_frame=(labels.start_s * labels.scan_id.map(fps)).round().astype(int),
        end_frame=(labels.end_s * labels.scan_id.map(fps)).round().astype(int),
    ).drop(columns=["start_s", "end_s"])
    in_frames.to_csv(tmp_path / "frames.csv", index=False)
    spec = DatasetSpec(size=24, streams=("2d",), split_fractions=(0.34, 0.33, 0.33))
    from_frames = build_dataset(cohort / "manifest.csv", tmp_path / "frames.csv",
                                tmp_path / "frames", spec=spec)
    from_seconds = build_dataset(cohort / "manifest.csv", cohort / "manual_labels.csv",
                                 tmp_path / "seconds", spec=spec)
    assert from_frames.counts == from_seconds.counts
    assert sum(sum(c.values()) for c in from_frames.counts["train"].values()) > 0
