"""Models: the labelling runs in the database with their model, the model files' sidecar
metadata and metrics, and the evaluation results (with confusion matrices) found on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import data, figures, ui

# Where evaluation results (`fetal-analytics benchmark-models`' results.json) are looked for,
# and the sidecar entries shown per model. (Comments, not docstrings: Streamlit's magic would
# print a bare string of a page's module on the page.)
RESULTS_FOLDER = "out"
SIDECAR_FIELDS = ("name", "arch", "preset", "width", "input_shape", "frames", "classes",
                  "keras_version", "sha256")


def load(filters: data.Filters, folder: str) -> dict:
    """Runs, registered models, the sidecars of model files present, saved evaluations."""
    models = data.models(filters.db, filters.stamp)
    sidecars = {}
    for path in models["path"].dropna():
        if Path(path).is_file():
            sidecars[path] = data.model_sidecar(path, Path(path).stat().st_mtime)
    stamp = Path(folder).stat().st_mtime if Path(folder).is_dir() else 0.0
    return {"runs": data.runs(filters.db, filters.stamp), "models": models,
            "sidecars": sidecars, "results": data.saved_results(folder, stamp)}


def build(loaded: dict) -> dict:
    """The runs chart, and a confusion heat map per saved evaluation row with a confusion
    matrix."""
    built = {f"confusion_{i}_{key}": figures.confusion_heatmap(matrix, f"{key} ({saved.path})")
             for i, saved in enumerate(loaded["results"])
             for key, matrix in saved.confusions.items()}
    if loaded["runs"]:
        built["runs"] = figures.runs_chart(runs_table(loaded["runs"]))
    return built


def runs_table(runs: list) -> pd.DataFrame:
    """The runs as a table (their parameters as JSON text)."""
    columns = ["run_id", "name", "source", "kind", "status", "n_scans", "n_events",
               "model_id", "started_at", "finished_at", "input_path", "params"]
    return pd.DataFrame([{**{c: getattr(r, c) for c in columns[:-1]},
                          "params": json.dumps(r.params)} for r in runs], columns=columns)


def render() -> None:
    """Draw the view."""
    st.title("Models")
    with ui.guarded():
        filters = ui.current().filters
        ui.caption(filters)
        folder = st.text_input("Evaluation results folder", RESULTS_FOLDER, key="results_dir",
                               help="Searched for results.json of `fetal-analytics "
                                    "benchmark-models` (three folder levels deep).")
        loaded = load(filters, folder)
        built = build(loaded)
        st.header("Runs")
        if not loaded["runs"]:
            ui.say("The database has no runs yet.")
        else:
            ui.chart(built["runs"], "runs")
            ui.table(runs_table(loaded["runs"]), "runs")
        st.header("Models that labelled")
        models = loaded["models"]
        if models.empty:
            ui.say("No model has labelled scans in this database (every run is an import of "
                   "labels).")
        else:
            ui.table(models, "models")
            for path, sidecar in loaded["sidecars"].items():
                with st.expander(f"Sidecar of {path}"):
                    st.json({k: sidecar[k] for k in SIDECAR_FIELDS if k in sidecar})
            absent = [p for p in models["path"].dropna() if p not in loaded["sidecars"]]
            if absent:
                ui.say(f"Model file(s) not on this machine, so no sidecar: {', '.join(absent)}.")
        st.header("Evaluations on disk")
        if not loaded["results"]:
            ui.say(f"No evaluation results under '{folder}': `make benchmark-models` writes "
                   f"them (out/bench-models/.../results.json).")
            return
        for i, saved in enumerate(loaded["results"]):
            st.subheader(f"{saved.path} ({saved.started})")
            ui.table(saved.rows, f"evaluation_{i}")
            for key in saved.confusions:
                ui.chart(built[f"confusion_{i}_{key}"], f"confusion_{i}_{key}")


if __name__ == "__main__":
    render()
