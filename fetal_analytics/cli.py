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
import math
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import click

from analytics.groups import CORRECTIONS
from analytics.summary import BY
from fetal_analytics import __version__
from fetal_analytics.errors import UserError
from fetal_analytics.runs import LAST, LATEST, SOURCES
from inference.presets import CONFIRM_METHODS, DEFAULT_SCREEN, MODEL_PRESETS, SHIPPED_SCREENS
from inference.streams import INPUT_STREAMS, STREAM_2D, STREAMS, WINDOW_PROB_STREAMS

FORMATS = ("table", "json", "csv")


class _Group(click.Group):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _verbose_first(args))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as exc:  # the user's to fix: one message, exit status 1
            raise click.ClickException(str(exc)) from exc


def _verbose_first(args: list[str]) -> list[str]:
    """Move ``-v``, ``-vv`` and ``--verbose`` given after the subcommand before it (not those
    after ``--``), so they are accepted anywhere on the line."""
    verbose, rest = [], []
    for i, arg in enumerate(args):
        if arg == "--":
            rest.extend(args[i:])
            break
        is_verbose = arg == "--verbose" or (len(arg) > 1 and arg.strip("v") == "-")
        (verbose if is_verbose else rest).append(arg)
    return verbose + rest


def db_option(*, creates: bool) -> Callable:
    """The ``--db PATH`` option every store command takes."""
    return click.option(
        "--db", "db_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
        help="DuckDB database file." + (" Created if missing." if creates else ""),
    )


def selection_options(function: Callable) -> Callable:
    """``--source`` and ``--run`` of the commands that analyse one labelling of the cohort."""
    function = click.option(
        "--run", "run_ref", default=LATEST, show_default=True,
        help=f"{LATEST!r}: each scan's newest finished run; or one run (id, name or "
             f"{LAST!r}, of any source unless --source is given).")(function)
    return click.option(
        "--source", type=click.Choice(SOURCES),
        help="Labels to use [default: automatic if a finished automatic run exists, else "
             "manual].")(function)


def format_option(choices: tuple[str, ...] = FORMATS) -> Callable:
    """The shared ``--format`` option: a table for people, JSON or CSV for programs."""
    return click.option(
        "--format", "fmt", type=click.Choice(choices), default=choices[0], show_default=True,
        help="Output format.",
    )


@contextmanager
def open_store(db_path: Path, *, read_only: bool, create: bool = False) -> Iterator[Any]:
    """Open the store for one command and always close it (releasing DuckDB's file lock); a
    database the command creates is removed again when the command fails."""
    from fetal_analytics.store import Store, missing_database_error, removed_if_refused

    if not create and not db_path.exists():
        raise missing_database_error(db_path)
    with removed_if_refused(db_path):
        store = Store(db_path, read_only=read_only)
        try:
            yield store
        finally:
            store.close()


def emit(record: dict[str, Any] | list[dict[str, Any]], fmt: str, *, title: str = "",
         out: TextIO | None = None) -> None:
    """Print one record (key/value) or a list of records in the chosen format."""
    out = out or sys.stdout
    if fmt != "json":  # a flat table: nested fields become columns such as groups.expert
        record = [_flat(r) for r in record] if isinstance(record, list) else _flat(record)
    records = record if isinstance(record, list) else [record]
    if fmt == "json":
        out.write(json.dumps(record, indent=2, default=str) + "\n")
    elif fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=list(records[0]) if records else [],
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    else:
        print_table(records, title=title, transpose=not isinstance(record, list), out=out)


def _flat(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def print_table(records: list[dict[str, Any]], *, title: str = "", transpose: bool = False,
                out: TextIO | None = None) -> None:
    """Print records as an aligned table (`transpose`: one record as name/value rows)."""
    from rich.console import Console
    from rich.table import Table

    out = out or sys.stdout
    table = Table(title=title or None, title_justify="left", show_edge=False)
    if transpose:
        table.add_column("")
        table.add_column("value", justify="right")
        for key, value in records[0].items():
            table.add_row(key, _cell(value, key))
    else:
        for key in records[0] if records else []:
            table.add_column(key, justify="right" if _numeric(records, key) else "left")
        for row in records:
            table.add_row(*(_cell(v, k) for k, v in row.items()))
    # Piped output gets a wide console: ids and names are never cut to fit 80 columns.
    Console(file=out, width=None if out.isatty() else 200).print(table)


def _show_warning(message: Warning | str, category: type[Warning], *_args: Any,
                  **_kwargs: Any) -> None:
    """Warnings (e.g. a statistic that cannot be computed) as one line, without source code."""
    click.echo(f"WARNING: {message}", err=True)


def _numeric(records: list[dict[str, Any]], key: str) -> bool:
    return all(isinstance(r[key], int | float) or r[key] is None for r in records)


def _cell(value: Any, column: str = "") -> str:
    from fetal_analytics.results import format_p, is_p_value

    if isinstance(value, float):
        if is_p_value(column):
            return format_p(value, ".4g")
        return "" if value != value else f"{value:.4g}"  # NaN: not computable, left blank
    return "" if value is None else str(value)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="fetal-analytics")
@click.option("-v", "--verbose", count=True,
              help="Log more (-v: info, -vv: debug); also accepted after the subcommand.")
def main(verbose: int) -> None:
    """Workflow analytics of full-length fetal anomaly ultrasound scans.

    Videos and a manifest of operators go in; a DuckDB file of timed anatomy events comes out,
    and from it workflow statistics and manual-vs-automatic agreement.

    \b
    Example:
      fetal-analytics init-db --db cohort.duckdb
      fetal-analytics ingest manifest out/demo/cohort/manifest.csv --db cohort.duckdb
      fetal-analytics ingest labels out/demo/cohort/manual_labels.csv --db cohort.duckdb
      fetal-analytics info --db cohort.duckdb
    """
    if verbose < 2:  # TensorFlow's start-up lines only with -vv
        from inference.tf_startup import quiet_tensorflow_startup

        quiet_tensorflow_startup()
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr)
    warnings.showwarning = _show_warning


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
      fetal-analytics ingest manifest out/demo/cohort/manifest.csv --db cohort.duckdb
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
    for scan_id, n_events in result.auto_results_removed.items():
        click.echo(f"scan {scan_id}: a video of other content; its automatic results "
                   f"({n_events} events) were removed, its manual labels kept: label it again",
                   err=True)


@ingest.command("labels")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@db_option(creates=False)
@click.option("--source", type=click.Choice(SOURCES), default="manual", show_default=True,
              help="Who made the labels: a person (manual) or a program (auto).")
@click.option("--run-name", help="Name of the run; an existing run of this name is replaced.")
@click.option("--others-as", metavar="CODE",
              help="Import every label outside the classes of --classes-of as this code (e.g. "
                   "Bk: background to that model).")
@click.option("--classes-of", metavar="MODEL",
              help="The model whose classes (output taxonomy codes) are kept: a .keras file "
                   "with its sidecar, or a built-in name (demo). Goes with --others-as.")
@format_option(("table", "json"))
def ingest_labels(file: Path, db_path: Path, source: str, run_name: str | None,
                  others_as: str | None, classes_of: str | None, fmt: str) -> None:
    """Import a file of labelled events (CSV or Parquet) as one run.

    Columns: scan_id, label (a taxonomy code), and start_s, end_s in seconds or start_frame,
    end_frame (end exclusive, needs the scan's fps); optional confidence. Importing the same
    file again changes nothing. With --others-as and --classes-of, labels the model has no
    class for are imported as that code, as the model sees them (e.g. a reference timeline
    to compare a model's output with).

    \b
    Example:
      fetal-analytics ingest manifest out/demo/cohort/manifest.csv --db cohort.duckdb
      fetal-analytics ingest labels out/demo/cohort/manual_labels.csv --db cohort.duckdb
      fetal-analytics ingest labels out/demo/cohort/truth/events.csv --db cohort.duckdb \\
        --source auto --run-name v1
      fetal-analytics ingest labels out/demo/cohort/truth/events.csv --db cohort.duckdb \\
        --run-name truth --others-as Bk --classes-of demo
    """
    from fetal_analytics.ingest import ingest_labels as run_import

    if (others_as is None) != (classes_of is None):
        raise click.UsageError("--others-as and --classes-of go together: give both (e.g. "
                               "--others-as Bk --classes-of demo) or neither")
    classes = None
    if classes_of is not None:
        from inference.model_file import read_model_info

        classes = read_model_info(classes_of).output_codes
    with open_store(db_path, read_only=False) as store:
        result = run_import(store, file, source=source, run_name=run_name, others_as=others_as,
                            classes=classes)
    if fmt == "json":
        emit(dataclasses.asdict(result), fmt)
        return
    relabelled = ""
    if result.others_as is not None:
        labels = ", ".join(f"{label} {n}" for label, n in result.relabelled.items())
        relabelled = (f"; {result.n_relabelled} events of labels outside the "
                      f"classes of {classes_of} imported as {result.others_as}"
                      + (f" ({labels})" if labels else ""))
    removed = (f" (replacing {result.n_events_removed} events of {result.n_scans_removed} "
               f"scans)" if result.status == "replaced" else "")
    click.echo(
        f"{file}: run {result.run_id} {result.run_name!r} ({result.source}) {result.status}: "
        f"{result.n_events} events of {result.n_scans} scans{removed}{relabelled}"
    )


