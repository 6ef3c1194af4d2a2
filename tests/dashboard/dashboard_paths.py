"""Paths and names the dashboard tests share (imported as ``from dashboard_paths import ...``)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "dashboard" / "app.py"
SHIPPED_DB = REPO / "data" / "demo.duckdb"
VIEWS = ("cohort", "scan", "operators", "agreement", "models")
"""The views, in the sidebar's order, by URL path."""


def figure(chart) -> dict:
    """The Plotly figure of an AppTest ``plotly_chart`` element, its arrays as NumPy arrays
    (Plotly writes numeric arrays as base64 typed arrays: ``{"dtype": "f8", "bdata": ...}``)."""
    import base64
    import json

    import numpy as np

    def decode(value):
        if isinstance(value, dict) and "bdata" in value:
            array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
            shape = value.get("shape")
            if isinstance(shape, str):
                shape = tuple(int(n) for n in shape.split(","))
            return array.reshape(shape) if shape else array
        if isinstance(value, dict):
            return {k: decode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [decode(v) for v in value]
        return value

    return decode(json.loads(chart.proto.spec))


def charts(at) -> dict:
    """The figures of a run AppTest by their title text."""
    out = {}
    for chart in at.get("plotly_chart"):
        fig = figure(chart)
        title = fig["layout"].get("title", {})
        out[title.get("text", "") if isinstance(title, dict) else title] = fig
    return out
