"""`inference.benchmark` and `fetal-analytics benchmark-models`, end to end on a tiny dataset.

3 one-minute simulated scans (one per split), 32 px frames, the four streams; SonoNet,
Feat2D-2DtCNN and Sono-2DtCNN of width 2, one epoch on at most 48 clips; table 3 with FR/4 only
(the 2D and FR/4 streams and their fusion).
The CLI run reuses the library run's folder for the 2D SonoNet, so nothing is retrained. The
findings' logic is checked on hand-made rows. A second tiny dataset (another simulated cohort,
3 one-minute scans, the 2D and FR/4 streams) is the held-out test data of `test_dataset`: the
library run's models are tested on it without retraining.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from fetal_analytics.cli import main
from fetal_analytics.markdown import MarkdownError, write_section
from inference.benchmark import (
    ARCH_ORDER,
    MARKER_END,
    MARKER_START,
    PAPER_TABLE2,
    PAPER_TABLE3,
    BenchmarkConfig,
    BenchmarkError,
    BenchmarkRow,
    compute_findings,
    dynamic_confusion,
    markdown,
    run_benchmark,
)
from inference.evaluation import classification_metrics, evaluate, fuse
from inference.model_file import load_model
from inference.models import ARCHITECTURES, build, count_params

pytestmark = pytest.mark.filterwarnings(  # raised inside Keras fit by TensorFlow 2.21
    "ignore:__array__ implementation:DeprecationWarning")

NPZ = Path(__file__).resolve().parents[3] / "shared" / "data" / "sononet" / "SonoNet16.npz"
ARCHS = ("sononet", "feat2d_2dtcnn", "sono_2dtcnn")
TINY = {"archs": ARCHS, "epochs": 1, "width": 2, "max_clips": 48, "streams": ("fr4",)}


@pytest.fixture(scope="module")
def dataset(tiny_clip_dataset):
    return tiny_clip_dataset(seed=4, streams=("fr2", "fr4", "fr8", "2d"))


@pytest.fixture(scope="module")
def heldout(tiny_clip_dataset):
    """A dataset of another cohort (seed 5: its scans reuse the ids SIM0001-SIM0003); 3 scans,
    as a subject-wise split needs 3 operators."""
    return tiny_clip_dataset(seed=5, streams=("fr4", "2d"))


@pytest.fixture(scope="module")
def bench(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    return run_benchmark(dataset, out, config=BenchmarkConfig(**TINY),
                         sononet_npz=NPZ if NPZ.is_file() else None)


def _test_keys(dataset, stream):
    keys = []
    for shard in sorted((dataset / "test" / stream).glob("shard-*.npz")):
        with np.load(shard) as data:
            keys += [(str(s), round(float(t) * 1000)) for s, t in zip(data["scan_id"],
                                                                    data["t_s"], strict=True)]
    return keys


# --- the tables -------------------------------------------------------------------------------

def test_the_tables_have_the_papers_structure(bench):
    assert [r.key for r in bench.table2] == ["sononet_pt-2d", "sononet-2d",
                                             "feat2d_2dtcnn-fr4", "sono_2dtcnn-fr4"]
    for row in bench.table2:
        assert row.paper == PAPER_TABLE2[row.key.split("-")[0]]
        assert row.name == row.paper.name
    assert [r.key for r in bench.table3] == ["2d", "fr4", "2d+fr4"]
    assert bench.row("fr4").paper == PAPER_TABLE3["fr4",]
    assert bench.row("2d+fr4").paper is None
    assert {r.n for r in bench.table3} == {bench.n_common} and bench.n_common > 0
    for row in [*bench.table2[1:], *bench.table3]:
        for value in (row.precision, row.recall, row.f1, row.top1, row.top3):
            assert 0.0 <= value <= 1.0
        assert row.top1 <= row.top3
    trained = bench.table2[1:]
    assert all(r.train_s > 0 and r.epochs_run == 1 and r.width == 2 for r in trained)
    assert set(ARCH_ORDER) == set(ARCHITECTURES)
    assert (bench.out / "results.json").is_file()
    assert set(bench.confusion_pngs) == {"sononet-2d", "sono_2dtcnn-fr4"}
    assert all(p.is_file() for p in bench.confusion_pngs.values())


@pytest.mark.skipif(not NPZ.is_file(), reason="the published SonoNet weights are not here")
def test_the_published_sononet_row_keeps_only_the_classes_it_names(bench, dataset):
    row = bench.row("sononet_pt-2d")
    assert row.params is None and row.paper.params is None and row.width == 16
    assert "3Dm" not in list(row.confusion.index) and "MaD" not in list(row.confusion.index)
    meta = json.loads((dataset / "dataset.json").read_text())
    n_3dm_mad = sum(meta["counts"]["test"]["2d"].get(c, 0) for c in ("3Dm", "MaD"))
    assert row.n == sum(meta["counts"]["test"]["2d"].values()) - n_3dm_mad


def test_parameter_counts_are_those_of_the_built_models(bench, dataset):
    classes = json.loads((dataset / "dataset.json").read_text())["classes"]
    for row in bench.table2[1:]:
        model = build(row.arch, preset="cpu", input_shape=(32, 32, 1), frames=12,
                      classes=len(classes), width=2)
        counts = count_params(model)
        assert (row.params, row.params_total) == (counts["trainable"], counts["total"]), row.key
    feat = bench.row("feat2d_2dtcnn-fr4")
    assert feat.params < feat.params_total  # the frozen trunk is not trainable


def test_temporal_models_start_from_the_trained_2d_sononet(bench):
    sononet = load_model(bench.row("sononet-2d").model_path).model
    feat = load_model(bench.row("feat2d_2dtcnn-fr4").model_path)
    encoder = feat.model.get_layer("frame_features").layer
    # Frozen: still the 2D SonoNet's weights after training.
    for name in ("block1_conv1", "block5_conv3", "adapt_bn1"):
        for w, v in zip(encoder.get_layer(name).get_weights(),
                        sononet.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(w, v)
    assert feat.sidecar["training"]["init_from"] == str(bench.row("sononet-2d").model_path)
    assert bench.row("fr4").init.startswith("inflate: ")
    assert bench.row("sononet-2d").init == "random"


# --- findings and fusion, recomputed ------------------------------------------------------------

def test_the_findings_follow_from_the_metrics(bench):
    findings = {f.key: f for f in bench.findings}
    two_d, clip = bench.row("sononet-2d"), bench.row("sono_2dtcnn-fr4")
    assert findings["sono_2dtcnn_beats_2d"].holds == (clip.f1 > two_d.f1
                                                      and clip.top1 > two_d.top1)
    # Finding 2 by hand: row-normalised confusion between {Ab, Ki} and HeD, both ways.
    def shares(confusion):
        c = confusion.to_numpy().astype(float)
        names = list(confusion.index)
        out = {}
        for a, b in (("Ab", "HeD"), ("HeD", "Ab"), ("Ki", "HeD"), ("HeD", "Ki")):
            i, j = names.index(a), names.index(b)
            out[f"{a}->{b}"] = c[i, j] / c[i].sum() if c[i].sum() else math.nan
        return out

    s2, s3 = shares(two_d.confusion), shares(clip.confusion)
    assert dynamic_confusion(two_d.confusion)[1] == pytest.approx(s2, nan_ok=True)
    both = [k for k in s2 if not (math.isnan(s2[k]) or math.isnan(s3[k]))]
    dynamic = findings["dynamic_classes"]
    if both:
        assert dynamic.holds == (np.mean([s3[k] for k in both]) < np.mean([s2[k] for k in both]))
    else:
        assert dynamic.holds is None
    assert findings["fusion_top3"].holds is None  # no FR/2 stream here


def _row(key, f1=0.5, top1=0.5, top3=0.8, confusion=None):
    return BenchmarkRow(key=key, name=key, arch=None, streams=tuple(key.split("+")), f1=f1,
                        top1=top1, top3=top3, n=2000, confusion=confusion)


def test_the_findings_on_hand_made_rows():
    classes = ["HeD", "Ab", "Ki", "Bk"]
    # 2D: Ab -> HeD 2 of 4, Ki -> HeD 1 of 2, HeD -> Ab 1 of 5, HeD -> Ki 0: mean 0.3.
    c2 = pd.DataFrame([[4, 1, 0, 0], [2, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 3]], classes, classes)
    # 2D+t: Ab -> HeD 1 of 4, Ki -> HeD 0 of 2, HeD -> Ab 0, HeD -> Ki 1 of 5: mean 0.1125.
    c3 = pd.DataFrame([[4, 0, 1, 0], [1, 3, 0, 0], [0, 0, 2, 0], [0, 0, 0, 3]], classes, classes)
    assert dynamic_confusion(c2)[0] == pytest.approx((0.5 + 0.5 + 0.2 + 0) / 4)
    assert dynamic_confusion(c3)[0] == pytest.approx((0.25 + 0 + 0 + 0.2) / 4)
    table2 = [_row("sononet-2d", f1=0.56, top1=0.69, confusion=c2),
              _row("sono_2dtcnn-fr4", f1=0.66, top1=0.68, confusion=c3)]
    table3 = [_row("fr2", top3=0.89), _row("fr4", top3=0.93), _row("fr8", top3=0.92),
              _row("fr2+fr4+fr8", top3=0.93)]
    found = {f.key: f for f in compute_findings(table2, table3)}
    assert found["sono_2dtcnn_beats_2d"].holds is False  # F1 higher, top-1 lower
    assert found["sono_2dtcnn_beats_2d"].detail == (
        "macro F1 0.660 vs 0.560, top-1 0.680 vs 0.690 (Sono-2DtCNN vs 2D SonoNet)")
    assert found["dynamic_classes"].holds is True
    assert found["dynamic_classes"].values["mean_2d"] == pytest.approx(0.3)
    assert found["fusion_top3"].holds is True  # ties count: "at least as good"
    assert found["fusion_top3"].values["best_single"] == "fr4"
    assert found["fusion_top3"].detail == (
        "top-3 0.9300 fused vs 0.9300 at FR/4 (the best single stream): 140 vs 140 of 2000 "
        "instances without the true class in the top 3")
    # A class without test instances leaves its shares out of both means.
    no_ki = c2.copy()
    no_ki.loc["Ki"] = 0
    shares = dynamic_confusion(no_ki)[1]
    assert math.isnan(shares["Ki->HeD"]) and shares["HeD->Ki"] == 0
    assert compute_findings([], [])[0].holds is None


def test_fusion_rows_are_the_mean_of_the_streams_probabilities(bench, dataset):
    outputs = {}
    for stream in ("2d", "fr4"):
        with pytest.warns(RuntimeWarning):  # the tiny test split lacks most classes
            e = evaluate(bench.row(stream).model_path, dataset, stream=stream)
        keys = _test_keys(dataset, stream)
        outputs[stream] = {k: (p, y) for k, p, y in zip(keys, e.probabilities, e.labels,
                                                        strict=True)}
    common = sorted(set(outputs["2d"]) & set(outputs["fr4"]))
    assert len(common) == bench.n_common == len(outputs["fr4"])  # aligned: the same instances
    probs = fuse([np.array([outputs[s][k][0] for k in common]) for s in ("2d", "fr4")])
    labels = np.array([outputs["fr4"][k][1] for k in common])
    classes = json.loads((dataset / "dataset.json").read_text())["classes"]
    with pytest.warns(RuntimeWarning):
        m = classification_metrics(labels, probs, classes)
    row = bench.row("2d+fr4")
    assert (row.precision, row.recall, row.f1, row.top1, row.top3) == pytest.approx(
        (m.precision, m.recall, m.f1, m.top1, m.top3))
    assert row.n == m.n
    keras.backend.clear_session()


# --- markdown ---------------------------------------------------------------------------------

def test_the_markdown_section_is_replaced_between_its_markers(bench, tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    before, after = "# Benchmarks\n\nOther figures.\n", "\n## Later section\n\nKept as is.\n"
    path.write_text(before)
    section = markdown(bench, relative_to=tmp_path)
    write_section(path, section)
    first = path.read_text()
    assert first.startswith(before) and first.count(MARKER_START) == 1
    path.write_text(first + after)
    write_section(path, section.replace("Table 2", "Table two"))
    text = path.read_text()
    assert text.count(MARKER_START) == 1 and text.count(MARKER_END) == 1
    assert text.startswith(before) and text.endswith(after)
    assert "Table two" in text and "Table 2:" not in text
    write_section(path, section.replace("Table 2", "Table two"))
    assert path.read_text() == text
    assert "| Sono-2DtCNN | FR/4 |" in text and "| 0.73 |" in text  # ours beside the paper's
    assert bench.dataset_summary["others_as"] is None
    assert "11 classes (events of other classes left out, as in the paper)" in text
    confusion = next(r for r in bench.table2 if r.key == "sononet-2d").confusion
    true = confusion.index[0]
    assert (f"| {true} | " + " | ".join(str(int(v)) for v in confusion.loc[true]) + " |") in text
    for png in bench.confusion_pngs.values():  # linked relative to the markdown file
        assert f"]({os.path.relpath(png, tmp_path)})" in text
    path.write_text(f"x\n{MARKER_START}\nno end\n")
    with pytest.raises(MarkdownError, match="has only one of the markers"):
        write_section(path, section)


# --- errors and the CLI -----------------------------------------------------------------------

def test_an_unaligned_dataset_or_a_missing_stream_is_a_clear_error(dataset, tmp_path):
    copy = tmp_path / "ds"
    shutil.copytree(dataset, copy)
    meta = json.loads((copy / "dataset.json").read_text())
    (copy / "dataset.json").write_text(json.dumps({**meta, "aligned": False}))
    with pytest.raises(BenchmarkError, match="not aligned"):
        run_benchmark(copy, tmp_path / "out", config=BenchmarkConfig(**TINY))
    meta["streams"].pop("fr4")
    (copy / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(BenchmarkError, match="lacks the streams fr4"):
        run_benchmark(copy, tmp_path / "out", config=BenchmarkConfig(**TINY))
    with pytest.raises(BenchmarkError, match=r"got 'sononett' \(did you mean"):
        BenchmarkConfig(archs=("sononett",))


def test_the_command_prints_json_and_writes_the_markdown(bench, dataset, tmp_path):
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n")
    args = ["benchmark-models", "--dataset", str(dataset), "--out", str(bench.out), "--arch",
            "sononet", "--streams", "none", "--epochs", "1", "--width", "2", "--max-clips", "48",
            "--markdown", str(md), "--format", "json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert [r["key"] for r in record["table2"]] == ["sononet_pt-2d", "sononet-2d"]
    assert record["table2"][0]["f1"] is None and "--sononet-npz" in record["table2"][0]["note"]
    assert record["table3"] == [] and record["config"]["epochs"] == {"sononet": 1}
    # Not retrained: the library run's model, so the same figures and training time.
    mine, theirs = record["table2"][1], bench.row("sononet-2d")
    assert (mine["f1"], mine["top3"], mine["train_s"]) == (theirs.f1, theirs.top3, theirs.train_s)
    assert [f["holds"] for f in record["findings"]] == [None, None, None]
    assert md.read_text().startswith("# Benchmarks\n\n" + MARKER_START)


def test_the_command_wants_one_source(tmp_path):
    result = CliRunner().invoke(main, ["benchmark-models", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "give --dataset or --cohort" in result.output


# --- a held-out test dataset --------------------------------------------------------------------

def _all_instances(dataset, stream, leave_out=()):
    counts = json.loads((dataset / "dataset.json").read_text())["counts"]
    return sum(n for split in ("train", "val", "test")
               for code, n in counts[split].get(stream, {}).items() if code not in leave_out)


def test_a_held_out_dataset_is_tested_on_all_its_instances(bench, dataset, heldout):
    meta, held_meta = (json.loads((d / "dataset.json").read_text()) for d in (dataset, heldout))
    scans = [{s for split in m["splits"].values() for s in split["scans"]}
             for m in (meta, held_meta)]
    assert scans[0] & scans[1]  # the same ids, but other manifests: other scans
    # The library run's folder: its models are tested again, not retrained.
    result = run_benchmark(dataset, bench.out, config=BenchmarkConfig(**TINY),
                           sononet_npz=NPZ if NPZ.is_file() else None, test_dataset=heldout)
    n_2d, n_fr4 = _all_instances(heldout, "2d"), _all_instances(heldout, "fr4")
    assert n_2d == n_fr4 > sum(held_meta["counts"]["test"]["fr4"].values())
    for row in result.table2[1:]:
        assert row.n == (n_2d if row.streams == ("2d",) else n_fr4), row.key
        assert row.train_s == bench.row(row.key).train_s
    assert result.n_common == n_fr4 and {r.n for r in result.table3} == {n_fr4}
    if NPZ.is_file():
        assert result.row("sononet_pt-2d").n == _all_instances(heldout, "2d", ("3Dm", "MaD"))
    assert result.test_dataset == heldout
    record = json.loads((bench.out / "results.json").read_text())
    assert record["test_dataset"] == str(heldout)
    assert record["test_data"]["instances"] == {"2d": n_2d, "fr4": n_fr4}
    assert record["test_data"]["splits"] == ["train", "val", "test"]
    text = markdown(result)
    assert f"tested on {n_fr4} instances from `{heldout}` (all splits pooled: 3 scans" in text
    assert f"### Table 2: models on the held-out `{heldout}` (all splits)" in text
    assert f"tested on the test split of `{dataset}`" in markdown(bench)
    # The command: the same option, the test data in the tables' titles.
    args = ["benchmark-models", "--dataset", str(dataset), "--out", str(bench.out), "--arch",
            "sononet", "--streams", "none", "--epochs", "1", "--width", "2", "--max-clips", "48",
            "--test-dataset", str(heldout)]
    cli = CliRunner().invoke(main, args)
    assert cli.exit_code == 0, cli.output
    assert "Table 2: models on the held-out" in cli.stdout and str(heldout.name) in cli.stdout
    keras.backend.clear_session()


def test_a_test_dataset_must_fit_and_be_held_out(dataset, heldout, tmp_path):
    def refused(test_dataset, match):
        with pytest.raises(BenchmarkError, match=match):
            run_benchmark(dataset, tmp_path / "out", config=BenchmarkConfig(**TINY),
                          test_dataset=test_dataset)

    refused(dataset, "is the training dataset itself")
    same_manifest = tmp_path / "copy"
    shutil.copytree(dataset, same_manifest)
    refused(same_manifest, re.escape(f"{same_manifest} shares 3 scans with {dataset} (SIM0001, "
                                     "SIM0002, SIM0003; both were built from the same manifest)"))
    copy = tmp_path / "held"
    shutil.copytree(heldout, copy)
    meta = json.loads((copy / "dataset.json").read_text())

    def edited(**changes):
        (copy / "dataset.json").write_text(json.dumps({**meta, **changes}))
        return copy

    refused(edited(classes=[c for c in meta["classes"] if c != "Ki"]),
            re.escape(f"test dataset {copy} has other classes than {dataset} (lacks Ki)"))
    refused(edited(classes=meta["classes"][::-1]), "other classes .*another order")
    refused(edited(spec={**meta["spec"], "size": 48}), "48-pixel frames but .* has 32")
    refused(edited(streams={"2d": None}), re.escape(f"test dataset {copy} lacks the streams fr4"))
    refused(edited(aligned=False), re.escape(f"test dataset {copy} is not aligned"))
    refused(edited(spec={**meta["spec"], "others_as": "Bk"}),
            re.escape(f"test dataset {copy} was built with --others-as Bk but {dataset} without "
                      "--others-as (other classes left out)"))
    assert not (tmp_path / "out").exists()  # refused before any training


def test_a_dataset_with_other_classes_relabelled_is_named_in_a_warning(dataset, heldout,
                                                                       tmp_path, caplog):
    relabelled = tmp_path / "relabelled"
    shutil.copytree(dataset, relabelled)
    meta = json.loads((relabelled / "dataset.json").read_text())
    meta["spec"]["others_as"] = "Bk"
    (relabelled / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(BenchmarkError, match=r"was built without --others-as .* but .* with "
                                             r"--others-as Bk"):
        run_benchmark(relabelled, tmp_path / "out", config=BenchmarkConfig(**TINY),
                      test_dataset=heldout)
    assert any(str(relabelled) in r.getMessage() and "paper's protocol" in r.getMessage()
               for r in caplog.records if r.levelname == "WARNING")
