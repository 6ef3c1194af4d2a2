"""What every view shares: the database in use, the sidebar filters kept in the URL, tables
with a CSV download, and sentences in place of what cannot be shown.

The filters are widgets bound to the URL's query parameters (``group``, ``operator``, ``from``,
``to``, ``source``, ``run``, ``scan``, ``manual_run``, ``auto_run``), so a view with its filters
is a link that can be shared. The entry script draws them (`sidebar`) before it runs the view:
Streamlit keeps the parameters of the entry script's widgets when the user moves to another view.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

from dashboard import data
from fetal_analytics.errors import UserError
from fetal_analytics.store import StoreBusyError

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from fetal_analytics.runs import Run

DB_ENV = "FETAL_ANALYTICS_DB"
"""Environment variable naming the database to open."""

DEMO_DB = Path("out/demo/demo.duckdb")
"""What `make demo` builds (relative to the working folder)."""

SHIPPED_DB = Path(__file__).resolve().parent.parent / "data" / "demo.duckdb"
"""The demo database shipped with the repository (`make demo-data`)."""

ALL = "all"
"""The choice of every group or every operator."""

log = logging.getLogger(__name__)


def default_db(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> str:
    """The database the dashboard opens: ``--db PATH`` after ``--`` on the command line, else
    `DB_ENV`, else `DEMO_DB` where present, else `SHIPPED_DB`.

    Examples
    --------
    >>> default_db(["app.py", "--db", "my.duckdb"], {})
    'my.duckdb'
    >>> default_db(["app.py"], {"FETAL_ANALYTICS_DB": "env.duckdb"})
    'env.duckdb'
    """
    argv = sys.argv if argv is None else argv
    environ = os.environ if environ is None else environ
    for i, arg in enumerate(argv):
        if arg == "--db" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--db="):
            return arg.split("=", 1)[1]
    if environ.get(DB_ENV):
        return environ[DB_ENV]
    return str(DEMO_DB if DEMO_DB.exists() else SHIPPED_DB)


def database() -> str:
    """The database path in use (the sidebar's path box, filled with `default_db`)."""
    return st.session_state.get("db") or default_db()


def database_box() -> None:
    """The sidebar's path box: another database file can be typed in."""
    st.sidebar.text_input("Database file", value=default_db(), key="db",
                          help="A fetal-analytics DuckDB file, opened read-only.")


@contextmanager
def guarded() -> Iterator[None]:
    """Turn what the library refuses into a sentence: a busy file gives a notice and a retry
    button, a missing or unsuitable file or an empty selection says why."""
    try:
        yield
    except StoreBusyError as exc:
        st.warning(f"The database is being written to by another process right now, so "
                   f"nothing can be read from it this moment ({exc}). The numbers come back "
                   f"as soon as it is free.")
        st.button("Retry", key="retry_busy")
    except (UserError, FileNotFoundError) as exc:
        st.info(str(exc))


def say(message: str) -> None:
    """A sentence in place of what cannot be shown."""
    st.info(message)


def notes(noted: data.Noted) -> Any:
    """Show a result's warnings (what could not be computed) under an expander; return it."""
    if noted.notes:
        with st.expander(f"Notes ({len(noted.notes)}): what could not be computed"):
            for note in noted.notes:
                st.caption(note)
    return noted.value


def table(frame: pd.DataFrame, name: str) -> None:
    """A table with its CSV download (`name`.csv, every digit); decimals shown to 4
    significant digits."""
    floats = frame.select_dtypes("float").columns
    st.dataframe(frame, hide_index=True, column_config={
        c: st.column_config.NumberColumn(format="%.4g") for c in floats})
    st.download_button(f"Download {name}.csv", frame.to_csv(index=False).encode(),
                       file_name=f"{name}.csv", mime="text/csv", key=f"csv_{name}")


def chart(figure: go.Figure, key: str) -> None:
    """A Plotly figure, full width."""
    st.plotly_chart(figure, key=key, width="stretch")


def choice(label: str, options: list, *, key: str, default: Any = None,
           format_func: Callable[[Any], str] = str, help: str | None = None) -> Any:
    """A sidebar selectbox bound to the query parameter `key`."""
    index = options.index(default) if default in options else 0
    return st.sidebar.selectbox(label, options, index=index, key=key, bind="query-params",
                                format_func=format_func, help=help)


def _run_label(run: Run) -> str:
    """A run by its name: the URL then holds ``run=simulator-truth``, not a number that means
    another run in another database."""
    return run.name


def _runs_help(runs: list[Run]) -> str:
    return "; ".join(f"{r.name}: run {r.run_id}, {r.n_scans} scans, {r.kind}" for r in runs)


def finished_runs(db: str, stamp: tuple[float, float], source: str | None = None) -> list[Run]:
    """The finished runs with events, of a source."""
    return [r for r in data.runs(db, stamp) if r.status == "finished" and r.n_events
            and (source is None or r.source == source)]


def scan_filters() -> data.Filters:
    """The sidebar's group, operator and date filters (no run yet)."""
    db = database()
    stamp = data.stamp(db)
    everything = data.scans(data.Filters(db, stamp))
    st.sidebar.markdown("**Scans**")
    groups = sorted(everything["group"].dropna().unique())
    group = choice("Group", [ALL, *groups], key="group")
    ops = everything if group == ALL else everything[everything["group"] == group]
    operator = choice("Operator", [ALL, *sorted(ops["operator_id"].unique())], key="operator")
    dates = everything["acquired_at"].dropna()
    first = dates.min().date() if len(dates) else None
    last = dates.max().date() if len(dates) else None
    date_from = st.sidebar.date_input("From", value=first, min_value=first, max_value=last,
                                      key="from", bind="query-params") if first else None
    date_to = st.sidebar.date_input("To", value=last, min_value=first, max_value=last,
                                    key="to", bind="query-params") if last else None
    return data.Filters(db, stamp, group=None if group == ALL else group,
                        operator=None if operator == ALL else operator,
                        date_from=None if date_from == first else date_from,
                        date_to=None if date_to == last else date_to)


def run_filter(filters: data.Filters) -> data.Filters:
    """The sidebar's source and run: one run at a time, of the chosen source; by default the
    run labelling most scans. The choice is the same on every view (it stays in the URL)."""
    st.sidebar.markdown("**Labels**")
    source = st.sidebar.radio("Source", ["auto", "manual"], horizontal=True, key="source",
                              bind="query-params",
                              index=["auto", "manual"].index(
                                  data.default_source(filters.db, filters.stamp)))
    runs = finished_runs(filters.db, filters.stamp, source)
    if not runs:
        return filters
    by_id = {r.run_id: r for r in runs}
    most = max(runs, key=lambda r: (r.n_scans, r.run_id))
    run = choice("Run", list(by_id), key="run", default=most.run_id,
                  format_func=lambda i: _run_label(by_id[i]))
    return replace(filters, run=run)


def run_pair(filters: data.Filters) -> tuple[Run | None, Run | None]:
    """The Agreement view's manual run and automatic run (default: the pair sharing most
    scans)."""
    st.sidebar.markdown("**Labels compared**")
    manual = {r.run_id: r for r in finished_runs(filters.db, filters.stamp, "manual")}
    auto = {r.run_id: r for r in finished_runs(filters.db, filters.stamp, "auto")}
    if not manual or not auto:
        return (next(iter(manual.values()), None), next(iter(auto.values()), None))
    pairs = data.run_pairs(filters.db, filters.stamp)
    best = pairs.iloc[0] if len(pairs) else None
    manual_run = choice("Manual run", list(manual), key="manual_run",
                         default=None if best is None else int(best["manual_run_id"]),
                         format_func=lambda i: _run_label(manual[i]),
                         help=_runs_help(list(manual.values())))
    auto_run = choice("Automatic run", list(auto), key="auto_run",
                       default=None if best is None else int(best["auto_run_id"]),
                       format_func=lambda i: _run_label(auto[i]),
                       help=_runs_help(list(auto.values())))
    return manual[manual_run], auto[auto_run]


def caption(filters: data.Filters, run: Run | None = None) -> None:
    """One line under the title: the database and what the view shows."""
    scans = filters.scans().describe() or "all scans"
    what = f"run {run.run_id} '{run.name}' ({run.source})" if run else ""
    st.caption(" · ".join(p for p in (f"`{filters.db}`", scans, what) if p))


def default_scan(filters: data.Filters, labelled: pd.DataFrame) -> str:
    """The scan the Scan view shows first: one labelled by a model (a labelling run, which
    stores window probabilities and freezes) and by hand, else one labelled both ways, else
    the first of `labelled` (`data.scans` rows)."""
    models = {r.name for r in finished_runs(filters.db, filters.stamp, "auto")
              if r.kind == "label"}
    both = labelled[labelled["manual_runs"].map(bool) & labelled["auto_runs"].map(bool)]
    by_model = both[both["auto_runs"].map(lambda names: bool(models & set(names)))]
    for candidates in (by_model, both, labelled):
        if len(candidates):
            return candidates["scan_id"].iloc[0]
    raise ValueError("`labelled` holds no scan")


@dataclass(frozen=True)
class Sidebar:
    """What the sidebar chose for the view being shown.

    Attributes
    ----------
    filters : data.Filters
        The scans and, where the view reads one, the run.
    scan_id : str or None
        The Scan view's scan (None: no labelled scan matches the filters).
    manual, auto : Run or None
        The Agreement view's runs (None where the database has none of that source).
    """

    filters: data.Filters
    scan_id: str | None = None
    manual: Run | None = None
    auto: Run | None = None


SIDEBAR_KEY = "sidebar_choice"
"""Where `sidebar` leaves its choice for the view (`current`)."""


def sidebar(view: str) -> Sidebar:
    """Draw the filters of a view (its ``url_path``) and remember the choice for `current`."""
    filters = scan_filters()
    choice_ = Sidebar(filters)
    if view in ("cohort", "operators"):
        choice_ = Sidebar(run_filter(filters))
    elif view == "scan":
        scans = data.scans(filters)
        labelled = scans[scans["manual_runs"].map(len) + scans["auto_runs"].map(len) > 0]
        if len(labelled):
            st.sidebar.markdown("**Scan**")
            scan_id = choice("Scan", list(labelled["scan_id"]), key="scan",
                             default=default_scan(filters, labelled))
            choice_ = Sidebar(run_filter(filters), scan_id=scan_id)
    elif view == "agreement":
        manual, auto = run_pair(filters)
        choice_ = Sidebar(filters, manual=manual, auto=auto)
    st.session_state[SIDEBAR_KEY] = choice_
    return choice_


def current() -> Sidebar:
    """The sidebar's choice for the view being shown (see `sidebar`)."""
    return st.session_state[SIDEBAR_KEY]


def precompute(db: str) -> None:
    """Fill the cache with every view's numbers at its default filters (no filter, the
    default run, the default pair of runs), so the first visit of each view is a cache hit:
    on 10,000 scans the Operators and Agreement views take 3-4 s from an empty cache.

    Errors are logged, not raised: the views report them when they meet them.
    """
    from dashboard.views import agreement, cohort, operators

    try:
        stamp = data.stamp(db)
        source = data.default_source(db, stamp)
        runs = finished_runs(db, stamp, source)
        if runs:
            filters = data.Filters(db, stamp,
                                   run=max(runs, key=lambda r: (r.n_scans, r.run_id)).run_id)
            cohort.load(filters)
            features = data.scan_features(filters).value
            groups = sorted(data.scans(data.Filters(db, stamp))["group"].dropna().unique())
            operators.load(filters, min(features["operator_id"], default=None),
                           operators.REFERENCE if operators.REFERENCE in groups
                           else (groups[0] if groups else None))
        pairs = data.run_pairs(db, stamp)
        if len(pairs):
            agreement.load(data.Filters(db, stamp), int(pairs.iloc[0]["manual_run_id"]),
                           int(pairs.iloc[0]["auto_run_id"]))
    except Exception:  # a busy or unreadable file: the views say so when they read it
        log.warning("precomputing the dashboard's views on %s failed", db, exc_info=True)


@st.cache_resource(show_spinner=False)
def _precompute_once(db: str, stamp: tuple[float, float]) -> threading.Thread:
    thread = threading.Thread(target=precompute, args=(db,), daemon=True,
                              name="dashboard-precompute")
    thread.start()
    return thread


def start_precompute() -> None:
    """Run `precompute` in the background, once per database file and version, when served
    by ``streamlit run`` (not under `streamlit.testing`, whose runs must stay deterministic).
    """
    from streamlit import runtime

    db = database()
    # streamlit.testing runs the app on a mock of the Runtime class, not an instance of it.
    served = runtime.exists() and type(runtime.get_instance()) is runtime.Runtime
    if served and Path(db).is_file():
        _precompute_once(db, data.stamp(db))
