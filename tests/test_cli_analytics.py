"""The analytics commands end to end: correlate, stats, compare, export dfg."""

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats as scipy_stats

from fetal_analytics import taxonomy
from fetal_analytics.cli import main
from fetal_analytics.ingest import ingest_labels, ingest_manifest
from fetal_analytics.store import Store


def invoke(*args, code=0):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


MANUAL = [("S1", 0, 60, "HeD"), ("S1", 60, 180, "Br"), ("S2", 0, 180, "HeD"),
          ("S2", 200, 230, "Sp")]
AUTO = [("S1", 0, 120, "HeD"), ("S1", 120, 180, "Br"), ("S1", 180, 240, "Bk"),
        ("S3", 0, 60, "Fm"), ("S3", 60, 300, "HeD")]


@pytest.fixture
def db(tmp_path):
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame({"scan_id": ["S1", "S2", "S3", "S4"], "operator_id": ["A", "B", "C", "D"],
                  "group": ["expert", "expert", "trainee", "trainee"]}).to_csv(manifest,
                                                                               index=False)
    path = tmp_path / "cohort.duckdb"
    with Store(path) as store:
        ingest_manifest(store, manifest)
        for source, rows in (("manual", MANUAL), ("auto", AUTO)):
            labels = tmp_path / f"{source}.csv"
            pd.DataFrame(rows, columns=["scan_id", "start_s", "end_s", "label"]).to_csv(
                labels, index=False)
            ingest_labels(store, labels, source=source)
    return path


def test_correlate_matches_a_hand_computation(db):
    report = json.loads(invoke("correlate", "--db", db, "--format", "json").stdout)
    codes = taxonomy.default_model_codes()
    manual = dict.fromkeys(codes, 0.0) | {"HeD": (1 + 3) / 2, "Br": 2 / 2, "Sp": 0.5 / 2}
    auto = dict.fromkeys(codes, 0.0) | {"HeD": (2 + 4) / 2, "Br": 1 / 2, "Bk": 1 / 2,
                                        "Fm": 1 / 2}
    assert report["per_category"] == [
        {"label": c, "manual_mean_min": pytest.approx(manual[c]),
         "auto_mean_min": pytest.approx(auto[c])} for c in codes]
    x, y = np.array([manual[c] for c in codes]), np.array([auto[c] for c in codes])
    r = np.corrcoef(x, y)[0, 1]
    t = r * np.sqrt((len(x) - 2) / (1 - r ** 2))
    assert report["pearson_r"] == pytest.approx(r)
    assert report["pearson_p"] == pytest.approx(2 * scipy_stats.t.sf(abs(t), len(x) - 2))
    assert report["spearman_rho"] == pytest.approx(scipy_stats.spearmanr(x, y).statistic)
    assert (report["n_manual_scans"], report["n_auto_scans"]) == (2, 2)
    assert "paired" not in report


def test_correlate_paired_compares_the_scans_labelled_both_ways(db, tmp_path):
    out = tmp_path / "agreement.json"
    invoke("correlate", "--db", db, "--paired", "--format", "json", "--out", out)
    paired = json.loads(out.read_text())["paired"]
    assert paired["n_scans"] == 1 and paired["scan_ids"] == ["S1"]
    # S1 manual: HeD 0-60, Br 60-180; automatic: HeD 0-120, Br 120-180 (1 s frames)
    confusion = {row["truth"]: row for row in paired["confusion"]}
    assert (confusion["HeD"]["HeD"], confusion["Br"]["HeD"], confusion["Br"]["Br"]) == (
        60, 60, 60)
    table = invoke("correlate", "--db", db, "--paired").output
    assert "Paired: 1 scans labelled both ways" in table and "Cohen's kappa" in table


def test_correlate_csv_has_one_row_per_category(db):
    rows = invoke("correlate", "--db", db, "--format", "csv").output.splitlines()
    assert rows[0] == "label,manual_mean_min,auto_mean_min"
    assert len(rows) == 12 and rows[1].startswith("HeD,2.0,3.0")


def test_stats_by_group_and_operator(db):
    report = json.loads(invoke("stats", "--db", db, "--source", "manual", "--by", "operator",
                               "--format", "json").stdout)
    assert report["by"] == "operator" and report["selection"].startswith("manual labels")
    hed = next(r for r in report["table"] if r["label"] == "HeD")
    assert hed["n"] == 2 and hed["mean_min"] == pytest.approx(2.0)
    assert hed["sd_min"] == pytest.approx(np.std([1, 3], ddof=1), abs=1e-3)
    groups = json.loads(invoke("stats", "--db", db, "--format", "json").stdout)
    assert groups["selection"].startswith("auto labels")  # automatic by default
    assert {r["group"] for r in groups["table"]} == {"expert", "trainee"}
    assert (groups["ci"], groups["ci_method"]) == (0.95, "t")


