"""Cohort: who scanned what, how long the scans took, how completely operators covered the
FASP-required structures, and minutes per category per group (the paper's summary)."""

from __future__ import annotations

import streamlit as st

from dashboard import data, figures, ui


def load(filters: data.Filters) -> dict:
    """The view's data: scans, per-scan features, coverage, minutes per category."""
    return {"scans": data.scans(filters), "features": data.scan_features(filters),
            "coverage": data.structure_coverage(filters),
            "summary": data.category_summary(filters)}


def build(loaded: dict) -> dict:
    """The view's figures from `load`'s data."""
    features = loaded["features"].value
    groups = sorted(features["group"].unique())
    summary = loaded["summary"].value.table
    return {"durations": figures.scan_durations(features, groups),
            "coverage": figures.coverage_heatmap(loaded["coverage"].value),
            "minutes": figures.category_minutes(summary, groups)}


def render() -> None:
    """Draw the view."""
    st.title("Cohort")
    with ui.guarded():
        filters = ui.current().filters
        if filters.run is None:
            ui.say("No finished labelling run has events in this database: import labels "
                   "(`fetal-analytics ingest labels`) or label videos (`fetal-analytics label`).")
            return
        run = next(r for r in ui.finished_runs(filters.db, filters.stamp)
                   if r.run_id == filters.run)
        ui.caption(filters, run)
        loaded = load(filters)
        scans = loaded["scans"]
        features = ui.notes(loaded["features"])
        counts = st.columns(5)
        counts[0].metric("Scans", len(scans))
        counts[1].metric("Labelled by this run", len(features))
        counts[2].metric("Operators", scans["operator_id"].nunique())
        counts[3].metric("Groups", scans["group"].nunique())
        counts[4].metric("With video on disk", int(scans["video_present"].sum()))
        if len(scans) and scans["acquired_at"].notna().any():
            st.caption(f"Scans from {scans['acquired_at'].min():%Y-%m-%d} to "
                       f"{scans['acquired_at'].max():%Y-%m-%d}.")
        built = build(loaded)
        ui.chart(built["durations"], "durations")
        ui.chart(built["coverage"], "coverage")
        ui.notes(loaded["summary"])
        ui.chart(built["minutes"], "minutes")
        if loaded["summary"].value.table["ci_low_min"].isna().all():
            ui.say("No confidence interval can be given here: each group needs scans of at "
                   "least 3 operators.")
        st.subheader("Tables")
        ui.table(loaded["summary"].value.table, "minutes_per_category")
        ui.table(loaded["coverage"].value, "fasp_coverage")
        ui.table(features, "scan_features")
        ui.table(scans.drop(columns=["manual_runs", "auto_runs"]), "scans")


if __name__ == "__main__":
    render()