@main.command()
@db_option(creates=False)
@format_option()
def info(db_path: Path, fmt: str) -> None:
    """Count the operators, scans, runs and events in a database, and list the runs.

    \b
    Example:
      fetal-analytics info --db out/demo/demo.duckdb --format json
    """
    from fetal_analytics.queries import overview
    from fetal_analytics.runs import list_runs

    with open_store(db_path, read_only=True) as store:
        summary = overview(store)
        runs = list_runs(store)
    emit(summary.to_dict(), fmt, title="Database")
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
              help="Output file (.csv or .parquet); its folder is created when missing.")
@click.option("--source", type=click.Choice(SOURCES), help="Only runs of this source.")
@click.option("--run", "run_ref", default=LAST, show_default=True,
              help=f"Run id or name, or {LAST!r} (the newest finished run).")
@click.option("--format", "fmt", type=click.Choice(("csv", "parquet")),
              help="File format [default: from the file name].")
def export_events(db_path: Path, out: Path, source: str | None, run_ref: str,
                  fmt: str | None) -> None:
    """Export one run's events in the columns `ingest labels` reads.

    \b
    Example:
      fetal-analytics export events --db out/demo/demo.duckdb --source manual --out manual.csv
    """
    from fetal_analytics.events import export_events as write

    with open_store(db_path, read_only=True) as store:
        done = write(store, out, run=run_ref, source=source, fmt=fmt)
    click.echo(f"wrote {done.n_events} events of {done.n_scans} scans from run "
               f"{done.run.run_id} {done.run.name!r} ({done.run.source}) to {out}", err=True)


@export.command("features")
@db_option(creates=False)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output file (.csv or .parquet); its folder is created when missing.")
@selection_options
@click.option("--format", "fmt", type=click.Choice(("csv", "parquet")),
              help="File format [default: from the file name].")
def export_features(db_path: Path, out: Path, source: str | None, run_ref: str,
                    fmt: str | None) -> None:
    """Export the per-scan workflow features, one row per scan, for R or Excel.

    Columns: scan_id, operator_id, group, acquired_at, then every feature (minutes, counts,
    shares, FASP coverage, order, entropy of transitions; see the README).

    \b
    Example:
      fetal-analytics export features --db out/demo/demo.duckdb --run simulator-truth \\
        --out features.csv
      fetal-analytics export features --db out/demo/demo.duckdb --run manual-clips \\
        --out f.parquet
    """
    from analytics.features import scan_features
    from analytics.selection import select
    from fetal_analytics.tabular import write_table

    with open_store(db_path, read_only=True) as store:
        selection = select(store, source=source, run=run_ref)
        features = scan_features(store, selection)
    write_table(features, out, fmt=fmt)
    click.echo(f"wrote the workflow features of {len(features)} scans "
               f"({selection.description}) to {out}", err=True)


