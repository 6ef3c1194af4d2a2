"""Shared fixtures: real DuckDB files in temporary folders, filled through the ingest functions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fetal_analytics.ingest import ingest_labels, ingest_manifest
from fetal_analytics.store import Store
from fetal_analytics.synth import simulate_cohort, write_cohort
from inference.dataset import DatasetSpec, build_dataset

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


@pytest.fixture(scope="session")
def short_scans(tmp_path_factory) -> Path:
    """Three simulated 30 s scans at 320x240 by three operators (seed 4), rendered once.

    Returns the cohort folder: ``manifest.csv`` (scans SIM0001-SIM0003 with their videos),
    ``videos/SIM000N.mp4``, ``manual_labels.csv`` and ``truth/``.
    """
    out = tmp_path_factory.mktemp("short-scans") / "cohort"
    write_cohort(simulate_cohort(scans=3, operators=3, minutes=0.5, seed=4), out,
                 size=(320, 240), seed=4)
    return out


@pytest.fixture(scope="session")
def tiny_clip_dataset(tmp_path_factory):
    """Build a tiny clip dataset of a simulated cohort, for training and evaluation tests.

    Call it as ``tiny_clip_dataset(seed=4, streams=("fr4", "2d"))``: ``scans`` one-minute
    320x240 scans by as many operators (one per split), the freeze-centred manual clips at 32
    px, shards of 40. Returns the dataset folder.
    """
    def build(*, seed: int, streams: tuple[str, ...], scans: int = 3) -> Path:
        cohort = tmp_path_factory.mktemp(f"sim-{seed}") / "cohort"
        write_cohort(simulate_cohort(scans=scans, operators=scans, minutes=1, seed=seed), cohort,
                     size=(320, 240), seed=seed)
        spec = DatasetSpec(size=32, streams=streams, split_fractions=(0.34, 0.33, 0.33),
                           shard_size=40)
        out = tmp_path_factory.mktemp(f"ds-{seed}") / "ds"
        build_dataset(cohort / "manifest.csv", cohort / "manual_labels.csv", out, spec=spec)
        return out

    return build
