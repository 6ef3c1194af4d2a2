"""Scan: the paper's figure 1 for one scan (categories over minutes), manual and automatic
timelines stacked, freezes marked, the window probabilities as a heat strip, and a
de-identified frame at a chosen time where the video is on disk."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import data, figures, ui


def load(filters: data.Filters, scan_id: str) -> dict:
    """The scan's rows: the sidebar's run where it labels the scan, else the scan's newest run
    of that source (``"instead"`` then names the sidebar's run), and the scan's newest run of
    the other source; the first one's freezes and window probabilities."""
    newest = data.newest_runs_of_scan(filters.db, filters.stamp, scan_id)
    picked = next(r for r in ui.finished_runs(filters.db, filters.stamp)
                  if r.run_id == filters.run)
    labels_scan = filters.run in set(
        data.scan_events(filters.db, filters.stamp, scan_id, (filters.run,))["run_id"])
    chosen = picked if labels_scan else next(
        (r for r in newest if r.source == picked.source), picked)
    others = [r for r in newest if r.source != chosen.source]
    rows = sorted([chosen, *others], key=lambda r: r.source != "manual")
    events = data.scan_events(filters.db, filters.stamp, scan_id,
                              tuple(r.run_id for r in rows))
    return {"runs": rows, "chosen": chosen, "events": events,
            "instead": None if chosen.run_id == picked.run_id else picked,
            "freezes": data.scan_freezes(filters.db, filters.stamp, scan_id, chosen.run_id),
            "probs": data.window_probabilities(filters.db, filters.stamp, scan_id,
                                               chosen.run_id)}


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


def _preview(video: str, end_s: float, first_freeze_s: float | None) -> None:
    st.subheader("Frame preview (de-identified)")
    start = 0.0 if first_freeze_s is None else float(round(first_freeze_s))
    t_s = st.slider("Time (seconds; starts at the first freeze)", 0.0,
                    max(float(end_s), 1.0), start, step=1.0, key="preview_t")
    image, shown_s = data.preview(video, Path(video).stat().st_mtime, t_s)
    st.image(image, caption=f"{Path(video).name} at {shown_s:.2f} s: everything outside the "
                            f"image area blacked out", width=640)


def render() -> None:
    """Draw the view."""
    st.title("Scan")
    with ui.guarded():
        picked = ui.current()
        filters, scan_id = picked.filters, picked.scan_id
        if scan_id is None:
            ui.say("No scan with labels matches these filters.")
            return
        scans = data.scans(filters)
        row = scans[scans["scan_id"] == scan_id].iloc[0]
        if filters.run is None:
            ui.say("No finished run of this source has events: choose the other source in "
                   "the sidebar.")
            return
        loaded = load(filters, scan_id)
        chosen = loaded["chosen"]
        ui.caption(filters, chosen)
        if loaded["instead"] is not None:
            st.caption(f"Run '{loaded['instead'].name}' (sidebar) does not label {scan_id}: "
                       f"shown is the scan's newest {chosen.source} run, '{chosen.name}'.")
        st.markdown(f"**{scan_id}** · operator {row['operator_id']} ({row['group']})"
                    + (f" · {row['acquired_at']:%Y-%m-%d %H:%M}"
                       if row["acquired_at"] == row["acquired_at"] else ""))
        events = loaded["events"]
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
            freezes = loaded["freezes"]["t_s"]
            _preview(row["video_path"], float(events["end_s"].max()),
                     float(freezes.iloc[0]) if len(freezes) else None)
        else:
            where = (f" ({row['video_path']} is not on this machine)"
                     if isinstance(row["video_path"], str) else " (none is recorded)")
            ui.say(f"No frame preview: the scan's video is not on disk{where}.")
        st.subheader("Tables")
        ui.table(events, f"events_{scan_id}")
        ui.table(loaded["freezes"], f"freezes_{scan_id}")


if __name__ == "__main__":
    render()