def test_stats_features(db, tmp_path):
    out = tmp_path / "new folder" / "features.csv"  # the format from the suffix, the folder made
    invoke("stats", "--db", db, "--by", "scan", "--features", "--out", out)
    features = pd.read_csv(out).set_index("feature")
    assert features.loc["total_min", "n"] == 2
    assert features.loc["total_min", "mean"] == pytest.approx((4 + 5) / 2)


def test_compare_reports_tests_per_feature(db):
    report = json.loads(invoke("compare", "--db", db, "--groups", "expert", "trainee",
                               "--format", "json").stdout)
    assert report["groups"] == ["expert", "trainee"]
    assert report["n_operators"] == {"expert": 1, "trainee": 1}
    feature = report["features"][0]
    assert set(feature) >= {"feature", "values", "test", "p", "p_adjusted", "effect_size"}
    assert set(feature["values"]) == {"expert", "trainee"}


def test_export_dfg(db, tmp_path):
    invoke("export", "dfg", "--db", db, "--source", "auto", "--out", tmp_path / "g.dot")
    dot = (tmp_path / "g.dot").read_text()
    assert dot.startswith("digraph") and "HeD" in dot and "Br" in dot


@pytest.mark.parametrize(("args", "message"), [
    (["correlate", "--manual", "99"], "Error: no run '99' of source 'manual'; known runs: "
                                      "1 (manual, 'manual.csv')"),
    (["stats", "--run", "bogus"], "Error: no run 'bogus'"),
    (["compare", "--groups", "expert", "--groups", "nurse"], "nurse"),
])
def test_analytics_errors(db, args, message):
    result = invoke(*args[:1], "--db", db, *args[1:], code=1)
    assert message in result.output


def test_an_empty_database_and_a_missing_source(tmp_path, db):
    empty = tmp_path / "empty.duckdb"
    invoke("init-db", "--db", empty)
    for command in ("correlate", "stats", "compare"):
        result = invoke(command, "--db", empty, code=1)
        assert "Error: no events for" in result.output
        assert "import some with `fetal-analytics ingest labels" in result.output
    with Store(db) as store:
        for table in ("events", "run_scans", "runs"):
            store.con.execute(f"DELETE FROM {table} WHERE run_id = 2")
    result = invoke("correlate", "--db", db, code=1)
    assert "Error: no events for auto labels" in result.output


def test_a_single_group_cannot_be_compared(db):
    with Store(db) as store:
        store.con.execute("UPDATE operators SET grp = 'expert'")
    result = invoke("compare", "--db", db, code=1)
    assert "expert" in result.output and "two" in result.output.lower()


def test_a_running_automatic_run_leaves_the_manual_labels_as_default(db):
    """Regression: stats/compare failed with "no events for auto labels" while the only
    automatic run was still running, though manual labels existed."""
    with Store(db) as store:
        store.con.execute("UPDATE runs SET status = 'running', finished_at = NULL "
                          "WHERE source = 'auto'")
    report = json.loads(invoke("stats", "--db", db, "--format", "json").stdout)
    assert report["selection"].startswith("manual labels")
    # The manual labels are of experts only: compare reads them and says so.
    assert "groups present: 'expert'" in invoke("compare", "--db", db, code=1).output
    result = invoke("correlate", "--db", db, code=1)
    assert "no finished auto run has events" in result.output
    assert "(running)" in result.output


def test_latest_and_last(db, tmp_path):
    refused = invoke("export", "events", "--db", db, "--run", "latest", "--out",
                     tmp_path / "x.csv", code=1)
    assert "'latest' means each scan's newest run" in refused.output
    assert "'last'" in refused.output
    invoke("export", "events", "--db", db, "--out", tmp_path / "last.csv")
    assert set(pd.read_csv(tmp_path / "last.csv")["scan_id"]) == {"S1", "S3"}  # run 2 (auto)
    per_scan = json.loads(invoke("stats", "--db", db, "--run", "latest", "--format", "json",
                                 "--source", "manual").stdout)
    one_run = json.loads(invoke("stats", "--db", db, "--run", "1", "--format", "json").stdout)
    assert per_scan["selection"] == "manual labels (newest run per scan)"
    assert one_run["selection"] == "run 1 'manual.csv' (manual)"


