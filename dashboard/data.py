"""Every read of the dashboard: library calls on a read-only store, cached.

Each function opens the database read-only, calls one function of the read layer
(`fetal_analytics.queries`, `fetal_analytics.runs`) or of `analytics`, and closes it at once:
DuckDB lets no writer in while any process holds the file, so a labelling job can write between
two requests. Results, not connections, are cached (`st.cache_data`), keyed by the arguments,
among them the database's `stamp` (the modification times of the file and its write-ahead log),
so a run written since gives fresh numbers. A file another process is writing to
(`fetal_analytics.store.StoreBusyError`) is retried briefly; the views then show a notice.

Nothing here computes: no SQL, no statistics, only the library's own functions.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import streamlit as st

from fetal_analytics.store import Store, StoreBusyError

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy as np
    import pandas as pd

    from analytics.selection import EventSelection

T = TypeVar("T")

BUSY_TRIES = 5
"""Attempts to open a database that another process is writing to."""

BUSY_WAIT_S = 0.2
"""Seconds between those attempts."""

PERMUTATIONS = 1000
"""Permutations of the transition-matrix test."""

BOOTSTRAP = 1000
"""Bootstrap resamples of kappa and of the segment scores on the Agreement view."""


@dataclass(frozen=True)
class Filters:
    """The sidebar's choices: which scans (group, operator, dates) and which events.

    Attributes
    ----------
    db : str
        The database file.
    stamp : tuple of float
        Modification times of the file and of its write-ahead log (0 where absent): part of
        every cache key.
    group, operator : str or None
        None: all.
    date_from, date_to : date or None
    run : int or None
        The run whose events the view reads (None: the view has none to read).
    """

    db: str
    stamp: tuple[float, float]
    group: str | None = None
    operator: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    run: int | None = None

    def scans(self):
        """The `fetal_analytics.queries.ScanFilter` of these choices."""
        from fetal_analytics.queries import ScanFilter

        return ScanFilter.of(groups=self.group, operators=self.operator,
                             date_from=self.date_from, date_to=self.date_to)


def stamp(db: str | Path) -> tuple[float, float]:
    """The cache stamp of a database: modification times of the file and its WAL (0 if none)."""
    path = Path(db)
    wal = path.with_name(path.name + ".wal")
    return (path.stat().st_mtime if path.exists() else 0.0,
            wal.stat().st_mtime if wal.exists() else 0.0)


@contextmanager
def opened(db: str) -> Iterator[Store]:
    """The store, read-only, for one request; retried while another process writes to it.

    Raises
    ------
    StoreBusyError
        Still busy after `BUSY_TRIES` attempts.
    StoreError
        The file is missing or not a database of this release.
    """
    for attempt in range(BUSY_TRIES):
        try:
            store = Store(db, read_only=True)
            break
        except StoreBusyError:
            if attempt == BUSY_TRIES - 1:
                raise
            time.sleep(BUSY_WAIT_S)
    try:
        yield store
    finally:
        store.close()


@dataclass(frozen=True)
class Noted(Generic[T]):
    """A library result with the warnings it gave (what cannot be computed, and why).

    Attributes
    ----------
    value : object
        The result.
    notes : tuple of str
        The warnings' messages, in order, without repeats.
    """

    value: T
    notes: tuple[str, ...] = ()


def _noted(call: Callable[[], T]) -> Noted[T]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = call()
    return Noted(value, tuple(dict.fromkeys(str(w.message) for w in caught
                                            if issubclass(w.category, UserWarning))))


def _read(filters: Filters, call: Callable[[Store, EventSelection], T]) -> Noted[T]:
    """`call(store, selection)` on the filters' run and scans, with its warnings."""
    from analytics.selection import select

    with opened(filters.db) as store:
        selection = select(store, run=filters.run, scans=filters.scans())
        return _noted(lambda: call(store, selection))


# --- the database as a whole ---------------------------------------------------------------------

@st.cache_data(show_spinner=False)
def runs(db: str, stamp: tuple[float, float]) -> list:
    """`fetal_analytics.runs.list_runs`: every run, oldest first."""
    from fetal_analytics.runs import list_runs

    with opened(db) as store:
        return list_runs(store)


