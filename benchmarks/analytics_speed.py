"""How fast are the workflow analytics on a large cohort?

Builds a temporary DuckDB store holding an events-only cohort (default 10,000 scans with ~60
events each, 2 groups, ~100 operators; random labels and durations), then times

``category_times``
    `analytics.features.category_times` (SQL in DuckDB);
``stats``
    ``category_times`` followed by ``summarise(by="group")`` (the numbers of the paper's table);
``dashboard``
    `analytics.features.scan_features`, the heaviest query behind the dashboard;
``correlate``
    `analytics.agreement.paper_correlation` of the manual and the automatic run (the store
    holds the cohort twice: as manual labels and, with jittered boundaries, as automatic ones);
``pandas``
    a straightforward pandas implementation of the category-time numbers (groupby over the
    events DataFrame already in memory), for comparison, and the same after reading the
    events out of the store; and of the paper's correlation;
``cli``
    the commands ``fetal-analytics stats`` and ``fetal-analytics correlate`` as a user runs
    them (fresh processes, start-up included);

and prints the best of ``--repeat`` runs of each, in seconds, with the ratios of the pandas
times to the DuckDB ``category_times`` time (above 1: DuckDB is faster), and whether the two
implementations agree.

Usage::

    python benchmarks/analytics_speed.py --scans 10000 --json
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _report import best_of, report

from analytics.agreement import paper_correlation
from analytics.features import category_times, scan_features
from analytics.selection import select
from analytics.summary import summarise
from fetal_analytics import taxonomy
from fetal_analytics.store import Store


def make_cohort(n_scans: int, *, events_per_scan: int = 60, n_operators: int = 100,
                seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Random operators, scans and events (seconds); consecutive events never share a label."""
    rng = np.random.default_rng(seed)
    codes = np.array(taxonomy.default_model_codes())
    operators = pd.DataFrame({
        "operator_id": [f"OP{i:03d}" for i in range(n_operators)],
        "grp": ["expert" if i % 2 == 0 else "trainee" for i in range(n_operators)],
    })
    scans = pd.DataFrame({
        "scan_id": [f"S{i:06d}" for i in range(n_scans)],
        "operator_id": operators["operator_id"].to_numpy()[np.arange(n_scans) % n_operators],
    })
    n_events = rng.integers(events_per_scan - 10, events_per_scan + 11, size=n_scans)
    scan_index = np.repeat(np.arange(n_scans), n_events)
    # Labels: a random walk over the codes that never stays on the same code.
    steps = rng.integers(1, len(codes), size=len(scan_index))
    label_index = np.cumsum(steps) % len(codes)
    durations = rng.gamma(2.0, 15.0, size=len(scan_index)) + 0.5
    ends = np.cumsum(durations)
    first = np.r_[0, np.cumsum(n_events)[:-1]]
    offset = np.repeat(ends[first] - durations[first], n_events)
    events = pd.DataFrame({
        "scan_id": scans["scan_id"].to_numpy()[scan_index],
        "start_s": ends - durations - offset,
        "end_s": ends - offset,
        "label": codes[label_index],
    })
    return operators, scans, events


def jittered(events: pd.DataFrame, *, seed: int = 1) -> pd.DataFrame:
    """The events with every inner boundary moved by up to +-2 s (automatic labels)."""
    rng = np.random.default_rng(seed)
    shift = rng.uniform(-2.0, 2.0, len(events))
    same_scan = events["scan_id"].eq(events["scan_id"].shift(-1)).to_numpy()
    shift = np.where(same_scan, shift, 0.0)  # a scan's last end stays
    # Keep every event at least 0.4 s long: boundaries move by less than a fifth of the
    # shorter neighbour (events last >= 0.5 s in `make_cohort`).
    length = (events["end_s"] - events["start_s"]).to_numpy()
    limit = 0.2 * np.minimum(length, np.r_[length[1:], np.inf])
    shift = np.clip(shift, -limit, limit)
    end = events["end_s"].to_numpy() + shift
    start = np.r_[0.0, end[:-1]]
    start = np.where(events["scan_id"].eq(events["scan_id"].shift()).to_numpy(), start,
                     events["start_s"].to_numpy())
    return events.assign(start_s=start, end_s=end)


def build_store(path: Path, operators: pd.DataFrame, scans: pd.DataFrame,
                events: pd.DataFrame) -> Store:
    """A new store at `path` holding the cohort as a manual run and an automatic run."""
    store = Store(path)
    with store.transaction():
        store.insert_frame("operators", operators)
        store.insert_frame("scans", scans)
        for source, rows in (("manual", events), ("auto", jittered(events))):
            run_id = store.scalar(
                "INSERT INTO runs (name, source, kind, status, finished_at) "
                "VALUES ('benchmark', ?, 'import', 'finished', current_timestamp) "
                "RETURNING run_id", [source])
            store.insert_frame("events", rows.assign(run_id=run_id))
            store.con.execute(  # as `ingest_labels` records the scans an import wrote
                "INSERT INTO run_scans (run_id, scan_id, written_at) "
                "SELECT DISTINCT run_id, scan_id, current_timestamp FROM events WHERE run_id = ?",
                [run_id])
    return store


