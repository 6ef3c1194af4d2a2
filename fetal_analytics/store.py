"""The DuckDB store: one database file holding operators, scans, runs and events.

The schema is owned here and grows by ordered migrations (`MIGRATIONS`); the table
``schema_version`` records which have been applied. Times are seconds (DOUBLE) from the start of
the video. Labels reference ``event_labels``, which mirrors the taxonomy. Every run records in
``run_scans`` when it last wrote each scan's rows (and whether it recorded the scan's freezes);
``freeze_frames`` belong to the run that detected them.

DuckDB allows one read-write process or many read-only ones, never both. Open read-only wherever
nothing is written (the dashboard, the analytics), and keep read-write connections short
(`fetal_analytics.run_writing.open_for_write` waits a bounded time for a busy file).

Examples
--------
>>> with Store("cohort.duckdb") as store:          # doctest: +SKIP
...     with store.transaction():
...         store.insert_frame("operators", operators_df)
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fetal_analytics import taxonomy
from fetal_analytics.errors import UserError

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

__all__ = [
    "COMPACT_BLOCK_SIZE",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Migration",
    "Store",
    "StoreBusyError",
    "StoreError",
    "compact_copy",
    "migrate",
    "missing_database_error",
    "removed_if_refused",
]

log = logging.getLogger(__name__)


class StoreError(UserError, RuntimeError):
    """The database cannot be opened or used as asked; the message says how to fix it."""


class StoreBusyError(StoreError):
    """Another process holds the database file's lock."""


@dataclass(frozen=True)
class Migration:
    """One step of the schema: the version it brings the database to and its statements."""

    version: int
    description: str
    statements: tuple[str, ...]


