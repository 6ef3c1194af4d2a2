"""`fetal-analytics report` and `timeline` on the shipped demo database: the JSON holds the
analytics API's numbers, the HTML requests nothing from the network, the PDF opens (pypdf), is
A4 with its page numbers and renders (pdftoppm) to pages that are not blank, the same database
gives the same bytes, the degenerate cases are still written, and timelines export to each
suffix."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from analytics.features import category_times
from analytics.operators import operator_profile
from analytics.report import REPORT_FEATURES
from analytics.selection import select
from fetal_analytics.cli import main
from fetal_analytics.store import Store
from reports.html import plotly_js

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo.duckdb"
OPERATORS = ("OP03", "OP08")  # an expert (left out of their own reference) and a trainee

needs_chromium = pytest.mark.skipif(shutil.which("chromium") is None,
                                    reason="Debian's chromium is not installed")


def _report(db: Path, out: Path, *args: str):
    return CliRunner().invoke(main, ["report", "--db", str(db), "--out", str(out), *args])


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    """The reports of two demo operators in every format."""
    out = tmp_path_factory.mktemp("reports")
    result = _report(DEMO, out, *[a for op in OPERATORS for a in ("--operator", op)])
    assert result.exit_code == 0, result.output
    return out


def test_the_json_holds_the_numbers_of_the_analytics_api(written):
    with Store(DEMO, read_only=True) as store, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        selection = select(store)
        for operator in OPERATORS:
            record = json.loads((written / f"{operator}.json").read_text())
            api = operator_profile(store, selection, operator).table.set_index("feature")
            profile = pd.DataFrame(record["profile"]).set_index("feature")
            assert list(profile.index) == list(REPORT_FEATURES)
            for column in ("value", "reference_mean", "reference_n", "z", "percentile"):
                np.testing.assert_allclose(profile[column].astype(float),
                                           api.loc[profile.index, column].astype(float))
            times = category_times(store, selection)
            mine = times[times["operator_id"] == operator].groupby("label", sort=False)[
                "duration_min"].mean()
            categories = pd.DataFrame(record["categories"]).set_index("label")
            np.testing.assert_allclose(categories["mean_min"], mine.loc[categories.index])
            scans = times.loc[times["operator_id"] == operator, "scan_id"].nunique()
            assert record["n_scans"] == scans
            assert record["operator"] == operator and record["reference"] == "expert"
    expert = json.loads((written / "OP03.json").read_text())
    assert expert["group"] == "expert" and expert["n_reference_operators"] == 5
    assert "not a verdict" in " ".join(f["text"] for f in expert["findings"])


def test_the_html_references_no_network_address(written):
    html = (written / "OP03.html").read_text()
    bundle = re.search(r"<script data-plotly>(.*?)</script>", html, re.S).group(1)
    assert bundle == plotly_js()  # plotly.js inline, as plotly ships it
    rest = html.replace(bundle, "")
    assert not re.search(r"https?://", rest)
    assert "<link" not in rest and "@import" not in rest


@needs_chromium
def test_the_html_opens_offline_without_a_single_request(written):
    from playwright.sync_api import sync_playwright

    requested = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                    args=["--no-sandbox"])
        page = browser.new_page()
        page.on("request", lambda r: requested.append(r.url))
        page.goto((written / "OP08.html").as_uri())
        page.wait_for_function("window.figuresDone === true", timeout=60_000)
        n_svg = page.evaluate("document.querySelectorAll('.main-svg').length")
        browser.close()
    assert [u for u in requested if not u.startswith(("file:", "data:", "about:"))] == []
    assert n_svg >= 4  # the figures were drawn


@needs_chromium
def test_the_pdf_is_a4_numbered_and_renders_to_pages_that_are_not_blank(written, tmp_path):
    from PIL import Image
    from pypdf import PdfReader

    reader = PdfReader(written / "OP08.pdf")
    pages = reader.pages
    assert 3 <= len(pages) <= 12
    for number, page in enumerate(pages, 1):
        width, height = float(page.mediabox.width), float(page.mediabox.height)
        assert (round(width), round(height)) == (595, 842)  # A4 in points
        assert f"page {number} of {len(pages)}" in page.extract_text()
    assert "report: OP08" in pages[0].extract_text()  # ("Workflow" holds an fl ligature)
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (poppler-utils) is not installed")
    subprocess.run(["pdftoppm", "-r", "40", "-gray", "-png", str(written / "OP08.pdf"),
                    str(tmp_path / "page")], check=True)
    images = sorted(tmp_path.glob("page-*.png"))
    assert len(images) == len(pages)
    for image in images:
        pixels = np.asarray(Image.open(image).convert("L"), dtype=float)
        assert (pixels < 200).mean() > 0.005, f"{image.name} is blank"


@needs_chromium
def test_the_same_database_gives_the_same_bytes(written, tmp_path):
    result = _report(DEMO, tmp_path, "--operator", "OP03")
    assert result.exit_code == 0, result.output
    for suffix in ("html", "pdf", "json"):
        assert (tmp_path / f"OP03.{suffix}").read_bytes() == \
            (written / f"OP03.{suffix}").read_bytes(), suffix


def test_an_unknown_operator_is_one_line_and_exit_1(tmp_path):
    result = _report(DEMO, tmp_path / "r", "--operator", "NOBODY")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: no operator 'NOBODY' in the database; operators: OP01, OP02, OP03, OP04, "
        "OP05, OP06, OP07, OP08, OP09, OP10, OP11, OP12"]
    assert not (tmp_path / "r").exists()


def test_a_reference_group_without_operators_is_one_line(tmp_path):
    result = _report(DEMO, tmp_path / "r", "--all", "--reference-group", "experts")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: no operator of group 'experts' in the database (did you mean 'expert'?); "
        "groups: expert, trainee"]


def test_operator_or_all_is_required(tmp_path):
    for args in ([], ["--all", "--operator", "OP01"]):
        result = _report(DEMO, tmp_path, *args)
        assert result.exit_code == 2 and "give --operator ID (repeatable) or --all" in \
            result.output


def _small(tmp_path: Path, groups: dict[str, str], scans: dict[str, str],
           auto: list[str], manual: list[str]) -> Path:
    """A database from operator groups, scan -> operator, and the scans each source labels."""
    manifest = pd.DataFrame({"scan_id": list(scans), "operator_id": list(scans.values()),
                             "group": [groups[o] for o in scans.values()],
                             "acquired_at": [f"2024-01-{i + 1:02d}" for i in range(len(scans))]})
    sequence = [("Br", 60), ("Bk", 10), ("HeD", 90), ("Sp", 30), ("Ab", 30), ("NL", 20),
                ("Ki", 20), ("Fm", 15)]

    def events(ids: list[str]) -> pd.DataFrame:
        rows = []
        for k, scan in enumerate(ids, 1):
            t = 0.0
            for label, seconds in sequence:
                rows.append({"scan_id": scan, "start_s": t, "end_s": t + seconds * (1 + k / 10),
                             "label": label})
                t += seconds * (1 + k / 10)
        return pd.DataFrame(rows)

    db = tmp_path / "small.duckdb"
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    runner = CliRunner()
    assert runner.invoke(main, ["ingest", "manifest", str(tmp_path / "manifest.csv"),
                                "--db", str(db)]).exit_code == 0
    for source, ids in (("auto", auto), ("manual", manual)):
        if ids:
            events(ids).to_csv(tmp_path / f"{source}.csv", index=False)
            result = runner.invoke(main, ["ingest", "labels", str(tmp_path / f"{source}.csv"),
                                          "--db", str(db), "--source", source])
            assert result.exit_code == 0, result.output
    return db


def test_degenerate_cohorts_are_still_reported_with_what_cannot_be_compared(tmp_path):
    # One group only (no expert), T1 with one scan, T3 with manual labels only.
    db = _small(tmp_path, {"T1": "trainee", "T2": "trainee", "T3": "trainee"},
                {"a": "T1", "b": "T2", "c": "T2", "d": "T3"}, auto=["a", "b", "c"],
                manual=["d"])
    result = _report(db, tmp_path / "out", "--all", "--format", "html,json")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "T1.html", "T1.json", "T2.html", "T2.json", "T3.html", "T3.json", "index.html"]
    t1 = json.loads((tmp_path / "out" / "T1.json").read_text())
    notes = " ".join(t1["notes"])
    assert "one scan" in notes
    assert "no other operator of group 'expert'" in notes
    assert "no skill estimate" in notes
    assert t1["n_reference_operators"] == 0
    t3 = json.loads((tmp_path / "out" / "T3.json").read_text())
    assert t3["n_scans"] == 0 and t3["timeline_rows"] == ["d manual"]
    assert any("no scans with events in auto labels" in n for n in t3["notes"])
    html = (tmp_path / "out" / "T3.html").read_text()
    assert "What cannot be compared, and why" in html
    index = (tmp_path / "out" / "index.html").read_text()
    assert all(f'href="{op}.html"' in index for op in ("T1", "T2", "T3"))


@needs_chromium
@pytest.mark.parametrize("suffix", [".html", ".svg", ".png"])
def test_a_timeline_exports_to_each_suffix(suffix, tmp_path):
    out = tmp_path / f"VID0001{suffix}"
    result = CliRunner().invoke(main, ["timeline", "--db", str(DEMO), "--scan", "VID0001",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    if suffix == ".png":
        from PIL import Image

        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, _ = Image.open(out).size
        assert width == 2000  # twice the 1000 px figure: 192 dpi at the layout's 96
    elif suffix == ".svg":
        text = data.decode()
        assert text.startswith("<svg")
        assert "truth" in text and "(manual)" in text
        assert "demo-model" in text
    else:
        text = data.decode()
        assert "run 4 'demo-model' (auto)" in text and "Plotly.newPlot" in text


def test_a_timeline_refuses_other_suffixes_and_unknown_scans(tmp_path):
    runner = CliRunner()
    bad = runner.invoke(main, ["timeline", "--db", str(DEMO), "--scan", "VID0001", "--out",
                               str(tmp_path / "t.jpg")])
    assert bad.exit_code == 2
    assert bad.output.strip().splitlines()[-1] == (
        "Error: Invalid value for --out: t.jpg: cannot tell the format from the suffix '.jpg'; "
        "use one of .html, .png, .svg")
    unknown = runner.invoke(main, ["timeline", "--db", str(DEMO), "--scan", "NOPE", "--out",
                                   str(tmp_path / "t.html")])
    assert unknown.exit_code == 1 and "no scan 'NOPE'" in unknown.output
