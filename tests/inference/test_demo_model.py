"""The shipped demo model (`data/demo_model.keras`) through `fetal-analytics label`, default model.

One two-minute excerpt of a simulated scan the model never saw (seed and operators outside its
training cohort), 640x480 as the simulator makes them, labelled end to end; the automatic
timeline must agree with the true one well beyond chance.
"""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from fetal_analytics import taxonomy
from fetal_analytics.cli import main
from fetal_analytics.segments import events_to_frames, frame_accuracy
from fetal_analytics.store import Store
from fetal_analytics.synth import simulate_cohort, write_cohort
from inference.model_file import DEMO_MODEL

pytestmark = pytest.mark.filterwarnings(  # raised inside Keras by TensorFlow 2.21
    "ignore:__array__ implementation:DeprecationWarning")


def test_the_demo_model_is_the_default_and_labels_an_unseen_scan(tmp_path):
    assert DEMO_MODEL.is_file(), "the demo model ships with the repository"
    cohort = write_cohort(simulate_cohort(scans=1, operators=1, excerpt_minutes=2, seed=73),
                          tmp_path / "sim", seed=73)
    db = tmp_path / "x.duckdb"
    result = CliRunner().invoke(main, ["label", "--manifest", str(cohort / "manifest.csv"),
                                       "--db", str(db), "--format", "json"])
    assert result.exit_code == 0, result.output
    with Store(db, read_only=True) as store:
        auto = store.query_df("SELECT scan_id, start_s, end_s, label FROM events")
        model_path = store.scalar("SELECT path FROM models")
    assert model_path == str(DEMO_MODEL)
    truth = pd.read_csv(cohort / "truth" / "events.csv")
    truth["label"] = truth.label.where(truth.label.isin(taxonomy.default_model_codes()), "Bk")
    true_frames = events_to_frames(truth, end_s=120.0)
    auto_frames = events_to_frames(auto, end_s=120.0)
    # 3Dm, Ab, Fm and Bk between them (a Le visit counts as Bk). Chance with 11 classes is far
    # below this; the shipped model scores 0.867.
    assert frame_accuracy(auto_frames, true_frames) >= 0.75