def _image_out(_ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """An image file to write: its suffix must name an image format."""
    from fetal_analytics.tabular import OutputFormatError, table_format
    from inference.decode import STILL_SUFFIXES

    if value is not None:
        try:
            table_format(value, formats={s: "image" for s in sorted(STILL_SUFFIXES)})
        except OutputFormatError as exc:
            raise click.BadParameter(str(exc), param=param) from exc
    return value


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
@click.option("--excerpt", "excerpt_minutes", type=click.FloatRange(min=0, min_open=True),
              help="Keep a random excerpt of this many minutes of each natural-length scan "
                   "(short videos with realistic event durations).")
@click.option("--fps", type=click.FloatRange(min=1), default=30.0, show_default=True)
@click.option("--size", default="640x480", show_default=True, callback=_parse_size,
              help="Video frame size, WIDTHxHEIGHT.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--manual-fraction", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="Share of scans that get manual labels.")
@click.option("--no-video", is_flag=True, help="Write the CSVs only (fast: for analytics).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Videos rendered at once, one process each (the videos are the same).")
def simulate(out: Path, scans: int, operators: int, minutes: float | None,
             excerpt_minutes: float | None, fps: float, size: tuple[int, int], seed: int,
             manual_fraction: float, no_video: bool, jobs: int) -> None:
    """Simulate a cohort of full-length scans with exact ground truth.

    Writes OUT/manifest.csv, OUT/manual_labels.csv (freeze-centred 5 s clips),
    OUT/truth/events.csv, OUT/truth/freezes.csv and, unless --no-video, OUT/videos/*.mp4.
    The same seed gives the same cohort.

    \b
    Example:
      fetal-analytics simulate --out sim --scans 4 --minutes 2 --seed 1
      fetal-analytics simulate --out sim-cohort --scans 24 --operators 6 --no-video
      fetal-analytics simulate --out sim-train --scans 24 --operators 12 --excerpt 6 --jobs 2
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from fetal_analytics.synth import simulate_cohort, write_cohort

    if minutes is not None and excerpt_minutes is not None:
        raise click.UsageError("give --minutes or --excerpt, not both")
    cohort = simulate_cohort(scans=scans, operators=operators, minutes=minutes, seed=seed,
                             fps=fps, manual_fraction=manual_fraction,
                             excerpt_minutes=excerpt_minutes)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    console = _stderr_console()
    with Progress(*columns, console=console, transient=True,
                  disable=not console.is_terminal) as progress:
        overall = progress.add_task("scans", total=scans)
        # One scan's frames are counted only when it renders in this process.
        frames = progress.add_task("frames", total=None, visible=not no_video and jobs == 1)

        def on_scan(scan: Any) -> Callable[[int], None]:
            progress.advance(overall)
            progress.reset(frames, total=round(scan.duration_s * fps),
                           description=f"{scan.scan_id} frames")
            return lambda n: progress.advance(frames, n)

        write_cohort(cohort, out, video=not no_video, size=size, seed=seed, on_scan=on_scan,
                     jobs=jobs)
    n_events = sum(len(s.events) for s in cohort.scans)
    click.echo(f"{out}: {scans} scans by {operators} operators, {n_events} events, "
               f"{sum(len(s.freezes) for s in cohort.scans)} freezes"
               + ("" if no_video else f", videos {size[0]}x{size[1]} at {fps:g} fps"))


@main.command()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              callback=_image_out, help="Image file to write (.png, .jpg, ...).")
@click.option("--size", default="320x240", show_default=True, callback=_parse_size,
              help="Size of each frame, WIDTHxHEIGHT.")
@click.option("--preset", type=click.Choice(SHIPPED_SCREENS), default=DEFAULT_SCREEN,
              show_default=True, help="Screen layout of the simulator.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def gallery(out: Path, size: tuple[int, int], preset: str, seed: int) -> None:
    """Draw one simulated screen frame per event class, as one labelled picture.

    \b
    Example:
      fetal-analytics gallery --out simulated_classes.png
    """
    import cv2

    from fetal_analytics.synth.render import ScreenConfig, class_gallery, contact_sheet

    sheet = contact_sheet(class_gallery(size=size, seed=seed,
                                        screen=ScreenConfig.preset(preset)))
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise click.ClickException(f"cannot write {out}")
    click.echo(f"wrote {out} ({sheet.shape[1]}x{sheet.shape[0]})")


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


# --- analytics ------------------------------------------------------------------------------

OUTPUT_SUFFIXES = {".json": "json", ".csv": "csv", ".parquet": "parquet"}


def output_options(function: Callable) -> Callable:
    """``--format table|json|csv|parquet`` and ``--out FILE`` for the reporting commands.

    The format defaults to the suffix of ``--out`` (``.json``, ``.csv``, ``.parquet``), else a
    table on the terminal; a table is never written into a file.
    """
    function = click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
                            help="Write to this file (.json, .csv or .parquet; its folder is "
                                 "created) instead of the terminal.")(function)
    return click.option(
        "--format", "fmt", type=click.Choice(("table", "json", "csv", "parquet")),
        help="Output format [default: from the --out suffix, else table].")(function)


def _output_format(fmt: str | None, out: Path | None) -> str:
    from fetal_analytics.tabular import OutputFormatError, table_format

    if out is None:
        if fmt == "parquet":
            raise click.UsageError("--format parquet needs --out FILE.parquet")
        return fmt or "table"
    if fmt == "table":
        raise click.UsageError("a table is for the terminal: give --out a .json, .csv or "
                               ".parquet file, or leave --out out")
    try:
        return table_format(out, fmt, OUTPUT_SUFFIXES)
    except OutputFormatError as exc:
        raise click.BadParameter(str(exc), param_hint="--out") from exc


@contextmanager
def _output(out: Path | None) -> Iterator[TextIO]:
    if out is None:
        yield sys.stdout
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as handle:
        yield handle
    click.echo(f"wrote {out}", err=True)


def _write(fmt: str, out: Path | None, *, record: dict[str, Any], table: Any,
           show: Callable[[TextIO], None]) -> None:
    """Write a result: `record` as JSON, `table` (a DataFrame) as CSV or Parquet, or `show`
    it as readable tables on the terminal."""
    from fetal_analytics.results import plain

    if fmt == "parquet":
        from fetal_analytics.tabular import write_table

        write_table(table, out, fmt="parquet")
        click.echo(f"wrote {out}", err=True)
        return
    with _output(out) as stream:
        if fmt == "json":
            emit(record, fmt, out=stream)
        elif fmt == "csv":
            emit(plain(table), fmt, out=stream)
        else:
            show(stream)


@main.command()
@db_option(creates=False)
@click.option("--manual", "manual_ref", default=LATEST, show_default=True,
              help=f"Manual labels: a run id or name, {LAST!r}, or {LATEST!r} (each scan's "
                   f"newest finished manual run).")
@click.option("--auto", "auto_ref", default=LATEST, show_default=True,
              help=f"Automatic labels: a run id or name, {LAST!r}, or {LATEST!r}.")
@click.option("--paired", is_flag=True,
              help="Also compare scan by scan where both exist: correlations, Bland-Altman, "
                   "frame confusion matrix, kappa and segment scores.")
@output_options
def correlate(db_path: Path, manual_ref: str, auto_ref: str, paired: bool, fmt: str | None,
              out: Path | None) -> None:
    """Compare the time per category in manual and automatic labels (the paper's rho).

    For each of the 11 categories: the mean minutes per manually labelled scan (0 where absent)
    and the same for automatically labelled scans; Pearson's r and Spearman's rho across
    categories. The cohorts need not be the same scans. With --paired, scans labelled both ways
    are also compared one to one.

    \b
    Example:
      fetal-analytics correlate --db out/demo/demo.duckdb --manual manual-clips \\
        --auto simulator-truth
      fetal-analytics correlate --db out/demo/demo.duckdb --manual manual-clips \\
        --auto simulator-truth --paired --out agreement.json
    """
    from analytics.agreement import agreement_table, paired_agreement, paper_correlation
    from analytics.selection import select

    fmt = _output_format(fmt, out)
    with open_store(db_path, read_only=True) as store:
        manual = select(store, source="manual", run=manual_ref)
        auto = select(store, source="auto", run=auto_ref)
        result = paper_correlation(store, manual, auto)
        both = paired_agreement(store, manual, auto) if paired else None
    record = result.to_dict()
    if paired:
        record["paired"] = both.to_dict() if both else None
    _write(fmt, out, record=record, table=agreement_table(result, both),
           show=lambda stream: _print_correlation(result, both, stream))


def _print_correlation(result: Any, both: Any, stream: TextIO) -> None:
    from fetal_analytics.results import plain

    stream.write(
        f"Manual:    {result.manual_selection}, {result.n_manual_scans} scans\n"
        f"Automatic: {result.auto_selection}, {result.n_auto_scans} scans\n"
        f"Pearson r = {_cell(result.pearson_r)} (p = {_p(result.pearson_p)}), "
        f"Spearman rho = {_cell(result.spearman_rho)} (p = {_p(result.spearman_p)}) "
        f"across {len(result.categories)} categories\n"
        f"  measures {result.measures}\n\n")
    print_table(plain(result.per_category), title="Mean minutes per scan", out=stream)
    if both is None:
        return
    coverage = both.manual_coverage["manual_coverage"]
    stream.write(f"\nPaired: {both.n_scans} scans labelled both ways; manual labels cover "
                 f"{_percent(coverage.min())} to {_percent(coverage.max())} of a scan (median "
                 f"{_percent(coverage.median())}), and the minutes below are those seconds\n")
    columns = ["label", "n_scans", "ccc", "icc", "pearson_r", "spearman_rho", "bias_min",
               "bias_ci_low", "bias_ci_high", "loa_low_min", "loa_high_min"]
    print_table([{c: row[c] for c in columns} for row in plain(both.per_category)],
                title="Per category (minutes inside the manual spans; Pearson on log(1 + "
                      "minutes); Bland-Altman: automatic - manual)", out=stream)
    kappa = both.kappa
    stream.write(
        f"\nFrames every {both.step_s:g} s labelled by hand: {both.n_frames_manual}, "
        f"{_percent(both.auto_coverage)} of them labelled by the automatic run with a category; "
        f"Cohen's kappa {_cell(kappa.kappa)} (95% CI {_cell(kappa.ci_low)} to "
        f"{_cell(kappa.ci_high)}, {kappa.ci_method}; gaps and other labels count as 'other')\n"
        f"Manual frames of labels outside the {len(both.categories)} categories, counted as "
        f"'other': {both.n_frames_other}\n")
    for name, scores in (("all categories", both.segments),
                         ("Bk as background", both.segments_bk_as_background)):
        if scores is not None:
            accuracy = _with_ci(scores.frame_accuracy, scores.ci, "frame_accuracy")
            edit = _with_ci(scores.edit, scores.ci, "edit")
            f1 = _with_ci(scores.f1[25], scores.ci.get("f1", {}), 25)
            stream.write(f"Segments ({name}): accuracy {accuracy}, edit {edit}, F1@25 {f1}\n")


def _with_ci(value: float, intervals: dict, key: Any) -> str:
    low, high = intervals.get(key, (math.nan, math.nan))
    interval = f" [{_percent(low)}, {_percent(high)}]" if low == low else ""
    return _percent(value) + interval


def _p(value: float) -> str:
    return _cell(value, "p")


def _percent(fraction: float) -> str:
    return "" if fraction != fraction else f"{100 * fraction:.1f}%"


@main.command()
@db_option(creates=False)
@click.option("--by", type=click.Choice(BY), default="group", show_default=True,
              help="Unit of analysis: per scan, per operator, or per group of operators.")
@selection_options
@click.option("--features", is_flag=True,
              help="Describe the per-scan workflow features instead of time per category.")
@click.option("--bootstrap", is_flag=True,
              help="Cluster-bootstrap confidence intervals (resampling operators) instead of t.")
@output_options
def stats(db_path: Path, by: str, source: str | None, run_ref: str, features: bool,
          bootstrap: bool, fmt: str | None, out: Path | None) -> None:
    """Workflow statistics: minutes and share of scan time per category, with 95% CIs.

    Mean +- SD of the minutes per scan in each category and the mean share of the scan, as the
    paper reports, per scan, per operator (scans averaged per operator first) or per group.
    --features describes the per-scan workflow features (duration, revisits, coverage of the
    FASP structures, order, entropy of transitions).

    \b
    Example:
      fetal-analytics stats --db out/demo/demo.duckdb --run simulator-truth --by group
      fetal-analytics stats --db out/demo/demo.duckdb --run simulator-truth --features \\
        --out features-summary.csv
    """
    from analytics.selection import select
    from analytics.summary import describe
    from fetal_analytics.results import plain

    fmt = _output_format(fmt, out)
    with open_store(db_path, read_only=True) as store:
        selection = select(store, source=source, run=run_ref)
        summary = describe(store, selection, features=features, by=by,
                           ci_method="bootstrap" if bootstrap else "t")
    title = (f"{summary.selection}: "
             f"{'workflow features' if features else 'minutes per category'}, "
             f"{round(summary.ci * 100)}% CI by {summary.ci_method} (n = {summary.unit}s)")
    _write(fmt, out, record=summary.to_dict(), table=summary.table,
           show=lambda stream: print_table(plain(summary.table), title=title, out=stream))


def _groups_option(_ctx: click.Context, _param: click.Parameter,
                   value: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(g for item in value for g in item.split(",") if g)


@main.command()
@db_option(creates=False)
@click.option("--groups", "group_option", multiple=True, callback=_groups_option,
              help="Groups to compare [default: all]; --groups expert trainee.")
@click.argument("more_groups", nargs=-1, metavar="")
@selection_options
@click.option("--correction", type=click.Choice(CORRECTIONS), default="holm",
              show_default=True, help="Correction for testing many features.")
@click.option("--mixed-model", is_flag=True,
              help="Also fit a mixed model of log durations per category (random intercept "
                   "per operator).")
@output_options
def compare(db_path: Path, group_option: tuple[str, ...], more_groups: tuple[str, ...],
            source: str | None, run_ref: str, correction: str, mixed_model: bool,
            fmt: str | None, out: Path | None) -> None:
    """Compare groups of operators (e.g. experts and trainees) feature by feature.

    Each operator's scans are averaged first; groups are then compared by Welch's t and
    Mann-Whitney's U (Welch's ANOVA and Kruskal-Wallis for more than two groups), corrected for
    the number of features, with Hedges' g and its 95% CI as the effect size.

    \b
    Example:
      fetal-analytics compare --db out/demo/demo.duckdb --run simulator-truth \\
        --groups expert trainee
      fetal-analytics compare --db out/demo/demo.duckdb --run simulator-truth --mixed-model \\
        --out compare.json
    """
    from analytics.coverage import coverage_times
    from analytics.groups import compare_groups, mixed_model_durations
    from analytics.selection import select
    from fetal_analytics.results import plain

    fmt = _output_format(fmt, out)
    groups = (*group_option, *more_groups) or None
    with open_store(db_path, read_only=True) as store:
        selection = select(store, source=source, run=run_ref)
        result = compare_groups(store, selection, groups=groups, correction=correction)
        coverage = coverage_times(store, selection, groups=result.groups)
        mixed = mixed_model_durations(store, selection, groups=groups) if mixed_model else None
    record = {**result.to_dict(), "coverage_times": coverage.to_dict()}
    if mixed is not None:
        record["mixed_model"] = mixed.to_dict()["table"]

    def show(stream: TextIO) -> None:
        operators = ", ".join(f"{g}: {n}" for g, n in result.n_operators.items())
        print_table(result.readable(), out=stream,
                    title=f"{result.selection}: {' vs '.join(result.groups)} (operators "
                          f"{operators}; {result.family})")
        if not result.pairwise.empty:
            stream.write("\n")
            print_table(plain(result.pairwise), title="Pairwise post-hoc tests", out=stream)
        stream.write("\n")
        print_table(plain(coverage.table), out=stream,
                    title=f"Time to full FASP coverage, minutes (censored where never reached: "
                          f"Kaplan-Meier median; log-rank p {_p(coverage.logrank_p)} with "
                          f"operators permuted, Cox hazard ratio "
                          f"{_cell(coverage.hazard_ratio)} clustered by operator, p "
                          f"{_p(coverage.cox_p)})")
        if mixed is not None:
            stream.write("\n")
            print_table(plain(mixed.table), title="Mixed model of log duration (t with "
                                                  "operator-level df)", out=stream)

    _write(fmt, out, record=record, table=result.table, show=show)


@export.command("dfg")
@db_option(creates=False)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output file: .dot or .gv (Graphviz) or .json; its folder is created.")
@click.option("--group", help="Only the scans of this group of operators.")
@selection_options
def export_dfg(db_path: Path, out: Path, group: str | None, source: str | None,
               run_ref: str) -> None:
    """Export the directly-follows graph of categories (how often one follows another).

    \b
    Example:
      fetal-analytics export dfg --db out/demo/demo.duckdb --run simulator-truth \\
        --group trainee --out trainee.dot
    """
    from analytics.selection import select
    from analytics.sequences import DFG_FORMATS, directly_follows_graph, write_dfg
    from fetal_analytics.tabular import OutputFormatError, table_format

    try:
        table_format(out, formats=DFG_FORMATS)
    except OutputFormatError as exc:
        raise click.BadParameter(str(exc), param_hint="--out") from exc
    with open_store(db_path, read_only=True) as store:
        selection = select(store, source=source, run=run_ref)
        graph = directly_follows_graph(store, selection, group=group)
    write_dfg(graph, out, title=f"{selection.description}" + (f", {group}" if group else ""))
    click.echo(f"wrote {len(graph)} transitions to {out}", err=True)


# --- ingestion ------------------------------------------------------------------------------

def _freeze_preset(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """The --preset / --freeze-preset value as an IndicatorConfig (None when not given)."""
    from inference.presets import load_indicator_preset

    if value is None:
        return None
    try:
        return load_indicator_preset(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


_PRESET_HELP = (f"Freeze-indicator preset that confirms still spans: a shipped name "
                f"({', '.join(SHIPPED_SCREENS)}: the simulator's screens) or the path of your "
                f"own JSON file [default: none, every still span is a freeze].")


@main.command()
@click.argument("video", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--preset", metavar="NAME_OR_JSON", callback=_freeze_preset, help=_PRESET_HELP)
@click.option("--confirm", type=click.Choice(CONFIRM_METHODS),
              help="How the preset's indicator confirms a still span [default: by the preset: "
                   "its text by OCR, else its template image].")
@format_option(("table", "json"))
def freeze(video: Path, preset: Any, confirm: str | None, fmt: str) -> None:
    """Find the freeze frames of a scan video.

    Spans where the image area stays still for at least 0.5 s, whatever the screen (text
    outside the image, such as a ticking clock, may change). With --preset, the scanner's
    freeze indicator confirms each span (OCR of its region, a template image, or its
    appearance).

    \b
    Example:
      fetal-analytics freeze out/demo/videos-cohort/videos/SIM0001.mp4 --format json
      fetal-analytics freeze out/demo/videos-cohort/videos/SIM0001.mp4 --preset voluson
    """
    from inference.freeze import FreezeConfig, detect_freezes

    try:
        config = FreezeConfig(indicator=preset, confirm=confirm)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--confirm") from exc
    result = detect_freezes(video, config=config)
    rows = [{"start_s": round(s.start_s, 3), "end_s": round(s.end_s, 3),
             "start_frame": s.start_frame, "end_frame": s.end_frame} for s in result.spans]
    if fmt == "json":
        emit(rows, fmt)
        return
    print_table(rows, title=f"{video}: {len(rows)} freezes in {result.n_frames} frames"
                            + (f" ({len(result.rejected)} still spans without the indicator)"
                               if result.rejected else ""))


#: Seconds from a video's start whose frames `read-header` reads.
HEADER_SAMPLE_S = 2.0


@main.command("read-header")
@click.argument("source", metavar="IMAGE_OR_VIDEO",
                type=click.Path(dir_okay=False, path_type=Path))
@format_option(("table", "json"))
def read_header(source: Path, fmt: str) -> None:
    """Read the frame rate, date and time printed on a scanner screen.

    From a still, or from the first 2 seconds of a video (its image area found by what
    changes). Only these fields are read and shown; no other screen text is kept.

    \b
    Example:
      fetal-analytics read-header out/demo/videos-cohort/videos/SIM0001.mp4 --format json
    """
    from inference.decode import sample_frames
    from inference.screen_text import (
        INSTALL_TESSERACT,
        read_screen_text_from_frames,
        tesseract_available,
    )

    if not tesseract_available():
        raise click.ClickException(f"reading the header needs the tesseract program, not "
                                   f"found on PATH: {INSTALL_TESSERACT}")
    frames = sample_frames(source, seconds=HEADER_SAMPLE_S, every=5, colour=True)
    emit(read_screen_text_from_frames(frames).to_dict(), fmt, title=str(source))


@main.command()
@click.argument("source", metavar="IMAGE_OR_VIDEO",
                type=click.Path(dir_okay=False, path_type=Path))
@format_option(("table", "json"))
def roi(source: Path, fmt: str) -> None:
    """Find the ultrasound image area (the region free of screen furniture).

    From a still, by its content; from a video, by what changes over its first 10 seconds.
    Prints the box x0, y0, x1, y1 in pixels of the input (x1, y1 exclusive).

    \b
    Example:
      fetal-analytics roi out/demo/videos-cohort/videos/SIM0001.mp4 --format json
    """
    from inference.decode import STILL_SUFFIXES, sample_frames
    from inference.roi import detect_image_area, detect_image_area_from_frames

    frames = sample_frames(source, colour=True)
    area = (detect_image_area(frames[0]) if source.suffix.lower() in STILL_SUFFIXES
            else detect_image_area_from_frames(frames))
    emit(area.to_dict(), fmt, title=str(source))


@main.command("deidentify")
@click.argument("source", metavar="IMAGE_OR_VIDEO",
                type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The de-identified copy (a video becomes H.264 MP4).")
def deidentify_command(source: Path, out: Path) -> None:
    """Copy a still or video with everything outside the image area blacked out.

    Burned-in screen text can identify patients: use this before frames leave the site.

    \b
    Example:
      fetal-analytics deidentify out/demo/videos-cohort/videos/SIM0001.mp4 --out SIM0001-anon.mp4
    """
    from fetal_analytics.tabular import OutputFormatError
    from inference.deidentify import check_output, deidentify_file

    try:
        check_output(source, out)
    except OutputFormatError as exc:
        raise click.BadParameter(str(exc), param_hint="--out") from exc
    area = deidentify_file(source, out)
    click.echo(f"wrote {out}, keeping x {area.x0}:{area.x1}, y {area.y0}:{area.y1}")


@main.group()
def dataset() -> None:
    """Build training datasets of clips from labelled videos."""


@dataset.command("build")
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--labels", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Manual labels (e.g. the freeze-centred 5 s clips).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--size", type=click.IntRange(min=16), default=64, show_default=True,
              help="Side of the square frames, pixels.")
@click.option("--streams", default=",".join(INPUT_STREAMS), show_default=True,
              help=f"Comma-separated: {', '.join(STREAMS)} (12-frame clips) and/or "
                   f"{STREAM_2D} (single frames).")
@click.option("--clips-per-span", type=click.IntRange(min=1), default=10, show_default=True,
              help="Window centres (clips per stream) per labelled span.")
@click.option("--others-as", default=None, metavar="CODE",
              help="Give labels outside the model's classes this code (e.g. Bk when the labels "
                   "are dense timelines) instead of dropping them.")
@click.option("--rare-as", default=None, metavar="CODE",
              help="Give labels outside the model's classes classes of their own, which the "
                   "trained model outputs as this code (e.g. Bk). Instead of --others-as.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the split.")
def dataset_build(manifest: Path, labels: Path, out: Path, size: int, streams: str,
                  clips_per_span: int, others_as: str | None, rare_as: str | None,
                  seed: int) -> None:
    """Cut clips from labelled scans into compressed shards, split by operator.

    Per labelled span, up to ten window centres; per centre and stream, the 12-frame clip
    (frame spacing 1/15, 2/15, 4/15 s) or 2D frame centred on it, cropped to the detected image
    area; whole operators go to train, validation or test.

    \b
    Example:
      fetal-analytics dataset build --manifest out/demo/videos-cohort/manifest.csv \\
        --labels out/demo/videos-cohort/manual_labels.csv --out ds
      fetal-analytics dataset build --manifest out/demo/videos-cohort/manifest.csv \\
        --labels out/demo/videos-cohort/truth/events.csv --others-as Bk --out ds-dense
      fetal-analytics dataset build --manifest out/demo/videos-cohort/manifest.csv \\
        --labels out/demo/videos-cohort/truth/events.csv --rare-as Bk --out ds-rare
    """
    from rich.progress import Progress

    from inference.dataset import DatasetSpec, build_dataset

    try:
        spec = DatasetSpec(size=size, streams=tuple(s.strip() for s in streams.split(",")),
                           max_subclips=clips_per_span, others_as=others_as, rare_as=rare_as,
                           seed=seed)
    except ValueError as exc:
        raise click.BadParameter(str(exc),
                                 param_hint="--streams, --others-as or --rare-as") from exc
    console = _stderr_console()
    with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("scans", total=None)
        summary = build_dataset(manifest, labels, out, spec=spec,
                                on_scan=lambda _scan: progress.advance(task))
    rows = [{"split": split, "stream": stream, "clips": sum(counts.values()),
             **{code: counts.get(code, 0) for code in summary.classes}}
            for split, by_stream in summary.counts.items()
            for stream, counts in by_stream.items()]
    print_table(rows, title=f"{out}: clips per class")
    for scan_id, reason in summary.skipped_scans.items():
        click.echo(f"skipped {scan_id}: {reason}", err=True)
    if summary.relabelled_labels:
        labels = ", ".join(f"{label} {n}" for label, n in summary.relabelled_labels.items())
        click.echo(f"labelled spans of other classes given {others_as}: {labels}", err=True)


# --- models ---------------------------------------------------------------------------------

@main.command("tune-decoding")
@db_option(creates=False)
@click.option("--manual", "manual_ref", required=True,
              help="Reference run (manual): id or name, e.g. a dense ground-truth timeline.")
@click.option("--auto", "auto_ref", required=True,
              help="Automatic labelling run (id or name) whose window probabilities are decoded.")
@click.option("--objective", type=click.Choice(("f1_10", "f1_25", "f1_50", "edit", "accuracy")),
              default="f1_25", show_default=True, help="The segment score to maximise.")
@click.option("--stream", type=click.Choice(WINDOW_PROB_STREAMS), default=WINDOW_PROB_STREAMS[0],
              show_default=True, help="Stream of stored window probabilities.")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True,
              help="Rows of the ranking to print.")
@format_option()
@click.option("--update-model", "model", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the best parameters into this model's sidecar (MODEL.json) under "
                   "\"decoding\".")
def tune_decoding_command(db_path: Path, manual_ref: str, auto_ref: str, objective: str,
                          stream: str, top: int, fmt: str, model: Path | None) -> None:
    """Tune the temporal decoding on validation scans, from stored window probabilities.

    Decodes the automatic run's stored posteriors of every scan both runs share with each
    combination of a grid (temperature, prior power, expected segment length, minimum
    duration) and scores the timelines against the reference (F1@10/25/50, edit score, frame
    accuracy; percent). The network is not run again. Reference labels outside the model's
    classes count as Bk.

    \b
    Example:
      fetal-analytics tune-decoding --db out/demo/demo.duckdb --manual truth \\
        --auto demo-model --top 3
      fetal-analytics tune-decoding --db out/demo/demo.duckdb --manual truth \\
        --auto demo-model --update-model runs/s2d/model.keras
    """
    from inference.tuning import tune_decoding, write_sidecar_decoding

    with open_store(db_path, read_only=True) as store:
        result = tune_decoding(store, manual_ref, auto_ref, objective=objective, stream=stream)
    written = (write_sidecar_decoding(model, result.best, classes=result.classes)
               if model is not None else None)
    if fmt == "json":
        emit({**result.to_dict(top=top), "sidecar": None if written is None else str(written)},
             fmt)
    elif fmt == "csv":
        emit(result.table[:top], fmt)
    else:
        emit(result.table[:top], fmt,
             title=f"Decoding parameters by {objective} over {len(result.scans)} scans "
                   f"(best {top} of {len(result.table)})")
        best = ", ".join(f"{k}={v:g}" for k, v in result.best.to_dict().items())
        click.echo(f"best: {best}")
        if result.relabelled:
            others = ", ".join(f"{label} {n}" for label, n in result.relabelled.items())
            click.echo(f"reference labels outside the model's classes, counted as Bk (events): "
                       f"{others}")
    if written is not None:
        click.echo(f"wrote the best decoding parameters to {written}", err=True)


@main.command("import-sononet")
@click.argument("npz", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The model file to write (.keras); its sidecar goes beside it (.json).")
def import_sononet_command(npz: Path, out: Path) -> None:
    """Convert the published SonoNet weights (theano/lasagne .npz) to a Keras model.

    The model takes one greyscale frame of height 224 x width 288 and gives SonoNet's 14
    classes; the sidecar MODEL.json holds the classes, their taxonomy codes, the
    preprocessing and the model file's sha256 (checked whenever the model is loaded).

    \b
    Example:
      fetal-analytics import-sononet SonoNet16.npz --out sononet16.keras
    """
    from inference.model_file import sidecar_path
    from inference.sononet import import_sononet

    path = import_sononet(npz, out)
    side = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    click.echo(f"wrote {path} ({side['name']}: {len(side['classes'])} classes, "
               f"{side['params']['trainable']:,} trainable parameters) and {sidecar_path(path)}")


@main.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("images", metavar="IMAGE...", nargs=-1, required=True,
                type=click.Path(dir_okay=False, path_type=Path))
@format_option(("table", "json"))
def classify(model: Path, images: tuple[Path, ...], fmt: str) -> None:
    """Classify still screen captures with a 2D model: a built-in name (demo, sononet16) or a
    .keras file (an existing file wins).

    Each image is cropped to its automatically detected image area, made greyscale, resized
    to the model's input and z-scored (times the model's scale: 255 for SonoNet). The
    probabilities of classes that share a taxonomy code are summed, as `label` does; prints the
    most probable code, its probability, and the model's most probable class of that code.

    \b
    Example:
      fetal-analytics classify sononet16 simulated_classes.png
    """
    from inference.sononet import classify_images

    emit(classify_images(model, images), fmt, title=f"{model}: {len(images)} images")


@main.command("combine-models")
@click.argument("models", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The multi-stream model file (.keras; its sidecar .json is written beside).")
def combine_models(models: tuple[Path, ...], out: Path) -> None:
    """Join models trained on different streams into one multi-stream model for labelling.

    The models must share classes (e.g. Sono-2DtCNN trained on fr2, fr4 and fr8); their frame
    sizes may differ. The result predicts every stream in one call, and `label` cuts each
    stream's frames at its own size from one decode and fuses them.

    \b
    Example:
      fetal-analytics combine-models runs/s2d/model.keras runs/fr4/model.keras --out multi.keras
    """
    from inference.model_file import read_model_info
    from inference.models import combine_streams

    path = combine_streams(list(models), out)
    streams = ", ".join(s["name"] for s in read_model_info(path).streams)
    click.echo(f"wrote {path} (streams {streams}) and its sidecar {path.with_suffix('.json')}")


@main.command("train")
@click.option("--dataset", "dataset_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="A dataset folder (fetal-analytics dataset build).")
@click.option("--arch", required=True,
              help="Architecture: sononet, vgg16, vgg19 (stream 2d) or a temporal one, e.g. "
                   "sono_2dtcnn (clip streams).")
@click.option("--stream", type=click.Choice(INPUT_STREAMS), default="fr4", show_default=True,
              help="The dataset's stream to train on: clips, or single frames (2d).")
@click.option("--preset", type=click.Choice(tuple(MODEL_PRESETS)), default="cpu",
              show_default=True,
              help="Build parameters (width); input size and frames come from the dataset.")
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--init-from",
              help="Start from a 2D SonoNet: a model file or a built-in name (sononet16: the "
                   "published weights, trained on real scans; an existing file wins). Inflated "
                   "into sono_2dtcnn, copied by layer name into the other architectures, at the "
                   "donor's width; a new class head where the classes differ.")
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=0.01,
              show_default=True, help="SGD learning rate; use 0.001 to fine-tune from "
                                      "--init-from.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder: model.keras + model.json, last.keras, best.keras, "
                   "metrics.csv. An interrupted run in it is resumed.")
def train_command(dataset_dir: Path, arch: str, stream: str, preset: str, epochs: int,
                  batch_size: int, seed: int, init_from: str | None, learning_rate: float,
                  out: Path) -> None:
    """Train a model on one stream of a dataset (resumes an interrupted run in --out).

    SGD (Nesterov momentum 0.9, learning rate 0.01), augmentation, balanced class weights,
    early stopping on the validation loss (best weights kept); per-epoch metrics go to
    OUT/metrics.csv and the final model to OUT/model.keras with its sidecar.

    \b
    Example:
      fetal-analytics train --dataset ds --arch sononet --stream 2d --epochs 20 --out runs/s2d
      fetal-analytics train --dataset ds --arch sono_2dtcnn --stream fr4 \\
        --init-from runs/s2d/model.keras --out runs/fr4
      fetal-analytics train --dataset ds --arch sono_2dtcnn --stream fr4 \\
        --init-from sononet16 --learning-rate 1e-3 --out runs/fr4-real
    """
    from inference.training import train

    verbose = 1 if sys.stdout.isatty() else 2
    result = train(dataset_dir, arch, stream=stream, preset=preset, epochs=epochs,
                   batch_size=batch_size, seed=seed, out=out, progress=verbose,
                   init_from=init_from, learning_rate=learning_rate)
    resumed = f", resumed after epoch {result.resumed_from}" if result.resumed_from else ""
    click.echo(f"wrote {result.model_path} ({result.epochs_run} epochs{resumed}; best epoch "
               f"{result.best_epoch}: val_loss {result.best_val_loss:.4f}, val_accuracy "
               f"{result.best_val_accuracy:.4f}) and {out / 'metrics.csv'}")


@main.command("evaluate")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dataset", "dataset_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True)
@click.option("--split", type=click.Choice(("train", "val", "test")), default="test",
              show_default=True)
@click.option("--stream", type=click.Choice(INPUT_STREAMS), default=None,
              help="Default: the stream the model was trained on.")
@format_option(("table", "json"))
@click.option("--confusion", "confusion_png", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also draw the confusion matrix into this PNG file.")
def evaluate_command(model: Path, dataset_dir: Path, split: str, stream: str | None, fmt: str,
                     confusion_png: Path | None) -> None:
    """Evaluate a model on a dataset: macro precision, recall, F1, top-1/top-3 accuracy, per
    class.

    MODEL is a .keras file or a built-in name (demo, sononet16; an existing file wins). The
    probabilities of the model's classes that share a taxonomy code are summed, as `label`
    does, and scored against the dataset's classes; frames of another size are resized to the
    model's input.

    \b
    Example:
      fetal-analytics evaluate runs/s2d/model.keras --dataset ds --confusion s2d.png
      fetal-analytics evaluate sononet16 --dataset ds --stream 2d
    """
    from inference.evaluation import evaluate, save_confusion_png

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # undefined P/R are shown as blanks
        result = evaluate(model, dataset_dir, split=split, stream=stream)
    if confusion_png is not None:
        save_confusion_png(result.confusion, confusion_png,
                           title=f"{model.name}: {result.split} / {result.stream}")
    record = result.to_dict()
    if fmt == "json":
        emit(record, fmt)
    else:
        summary = {k: record[k] for k in ("split", "stream", "n", "precision", "recall", "f1",
                                         "top1", "top3")}
        emit(summary, fmt, title=model.name)
        emit([row for row in record["per_class"] if row["support"] or row["precision"]
              is not None], fmt, title="per class (classes with samples or predictions)")
    if confusion_png is not None:
        click.echo(f"wrote {confusion_png}", err=True)


def _parse_max_clips(_ctx: click.Context, _param: click.Parameter,
                     value: str | None) -> int | str | None:
    if value is None or value == "all":
        return value
    try:
        clips = int(value)
    except ValueError:
        clips = 0
    if clips < 1:
        raise click.BadParameter(f"expected a positive number or 'all', got {value!r}")
    return clips


@main.command("benchmark-models")
@click.option("--dataset", "dataset_dir", type=click.Path(file_okay=False, path_type=Path),
              help="A dataset from `fetal-analytics dataset build` with the streams fr2, fr4, "
                   "fr8 and 2d.")
@click.option("--cohort", "cohort_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Or a simulated cohort with videos (`fetal-analytics simulate`): its dataset "
                   "is built into OUT/dataset at the preset's frame size.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder: models, confusion PNGs, results.json. Running again resumes "
                   "(finished models are not retrained).")
@click.option("--preset", type=click.Choice(tuple(MODEL_PRESETS)), default="cpu", show_default=True,
              help="cpu: width 8, 64 px, up to 8 epochs on capped clips (within an hour on 2 "
                   "cores); paper: width 64, 224 px, up to 100 epochs on every clip (a GPU).")
@click.option("--arch", "archs", multiple=True,
              help="Only this architecture (repeatable) [default: all ten].")
@click.option("--epochs", type=click.IntRange(min=1), help="Maximum epochs [default: preset's].")
@click.option("--patience", type=click.IntRange(min=0),
              help="Early-stopping patience in epochs [default: the preset's].")
@click.option("--max-clips", callback=_parse_max_clips, metavar="N|all",
              help="Training clips per model, a fixed random subset [default: the preset's, "
                   "per architecture].")
@click.option("--width", type=click.IntRange(min=1), help="Base width [default: the preset's].")
@click.option("--streams", default=",".join(STREAMS), show_default=True,
              help="Clip streams of table 3, comma-separated ('none': no table 3).")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--test-dataset", "test_dataset", type=click.Path(file_okay=False, path_type=Path),
              help="Test every model on ALL instances (train, val and test splits pooled) of "
                   "this dataset of a separate held-out cohort, instead of the test split: same "
                   "classes, frame size and streams, aligned, no scan shared with --dataset.")
@click.option("--sononet-npz", type=click.Path(dir_okay=False, path_type=Path),
              help="The published SonoNet weights, for the 'SonoNet-64 (PT)' row [default: NA].")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the tables into this markdown file (e.g. BENCHMARKS.md), between "
                   "its benchmark-models markers.")
@format_option(("table", "json"))
def benchmark_models_command(dataset_dir: Path | None, cohort_dir: Path | None, out: Path,
                             preset: str, archs: tuple[str, ...], epochs: int | None,
                             patience: int | None, max_clips: int | str | None,
                             width: int | None, streams: str, batch_size: int, seed: int,
                             test_dataset: Path | None, sononet_npz: Path | None,
                             markdown_path: Path | None, fmt: str) -> None:
    """Reproduce the paper's tables 2 and 3: train, test and compare every model.

    Every architecture is trained on the training split (split by operator) and tested on the
    held-out test split (or, with --test-dataset, on every instance of a dataset of a separate
    held-out cohort): parameters, macro P, R, F1 and top-1/top-3 accuracy, the paper's values
    beside ours (table 2); Sono-2DtCNN on FR/2, FR/4 and FR/8 and their late fusion on the same
    test instances (table 3); and whether the paper's three claims hold. Writes
    OUT/results.json and the confusion matrices of the 2D SonoNet and Sono-2DtCNN.

    \b
    Example:
      fetal-analytics simulate --out bench-cohort --scans 24 --operators 12 --excerpt 6 \\
        --size 320x240
      fetal-analytics benchmark-models --cohort bench-cohort --out bench --markdown BENCH.md
      fetal-analytics benchmark-models --dataset ds --out bench-ds --sononet-npz SonoNet16.npz
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from fetal_analytics.markdown import write_section
    from inference.benchmark import (
        ARCH_ORDER,
        BenchmarkConfig,
        dataset_from_cohort,
        markdown,
        run_benchmark,
        table_records,
    )

    if (dataset_dir is None) == (cohort_dir is None):
        raise click.UsageError("give --dataset or --cohort (one of them)")
    config = BenchmarkConfig(
        preset=preset, archs=archs or ARCH_ORDER, epochs=epochs, patience=patience,
        max_clips=dict.fromkeys(ARCH_ORDER) if max_clips == "all" else max_clips, width=width,
        batch_size=batch_size, seed=seed,
        streams=() if streams.strip() in ("", "none") else tuple(
            s.strip() for s in streams.split(",")))
    console = _stderr_console()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True,
                  disable=not console.is_terminal) as progress:
        if cohort_dir is not None:
            task = progress.add_task("dataset: scans", total=None)
            dataset_dir = dataset_from_cohort(cohort_dir, out / "dataset", preset=preset,
                                              seed=seed,
                                              on_scan=lambda _scan: progress.advance(task))
            progress.remove_task(task)
        task = progress.add_task("models", total=None)
        result = run_benchmark(
            dataset_dir, out, config=config, sononet_npz=sononet_npz, test_dataset=test_dataset,
            progress=lambda what, done, total: progress.update(task, description=what,
                                                               completed=done, total=total))
    if markdown_path is not None:
        write_section(markdown_path, markdown(result, relative_to=markdown_path.resolve().parent))
    if fmt == "json":
        emit(result.to_dict(), fmt)
    else:
        tested = result.test_data["label"]
        print_table(table_records(result.table2), title=f"Table 2: models on {tested}")
        if result.table3:
            click.echo()
            print_table(table_records(result.table3, params=False),
                        title=f"Table 3: streams and late fusion on {tested} "
                              f"({result.n_common} instances common to every stream)")
        click.echo()
        print_table([{"finding": f.claim, "holds": {True: "yes", False: "no"}.get(f.holds, "NA"),
                      "numbers": f.detail} for f in result.findings], title="Findings")
    click.echo(f"wrote {out / 'results.json'}" + "".join(
        f", {p}" for p in result.confusion_pngs.values()) + (
        f" and {markdown_path}" if markdown_path is not None else ""), err=True)