@st.cache_data(show_spinner=False)
def default_source(db: str, stamp: tuple[float, float]) -> str:
    """`analytics.selection.default_source`."""
    from analytics.selection import default_source as read

    with opened(db) as store:
        return read(store)


@st.cache_data(show_spinner=False)
def run_pairs(db: str, stamp: tuple[float, float]) -> pd.DataFrame:
    """`fetal_analytics.queries.run_pairs`."""
    from fetal_analytics.queries import run_pairs as read

    with opened(db) as store:
        return read(store)


@st.cache_data(show_spinner=False)
def scans(filters: Filters) -> pd.DataFrame:
    """`fetal_analytics.queries.list_scans` of the filters' scans (the run plays no part)."""
    from fetal_analytics.queries import list_scans

    f = filters.scans()
    with opened(filters.db) as store:
        return list_scans(store, groups=f.groups, operators=f.operators,
                          date_from=f.date_from, date_to=f.date_to)


@st.cache_data(show_spinner=False)
def models(db: str, stamp: tuple[float, float]) -> pd.DataFrame:
    """`fetal_analytics.queries.list_models`."""
    from fetal_analytics.queries import list_models

    with opened(db) as store:
        return list_models(store)


# --- cohort and operators ------------------------------------------------------------------------
# Two reads per filter state (`scan_features`, `category_times`); the analyses below work on
# those frames (the library's ``*_of`` functions), so no view reads them twice.

@st.cache_data(show_spinner=False)
def scan_features(filters: Filters) -> Noted[pd.DataFrame]:
    """`analytics.features.scan_features` of the filters' run and scans."""
    from analytics.features import scan_features as read

    return _read(filters, read)


@st.cache_data(show_spinner=False)
def category_times(filters: Filters) -> Noted[pd.DataFrame]:
    """`analytics.features.category_times` of the filters' run and scans."""
    from analytics.features import category_times as read

    return _read(filters, read)


@st.cache_data(show_spinner=False)
def structure_coverage(filters: Filters) -> Noted[pd.DataFrame]:
    """`analytics.operators.structure_coverage` (of `category_times`)."""
    from analytics.operators import structure_coverage_of

    return _noted(lambda: structure_coverage_of(category_times(filters).value))


@st.cache_data(show_spinner=False)
def category_summary(filters: Filters) -> Noted:
    """`analytics.summary.summarise` by group of `category_times`: minutes per category with
    95% CIs clustered by operator."""
    from analytics.summary import summarise

    return _noted(lambda: summarise(category_times(filters).value, by="group"))


@st.cache_data(show_spinner=False)
def operator_values(filters: Filters) -> Noted[pd.DataFrame]:
    """`analytics.groups.operator_values` (of `scan_features` and `category_times`)."""
    from analytics.groups import operator_values_of

    return _noted(lambda: operator_values_of(scan_features(filters).value,
                                             category_times(filters).value))


@st.cache_data(show_spinner=False)
def compare_groups(filters: Filters) -> Noted:
    """`analytics.groups.compare_groups` of every group present.

    Raises
    ------
    analytics.groups.GroupError
        Fewer than two groups.
    """
    from analytics.groups import compare_groups_of

    return _noted(lambda: compare_groups_of(operator_values(filters).value))


@st.cache_data(show_spinner=False)
def transitions(filters: Filters) -> Noted[dict]:
    """`analytics.sequences.transition_matrices` per group, background (Bk) left out."""
    from analytics.sequences import transition_matrices

    return _read(filters, lambda store, sel: transition_matrices(store, sel,
                                                                 skip_background=True))


@st.cache_data(show_spinner=False)
def transition_test(filters: Filters, groups: tuple[str, str]):
    """`analytics.sequences.transition_permutation_test` of two groups, background left out."""
    from analytics.sequences import transition_permutation_test

    return _read(filters, lambda store, sel: transition_permutation_test(
        store, sel, groups=groups, n_perm=PERMUTATIONS, skip_background=True))


@st.cache_data(show_spinner=False)
def ngrams(filters: Filters, n: int) -> Noted[pd.DataFrame]:
    """`analytics.sequences.ngrams`: the 10 most frequent per group, background left out."""
    from analytics.sequences import ngrams as read

    return _read(filters, lambda store, sel: read(store, sel, n=n, top=10,
                                                  skip_background=True))