def test_export_features_for_r_and_excel(db, tmp_path):
    from analytics.features import SCAN_FEATURE_COLUMNS

    invoke("export", "features", "--db", db, "--source", "manual", "--out", tmp_path / "f.csv")
    invoke("export", "features", "--db", db, "--source", "manual", "--out",
           tmp_path / "sub" / "f.parquet")
    csv = pd.read_csv(tmp_path / "f.csv")
    parquet = pd.read_parquet(tmp_path / "sub" / "f.parquet")
    assert list(csv.columns) == list(SCAN_FEATURE_COLUMNS)
    assert list(csv.columns[:4]) == ["scan_id", "operator_id", "group", "acquired_at"]
    assert list(csv["scan_id"]) == ["S1", "S2"] == list(parquet["scan_id"])
    numeric = parquet.select_dtypes("number").columns
    pd.testing.assert_frame_equal(csv[numeric], parquet[numeric], check_dtype=False)
    assert csv.loc[0, "total_min"] == pytest.approx(3.0)
    bad = invoke("export", "features", "--db", db, "--out", tmp_path / "f.xlsx", code=1)
    assert ".csv, .parquet" in bad.output


@pytest.mark.parametrize(("args", "message"), [
    (["stats", "--out", "x.txt"], "use one of .json, .csv, .parquet"),
    (["stats", "--out", "x.csv", "--format", "json"], "contradicts"),
    (["compare", "--format", "table", "--out", "x.json"], "a table is for the terminal"),
])
def test_output_format_follows_the_file_name(db, tmp_path, args, message):
    args = [str(tmp_path / a) if a.startswith("x.") else a for a in args]
    result = invoke(args[0], "--db", db, *args[1:], code=2)
    assert message in result.output
    assert not any(tmp_path.glob("x.*"))


def test_parquet_output_holds_the_csv_table(db, tmp_path):
    invoke("compare", "--db", db, "--out", tmp_path / "c.csv")
    invoke("compare", "--db", db, "--out", tmp_path / "c.parquet")
    csv, parquet = pd.read_csv(tmp_path / "c.csv"), pd.read_parquet(tmp_path / "c.parquet")
    assert list(csv.columns) == list(parquet.columns)
    assert list(csv["feature"]) == list(parquet["feature"])


def test_the_cli_holds_no_sql_and_no_pandas():
    """The faces only parse and render: every read and computation lives in the library."""
    import re
    from pathlib import Path

    import fetal_analytics.cli as cli

    text = Path(cli.__file__).read_text(encoding="utf-8")
    forbidden = re.compile(r"\b(SELECT|INSERT|DELETE|UPDATE)\b|\.execute\(|\.sql\(|query_df|"
                           r"\.scalar\(|\bimport pandas\b|\bpd\.|\.groupby\(|\.merge\(|"
                           r"\.nunique\(|\.round\(")
    offending = [line for line in text.splitlines() if forbidden.search(line)]
    assert offending == []


def test_skill_needs_two_operators_on_each_side(db):
    result = invoke("skill", "--db", db, code=1)
    assert "needs at least 2 operators in 'expert' and 2 outside it, got 1 and 1" in result.output


@pytest.mark.parametrize("order", [("expert", "trainee"), ("trainee", "expert")])
def test_hedges_g_names_its_direction_in_groups_order(db, order):
    table = invoke("compare", "--db", db, "--source", "auto", "--groups", *order).stdout
    assert f"Hedges' g ({order[1]} - {order[0]})" in table
    assert f"Hedges' g ({order[0]} - {order[1]})" not in table


def test_stats_run_finds_a_run_of_either_source(db):
    for run_ref, source in (("manual.csv", "manual"), ("auto.csv", "auto")):
        report = json.loads(invoke("stats", "--db", db, "--run", run_ref, "--format",
                                   "json").stdout)
        assert source in report["selection"] and run_ref in report["selection"]


def test_correlate_paired_reports_manual_labels_outside_the_categories(db, tmp_path):
    labels = tmp_path / "with_um.csv"
    labels.write_text("scan_id,start_s,end_s,label\nS1,0,60,HeD\nS1,60,180,Br\nS1,180,200,Um\n")
    invoke("ingest", "labels", labels, "--db", db, "--run-name", "with-um")
    table = invoke("correlate", "--db", db, "--manual", "with-um", "--paired").output
    assert "Manual frames of labels outside the 11 categories, counted as 'other': 20" in table