@main.command("label")
@click.argument("videos", metavar="[VIDEO]...", nargs=-1,
                type=click.Path(dir_okay=False, path_type=Path))
@click.option("--scan-id", "scan_ids", multiple=True,
              help="The scan of each VIDEO, in order (repeat the option) [default: each video's "
                   "file name without extension]. The scans must be in the database.")
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path),
              help="Instead of VIDEOs: import this manifest, then label each of its scans that "
                   "has a video.")
@db_option(creates=True)
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Model file (.keras, with its .json sidecar) or a built-in name: demo (for "
                   "the simulator's screens), sononet16 (for real scans); an existing file "
                   "wins [default: demo].")
@click.option("--run-name",
              help="Run to write [default: label-<model file stem>-<sha256 prefix>]; an existing "
                   "run of this name is continued.")
@click.option("--force", is_flag=True, help="Label again the scans already finished in the run.")
@click.option("--replace", is_flag=True,
              help="Let --manifest correct scans and operators stored with other data (as "
                   "`ingest manifest --replace`).")
@click.option("--freezes/--no-freezes", default=True, show_default=True,
              help="Detect freeze frames on the same decoded frames.")
@click.option("--freeze-preset", metavar="NAME_OR_JSON", callback=_freeze_preset,
              help=_PRESET_HELP)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
              help="Windows per network call.")
