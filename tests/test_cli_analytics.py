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
    hed = next(r for r in report["rows"] if r["label"] == "HeD")
    assert hed["n"] == 2 and hed["mean_min"] == pytest.approx(2.0)
    assert hed["sd_min"] == pytest.approx(np.std([1, 3], ddof=1), abs=1e-3)
    groups = json.loads(invoke("stats", "--db", db, "--format", "json").stdout)
    assert groups["selection"].startswith("auto labels")  # automatic by default
    assert {r["grp"] for r in groups["rows"]} == {"expert", "trainee"}


def test_stats_features(db, tmp_path):
    out = tmp_path / "features.csv"
    invoke("stats", "--db", db, "--by", "scan", "--features", "--format", "csv", "--out", out)
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
