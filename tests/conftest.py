"""Shared fixtures: real DuckDB files in temporary folders, filled through the ingest functions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fetal_analytics.ingest import ingest_labels, ingest_manifest
from fetal_analytics.store import Store

DATA = Path(__file__).parent / "data"


@pytest.fixture
def data_dir() -> Path:
    """The sample input files under tests/data."""
    return DATA


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A path for a new database file."""
    return tmp_path / "test.duckdb"


@pytest.fixture
def cohort_store(tmp_path: Path):
    """Build a store from DataFrames, through the same CSV import users run.

    Call it as ``cohort_store(manifest, {"manual": events, "auto": events})``: `manifest` has the
    manifest columns (scan_id, operator_id, group, ... ), each events frame has
    scan_id, start_s, end_s, label (and optionally confidence). Returns an open read-write
    `Store`, closed after the test.
    """
    opened: list[Store] = []

    def build(manifest: pd.DataFrame, events_by_source: dict[str, pd.DataFrame]) -> Store:
        store = Store(tmp_path / f"cohort{len(opened)}.duckdb")
        opened.append(store)
        manifest_csv = tmp_path / f"manifest{len(opened)}.csv"
        manifest.to_csv(manifest_csv, index=False)
        ingest_manifest(store, manifest_csv)
        for source, events in events_by_source.items():
            labels_csv = tmp_path / f"{source}{len(opened)}.csv"
            events.to_csv(labels_csv, index=False)
            ingest_labels(store, labels_csv, source=source)
        return store

    yield build
    for store in opened:
        store.close()
