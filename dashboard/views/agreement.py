"""Agreement: manual against automatic labels. The paper's per-category minutes with r and p,
Bland-Altman per category, Cohen's kappa, segment scores (edit, F1@k) and the frame confusion
matrix, on the scans both runs label."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from analytics.agreement import agreement_table
from dashboard import data, figures, ui


def load(filters: data.Filters, manual_run: int, auto_run: int) -> dict:
    """The unpaired correlation and the paired agreement of the two runs."""
    return {"agreement": data.agreement(filters, manual_run, auto_run)}


def build(loaded: dict) -> dict:
    """The view's figures (the paired ones only where scans have both labellings)."""
    correlation, paired = loaded["agreement"].value
    built = {"minutes": figures.minutes_scatter(
        correlation.per_category, None if paired is None else paired.per_category)}
    if paired is not None:
        built["bland_altman"] = figures.bland_altman(paired.per_category)
        built["confusion"] = figures.confusion_heatmap(
            paired.confusion, "Frames: manual (truth) against automatic labels")
    return built


def _segments(paired) -> pd.DataFrame:
    """The segment scores as rows: score, value, CI."""
    rows = []
    for label, scores in (("all categories", paired.segments),
                          ("Bk as background", paired.segments_bk_as_background)):
        if scores is None:
            continue
        record = scores.to_dict()
        ci = record.get("ci") or {}
        rows.append({"classes": label, "score": "frame accuracy",
                     "value": record["frame_accuracy"],
                     "ci": ci.get("frame_accuracy")})
        rows.append({"classes": label, "score": "edit", "value": record["edit"],
                     "ci": ci.get("edit")})
        for k, value in record["f1"].items():
            rows.append({"classes": label, "score": f"F1@{k}", "value": value,
                         "ci": (ci.get("f1") or {}).get(k)})
    return pd.DataFrame(rows)


def render() -> None:
    """Draw the view."""
    st.title("Agreement")
    with ui.guarded():
        chosen = ui.current()
        filters, manual, auto = chosen.filters, chosen.manual, chosen.auto
        if manual is None or auto is None:
            missing = "manual" if manual is None else "automatic"
            ui.say(f"No agreement can be shown: the database has no finished {missing} run "
                   f"with events.")
            return
        ui.caption(filters)
        st.markdown(f"Manual run **{manual.name}** against automatic run **{auto.name}**.")
        loaded = load(filters, manual.run_id, auto.run_id)
        correlation, paired = ui.notes(loaded["agreement"])
        built = build(loaded)

        st.header("The paper's comparison")
        st.markdown(f"Pearson r = **{correlation.pearson_r:.3f}** (p = "
                    f"{correlation.pearson_p:.3g}), Spearman rho = "
                    f"{correlation.spearman_rho:.3f} across {len(correlation.categories)} "
                    f"categories; {correlation.n_manual_scans} manual and "
                    f"{correlation.n_auto_scans} automatic scans.")
        st.caption(correlation.measures)
        ui.chart(built["minutes"], "minutes")

        st.header("Scan by scan")
        if paired is None:
            ui.say("No scan is labelled by both runs, so no paired agreement (Bland-Altman, "
                   "kappa, segment scores, confusion matrix) can be computed.")
            ui.table(agreement_table(correlation), "agreement")
            return
        kappa = paired.kappa
        cells = st.columns(4)
        cells[0].metric("Scans labelled by both", paired.n_scans)
        cells[1].metric("Cohen's kappa", f"{kappa.kappa:.3f}",
                        help=f"95% CI {kappa.ci_low:.3f} to {kappa.ci_high:.3f} "
                             f"({kappa.ci_method}), {kappa.n_frames} frames")
        cells[2].metric("Edit score", f"{paired.segments.edit:.3f}")
        cells[3].metric("F1@50", f"{paired.segments.f1[50]:.3f}")
        st.caption(f"Kappa 95% CI {kappa.ci_low:.3f} to {kappa.ci_high:.3f} ({kappa.ci_method}); "
                   f"frames every {paired.step_s:g} s inside the manually labelled spans; the "
                   f"automatic run labels {paired.auto_coverage:.0%} of them with a category.")
        ui.chart(built["bland_altman"], "bland_altman")
        ui.chart(built["confusion"], "confusion")
        st.subheader("Tables")
        ui.table(agreement_table(correlation, paired), "agreement")
        ui.table(_segments(paired), "segment_scores")
        ui.table(paired.per_class, "per_class")
        ui.table(paired.confusion.reset_index(), "confusion")
        ui.table(paired.manual_coverage, "manual_coverage")


if __name__ == "__main__":
    render()
