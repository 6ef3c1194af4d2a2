"""How fast is each view of the dashboard, from an empty cache and cached?

For each cohort (the shipped demo database and a 10,000-scan events-only cohort) and each view,
times, in seconds:

``data_cold``
    the view's library reads (`dashboard.views.<view>.load`) after `st.cache_data.clear()`;
``figures``
    building the view's Plotly figures from them (`build`);
``first_chart``
    the reads and the figure of the view's first chart alone, from an empty cache (what the
    user waits for before the first chart appears; the rest of the page streams in after it);
``data_cached``
    the same reads again (cache hits);
``page_cold`` and ``page_cached``
    the whole page as Streamlit runs it (`streamlit.testing.v1.AppTest`: sidebar, reads,
    figures, tables, serialisation to the browser's messages; not the browser's drawing),
    from an empty cache and again with the same filters;
``browser_first_chart`` and ``browser_done`` (with ``--browser``)
    what a user sees: ``streamlit run`` serving the database, Debian's chromium (Playwright)
    moving to the view by its sidebar link, until its first chart is drawn and until the page
    has finished running; the app precomputes every view's default state when it starts on a
    database (`dashboard.ui.precompute`), and the browser waits ``--settle`` seconds for it
    before the first view.

The 10,000-scan cohort is built with the CLI as a user would (``fetal-analytics simulate
--no-video``; its freeze-clip manual labels as the manual run ``manual-clips`` and its truth as
the automatic run ``simulator-truth``) unless ``--big`` names one already built.

Usage::

    python benchmarks/dashboard_speed.py [--demo data/demo.duckdb] [--big out/big.duckdb]
                                         [--scans 10000] [--repeat 3] [--browser] [--json]

Each figure is the best of ``--repeat`` rounds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _report import report

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import streamlit as st  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from dashboard import data, figures  # noqa: E402
from dashboard.views import agreement, cohort, models, operators, scan  # noqa: E402

VIEWS = ("cohort", "scan", "operators", "agreement", "models")


def build_big(folder: Path, n_scans: int) -> Path:
    """The events-only cohort, through the CLI."""
    cli = [sys.executable, "-m", "fetal_analytics.cli"]
    db = folder / "big.duckdb"
    steps = [
        ["simulate", "--out", str(folder / "cohort"), "--scans", str(n_scans), "--operators",
         str(max(n_scans // 100, 4)), "--no-video", "--seed", "1", "--manual-fraction", "0.2"],
        ["init-db", "--db", str(db)],
        ["ingest", "manifest", str(folder / "cohort" / "manifest.csv"), "--db", str(db)],
        ["ingest", "labels", str(folder / "cohort" / "manual_labels.csv"), "--db", str(db),
         "--source", "manual", "--run-name", "manual-clips"],
        ["ingest", "labels", str(folder / "cohort" / "truth" / "events.csv"), "--db", str(db),
         "--source", "auto", "--run-name", "simulator-truth"],
    ]
    for step in steps:
        subprocess.run([*cli, *step], check=True, stdout=subprocess.DEVNULL)
    return db


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def plans(db: str) -> dict[str, tuple[Callable[[], dict], Callable[[dict], dict],
                                      Callable[[], Any]]]:
    """Per view: its reads, its figures and its first chart (reads and figure), with the
    dashboard's default choices."""
    from dashboard import ui

    stamp = data.stamp(db)
    runs = [r for r in data.runs(db, stamp) if r.status == "finished" and r.n_events]
    auto = [r for r in runs if r.source == "auto"]
    run = max(auto, key=lambda r: (r.n_scans, r.run_id)).run_id
    filters = data.Filters(db, stamp, run=run)
    everything = data.scans(data.Filters(db, stamp))
    labelled = everything[everything["manual_runs"].map(len)
                          + everything["auto_runs"].map(len) > 0]
    scan_id = ui.default_scan(filters, labelled)
    first_operator = sorted(everything["operator_id"].unique())[0]
    pairs = data.run_pairs(db, stamp)
    manual_run, auto_run = int(pairs.iloc[0]["manual_run_id"]), int(pairs.iloc[0]["auto_run_id"])

    def scan_build(loaded: dict) -> dict:
        streams = sorted(loaded["probs"].probs)
        return scan.build(loaded, "fused" if "fused" in streams else
                          (streams[0] if streams else None))

    def first_cohort():
        features = data.scan_features(filters).value
        return figures.scan_durations(features, sorted(features["group"].unique()))

    def first_scan():
        return scan.build(scan.load(filters, scan_id), None)["timeline"]

    def first_operators():
        result = data.compare_groups(filters).value
        return figures.feature_distributions(result.values, "total_min", list(result.groups))

    def first_agreement():
        correlation, paired = data.agreement(filters, manual_run, auto_run).value
        return figures.minutes_scatter(correlation.per_category,
                                       None if paired is None else paired.per_category)

    def first_models():
        return models.build(models.load(filters, models.RESULTS_FOLDER))["runs"]

    return {
        "cohort": (lambda: cohort.load(filters), cohort.build, first_cohort),
        "scan": (lambda: scan.load(filters, scan_id), scan_build, first_scan),
        "operators": (lambda: operators.load(filters, first_operator, "expert"),
                      lambda loaded: operators.build(loaded, "total_min", "total_min", None),
                      first_operators),
        "agreement": (lambda: agreement.load(filters, manual_run, auto_run), agreement.build,
                      first_agreement),
        "models": (lambda: models.load(filters, models.RESULTS_FOLDER), models.build,
                   first_models),
    }


