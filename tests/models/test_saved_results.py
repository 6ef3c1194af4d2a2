"""Benchmark results read back from disk (`inference.benchmark.read_saved_results`)."""

from __future__ import annotations

import json

import pandas as pd

from inference.benchmark import BenchmarkRow, read_saved_results


def test_saved_results_are_read_back_with_their_confusion_matrices_newest_first(tmp_path):
    confusion = pd.DataFrame([[5, 1], [2, 7]], index=["HeD", "Br"], columns=["HeD", "Br"])
    row = BenchmarkRow(key="sononet-2d", name="2D SonoNet", arch="sononet", streams=("2d",),
                       precision=0.8, recall=0.75, f1=0.77, top1=0.8, top3=1.0, n=15,
                       confusion=confusion)
    fused = BenchmarkRow(key="fr2+fr4", name="fusion", arch=None, streams=("fr2", "fr4"),
                         f1=0.9, n=15)
    for folder, started in (("old/run", "2026-11-01T00:00:00"), ("new", "2026-12-01T00:00:00")):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "results.json").write_text(json.dumps(
            {"started": started, "table2": [row.to_dict()], "table3": [fused.to_dict()]}))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "results.json").write_text('{"something": "else"}')

    saved = read_saved_results(tmp_path)
    assert [s.path.parent.name for s in saved] == ["new", "run"]
    rows = saved[0].rows
    assert rows[["table", "key", "name", "n"]].to_dict(orient="records") == [
        {"table": 2, "key": "sononet-2d", "name": "2D SonoNet", "n": 15},
        {"table": 3, "key": "fr2+fr4", "name": "fusion", "n": 15}]
    assert rows["f1"].tolist() == [0.77, 0.9]
    assert rows.loc[0, ["precision", "recall", "top1", "top3"]].tolist() == [0.8, 0.75, 0.8, 1.0]
    assert rows.loc[1, ["precision", "top3"]].isna().all()  # a fusion without them
    pd.testing.assert_frame_equal(saved[0].confusions["sononet-2d"], confusion)
    assert read_saved_results(tmp_path / "missing") == []
