"""Labels outside a model's classes given one code (`fetal_analytics.events.relabel_others`),
and `ingest labels --others-as CODE --classes-of MODEL` on a real database."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from click.testing import CliRunner

from fetal_analytics import taxonomy
from fetal_analytics.cli import main
from fetal_analytics.events import relabel_others
from fetal_analytics.taxonomy import UnknownLabelError

# --- the function ---------------------------------------------------------------------------


def test_labels_outside_the_classes_get_the_code_and_are_counted():
    events = pd.DataFrame({"scan_id": ["A", "A", "A", "B", "B"],
                           "start_s": [0.0, 5.0, 9.0, 0.0, 3.0],
                           "end_s": [5.0, 9.0, 12.0, 3.0, 4.0],
                           "label": ["Br", "Um", "Bk", "Fe", "Um"], "confidence": [None] * 5})
    before = events.copy()
    result = relabel_others(events, ("Br", "Bk", "HeD"), code="Bk")
    assert result.events["label"].tolist() == ["Br", "Bk", "Bk", "Bk", "Bk"]
    assert result.relabelled == {"Fe": 1, "Um": 2} and result.n_events == 3
    pd.testing.assert_frame_equal(result.events.drop(columns="label"),
                                  events.drop(columns="label"))
    pd.testing.assert_frame_equal(events, before)  # the input is not changed
    assert result.to_dict() == {"code": "Bk", "classes": ["Br", "Bk", "HeD"], "n_events": 3,
                                "relabelled": {"Fe": 1, "Um": 2}}


def test_labels_all_within_the_classes_are_left_as_they_are():
    events = pd.DataFrame({"label": ["Br", "Bk"]})
    result = relabel_others(events, taxonomy.default_model_codes(), code="Bk")
    assert result.events["label"].tolist() == ["Br", "Bk"] and result.relabelled == {}
    assert result.n_events == 0


def test_bad_arguments_are_named():
    events = pd.DataFrame({"label": ["Br"]})
    with pytest.raises(UnknownLabelError, match=r"unknown label 'BK' \(did you mean 'Bk'\?\)"):
        relabel_others(events, ("Br", "Bk"), code="BK")
    with pytest.raises(UnknownLabelError, match="unknown label 'heart'"):
        relabel_others(events, ("Br", "heart"), code="Bk")
    with pytest.raises(ValueError, match="`classes` must name at least one taxonomy code"):
        relabel_others(events, (), code="Bk")
    with pytest.raises(ValueError, match=r"`events` must have a label column, got columns \['x'\]"):
        relabel_others(pd.DataFrame({"x": [1]}), ("Br",), code="Br")


# --- the command ----------------------------------------------------------------------------

RARE = "S003,95,110,Um\nS004,90,100,Fe\nS002,200,210,Th\n"


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args, code: int = 0):
        result = runner.invoke(main, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    return invoke


@pytest.fixture
def cohort(run, db_path, data_dir, tmp_path):
    """A database with the sample manifest, and a label file with three rare labels."""
    run("ingest", "manifest", data_dir / "manifest.csv", "--db", db_path)
    labels = tmp_path / "truth.csv"
    labels.write_text((data_dir / "manual_labels.csv").read_text() + RARE)
    return db_path, labels


def exported_labels(run, db_path, run_ref, tmp_path) -> pd.Series:
    out = tmp_path / f"run-{run_ref}.csv"
    run("export", "events", "--db", db_path, "--run", run_ref, "--out", out)
    return pd.read_csv(out)["label"]


def test_ingest_labels_maps_other_labels_to_bk_for_the_demo_model(run, cohort, tmp_path):
    db_path, labels = cohort
    result = json.loads(run("ingest", "labels", labels, "--db", db_path, "--others-as", "Bk",
                            "--classes-of", "demo", "--format", "json").output)
    assert result == {"run_id": 1, "run_name": "truth.csv", "source": "manual",
                      "status": "created", "n_scans": 4, "n_events": 14, "n_scans_removed": 0,
                      "n_events_removed": 0, "others_as": "Bk",
                      "relabelled": {"Fe": 1, "Th": 1, "Um": 1}}
    stored = exported_labels(run, db_path, "1", tmp_path)
    assert set(stored) <= set(taxonomy.default_model_codes())
    assert (stored == "Bk").sum() == 2 + 3 and len(stored) == 14
    # The same file with the same mapping is the same import; without it, another one.
    again = run("ingest", "labels", labels, "--db", db_path, "--others-as", "Bk",
                "--classes-of", "demo").output
    assert again == (f"{labels}: run 1 'truth.csv' (manual) unchanged: 14 events of 4 scans; "
                     "3 events of labels outside the classes of demo imported as Bk "
                     "(Fe 1, Th 1, Um 1)\n")
    plain = run("ingest", "labels", labels, "--db", db_path).output
    assert plain == f"{labels}: run 2 'truth.csv (2)' (manual) created: 14 events of 4 scans\n"
    assert {"Um", "Fe", "Th"} <= set(exported_labels(run, db_path, "2", tmp_path))


def test_the_classes_of_a_model_file_are_its_output_codes(run, cohort, tmp_path):
    from inference.model_file import save_model
    from inference.models import sononet

    db_path, labels = cohort
    model = tmp_path / "three.keras"
    save_model(sononet(input_shape=(32, 32, 1), classes=3, width=2), model,
               {"classes": ["brain", "spine", "other"], "codes": ["Br", "Sp", "Bk"],
                "input_shape": [32, 32, 1], "frames": None})
    result = json.loads(run("ingest", "labels", labels, "--db", db_path, "--run-name", "three",
                            "--others-as", "Bk", "--classes-of", model, "--format",
                            "json").output)
    assert result["relabelled"] == {"3Dm": 1, "Ab": 1, "Fe": 1, "Fm": 1, "HeD": 2, "Ki": 1,
                                    "Th": 1, "Um": 1}
    stored = exported_labels(run, db_path, "three", tmp_path)
    assert stored.value_counts().to_dict() == {"Bk": 11, "Br": 2, "Sp": 1}
    refused = run("ingest", "labels", labels, "--db", db_path, "--others-as", "Fm",
                  "--classes-of", model, code=1)
    assert refused.output == (f"Error: {labels}: --others-as Fm is not one of the model's "
                              "classes (Br, Sp, Bk): pick one of them, or check --classes-of\n")


def test_others_as_and_classes_of_go_together_and_name_a_model(run, cohort, tmp_path):
    db_path, labels = cohort
    alone = run("ingest", "labels", labels, "--db", db_path, "--others-as", "Bk", code=2)
    assert "--others-as and --classes-of go together" in alone.output
    missing = tmp_path / "missing.keras"
    result = run("ingest", "labels", labels, "--db", db_path, "--others-as", "Bk",
                 "--classes-of", missing, code=1)
    assert result.output == (f"Error: {missing}: no such model file; pass a .keras file with "
                             "its sidecar or a built-in name (demo, sononet16)\n")
    runs = json.loads(run("info", "--db", db_path, "--format", "json").output)["runs"]
    assert runs == 0  # nothing was imported


def test_classes_of_a_built_in_model_are_read_without_tensorflow(cohort):
    db_path, labels = cohort
    code = textwrap.dedent(f"""
        import sys
        from fetal_analytics.cli import main
        main(["ingest", "labels", {str(labels)!r}, "--db", {str(db_path)!r}, "--others-as", "Bk",
              "--classes-of", "demo"], standalone_mode=False)
        print("HEAVY", sorted(m for m in ("tensorflow", "keras") if m in sys.modules))
    """)
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout
    assert "imported as Bk (Fe 1, Th 1, Um 1)" in output
    assert output.endswith("HEAVY []\n")