def _event_labels_rows() -> str:
    def quote(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    return ",\n".join(
        f"({quote(c.code)}, {quote(c.name)}, {quote(c.colour)}, {c.fasp_required}, "
        f"{c.default_model}, {i})"
        for i, c in enumerate(taxonomy.all_classes())
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "core: taxonomy, operators, scans, runs, events",
        (
            """CREATE TABLE event_labels (
                code VARCHAR PRIMARY KEY,
                name VARCHAR NOT NULL,
                colour VARCHAR NOT NULL,
                fasp_required BOOLEAN NOT NULL,
                default_model BOOLEAN NOT NULL,
                ordinal INTEGER NOT NULL
            )""",
            f"INSERT INTO event_labels VALUES {_event_labels_rows()}",
            """CREATE TABLE operators (
                operator_id VARCHAR PRIMARY KEY,
                grp VARCHAR NOT NULL,
                years_experience DOUBLE CHECK (years_experience >= 0)
            )""",
            """CREATE TABLE scans (
                scan_id VARCHAR PRIMARY KEY,
                operator_id VARCHAR NOT NULL REFERENCES operators (operator_id),
                acquired_at TIMESTAMP,
                video_path VARCHAR,
                video_sha256 VARCHAR,
                fps DOUBLE CHECK (fps > 0),
                n_frames BIGINT CHECK (n_frames >= 0),
                duration_s DOUBLE CHECK (duration_s >= 0)
            )""",
            "CREATE SEQUENCE run_ids START 1",
            """CREATE TABLE runs (
                run_id INTEGER PRIMARY KEY DEFAULT nextval('run_ids'),
                name VARCHAR NOT NULL,
                source VARCHAR NOT NULL CHECK (source IN ('manual', 'auto')),
                kind VARCHAR NOT NULL CHECK (kind IN ('import', 'label')),
                model_id VARCHAR,
                params_json VARCHAR,
                input_path VARCHAR,
                input_sha256 VARCHAR,
                started_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
                finished_at TIMESTAMP,
                status VARCHAR NOT NULL CHECK (status IN ('running', 'finished', 'failed')),
                UNIQUE (source, name)
            )""",
            """CREATE TABLE events (
                run_id INTEGER NOT NULL REFERENCES runs (run_id),
                scan_id VARCHAR NOT NULL REFERENCES scans (scan_id),
                start_s DOUBLE NOT NULL CHECK (start_s >= 0),
                end_s DOUBLE NOT NULL,
                label VARCHAR NOT NULL REFERENCES event_labels (code),
                confidence DOUBLE CHECK (confidence BETWEEN 0 AND 1),
                CHECK (end_s > start_s)
            )""",
        ),
    ),
    Migration(
        2,
        "inference outputs: freeze frames, models, window probabilities",
        (
            """CREATE TABLE freeze_frames (
                scan_id VARCHAR NOT NULL REFERENCES scans (scan_id),
                t_s DOUBLE NOT NULL CHECK (t_s >= 0),
                end_s DOUBLE,
                frame BIGINT,
                method VARCHAR NOT NULL,
                text VARCHAR
            )""",
            """CREATE TABLE models (
                model_id VARCHAR PRIMARY KEY,
                path VARCHAR NOT NULL,
                sha256 VARCHAR NOT NULL,
                arch VARCHAR NOT NULL,
                input_shape INTEGER[],
                classes VARCHAR[] NOT NULL,
                metrics_json VARCHAR,
                created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
            )""",
            """CREATE TABLE window_probs (
                run_id INTEGER NOT NULL REFERENCES runs (run_id),
                scan_id VARCHAR NOT NULL REFERENCES scans (scan_id),
                t_s DOUBLE NOT NULL,
                stream VARCHAR NOT NULL,
                probs FLOAT[] NOT NULL
            )""",
        ),
    ),
    Migration(
        3,
        "runs per scan: run_scans (when a run last wrote a scan), freeze frames per run",
        (
            # When each run last wrote each scan's rows: "the newest run of a scan" is the one
            # that wrote it last, so a run replaced under its name becomes the newest.
            """CREATE TABLE run_scans (
                run_id INTEGER NOT NULL REFERENCES runs (run_id),
                scan_id VARCHAR NOT NULL REFERENCES scans (scan_id),
                written_at TIMESTAMP NOT NULL,
                freezes_detected BOOLEAN NOT NULL DEFAULT false,
                PRIMARY KEY (run_id, scan_id)
            )""",
            # Existing rows were last written when their run finished (or started).
            """INSERT INTO run_scans (run_id, scan_id, written_at)
            SELECT w.run_id, w.scan_id, coalesce(r.finished_at, r.started_at)
            FROM (SELECT run_id, scan_id FROM events
                  UNION SELECT run_id, scan_id FROM window_probs) w
            JOIN runs r USING (run_id)""",
            # Freeze frames gain their run: detected freezes belong to the newest labelling run
            # of their scan with window probabilities (the run that wrote them last); other
            # rows, and scans without such a run, keep no run (NULL). DuckDB can neither add a
            # foreign key to a table nor rename one that has foreign keys (the referenced
            # tables keep the old name), so the rows go through a plain copy and the table is
            # made anew under its own name.
            """CREATE TABLE freeze_frames_v2 AS
            SELECT owner.run_id, f.scan_id, f.t_s, f.end_s, f.frame, f.method, f.text
            FROM freeze_frames f
            LEFT JOIN (
                SELECT rs.scan_id, rs.run_id
                FROM run_scans rs JOIN runs r USING (run_id)
                WHERE r.kind = 'label' AND EXISTS (
                    SELECT 1 FROM window_probs w
                    WHERE w.run_id = rs.run_id AND w.scan_id = rs.scan_id)
                QUALIFY row_number() OVER (PARTITION BY rs.scan_id
                                           ORDER BY rs.written_at DESC, rs.run_id DESC) = 1
            ) owner ON owner.scan_id = f.scan_id AND f.method = 'detected'""",
            "DROP TABLE freeze_frames",
            """CREATE TABLE freeze_frames (
                run_id INTEGER REFERENCES runs (run_id),
                scan_id VARCHAR NOT NULL REFERENCES scans (scan_id),
                t_s DOUBLE NOT NULL CHECK (t_s >= 0),
                end_s DOUBLE,
                frame BIGINT,
                method VARCHAR NOT NULL,
                text VARCHAR
            )""",
            "INSERT INTO freeze_frames BY NAME SELECT * FROM freeze_frames_v2",
            "DROP TABLE freeze_frames_v2",
            """UPDATE run_scans SET freezes_detected = true
            FROM (SELECT DISTINCT run_id, scan_id FROM freeze_frames
                  WHERE run_id IS NOT NULL) d
            WHERE run_scans.run_id = d.run_id AND run_scans.scan_id = d.scan_id""",
        ),
    ),
)

