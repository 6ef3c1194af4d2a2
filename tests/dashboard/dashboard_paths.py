"""Paths and names the dashboard tests share (imported as ``from dashboard_paths import ...``)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "dashboard" / "app.py"
SHIPPED_DB = REPO / "data" / "demo.duckdb"
VIEWS = ("cohort", "scan", "operators", "agreement", "models")
"""The views, in the sidebar's order, by URL path."""