@format_option(("table", "json"))
def label_command(videos: tuple[Path, ...], scan_ids: tuple[str, ...], manifest: Path | None,
                  db_path: Path, model: Path | None, run_name: str | None, force: bool,
                  replace: bool, freezes: bool, freeze_preset: Any, batch_size: int,
                  fmt: str) -> None:
    """Label full-length scan videos with a model: events, window probabilities, freezes.

    Each video is decoded once; every frame is cropped to the image area and resized to each
    stream's input (square or not, as the model's sidecar says); windows every hop (1 s) feed
    all the model's streams. The probabilities of classes sharing a taxonomy code are summed
    (SonoNet-16's four heart views give HeD), then the streams are fused and decoded into
    events. Each scan's results are written in one
    transaction as one run, so an interrupted run keeps its finished scans and running it
    again labels only the rest (Ctrl-C stops it so: it prints the scans kept and the command
    that resumes, exit status 130). A video that cannot be labelled is reported and the others
    go on; the exit status is then 1.

    \b
    Example:
      fetal-analytics label --manifest out/demo/videos-cohort/manifest.csv --db videos.duckdb
      fetal-analytics label out/demo/videos-cohort/videos/SIM0001.mp4 \\
        out/demo/videos-cohort/videos/SIM0002.mp4 --db videos.duckdb --model runs/s2d/model.keras
      fetal-analytics label out/demo/videos-cohort/videos/SIM0001.mp4 --scan-id SIM0001 \\
        --db videos.duckdb --force
    """
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from inference.freeze import FreezeConfig
    from inference.labelling import (
        LabellingInterrupted,
        RunLeftRunningError,
        ScanVideo,
        label_scans,
    )

    if manifest is not None and (videos or scan_ids):
        raise click.UsageError("give VIDEOs (with --scan-id) or --manifest, not both")
    if manifest is None and not videos:
        raise click.UsageError("give the VIDEOs to label, or --manifest FILE")
    if scan_ids and len(scan_ids) != len(videos):
        raise click.BadParameter(f"{len(videos)} videos but {len(scan_ids)} scan ids; give one "
                                 f"--scan-id per video, in order", param_hint="--scan-id")
    scans = None if manifest is not None else [
        ScanVideo(scan_id, video)
        for scan_id, video in zip(scan_ids or [v.stem for v in videos], videos, strict=True)]
    config = FreezeConfig(indicator=freeze_preset) if freezes else None
    console = _stderr_console()
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    left_running = interrupted = None
    with Progress(*columns, console=console, transient=True,
                  disable=not console.is_terminal) as bar:
        overall = bar.add_task("all scans", total=None)
        current = bar.add_task("", total=None)
        shown = {"scan_id": None}

        def show(progress: Any) -> None:  # an inference.labelling.LabelProgress
            if progress.scan_id != shown["scan_id"]:  # a new scan: its own bar from zero
                shown["scan_id"] = progress.scan_id
                bar.reset(current, total=progress.scan_total_s or None,
                          description=progress.scan_id)
            bar.update(current, completed=progress.scan_done_s)
            bar.update(overall, total=progress.total_s or None, completed=progress.done_s)

        try:
            result = label_scans(db_path, scans, manifest=manifest, model=model,
                                 run_name=run_name, force=force, batch_size=batch_size,
                                 freezes=config, progress=show, replace=replace)
        except RunLeftRunningError as exc:  # the scans are reported, then the error
            result, left_running = exc.result, exc
        except LabellingInterrupted as exc:
            interrupted = exc
    if interrupted is not None:
        click.echo(str(interrupted), err=True)
        raise SystemExit(130)
    if fmt == "json":
        emit(result.to_dict(), fmt)
    else:
        print_table([{k: v for k, v in row.items() if k != "reason"}
                     for row in result.scan_rows()])
        click.echo(f"run {result.run_id} {result.run_name!r} (auto, {result.status}): "
                   f"{len(result.labelled)} labelled, {len(result.skipped)} skipped, "
                   f"{len(result.failed)} failed")
        skipped: dict[str, list[str]] = {}
        for outcome in result.skipped:
            skipped.setdefault(outcome.reason, []).append(outcome.scan_id)
        for reason, ids in skipped.items():
            click.echo(f"skipped {', '.join(ids)}: {reason}", err=True)
    for outcome in result.failed:
        where = "" if str(outcome.video) in outcome.reason else f"{outcome.video}: "
        click.echo(f"Error: scan {outcome.scan_id}: {where}{outcome.reason}", err=True)
    if left_running is not None:
        raise left_running
    if result.failed:
        raise SystemExit(1)


