"""The package as users install it: the wheel holds the shipped data (`data/`), and `label`
without --model finds the default model in an installation from that wheel, away from the
repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fetal_analytics.store import Store

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("demo_model.keras", "demo_model.json", "README.md", "screen_voluson.json",
           "screen_compact.json")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the sources (the build writes nothing into the checkout).

    pip builds it as users do, in an isolated environment with the setuptools that
    ``[build-system]`` asks for, from the package index `make` installs from.
    """
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    for folder in ("fetal_analytics", "inference", "analytics", "dashboard", "reports", "data"):
        shutil.copytree(ROOT / folder, source / folder, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out),
         str(source)], capture_output=True, text=True, cwd=out)
    assert build.returncode == 0, build.stderr
    return next(out.glob("fetal_analytics-*.whl"))


def test_the_wheel_holds_the_shipped_data(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for name in SHIPPED:
            assert archive.read(f"fetal_analytics/data/{name}") == (ROOT / "data" / name) \
                .read_bytes(), name
    assert not any(n.startswith("data/") for n in names)  # not a top-level package "data"


def test_the_wheel_holds_the_report_template(wheel):
    with zipfile.ZipFile(wheel) as archive:
        assert "reports/templates/report.html.j2" in archive.namelist()
        assert "reports/write.py" in archive.namelist()


def test_label_without_a_model_finds_the_default_model_installed_from_the_wheel(
        wheel, short_scans, tmp_path):
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site),
         str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    elsewhere = tmp_path / "elsewhere"  # neither the checkout nor the folder of the install
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "TF_CPP_MIN_LOG_LEVEL": "2"}

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-c", "from fetal_analytics.cli import main; main()",
             *map(str, args)], cwd=elsewhere, env=env, capture_output=True, text=True)

    db = tmp_path / "x.duckdb"
    assert cli("ingest", "manifest", short_scans / "manifest.csv", "--db", db).returncode == 0
    result = cli("label", short_scans / "videos" / "SIM0001.mp4", "--db", db, "--no-freezes")
    assert result.returncode == 0, result.stderr
    assert "1 labelled, 0 skipped, 0 failed" in result.stdout
    with Store(db, read_only=True) as store:
        model_path = store.scalar("SELECT path FROM models")
    assert model_path == str(site / "fetal_analytics" / "data" / "demo_model.keras")
