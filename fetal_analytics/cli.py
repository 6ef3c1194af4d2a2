"""The ``fetal-analytics`` command line: a thin shell over the library.

Each command opens the store, calls one library function and prints its result. Heavy modules
(pandas, DuckDB, and above all TensorFlow/Keras) are imported inside the commands that need them,
so ``fetal-analytics --help`` stays fast.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from fetal_analytics import __version__
from fetal_analytics.runs import SOURCES, UnknownRunError
from fetal_analytics.store import StoreError
from fetal_analytics.tabular import InputError

# Library errors that are the user's to fix: shown as one message, exit code 1.
USER_ERRORS = (InputError, StoreError, UnknownRunError)

FORMATS = ("table", "json", "csv")


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            raise click.ClickException(str(exc)) from exc


def db_option(*, creates: bool) -> Callable:
    """The ``--db PATH`` option every store command takes."""
    return click.option(
        "--db", "db_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
        help="DuckDB database file." + (" Created if missing." if creates else ""),
    )


def format_option(choices: tuple[str, ...] = FORMATS) -> Callable:
    """The shared ``--format`` option: a table for people, JSON or CSV for programs."""
    return click.option(
        "--format", "fmt", type=click.Choice(choices), default=choices[0], show_default=True,
        help="Output format.",
    )


@contextmanager
def open_store(db_path: Path, *, read_only: bool, create: bool = False) -> Iterator[Any]:
    """Open the store for one command and always close it (releasing DuckDB's file lock)."""
    from fetal_analytics.store import Store, missing_database_error

    if not create and not db_path.exists():
        raise missing_database_error(db_path)
    store = Store(db_path, read_only=read_only)
    try:
        yield store
    finally:
        store.close()


def emit(record: dict[str, Any] | list[dict[str, Any]], fmt: str, *, title: str = "") -> None:
    """Print one record (key/value) or a list of records in the chosen format."""
    records = record if isinstance(record, list) else [record]
    if fmt == "json":
        click.echo(json.dumps(record, indent=2, default=str))
    elif fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(records[0]) if records else [],
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    else:
        print_table(records, title=title, transpose=not isinstance(record, list))


def print_table(records: list[dict[str, Any]], *, title: str = "", transpose: bool = False) -> None:
    """Print records as an aligned table (`transpose`: one record as name/value rows)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title or None, title_justify="left", show_edge=False)
    if transpose:
        table.add_column("")
        table.add_column("value", justify="right")
        for key, value in records[0].items():
            table.add_row(key, _cell(value))
    else:
        for key in records[0] if records else []:
            table.add_column(key)
        for row in records:
            table.add_row(*(_cell(v) for v in row.values()))
    # Piped output gets a wide console: ids and names are never cut to fit 80 columns.
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="fetal-analytics")
@click.option("-v", "--verbose", count=True, help="Log more (-v: info, -vv: debug).")
def main(verbose: int) -> None:
    """Workflow analytics of full-length fetal anomaly ultrasound scans.

    Videos and a manifest of operators go in; a DuckDB file of timed anatomy events comes out,
    and from it workflow statistics and manual-vs-automatic agreement.

    \b
    Example:
      fetal-analytics init-db --db cohort.duckdb
      fetal-analytics ingest manifest manifest.csv --db cohort.duckdb
      fetal-analytics ingest labels manual_labels.csv --db cohort.duckdb
      fetal-analytics info --db cohort.duckdb
    """
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr)


@main.command("init-db")
@db_option(creates=True)
def init_db(db_path: Path) -> None:
    """Create a database, or migrate an existing one to the current schema.

    \b
    Example:
      fetal-analytics init-db --db cohort.duckdb
    """
    from fetal_analytics.store import SCHEMA_VERSION

    existed = db_path.exists()
    with open_store(db_path, read_only=False, create=True):
        pass
    verb = "is at" if existed else "created with"
    click.echo(f"{db_path} {verb} schema v{SCHEMA_VERSION}")


@main.group()
def ingest() -> None:
    """Import a manifest of scans and operators, or a file of labels."""


@ingest.command("manifest")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@db_option(creates=True)
@click.option("--replace", is_flag=True,
              help="Overwrite stored scans and operators whose data the file changes.")
@format_option(("table", "json"))
def ingest_manifest(file: Path, db_path: Path, replace: bool, fmt: str) -> None:
    """Add the scans and operators of a manifest (CSV or Parquet).

    Columns: scan_id, operator_id, group (required); acquired_at, video_path (relative paths
    resolve against the file's folder), fps, years_experience (optional).

    \b
    Example:
      fetal-analytics ingest manifest manifest.csv --db cohort.duckdb
    """
    from fetal_analytics.ingest import ingest_manifest as run_import

    with open_store(db_path, read_only=False, create=True) as store:
        result = run_import(store, file, replace=replace)
    if fmt == "json":
        emit(dataclasses.asdict(result), fmt)
        return
    click.echo(
        f"{file}: {result.operators_added} operators added, {result.operators_updated} updated; "
        f"{result.scans_added} scans added, {result.scans_updated} updated, "
        f"{result.scans_unchanged} unchanged"
    )


@ingest.command("labels")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@db_option(creates=False)
@click.option("--source", type=click.Choice(SOURCES), default="manual", show_default=True,
              help="Who made the labels: a person (manual) or a program (auto).")
@click.option("--run-name", help="Name of the run; an existing run of this name is replaced.")
@format_option(("table", "json"))
def ingest_labels(file: Path, db_path: Path, source: str, run_name: str | None, fmt: str) -> None:
    """Import a file of labelled events (CSV or Parquet) as one run.

    Columns: scan_id, label (a taxonomy code), and start_s, end_s in seconds or start_frame,
    end_frame (end exclusive, needs the scan's fps); optional confidence. Importing the same
    file again changes nothing.

    \b
    Example:
      fetal-analytics ingest labels manual_labels.csv --db cohort.duckdb
      fetal-analytics ingest labels auto.csv --db cohort.duckdb --source auto --run-name v1
    """
    from fetal_analytics.ingest import ingest_labels as run_import

    with open_store(db_path, read_only=False) as store:
        result = run_import(store, file, source=source, run_name=run_name)
    if fmt == "json":
        emit(dataclasses.asdict(result), fmt)
        return
    click.echo(
        f"{file}: run {result.run_id} {result.run_name!r} ({result.source}) {result.status}: "
        f"{result.n_events} events of {result.n_scans} scans"
    )


@main.command()
@db_option(creates=False)
@format_option()
def info(db_path: Path, fmt: str) -> None:
    """Count the operators, scans, runs and events in a database, and list the runs.

    \b
    Example:
      fetal-analytics info --db cohort.duckdb --format json
    """
    from fetal_analytics.runs import list_runs

    with open_store(db_path, read_only=True) as store:
        summary = {"db": str(db_path), "schema_version": store.schema_version, **store.counts()}
        runs = list_runs(store)
    for source in SOURCES:
        summary[f"{source}_events"] = sum(r.n_events for r in runs if r.source == source)
    emit(summary, fmt, title="Database")
    if fmt == "table" and runs:
        fields = ("run_id", "name", "source", "kind", "status", "n_scans", "n_events")
        click.echo()
        print_table([{f: getattr(r, f) for f in fields} for r in runs], title="Runs")


@main.group()
def export() -> None:
    """Write stored data to files for R, Excel or your own scripts."""


@export.command("events")
@db_option(creates=False)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output file (.csv or .parquet).")
@click.option("--source", type=click.Choice(SOURCES), help="Only runs of this source.")
@click.option("--run", "run_ref", default="latest", show_default=True,
              help="Run id or name, or 'latest'.")
@click.option("--format", "fmt", type=click.Choice(("csv", "parquet")),
              help="File format [default: from the file name, else csv].")
def export_events(db_path: Path, out: Path, source: str | None, run_ref: str,
                  fmt: str | None) -> None:
    """Export one run's events in the columns `ingest labels` reads.

    \b
    Example:
      fetal-analytics export events --db cohort.duckdb --source manual --out manual.csv
    """
    from fetal_analytics.events import run_events, write_events
    from fetal_analytics.runs import resolve_run

    with open_store(db_path, read_only=True) as store:
        run = resolve_run(store, run_ref, source=source)
        events = run_events(store, run)
    write_events(events, out, fmt=fmt)
    click.echo(f"wrote {len(events)} events of {events['scan_id'].nunique()} scans from run "
               f"{run.run_id} {run.name!r} ({run.source}) to {out}", err=True)


def _parse_size(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT such as 640x480, got {value!r}") from None
    if width < 64 or height < 48 or width % 2 or height % 2:
        raise click.BadParameter(f"expected even sizes of at least 64x48, got {value!r}")
    return width, height


@main.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder to write the cohort into (created if missing).")
@click.option("--scans", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--operators", type=click.IntRange(min=1), default=2, show_default=True,
              help="Operators, alternately expert and trainee.")
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True),
              help="Length of every scan [default: drawn from the workflow model, ~25-45 min].")
@click.option("--fps", type=click.FloatRange(min=1), default=30.0, show_default=True)
@click.option("--size", default="640x480", show_default=True, callback=_parse_size,
              help="Video frame size, WIDTHxHEIGHT.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--manual-fraction", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="Share of scans that get manual labels.")
@click.option("--no-video", is_flag=True, help="Write the CSVs only (fast: for analytics).")
def simulate(out: Path, scans: int, operators: int, minutes: float | None, fps: float,
             size: tuple[int, int], seed: int, manual_fraction: float, no_video: bool) -> None:
    """Simulate a cohort of full-length scans with exact ground truth.

    Writes OUT/manifest.csv, OUT/manual_labels.csv (freeze-centred 5 s clips),
    OUT/truth/events.csv, OUT/truth/freezes.csv and, unless --no-video, OUT/videos/*.mp4.
    The same seed gives the same cohort.

    \b
    Example:
      fetal-analytics simulate --out /tmp/sim --scans 4 --minutes 2 --seed 1
      fetal-analytics simulate --out /tmp/big --scans 10000 --operators 100 --no-video
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from fetal_analytics.synth import simulate_cohort, write_cohort

    cohort = simulate_cohort(scans=scans, operators=operators, minutes=minutes, seed=seed,
                             fps=fps, manual_fraction=manual_fraction)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    console = _stderr_console()
    with Progress(*columns, console=console, transient=True,
                  disable=not console.is_terminal) as progress:
        overall = progress.add_task("scans", total=scans)
        frames = progress.add_task("frames", total=None, visible=not no_video)

        def on_scan(scan: Any) -> Callable[[int], None]:
            progress.advance(overall)
            progress.reset(frames, total=round(scan.duration_s * fps),
                           description=f"{scan.scan_id} frames")
            return lambda n: progress.advance(frames, n)

        write_cohort(cohort, out, video=not no_video, size=size, seed=seed, on_scan=on_scan)
    n_events = sum(len(s.events) for s in cohort.scans)
    click.echo(f"{out}: {scans} scans by {operators} operators, {n_events} events, "
               f"{sum(len(s.freezes) for s in cohort.scans)} freezes"
               + ("" if no_video else f", videos {size[0]}x{size[1]} at {fps:g} fps"))


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)
