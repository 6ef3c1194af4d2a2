"""Operators: experts against trainees feature by feature (the `compare` numbers), transition
heat maps per group with the permutation test, the most common sequences, one operator against
a reference group, and each operator's learning curve over dates."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from analytics.groups import GroupError
from dashboard import data, figures, ui

# The reference group of the one-operator comparison, where present. (View modules hold no
# bare strings at module level: Streamlit's magic would print them on the page.)
REFERENCE = "expert"


def load(filters: data.Filters, operator: str | None, reference: str | None) -> dict:
    """Group comparison, transitions, 3-grams, trends and the operator's profile (those that
    the data allow: a single group gives no comparison, its entries are the reason)."""
    loaded: dict = {"trends": data.operator_trends(filters),
                    "ngrams": data.ngrams(filters, 3),
                    "transitions": data.transitions(filters)}
    groups = sorted(loaded["transitions"].value)
    try:
        loaded["compare"] = data.compare_groups(filters)
    except GroupError as exc:
        loaded["compare"] = str(exc)
    loaded["test"] = (data.transition_test(filters, tuple(groups[:2])) if len(groups) == 2
                      else f"the permutation test compares two groups; {len(groups)} present")
    if operator is not None and reference is not None:
        # Against the reference group's operators whatever the group and operator filters.
        loaded["profile"] = data.operator_profile(replace(filters, group=None, operator=None),
                                                  operator, reference)
    return loaded


def build(loaded: dict, feature: str | None, trend_feature: str, operator: str | None) -> dict:
    """The view's figures: `feature`'s distribution per group (where groups are compared),
    `trend_feature`'s learning curves with `operator` highlighted."""
    transitions = loaded["transitions"].value
    groups = sorted(transitions)
    built = {f"transitions_{g}": figures.transition_heatmap(m, g)
             for g, m in transitions.items()}
    built["ngrams"] = figures.ngram_bars(loaded["ngrams"].value, groups)
    built["trend"] = figures.trend_chart(loaded["trends"].value.points, trend_feature, operator)
    if feature is not None and not isinstance(loaded["compare"], str):
        built["distribution"] = figures.feature_distributions(
            loaded["compare"].value.values, feature, list(loaded["compare"].value.groups))
    if "profile" in loaded:
        built["profile"] = figures.profile_chart(loaded["profile"].value)
    return built


def report_download(filters: data.Filters, operator: str, reference: str) -> None:
    """The operator's report (`fetal-analytics report`'s HTML) to download, made on demand:
    the skill estimate in it takes a few seconds."""
    if st.button(f"Make {operator}'s report", key="make_report",
                 help="The report `fetal-analytics report` writes: one HTML page that opens "
                      "offline and prints to A4."):
        st.session_state["report_for"] = (operator, reference, filters.run)
    if st.session_state.get("report_for") == (operator, reference, filters.run):
        with st.spinner(f"Making {operator}'s report..."):
            html = data.operator_report_html(replace(filters, group=None, operator=None),
                                             operator, reference)
        st.download_button(f"Download {operator}'s report (HTML)", html,
                           file_name=f"{operator}.html", mime="text/html", key="report_html")


def render() -> None:
    """Draw the view."""
    st.title("Operators")
    with ui.guarded():
        filters = ui.current().filters
        if filters.run is None:
            ui.say("No finished labelling run has events in this database.")
            return
        ui.caption(filters)
        features = ui.notes(data.scan_features(filters))
        operators = sorted(features["operator_id"].unique())
        groups = sorted(data.scans(replace(filters, group=None, operator=None))["group"]
                        .dropna().unique())
        operator = filters.operator or (operators[0] if operators else None)
        reference = REFERENCE if REFERENCE in groups else (groups[0] if groups else None)
        loaded = load(filters, operator, reference)
        compare = loaded["compare"]
        trends = loaded["trends"].value

        st.header("Groups compared")
        if isinstance(compare, str):
            ui.say(f"No group comparison: {compare}.")
            feature = None
        else:
            result = ui.notes(compare)
            st.caption(f"Operator-level values (the mean of each operator's scans); "
                       f"{result.family}")
            feature = st.selectbox("Feature", list(dict.fromkeys(result.table["feature"])),
                                   key="feature")
        compared = st.container()
        st.header("Sequences")
        sequences = st.container()
        st.header("One operator")
        one = st.container()
        st.header("Learning curves")
        trend_feature = st.selectbox("Trend of", list(trends.features), key="trend_feature")
        built = build(loaded, feature, trend_feature, filters.operator)

        with compared:
            if feature is not None:
                ui.chart(built["distribution"], "distribution")
                ui.table(result.to_frame(), "group_comparison")
        with sequences:
            transitions = ui.notes(loaded["transitions"])
            for column, group in zip(st.columns(max(len(transitions), 1)), sorted(transitions),
                                     strict=False):
                with column:
                    ui.chart(built[f"transitions_{group}"], f"transitions_{group}")
            test = loaded["test"]
            if isinstance(test, str):
                ui.say(f"No permutation test: {test}.")
            else:
                t = ui.notes(test)
                st.markdown(f"Permutation test of the transition matrices "
                            f"({' vs '.join(t.groups)}, {t.n_perm} permutations of operators): "
                            f"distance {t.statistic:.3f} ({t.distance.replace('_', ' ')}), "
                            f"p = {t.p:.3g}.")
            ui.notes(loaded["ngrams"])
            ui.chart(built["ngrams"], "ngrams")
            ui.table(loaded["ngrams"].value, "ngrams")
        with one:
            if "profile" not in loaded:
                ui.say("No operator to compare.")
            else:
                profile = ui.notes(loaded["profile"])
                st.caption(f"{profile.operator} ({profile.group}) against the other operators "
                           f"of group '{profile.reference}' over the same dates, whatever the "
                           f"group and operator filters (choose the operator in the sidebar).")
                if profile.table["reference_n"].eq(0).all():
                    ui.say(f"No other operator of group '{profile.reference}' has scans in "
                           f"this selection, so {profile.operator} cannot be compared.")
                ui.chart(built["profile"], "profile")
                ui.table(profile.to_frame(), f"profile_{profile.operator}")
                report_download(filters, profile.operator, profile.reference)
        ui.notes(loaded["trends"])
        if trends.points.empty:
            ui.say("No scan has a date, so no trend can be drawn.")
        else:
            ui.chart(built["trend"], "trend")
            ui.table(trends.slopes, "trends")


if __name__ == "__main__":
    render()