SCHEMA_VERSION: int = MIGRATIONS[-1].version
"""The schema version this release writes and reads."""


def _current_version(con: duckdb.DuckDBPyConnection) -> int:
    has_table = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = 'main' AND table_name = 'schema_version'"
    ).fetchone()[0]
    if not has_table:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]


def migrate(con: duckdb.DuckDBPyConnection, *, target: int = SCHEMA_VERSION) -> list[int]:
    """Apply the migrations after the database's version, up to `target`, in order.

    Each migration runs in its own transaction together with its ``schema_version`` row, so a
    failure leaves the database at the last complete version.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A read-write connection.
    target : int, optional
        Version to stop at (default: the latest).

    Returns
    -------
    list of int
        The versions applied, possibly empty.
    """
    current = _current_version(con)
    applied = []
    for migration in MIGRATIONS:
        if current < migration.version <= target:
            con.execute("BEGIN TRANSACTION")
            try:
                if migration.version == 1:
                    con.execute(
                        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
                        "description VARCHAR NOT NULL, "
                        "applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
                    )
                for statement in migration.statements:
                    con.execute(statement)
                con.execute(
                    "INSERT INTO schema_version (version, description) VALUES (?, ?)",
                    [migration.version, migration.description],
                )
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
            log.info("migrated database to schema v%d (%s)", migration.version,
                     migration.description)
            applied.append(migration.version)
    return applied


_LOCK_PID = re.compile(r"PID (\d+)")


class Store:
    """An open fetal-analytics database.

    Parameters
    ----------
    path : str or Path
        The database file. Opened read-write, a missing file is created and an older schema is
        migrated; opened read-only, the file must exist at the current schema version.
    read_only : bool, optional
        Open without the write lock, so several readers (e.g. the dashboard) can share the file.

    Raises
    ------
    StoreError
        The file is missing (read-only), not a DuckDB database, or from a newer release.
    StoreBusyError
        Another process holds the file's write lock.
    """

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        import duckdb

        self.path = Path(path)
        self.read_only = read_only
        if read_only and not self.path.exists():
            raise missing_database_error(self.path)
        if not read_only and not self.path.parent.exists():
            raise StoreError(f"cannot create {self.path}: folder {self.path.parent} does not exist")
        if not read_only and not os.access(self.path.parent, os.W_OK):
            raise read_only_folder_error(self.path)
        if read_only and self.path.is_file() and self.path.stat().st_size == 0:
            raise StoreError(f"{self.path} is an empty file, not a database: create one with "
                             f"`fetal-analytics init-db --db {self.path}`")
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            raise _open_error(self.path, exc) from exc
        try:
            self._check_schema()
        except BaseException:
            self.con.close()
            raise

    def _check_schema(self) -> None:
        version = _current_version(self.con)
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema v{version}, newer than this release's "
                f"v{SCHEMA_VERSION}: upgrade fetal-analytics"
            )
        if version < SCHEMA_VERSION:
            if self.read_only:
                raise StoreError(
                    f"{self.path} has schema v{version}, older than v{SCHEMA_VERSION}: migrate it "
                    f"with `fetal-analytics init-db --db {self.path}`"
                )
            migrate(self.con)

    @property
    def schema_version(self) -> int:
        """The schema version of the open database."""
        return _current_version(self.con)

    def close(self) -> None:
        """Close the connection and release the file lock."""
        self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """Run the block in one transaction: committed at the end, rolled back on any error."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def insert_frame(self, table: str, frame: pd.DataFrame) -> int:
        """Insert the rows of a DataFrame into `table`, matching columns by name.

        Bulk insertion through DuckDB's DataFrame scan (row-by-row ``executemany`` is ~1000x
        slower). Columns of `table` absent from `frame` take their defaults.

        Returns
        -------
        int
            The number of rows inserted.
        """
        if frame.empty:
            return 0
        import duckdb

        view = f"_insert_{table}"
        self.con.register(view, frame)
        try:
            self.con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {view}")
        except duckdb.Error:
            # Inside a transaction the failed insert aborts it, and unregistering would then
            # fail too and hide the insert's own error (the next register replaces the view).
            with suppress(duckdb.Error):
                self.con.unregister(view)
            raise
        self.con.unregister(view)
        return len(frame)

    def query_df(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Run a query and return its whole result as a DataFrame."""
        return self.con.execute(sql, params or []).df()

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        """Run a query and return the first column of its first row (None when empty)."""
        row = self.con.execute(sql, params or []).fetchone()
        self.con.complete()
        return None if row is None else row[0]

    def counts(self) -> dict[str, int]:
        """Numbers of operators, scans, runs and events."""
        return {
            table: self.scalar(f"SELECT count(*) FROM {table}")
            for table in ("operators", "scans", "runs", "events")
        }


