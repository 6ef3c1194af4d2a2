"""The dashboard in a real browser: `streamlit run` in a subprocess, Debian's chromium driven by
Playwright through every page of the sidebar; a screenshot of each under
``out/test-artifacts/dashboard/``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from dashboard_paths import APP, REPO, SHIPPED_DB, VIEWS

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "out" / "test-artifacts" / "dashboard"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's chromium is missing: `make test` installs it "
                                       "as root (scripts/system-deps.sh)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    """`streamlit run dashboard/app.py -- --db data/demo.duckdb` on a free localhost port."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false", "--", "--db", str(SHIPPED_DB)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"streamlit did not start:\n{process.stdout.read().decode()}")
        time.sleep(0.3)
    yield url
    process.terminate()
    process.wait(timeout=10)


def test_every_page_of_the_sidebar_shows_its_charts_without_an_error(server):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                             args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        page.goto(server)
        page.wait_for_selector(".js-plotly-plot", timeout=30_000)
        links = page.locator('[data-testid="stSidebarNav"] a')
        assert links.count() == len(VIEWS)
        for i, view in enumerate(VIEWS):
            links.nth(i).click()
            page.wait_for_url(f"**/{'' if i == 0 else view}", timeout=15_000,
                              wait_until="commit")
            page.wait_for_selector(".js-plotly-plot", timeout=30_000)
            page.wait_for_function(
                "!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=30_000)
            page.wait_for_timeout(500)  # charts draw after the script ends
            page.screenshot(path=str(ARTIFACTS / f"{view}.png"), full_page=True)
            errors = page.locator('[data-testid="stException"]')
            assert errors.count() == 0, f"{view}: {errors.first.inner_text()}"
            assert page.locator("h1").first.inner_text() == view.capitalize()
        browser.close()
