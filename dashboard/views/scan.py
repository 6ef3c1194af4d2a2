"""Scan: the paper's figure 1 for one scan (categories over minutes), manual and automatic
timelines stacked, freezes marked, the window probabilities as a heat strip, and a
de-identified frame at a chosen time where the video is on disk."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import data, figures, ui


def load(filters: data.Filters, scan_id: str) -> dict:
    """The scan's rows: its newest manual run and the chosen automatic run (or, reading
    manual labels, the chosen manual run), with that run's freezes and window probabilities.
    """
    newest = data.newest_runs_of_scan(filters.db, filters.stamp, scan_id)
    chosen = next(r for r in ui.finished_runs(filters.db, filters.stamp)
                  if r.run_id == filters.run)
    others = [r for r in newest if r.source != chosen.source]
    rows = sorted([chosen, *others], key=lambda r: r.source != "manual")
    events = data.scan_events(filters.db, filters.stamp, scan_id,
                              tuple(r.run_id for r in rows))
    return {"runs": rows, "chosen": chosen, "events": events,
            "freezes": data.scan_freezes(filters.db, filters.stamp, scan_id, chosen.run_id),
            "probs": data.window_probabilities(filters.db, filters.stamp, scan_id,
                                               chosen.run_id)}


def default_scan(filters: data.Filters, labelled) -> str:
    """The scan shown first: one labelled by a model (a labelling run) and by hand, else one
    labelled both ways, else the first."""
    models = {r.name for r in ui.finished_runs(filters.db, filters.stamp, "auto")
              if r.kind == "label"}
    both = labelled[labelled["manual_runs"].map(bool) & labelled["auto_runs"].map(bool)]
    by_model = both[both["auto_runs"].map(lambda names: bool(models & set(names)))]
    for candidates in (by_model, both, labelled):
        if len(candidates):
            return candidates["scan_id"].iloc[0]
    raise ValueError("no labelled scan")


def row_name(run) -> str:
    """The y label of a run's row: ``manual: truth``."""
    return f"{run.source}: {run.name}"


def build(loaded: dict, stream: str | None) -> dict:
    """The timeline and, where the run stored them, the probability strip of `stream`."""
    names = {r.run_id: row_name(r) for r in loaded["runs"]}
    events = loaded["events"].assign(row=loaded["events"]["run_id"].map(names))
    built = {"timeline": figures.timeline(events, loaded["freezes"], list(names.values()))}
    if stream is not None:
        built["probs"] = figures.probability_strip(loaded["probs"], stream)
    return built


def _preview(video: str, end_s: float) -> None:
    st.subheader("Frame preview (de-identified)")
    t_s = st.slider("Time (seconds)", 0.0, max(float(end_s), 1.0), 0.0, step=1.0,
                    key="preview_t")
    image, shown_s = data.preview(video, Path(video).stat().st_mtime, t_s)
    st.image(image, caption=f"{Path(video).name} at {shown_s:.2f} s: everything outside the "
                            f"image area blacked out", width=640)


def render() -> None:
    """Draw the view."""
    st.title("Scan")
    with ui.guarded():
        filters = ui.scan_filters()
        scans = data.scans(filters)
        labelled = scans[scans["manual_runs"].map(len) + scans["auto_runs"].map(len) > 0]
        if labelled.empty:
            ui.say("No scan with labels matches these filters.")
            return
        st.sidebar.markdown("**Scan**")
        scan_id = ui.choice("Scan", list(labelled["scan_id"]), key="scan",
                            default=default_scan(filters, labelled))
        row = labelled[labelled["scan_id"] == scan_id].iloc[0]
        newest = data.newest_runs_of_scan(filters.db, filters.stamp, scan_id)
        filters = ui.run_filter(filters, preferred=lambda runs: next(
            (r for r in newest if r.run_id in {x.run_id for x in runs}),
            max(runs, key=lambda r: r.run_id)))
        if filters.run is None:
            ui.say("No finished run of this source has events.")
            return
        loaded = load(filters, scan_id)
        chosen = loaded["chosen"]
        ui.caption(filters, chosen)
        st.markdown(f"**{scan_id}** · operator {row['operator_id']} ({row['group']})"
                    + (f" · {row['acquired_at']:%Y-%m-%d %H:%M}"
                       if row["acquired_at"] == row["acquired_at"] else ""))
        events = loaded["events"]
        if not (events["run_id"] == chosen.run_id).any():
            ui.say(f"Run '{chosen.name}' has no events of scan {scan_id}: choose another run "
                   f"in the sidebar (runs of this scan: "
                   f"{', '.join(row['manual_runs'] + row['auto_runs'])}).")
        streams = sorted(loaded["probs"].probs)
        stream = ("fused" if "fused" in streams else streams[0]) if streams else None
        built = build(loaded, stream)
        ui.chart(built["timeline"], "timeline")
        if len(loaded["runs"]) == 1:
            other = "manual" if chosen.source == "auto" else "automatic"
            ui.say(f"This scan has no {other} labels, so only one timeline is shown.")
        if loaded["freezes"].empty:
            ui.say(f"Run '{chosen.name}' recorded no freeze frames for this scan (imported "
                   "labels record none; `fetal-analytics label` detects them).")
        if stream is None:
            ui.say(f"Run '{chosen.name}' stored no window probabilities for this scan (only "
                   "labelling runs store them).")
        else:
            ui.chart(built["probs"], "probs")
        if row["video_present"]:
            _preview(row["video_path"], float(events["end_s"].max()))
        else:
            where = (f" ({row['video_path']} is not on this machine)"
                     if isinstance(row["video_path"], str) else " (none is recorded)")
            ui.say(f"No frame preview: the scan's video is not on disk{where}.")
        st.subheader("Tables")
        ui.table(events, f"events_{scan_id}")
        ui.table(loaded["freezes"], f"freezes_{scan_id}")


if __name__ == "__main__":
    render()
