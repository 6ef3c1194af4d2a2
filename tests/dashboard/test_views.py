"""Every view of the dashboard, run by Streamlit's AppTest on the shipped demo database: the
numbers on the page and in the figures equal the library's for the same filters."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from dashboard_paths import SHIPPED_DB, charts

from analytics.agreement import paired_agreement, paper_correlation
from analytics.groups import compare_groups
from analytics.operators import operator_profile, operator_trends, structure_coverage
from analytics.selection import select
from analytics.sequences import ngrams, transition_matrices
from analytics.summary import describe
from analytics.warnings import CoverageWarning
from dashboard.data import BOOTSTRAP
from fetal_analytics.queries import ScanFilter, list_scans, run_pairs, scan_events
from fetal_analytics.runs import list_runs
from fetal_analytics.store import Store


def run_id(name: str) -> int:
    with Store(SHIPPED_DB, read_only=True) as store:
        return next(r.run_id for r in list_runs(store) if r.name == name)


def same_table(shown: pd.DataFrame, expected: pd.DataFrame) -> None:
    """A table on the page holds the library's rows (dtypes change on the way to the page)."""
    pd.testing.assert_frame_equal(shown.reset_index(drop=True), expected.reset_index(drop=True),
                                  check_dtype=False)


def no_errors(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def test_cohort_shows_the_librarys_counts_coverage_and_minutes_for_the_filters(app):
    at = app(SHIPPED_DB, "cohort", group="expert", **{"from": "2024-01-09"})
    no_errors(at)
    truth = run_id("simulator-truth")
    assert at.sidebar.selectbox(key="run").value == truth  # the run labelling most scans
    scans = ScanFilter.of(groups="expert", date_from="2024-01-09")
    with Store(SHIPPED_DB, read_only=True) as store:
        listed = list_scans(store, groups="expert", date_from="2024-01-09")
        selection = select(store, run=truth, scans=scans)
        coverage = structure_coverage(store, selection)
        summary = describe(store, selection, by="group").table
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Scans"] == str(len(listed))
    assert metrics["Operators"] == str(listed["operator_id"].nunique())
    assert metrics["Groups"] == "1"
    figs = charts(at)
    heat = next(f for t, f in figs.items() if t.startswith("FASP-required"))["data"][0]
    assert list(heat["x"]) == ["HeD", "Br", "Sp", "Ab", "NL", "Ki", "Fm"]
    expected = coverage.pivot(index="operator_id", columns="label", values="share_seen")
    assert [y.split(" ")[0] for y in heat["y"]] == sorted(expected.index)
    np.testing.assert_allclose(np.asarray(heat["z"], dtype=float),
                               expected.loc[sorted(expected.index), list(heat["x"])].to_numpy())
    bars = next(f for t, f in figs.items() if t.startswith("Minutes per category"))["data"]
    assert [b["name"] for b in bars] == ["expert"]
    np.testing.assert_allclose(bars[0]["y"], summary["mean_min"])
    np.testing.assert_allclose(bars[0]["error_y"]["array"],
                               summary["ci_high_min"] - summary["mean_min"])
    shown = at.dataframe[0].value
    same_table(shown, summary)


def test_scan_view_stacks_manual_and_model_timelines_with_freezes_and_probabilities(app):
    at = app(SHIPPED_DB, "scan")
    no_errors(at)
    scan_id = at.sidebar.selectbox(key="scan").value
    assert scan_id == "VID0001"  # a scan the model labelled, and labelled by hand
    with Store(SHIPPED_DB, read_only=True) as store:
        events = scan_events(store, scan_id)  # newest manual, newest automatic
    figs = charts(at)
    timeline = figs["Categories over the scan"]
    bars = [t for t in timeline["data"] if t["type"] == "bar"]
    for code in events["label"].unique():
        trace = next(t for t in bars if t["name"].startswith(f"{code} - "))
        part = events[events["label"] == code]
        np.testing.assert_allclose(np.sort(trace["base"]), np.sort(part["start_s"] / 60))
    rows = {y for t in bars for y in t["y"]}
    assert rows == {"manual: truth", "auto: demo-model"}
    freezes = next(t for t in timeline["data"] if t["name"] == "freeze")
    assert len(freezes["x"]) > 0
    strip = figs["Window probabilities (fused)"]["data"][0]
    assert strip["type"] == "heatmap" and len(strip["y"]) == 11
    shown = at.dataframe[0].value
    same_table(shown, events)


def test_scan_view_of_a_scan_without_video_or_probabilities_says_so(app):
    at = app(SHIPPED_DB, "scan", scan="SIM0002")
    no_errors(at)
    said = " ".join(i.value for i in at.info)
    assert "stored no window probabilities" in said
    assert "No frame preview: the scan's video is not on disk" in said
    assert "no manual labels" in said  # SIM0002 has no freeze-clip labels


def test_operators_view_shows_the_group_tests_sequences_profile_and_trends(app):
    at = app(SHIPPED_DB, "operators", operator="OP02")
    no_errors(at)
    truth = run_id("simulator-truth")
    with Store(SHIPPED_DB, read_only=True) as store:
        everyone = select(store, run=truth)
        one = select(store, run=truth, scans=ScanFilter.of(operators="OP02"))
        trends = operator_trends(store, one)
        profile = operator_profile(store, everyone, "OP02", reference="expert")
    # With the operator filter, the group comparison has a single group: a sentence.
    assert any("No group comparison" in i.value and "at least two groups" in i.value
               for i in at.info)
    assert any("No permutation test" in i.value for i in at.info)
    # The operator is compared with every expert, whatever the filters.
    same_table(next(d.value for d in at.dataframe if "percentile" in d.value.columns),
               profile.table)
    assert profile.table["reference_n"].max() == 6
    slopes = next(d.value for d in at.dataframe if "slope" in d.value.columns)
    same_table(slopes, trends.slopes)

    at = app(SHIPPED_DB, "operators")
    no_errors(at)
    with Store(SHIPPED_DB, read_only=True) as store:
        comparison = compare_groups(store, everyone)
        matrices = transition_matrices(store, everyone, skip_background=True)
        top = ngrams(store, everyone, n=3, top=10, skip_background=True)
        first = operator_profile(store, everyone, "OP01", reference="expert")
    table = next(d.value for d in at.dataframe if "p_adjusted" in d.value.columns)
    same_table(table, comparison.table)
    figs = charts(at)
    heat = figs["Transitions, expert (background left out)"]["data"][0]
    np.testing.assert_allclose(np.asarray(heat["z"], dtype=float),
                               matrices["expert"].to_numpy())
    assert list(heat["x"]) == list(matrices["expert"].columns)
    bars = figs["Most common sequences (background left out)"]["data"]
    for trace in bars:
        part = top[top["group"] == trace["name"]]
        assert list(trace["y"]) == list(part["ngram"])
    distribution = next(f for t, f in figs.items() if t.startswith("total_min:"))["data"]
    values = comparison.values[comparison.values["feature"] == "total_min"]
    for trace in distribution:
        np.testing.assert_allclose(
            np.sort(trace["y"]), np.sort(values[values["group"] == trace["name"]]["value"]))
    profile_fig = next(f for t, f in figs.items() if t.startswith("OP01 (expert) against"))
    z = first.table.dropna(subset=["z"])
    np.testing.assert_allclose(profile_fig["data"][0]["x"], z["z"])
    assert any(m.value.startswith("Permutation test of the transition matrices")
               for m in at.markdown)


def test_operators_view_offers_the_operators_report_made_by_the_report_library(app):
    import warnings

    from analytics.report import operator_report
    from dashboard import data
    from reports.html import report_html

    at = app(SHIPPED_DB, "operators", operator="OP02")
    no_errors(at)
    def report_buttons():
        return [b for b in at.get("download_button") if b.key == "report_html"]

    assert not report_buttons()  # made on demand only
    at.button(key="make_report").click().run()
    no_errors(at)
    assert [b.label for b in report_buttons()] == ["Download OP02's report (HTML)"]
    truth = run_id("simulator-truth")
    filters = data.Filters(db=str(SHIPPED_DB), stamp=data.stamp(SHIPPED_DB), run=truth)
    with Store(SHIPPED_DB, read_only=True) as store, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = report_html(operator_report(store, select(store, run=truth), "OP02"))
    assert data.operator_report_html(filters, "OP02", "expert") == expected


def test_agreement_view_shows_the_paired_numbers_of_the_default_pair(app):
    at = app(SHIPPED_DB, "agreement")
    no_errors(at)
    with Store(SHIPPED_DB, read_only=True) as store:
        best = run_pairs(store).iloc[0]
        manual = select(store, run=int(best["manual_run_id"]))
        auto = select(store, run=int(best["auto_run_id"]))
        correlation = paper_correlation(store, manual, auto)
        with pytest.warns(CoverageWarning, match="cover less than 50%"):
            paired = paired_agreement(store, manual, auto, n_boot=BOOTSTRAP)
    # The library's warning is on the page too.
    assert any("cover less than 50%" in c.value for c in at.caption)
    assert at.sidebar.selectbox(key="manual_run").value == best["manual_run_id"]
    assert at.sidebar.selectbox(key="auto_run").value == best["auto_run_id"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Scans labelled by both"] == str(paired.n_scans)
    assert metrics["Cohen's kappa"] == f"{paired.kappa.kappa:.3f}"
    assert metrics["Edit score"] == f"{paired.segments.edit:.3f}"
    assert metrics["F1@50"] == f"{paired.segments.f1[50]:.3f}"
    assert any(f"Pearson r = **{correlation.pearson_r:.3f}**" in m.value for m in at.markdown)
    figs = charts(at)
    confusion = figs["Frames: manual (truth) against automatic labels"]["data"][0]
    np.testing.assert_array_equal(np.asarray(confusion["text"], dtype=int),
                                  paired.confusion.to_numpy())
    ba = next(f for t, f in figs.items() if t.startswith("Bland-Altman"))["data"][0]
    np.testing.assert_allclose(ba["y"], paired.per_category.dropna(subset=["bias_min"])
                               ["bias_min"])


def test_agreement_between_the_model_and_the_truth_of_the_video_scans(app):
    at = app(SHIPPED_DB, "agreement", manual_run="truth", auto_run="demo-model")
    no_errors(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Scans labelled by both"] == "4"


def test_models_view_lists_the_runs_and_the_model(app):
    at = app(SHIPPED_DB, "models")
    no_errors(at)
    runs = at.dataframe[0].value
    assert list(runs["name"]) == ["manual-clips", "simulator-truth", "truth", "demo-model"]
    models = at.dataframe[1].value
    assert len(models) == 1 and models["n_runs"].tolist() == [1]
    assert any("No evaluation results" in i.value for i in at.info)
    bars = charts(at)["Scans labelled by each run"]["data"]
    with Store(SHIPPED_DB, read_only=True) as store:
        labelled = sorted(run.n_scans for run in list_runs(store))
    assert sorted(int(x) for t in bars for x in t["x"]) == labelled


def test_every_table_has_a_csv_download(app):
    for view in ("cohort", "scan", "operators", "agreement", "models"):
        at = app(SHIPPED_DB, view)
        no_errors(at)
        assert len(at.get("download_button")) == len(at.dataframe) > 0, view


def test_the_date_filter_narrows_what_every_view_reads(app):
    at = app(SHIPPED_DB, "cohort", **{"to": "2024-01-09"})
    no_errors(at)
    with Store(SHIPPED_DB, read_only=True) as store:
        listed = list_scans(store, date_to=date(2024, 1, 9))
    assert {m.label: m.value for m in at.metric}["Scans"] == str(len(listed))
    assert any("to 2024-01-09" in c.value for c in at.caption)


@pytest.mark.parametrize("view", ["cohort", "operators"])
def test_manual_labels_can_be_chosen_as_the_source(app, view):
    at = app(SHIPPED_DB, view, source="manual")
    no_errors(at)
    assert at.sidebar.selectbox(key="run").value == run_id("manual-clips")