def page_times(db: str, view: str) -> tuple[float, float]:
    """The whole page from an empty cache, then again (cached), by AppTest."""
    os.environ["FETAL_ANALYTICS_DB"] = db
    at = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=600)
    at.run()
    if view != "cohort":
        at.switch_page(f"views/{view}.py")
    st.cache_data.clear()
    cold, _ = timed(at.run)
    cached, _ = timed(at.run)
    if at.exception:
        raise RuntimeError(f"{view}: {[e.value for e in at.exception]}")
    return cold, cached


def measure(db: str, name: str, repeat: int) -> dict[str, float]:
    """Every figure of every view on one database: the best of `repeat` rounds."""
    best: dict[str, float] = {}

    def keep(key: str, seconds: float) -> None:
        best[key] = min(seconds, best.get(key, float("inf")))

    view_plans = plans(db)
    for _ in range(repeat):
        for view in VIEWS:
            load, build, first = view_plans[view]
            st.cache_data.clear()
            keep(f"{name}.{view}.first_chart", timed(first)[0])
            st.cache_data.clear()
            seconds, loaded = timed(load)
            keep(f"{name}.{view}.data_cold", seconds)
            keep(f"{name}.{view}.figures", timed(lambda: build(loaded))[0])  # noqa: B023
            keep(f"{name}.{view}.data_cached", timed(load)[0])
            cold, cached = page_times(db, view)
            keep(f"{name}.{view}.page_cold", cold)
            keep(f"{name}.{view}.page_cached", cached)
    return {k: round(v, 3) for k, v in best.items()}


def browser_times(db: str, name: str, settle: float) -> dict[str, float]:
    """Each view reached by its sidebar link in chromium: seconds to its first chart and to
    the end of its run."""
    import socket

    from playwright.sync_api import sync_playwright

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "dashboard" / "app.py"),
         "--server.headless", "true", "--server.port", str(port), "--server.address",
         "127.0.0.1", "--browser.gatherUsageStats", "false", "--", "--db", db],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    out: dict[str, float] = {}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                                 args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            for _ in range(100):
                try:
                    page.goto(f"http://127.0.0.1:{port}/models")
                    break
                except Exception:  # the server is still starting
                    time.sleep(0.3)
            page.wait_for_selector(".js-plotly-plot", timeout=120_000)
            time.sleep(settle)
            for view in VIEWS:
                title = view.capitalize()
                start = time.perf_counter()
                page.locator('[data-testid="stSidebarNav"] a', has_text=title).click()
                page.wait_for_function(
                    f"document.querySelector('h1')?.innerText === '{title}' && "
                    "document.querySelector('.js-plotly-plot')", timeout=120_000)
                out[f"{name}.{view}.browser_first_chart"] = time.perf_counter() - start
                page.wait_for_function(
                    "!document.querySelector('[data-testid=\"stStatusWidget\"]')",
                    timeout=120_000)
                out[f"{name}.{view}.browser_done"] = time.perf_counter() - start
                if page.locator('[data-testid="stException"]').count():
                    raise RuntimeError(f"{view}: an exception on the page")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {k: round(v, 3) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", default=str(REPO / "data" / "demo.duckdb"))
    parser.add_argument("--big", help="A 10,000-scan database already built (default: build "
                                      "one in a temporary folder, about a minute).")
    parser.add_argument("--scans", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3,
                        help="Rounds; each figure is the best of them (a shared machine's "
                             "other work only ever adds time).")
    parser.add_argument("--browser", action="store_true",
                        help="Also time each view in chromium (Debian's /usr/bin/chromium).")
    parser.add_argument("--settle", type=float, default=20.0,
                        help="Seconds the browser waits for the app's precomputation.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    results = {"cpus": os.cpu_count()}
    results.update(measure(args.demo, "demo", args.repeat))
    if args.browser:
        results.update(browser_times(args.demo, "demo", args.settle))
    with tempfile.TemporaryDirectory() as tmp:
        big = args.big or str(build_big(Path(tmp), args.scans))
        results.update(measure(big, f"scans{args.scans}", args.repeat))
        if args.browser:
            results.update(browser_times(big, f"scans{args.scans}", args.settle))
    report(results, as_json=args.json)


if __name__ == "__main__":
    main()