def pandas_correlation(manual: pd.DataFrame, auto: pd.DataFrame) -> float:
    """Pearson's r of the mean minutes per scan per category, in pandas."""
    cats = list(taxonomy.default_model_codes())

    def mean_minutes(events: pd.DataFrame) -> pd.Series:
        minutes = (events["end_s"] - events["start_s"]).groupby(events["label"]).sum() / 60
        return minutes.reindex(cats, fill_value=0.0) / events["scan_id"].nunique()

    return float(np.corrcoef(mean_minutes(manual), mean_minutes(auto))[0, 1])


def cli_seconds(repeat: int, *args: str) -> float:
    """Best wall time of a fresh `fetal-analytics` process running `args`."""
    cli = Path(sys.executable).with_name("fetal-analytics")
    return best_of(repeat, lambda: subprocess.run([str(cli), *args], check=True,
                                                  capture_output=True))[0]


def pandas_category_times(events: pd.DataFrame, scans: pd.DataFrame,
                          operators: pd.DataFrame) -> pd.DataFrame:
    """The category-time numbers (duration, share, events and revisits per scan and category)
    in plain pandas, for comparison with the SQL."""
    ev = events.sort_values(["scan_id", "start_s"], kind="stable")
    ev = ev.assign(duration_s=ev["end_s"] - ev["start_s"],
                   new_seg=ev["label"].ne(ev.groupby("scan_id")["label"].shift()))
    per = ev.groupby(["scan_id", "label"], sort=False).agg(
        duration_s=("duration_s", "sum"), n_events=("duration_s", "size"),
        n_segments=("new_seg", "sum"))
    cats = list(taxonomy.default_model_codes())
    grid = pd.MultiIndex.from_product([ev["scan_id"].unique(), cats], names=["scan_id", "label"])
    per = per.reindex(grid, fill_value=0).reset_index()
    per["duration_min"] = per["duration_s"] / 60.0
    per["share"] = per["duration_s"] / per.groupby("scan_id")["duration_s"].transform("sum")
    per["n_revisits"] = (per["n_segments"] - 1).clip(lower=0)
    return per.merge(scans, on="scan_id").merge(operators, on="operator_id")


def pandas_from_store(store: Store, scans: pd.DataFrame, operators: pd.DataFrame
                      ) -> pd.DataFrame:
    """`pandas_category_times` of the events read from the store first (the realistic case)."""
    events = store.query_df("SELECT scan_id, start_s, end_s, label FROM events")
    return pandas_category_times(events, scans, operators)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=10_000, help="scans in the cohort")
    parser.add_argument("--events", type=int, default=60, help="mean events per scan")
    parser.add_argument("--operators", type=int, default=100, help="operators (2 groups)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each timing; best kept")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    operators, scans, events = make_cohort(args.scans, events_per_scan=args.events,
                                           n_operators=args.operators)
    with tempfile.TemporaryDirectory() as folder:
        store = build_store(Path(folder) / "bench.duckdb", operators, scans, events)
        build_s = time.perf_counter() - t0
        try:
            selection = select(store, source="manual")
            auto = select(store, source="auto")
            ct_s, ct = best_of(args.repeat, lambda: category_times(store, selection))
            summary_s, _ = best_of(args.repeat, lambda: summarise(ct, by="group"))
            dash_s, _ = best_of(args.repeat, lambda: scan_features(store, selection))
            corr_s, corr = best_of(args.repeat,
                                   lambda: paper_correlation(store, selection, auto))
            pandas_s, pdf = best_of(
                args.repeat, lambda: pandas_category_times(events, scans, operators))
            pandas_load_s, _ = best_of(
                args.repeat, lambda: pandas_from_store(store, scans, operators))
            auto_events = jittered(events)
            pandas_corr_s, pandas_r = best_of(
                args.repeat, lambda: pandas_correlation(events, auto_events))
        finally:
            store.close()
        db = str(Path(folder) / "bench.duckdb")
        cli_stats_s = cli_seconds(args.repeat, "stats", "--db", db, "--format", "json")
        cli_correlate_s = cli_seconds(args.repeat, "correlate", "--db", db, "--format", "json")
    merged = ct.merge(pdf, on=["scan_id", "label"], suffixes=("", "_pandas"))
    agree = bool(np.allclose(merged["duration_s"], merged["duration_s_pandas"])
                 and np.allclose(merged["share"], merged["share_pandas"])
                 and (merged["n_revisits"] == merged["n_revisits_pandas"]).all()
                 and np.isclose(corr.pearson_r, pandas_r))
    result = {
        "scans": args.scans,
        "events": len(events),
        "operators": args.operators,
        "build_store_s": round(build_s, 3),
        "category_times_s": round(ct_s, 4),
        "summarise_group_s": round(summary_s, 4),
        "stats_s": round(ct_s + summary_s, 4),
        "dashboard_scan_features_s": round(dash_s, 4),
        "correlate_s": round(corr_s, 4),
        "pandas_correlate_s": round(pandas_corr_s, 4),
        "cli_stats_s": round(cli_stats_s, 3),
        "cli_correlate_s": round(cli_correlate_s, 3),
        "pandas_category_times_s": round(pandas_s, 4),
        "pandas_with_store_read_s": round(pandas_load_s, 4),
        "ratio_pandas_over_duckdb": round(pandas_s / ct_s, 2),
        "ratio_pandas_with_read_over_duckdb": round(pandas_load_s / ct_s, 2),
        "results_agree": agree,
        "repeat": args.repeat,
    }
    report(result, as_json=args.json)
    return result


if __name__ == "__main__":
    main()