@main.command()
@db_option(creates=False)
@click.option("--positive-group", default="expert", show_default=True,
              help="The group whose workflow the probability is of resembling.")
@selection_options
@format_option(("table", "json"))
def skill(db_path: Path, positive_group: str, source: str | None, run_ref: str,
          fmt: str) -> None:
    """Estimate from workflow how much each operator's scans resemble a group's (e.g. experts).

    A classifier of per-scan workflow features, evaluated leave-one-operator-out (no scan of
    the test operator is ever in training): accuracy, balanced accuracy and ROC AUC per scan
    and per operator with 95% bootstrap CIs over operators, and each operator's out-of-fold
    probability. Evidence about workflow, not a verdict on a person.

    \b
    Example:
      fetal-analytics skill --db out/demo/demo.duckdb --run simulator-truth
      fetal-analytics skill --db out/demo/demo.duckdb --run manual-clips --format json
    """
    from analytics.selection import select
    from analytics.skill import skill_estimate
    from fetal_analytics.results import plain

    with open_store(db_path, read_only=True) as store:
        selection = select(store, source=source, run=run_ref)
        result = skill_estimate(store, selection, positive_group=positive_group)
    if fmt == "json":
        emit(result.to_dict(), fmt)
        return
    counts = ", ".join(f"{g}: {n}" for g, n in result.n_operators.items())
    print_table(plain(result.metrics), title=(
        f"{result.selection}: resembling {positive_group!r}, leave-one-operator-out "
        f"(operators {counts}; baseline balanced accuracy 0.5; PULSE: "
        f"{result.pulse['cross_validation_accuracy']:.1%} in cross-validation, "
        f"{result.pulse['unseen_operator_accuracy']:.1%} on unseen operators)"))
    click.echo()
    print_table(plain(result.operators), title=(
        f"Probability that an operator's scans resemble {positive_group!r} (out of fold; Brier "
        f"score of the scans {result.brier:.3f}); evidence about workflow, not a verdict"))


