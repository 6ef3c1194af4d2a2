"""Fixtures of the dashboard tests: the shipped demo database and small stores built from
DataFrames (see ``tests/conftest.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from dashboard_paths import APP


@pytest.fixture
def app(monkeypatch):
    """An `AppTest` of the dashboard on a database: ``app(db, view, **query_params)`` runs
    the view and returns the test app."""
    from streamlit.testing.v1 import AppTest

    def run(db: Path, view: str = "cohort", **params: str):
        monkeypatch.setenv("FETAL_ANALYTICS_DB", str(db))
        at = AppTest.from_file(str(APP), default_timeout=60)
        at.query_params.update(params)
        at.run()
        if view != "cohort":
            at.switch_page(f"views/{view}.py").run()
        return at

    return run