COMPACT_BLOCK_SIZE = 16384
"""Block size, in bytes, of `compact_copy`'s files (DuckDB's default 256 KiB blocks leave a
small database mostly empty space)."""


def compact_copy(source: str | Path, target: str | Path) -> Path:
    """Copy a database into a new, compact file: every table, view, type and sequence, in
    blocks of `COMPACT_BLOCK_SIZE` bytes (a few-MB demo database instead of a 14 MB one).

    Parameters
    ----------
    source : str or Path
        The database, opened read-only.
    target : str or Path
        The new file; an existing file is replaced.

    Returns
    -------
    Path
        `target`.

    Raises
    ------
    StoreError
        `source` is missing, busy or not at this release's schema version.
    """
    import duckdb

    with Store(source, read_only=True):
        pass  # the checks of a read-only open: present, not busy, current schema
    target = Path(target)
    target.unlink(missing_ok=True)
    con = duckdb.connect()
    try:
        con.execute("ATTACH ? AS src (READ_ONLY)", [str(source)])
        con.execute(f"ATTACH ? AS dst (BLOCK_SIZE {COMPACT_BLOCK_SIZE})", [str(target)])
        con.execute("COPY FROM DATABASE src TO dst")
    finally:
        con.close()
    return target


def missing_database_error(path: Path) -> StoreError:
    """The error for a database file that does not exist, saying how to create one."""
    return StoreError(
        f"no database at {path}: create one with `fetal-analytics init-db --db {path}`")


def read_only_folder_error(path: Path) -> StoreError:
    """The error for a database to be written in a folder that cannot be written."""
    return StoreError(
        f"cannot write {path}: its folder {path.parent} is read-only (DuckDB writes a "
        f"{path.name}.wal file beside the database); copy the database into a folder you can "
        f"write, or give a --db there")


@contextmanager
def removed_if_refused(path: str | Path) -> Iterator[None]:
    """Remove the database file (and its WAL) that the block creates if the block raises.

    So a refused first import leaves no new, empty database behind. A file that existed before
    is left alone.
    """
    path = Path(path)
    existed = path.exists()
    try:
        yield
    except BaseException:
        if not existed:
            for leftover in (path, path.with_name(path.name + ".wal")):
                with suppress(FileNotFoundError):
                    leftover.unlink()
        raise


def _open_error(path: Path, exc: Exception) -> StoreError:
    text = str(exc)
    if "read-only file system" in text.lower():
        return read_only_folder_error(path)
    if "lock" in text.lower():
        pid = _LOCK_PID.search(text)
        holder = f" (process {pid.group(1)})" if pid else ""
        return StoreBusyError(
            f"{path} is in use by another process{holder}; wait for it to finish or close it, "
            f"then retry"
        )
    return StoreError(f"cannot open {path} as a DuckDB database: {text}")