# --- reports -------------------------------------------------------------------------------------

def _report_formats(_ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    from reports.write import OutputError, parse_formats

    try:
        return parse_formats(value)
    except OutputError as exc:
        raise click.BadParameter(str(exc), param_hint="--format") from exc


@main.command()
@db_option(creates=False)
@click.option("--operator", "operators", multiple=True, metavar="ID",
              help="An operator's pseudonymous id (repeatable).")
@click.option("--all", "every", is_flag=True,
              help="Every operator of the database, and an index.html linking the reports.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder of the reports (created): <operator>.html, .pdf, .json.")
@click.option("--format", "formats", default="html,pdf,json", show_default=True,
              callback=_report_formats, help="Comma-separated formats: html, pdf, json.")
@click.option("--reference-group", "reference",
              help="The group each operator is compared with (the operator left out of it) "
                   "[default: expert, where the database has one].")
@selection_options
def report(db_path: Path, operators: tuple[str, ...], every: bool, out: Path,
           formats: tuple[str, ...], reference: str | None, source: str | None,
           run_ref: str) -> None:
    """Write operator workflow reports: HTML, PDF and JSON, one set per operator.

    Each report places one operator's scans against the reference group's operators
    (percentiles among their means): scan duration, time per category with 95% CIs, coverage
    of the FASP-required structures, order, transitions, revisits, background search,
    freezes, the trend over dates, the timelines of their scans, the leave-one-operator-out
    skill estimate (evidence about workflow, with its accuracy) and a plain-language summary.
    The HTML opens offline; the PDF (A4) is the same page printed by Chromium; the JSON holds
    every number shown.

    \b
    Example:
      fetal-analytics report --db out/demo/demo.duckdb --run simulator-truth --operator OP01 \\
        --out out/reports
      fetal-analytics report --db out/demo/demo.duckdb --run simulator-truth --all \\
        --out out/reports --format html,json
    """
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    from analytics.selection import select
    from reports.write import write_reports

    if every == bool(operators):
        raise click.UsageError("give --operator ID (repeatable) or --all")
    console = _stderr_console()
    with open_store(db_path, read_only=True) as store, Progress(
            TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
            console=console, transient=True, disable=not every or not console.is_terminal
    ) as bar:
        task = bar.add_task("reports", total=None)
        selection = select(store, source=source, run=run_ref)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # what cannot be computed is said in the reports
            written = write_reports(
                store, selection, None if every else operators, out, formats=formats,
                reference=reference or "expert", require_reference=reference is not None,
                progress=lambda op, done, total: bar.update(
                    task, completed=done, total=total, description=op))
    click.echo(f"wrote {len(written.operators)} report(s) to {written.out}: "
               f"{', '.join(formats)}" + (f"; index {written.index}" if written.index else ""))


def _timeline_out(_ctx: click.Context, _param: click.Parameter, value: Path) -> Path:
    from reports.write import TIMELINE_SUFFIXES

    if value.suffix.lower() not in TIMELINE_SUFFIXES:
        raise click.BadParameter(
            f"{value.name}: cannot tell the format from the suffix {value.suffix!r}; use one of "
            f"{', '.join(TIMELINE_SUFFIXES)}", param_hint="--out")
    return value


@main.command()
@db_option(creates=False)
@click.option("--scan", "scan_id", required=True, help="The scan's id.")
@click.option("--run", "runs", multiple=True, metavar="RUN",
              help="A run (id or name) to draw as a row (repeatable) [default: the newest "
                   "finished manual and automatic runs of the scan].")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              callback=_timeline_out, help="The file: .html (opens offline), .png or .svg.")
def timeline(db_path: Path, scan_id: str, runs: tuple[str, ...], out: Path) -> None:
    """Export one scan's timeline, one row per run: the paper's figure 1.

    \b
    Example:
      fetal-analytics timeline --db out/demo/demo.duckdb --scan VID0001 --out VID0001.html
      fetal-analytics timeline --db out/demo/demo.duckdb --scan VID0001 --run truth \\
        --run demo-model --out VID0001.svg
    """
    from reports.write import write_timeline

    with open_store(db_path, read_only=True) as store:
        written = write_timeline(store, scan_id, runs or None, out)
    click.echo(f"wrote {written}")