@st.cache_data(show_spinner=False)
def operator_profile(filters: Filters, operator: str, reference: str) -> Noted:
    """`analytics.operators.operator_profile` (of `operator_values`)."""
    from analytics.operators import profile_of

    return _noted(lambda: profile_of(operator_values(filters).value, operator,
                                     reference=reference))


@st.cache_data(show_spinner=False)
def operator_trends(filters: Filters) -> Noted:
    """`analytics.operators.operator_trends` of every operator (of `scan_features`)."""
    from analytics.operators import trends_of

    return _noted(lambda: trends_of(scan_features(filters).value))


@st.cache_data(show_spinner=False)
def operator_report_html(filters: Filters, operator: str, reference: str) -> str:
    """`reports.html.report_html` of `analytics.report.operator_report`: the operator's report
    as `fetal-analytics report` writes it, on the filters' run and every scan (the report
    compares with every operator of the reference group, whatever the filters)."""
    from analytics.report import operator_report
    from analytics.selection import select
    from reports.html import report_html

    with opened(filters.db) as store:
        selection = select(store, run=filters.run)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # what cannot be computed is said in the report
            report = operator_report(store, selection, operator, reference=reference)
    return report_html(report)


# --- one scan ------------------------------------------------------------------------------------

@st.cache_data(show_spinner=False)
def scan_events(db: str, stamp: tuple[float, float], scan_id: str,
                run_ids: tuple[int, ...]) -> pd.DataFrame:
    """`fetal_analytics.queries.scan_events` of the runs, in order."""
    from fetal_analytics.queries import scan_events as read

    with opened(db) as store:
        return read(store, scan_id, list(run_ids))


@st.cache_data(show_spinner=False)
def newest_runs_of_scan(db: str, stamp: tuple[float, float], scan_id: str) -> list:
    """`fetal_analytics.queries.newest_runs_of_scan`."""
    from fetal_analytics.queries import newest_runs_of_scan as read

    with opened(db) as store:
        return read(store, scan_id)


@st.cache_data(show_spinner=False)
def scan_freezes(db: str, stamp: tuple[float, float], scan_id: str,
                 run_id: int) -> pd.DataFrame:
    """`fetal_analytics.queries.scan_freezes` of one run."""
    from fetal_analytics.queries import scan_freezes as read

    with opened(db) as store:
        return read(store, scan_id, run_id)


@st.cache_data(show_spinner=False)
def window_probabilities(db: str, stamp: tuple[float, float], scan_id: str, run_id: int):
    """`fetal_analytics.queries.window_probabilities` of one run."""
    from fetal_analytics.queries import window_probabilities as read

    with opened(db) as store:
        return read(store, scan_id, run_id)


@st.cache_data(show_spinner=False, max_entries=64)
def preview(video: str, mtime: float, t_s: float) -> tuple[np.ndarray, float]:
    """`inference.deidentify.preview_frame`: the de-identified frame at a time."""
    from inference.deidentify import preview_frame

    return preview_frame(video, t_s)


# --- agreement -----------------------------------------------------------------------------------

@st.cache_data(show_spinner=False)
def agreement(filters: Filters, manual_run: int, auto_run: int) -> Noted[tuple[Any, Any]]:
    """`analytics.agreement.paper_correlation` and `paired_agreement` of two runs (paired is
    None where no scan has both)."""
    from analytics.agreement import paired_agreement, paper_correlation
    from analytics.selection import select

    with opened(filters.db) as store:
        manual = select(store, run=manual_run, scans=filters.scans())
        auto = select(store, run=auto_run, scans=filters.scans())
        return _noted(lambda: (paper_correlation(store, manual, auto),
                               paired_agreement(store, manual, auto, n_boot=BOOTSTRAP)))


# --- models --------------------------------------------------------------------------------------

@st.cache_data(show_spinner=False)
def model_sidecar(path: str, mtime: float) -> dict:
    """`inference.model_file.read_model_info`'s sidecar of a model file on disk."""
    from inference.model_file import read_model_info

    return read_model_info(path).sidecar


@st.cache_data(show_spinner=False)
def saved_results(folder: str, mtime: float) -> list:
    """`inference.benchmark.read_saved_results` under a folder."""
    from inference.benchmark import read_saved_results

    return read_saved_results(folder)
