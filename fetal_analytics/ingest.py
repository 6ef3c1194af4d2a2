"""Importing the manifest of scans and operators, and label files, into the store.

Both imports validate the whole file first and report every problem with its file, line and
column; only a file without problems is written, inside one transaction, so a refused or failed
import leaves the database as it was. Re-importing the same file changes nothing.

Manifest columns (CSV or Parquet)
    ``scan_id, operator_id, group`` (required); ``acquired_at`` (ISO 8601 date or date-time),
    ``video_path`` (may be empty; a relative path is resolved against the manifest's folder),
    ``fps``, ``years_experience`` (optional).

Label columns
    ``scan_id, label`` and either ``start_s, end_s`` (seconds from the start of the video) or
    ``start_frame, end_frame`` (0-based frame indices, end exclusive; the scan's fps must be known
    from the manifest); optional ``confidence`` in [0, 1]. Events are half-open intervals
    ``[start, end)``: one event may end where the next begins, but events of one scan must not
    overlap. Where a scan's length is known (its video was labelled), an event must not end after
    it; within one frame of the end it is cut there.

Labels for a model
    ``ingest_labels(..., others_as="Bk", classes=model_codes)`` imports every label outside a
    model's classes as ``Bk`` (`fetal_analytics.events.relabel_others`), as the model sees them;
    the run's ``params_json`` records the mapping, and the same file imported with another
    mapping (or none) is another import.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from fetal_analytics import taxonomy
from fetal_analytics.events import relabel_others
from fetal_analytics.hashing import file_sha256
from fetal_analytics.runs import SOURCES
from fetal_analytics.tabular import InputError, InputTable, Problem, read_table

if TYPE_CHECKING:
    import pandas as pd

    from fetal_analytics.store import Store

__all__ = [
    "LabelsImport",
    "ManifestImport",
    "ingest_labels",
    "ingest_manifest",
    "read_labels",
    "read_manifest",
]

log = logging.getLogger(__name__)

MANIFEST_REQUIRED = ("scan_id", "operator_id", "group")
MANIFEST_OPTIONAL = ("acquired_at", "video_path", "fps", "years_experience")
LABELS_TIME_COLUMNS = (("start_s", "end_s"), ("start_frame", "end_frame"))
LABELS_OPTIONAL = ("confidence",)
DEFAULT_FPS = 30.0
"""Frames per second assumed for the one-frame tolerance at a scan's end where its fps is
unknown (the paper's frame rate)."""

# Scan fields compared with what the database holds; an empty manifest cell keeps the stored value.
_SCAN_FIELDS = ("operator_id", "acquired_at", "video_path", "fps")
_OPERATOR_FIELDS = ("grp", "years_experience")


@dataclass(frozen=True)
class ManifestImport:
    """What `ingest_manifest` did.

    Attributes
    ----------
    path : Path
    operators_added, operators_updated : int
    scans_added, scans_updated, scans_unchanged : int
    auto_results_removed : dict
        Scan -> automatic events removed, for the scans given a video of other content whose
        automatic results were removed (label them again).
    """

    path: Path
    operators_added: int
    operators_updated: int
    scans_added: int
    scans_updated: int
    scans_unchanged: int
    auto_results_removed: dict[str, int]


@dataclass(frozen=True)
class LabelsImport:
    """What `ingest_labels` did.

    Attributes
    ----------
    run_id : int
        The run holding the file's events.
    run_name : str
    source : {'manual', 'auto'}
    status : {'created', 'replaced', 'unchanged'}
        ``unchanged``: the same file had been imported before; nothing was written.
    n_scans, n_events : int
        Scans and events in the file.
    others_as : str or None
        The code given to labels outside the model's classes; None: labels imported as they are.
    relabelled : dict
        Original label -> events imported as `others_as` (empty without it, or when every label
        was one of the classes).
    n_scans_removed, n_events_removed : int
        Scans and events the replaced run held before (0 unless ``replaced``).
    """

    run_id: int
    run_name: str
    source: str
    status: str
    n_scans: int
    n_events: int
    others_as: str | None
    relabelled: dict[str, int]
    n_scans_removed: int = 0
    n_events_removed: int = 0

    @property
    def n_relabelled(self) -> int:
        """Events imported as `others_as` rather than their own label."""
        return sum(self.relabelled.values())


# --- parsing helpers: each returns (value, problem message or None) -------------------------

def _number(text: str, what: str, *, minimum: float | None = None,
            strictly_positive: bool = False) -> tuple[float | None, str | None]:
    try:
        value = float(text)
    except ValueError:
        return None, f"expected {what}, got {text!r}"
    if not math.isfinite(value):
        return None, f"expected a finite number, got {text!r}"
    if strictly_positive and value <= 0:
        return None, f"expected a number greater than 0, got {text!r}"
    if minimum is not None and value < minimum:
        return None, f"expected a number >= {minimum:g}, got {text!r}"
    return value, None


def _timestamp(text: str) -> tuple[datetime | None, str | None]:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None, (f"expected an ISO 8601 date or date-time such as 2024-05-01T09:30, "
                      f"got {text!r}")
    if value.tzinfo is not None:  # stored as naive UTC
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value, None


# --- manifest -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Manifest:
    """A validated manifest: one row per operator and one per scan (columns as in the store)."""

    path: Path
    operators: pd.DataFrame
    scans: pd.DataFrame


def read_manifest(path: str | Path) -> Manifest:
    """Read and validate a manifest file (see the module docstring for its columns).

    Raises
    ------
    InputError
        Listing every malformed cell, and scans or operators given twice with different data.
    """
    import pandas as pd

    table = read_table(path, required=MANIFEST_REQUIRED, optional=MANIFEST_OPTIONAL)
    folder = table.path.resolve().parent
    problems: list[Problem] = []
    scans: dict[str, dict] = {}
    scan_lines: dict[str, int] = {}
    operators: dict[str, dict] = {}
    operator_lines: dict[str, int] = {}
    group_lines: dict[str, dict[str, int]] = {}  # casefolded -> each spelling's first row

    def cell(column: str, i: int) -> str:
        return table.columns[column][i] if column in table.columns else ""

    for i in range(len(table)):
        row_problems = []
        for column in MANIFEST_REQUIRED:
            if not cell(column, i):
                row_problems.append(
                    table.problem(i, column, "expected a value, found an empty cell"))
        acquired = fps = years = None
        if text := cell("acquired_at", i):
            acquired, message = _timestamp(text)
            if message:
                row_problems.append(table.problem(i, "acquired_at", message))
        if text := cell("fps", i):
            fps, message = _number(text, "a frame rate in frames per second",
                                   strictly_positive=True)
            if message:
                row_problems.append(table.problem(i, "fps", message))
        if text := cell("years_experience", i):
            years, message = _number(text, "a number of years", minimum=0)
            if message:
                row_problems.append(table.problem(i, "years_experience", message))
        if row_problems:
            problems.extend(row_problems)
            continue
        video = cell("video_path", i)
        if video:
            resolved = (folder / video).resolve()
            if not resolved.exists():
                log.warning("%s, %s: video %s does not exist (yet)", table.path,
                            table.location(i), resolved)
            video = str(resolved)
        scan_id, operator_id = cell("scan_id", i), cell("operator_id", i)
        scan = {"scan_id": scan_id, "operator_id": operator_id, "acquired_at": acquired,
                "video_path": video or None, "fps": fps}
        operator = {"operator_id": operator_id, "grp": cell("group", i), "years_experience": years}
        _merge_row(scans, scan_lines, scan_id, scan, i, table, problems, "scan_id")
        _merge_row(operators, operator_lines, operator_id, operator, i, table, problems,
                   "operator_id")
        group = cell("group", i)
        spelled = group_lines.setdefault(group.casefold(), {})
        if group not in spelled:
            spelled[group] = i
            if len(spelled) == 2:
                (first, line), = ((g, n) for g, n in spelled.items() if g != group)
                problems.append(table.problem(i, "group", (
                    f"group {group!r} differs only in case from {first!r} on "
                    f"{table.location(line)}: spell each group one way")))
    if problems:
        raise InputError(problems)
    return Manifest(
        table.path,
        pd.DataFrame(list(operators.values()),
                     columns=["operator_id", "grp", "years_experience"]).astype(
                         {"years_experience": "float64"}),
        pd.DataFrame(list(scans.values()),
                     columns=["scan_id", "operator_id", "acquired_at", "video_path", "fps"]).astype(
                         {"fps": "float64", "acquired_at": "datetime64[us]"}),
    )


def _merge_row(seen: dict, lines: dict, key: str, row: dict, i: int, table: InputTable,
               problems: list[Problem], key_column: str) -> None:
    """Merge rows of one key: empty cells are filled from other rows, different values conflict."""
    if key not in seen:
        seen[key] = row
        lines[key] = i
        return
    first = seen[key]
    for field, value in row.items():
        if first[field] is None:
            first[field] = value
        elif value is not None and first[field] != value:
            column = "group" if field == "grp" else field
            problems.append(table.problem(
                i, column,
                f"{key_column} {key!r} was given {column} {_show(first[field])} on "
                f"{table.location(lines[key])}, and {_show(value)} here",
            ))


def _show(value: object) -> str:
    return "(empty)" if value is None else repr(str(value))


def ingest_manifest(store: Store, path: str | Path, *, replace: bool = False) -> ManifestImport:
    """Validate a manifest and add its operators and scans to the store, in one transaction.

    A value the store lacks (an empty cell imported before) is filled in. A value that differs
    from the stored one is a correction and needs `replace`. Corrections keep a scan's labels,
    except that a new video whose content (SHA-256) differs from the one labelled removes the
    scan's automatic results (events, window probabilities and freezes of every automatic run):
    they describe another video. Manual labels are always kept.

    Parameters
    ----------
    store : Store
        Open read-write.
    path : str or Path
        The manifest (CSV or Parquet).
    replace : bool, optional
        Let the manifest change scans and operators already stored with other data (for
        example a corrected date, video path or operator id). Without it such a change is
        refused.

    Returns
    -------
    ManifestImport

    Raises
    ------
    InputError
        The file is malformed; or (without `replace`) it contradicts the stored data; or it
        moves a scan that has labels to another operator (the store cannot change that in
        place: build a new database from the corrected manifest).
    """
    manifest = read_manifest(path)
    table_path = manifest.path
    stored_ops = store.query_df("SELECT operator_id, grp, years_experience FROM operators")
    stored_scans = store.query_df(
        "SELECT scan_id, operator_id, acquired_at, video_path, video_sha256, fps FROM scans")
    op_updates, op_problems = _changed_rows(manifest.operators, stored_ops, "operator_id",
                                            _OPERATOR_FIELDS, table_path)
    scan_updates, scan_problems = _changed_rows(manifest.scans, stored_scans, "scan_id",
                                                _SCAN_FIELDS, table_path)
    if (op_problems or scan_problems) and not replace:
        raise InputError([*op_problems, *scan_problems, Problem(
            table_path, None, None,
            "the database holds other data for these ids; pass --replace to overwrite it")])
    _refuse_groups_differing_in_case(manifest.operators, stored_ops, table_path)
    _refuse_moving_labelled_scans(store, scan_updates, stored_scans, table_path)
    new_videos = _new_video_hashes(manifest.scans, scan_updates, stored_scans)
    new_ops = ~manifest.operators["operator_id"].isin(stored_ops["operator_id"])
    new_scans = ~manifest.scans["scan_id"].isin(stored_scans["scan_id"])
    with store.transaction():
        store.insert_frame("operators", manifest.operators[new_ops])
        _update_rows(store, "operators", "operator_id", manifest.operators, op_updates)
        store.insert_frame("scans", manifest.scans[new_scans])
        _update_rows(store, "scans", "scan_id", manifest.scans, scan_updates)
        removed = _remove_automatic_results(store, new_videos)
    changed_scans = {key for key, _field in scan_updates}
    result = ManifestImport(
        table_path,
        operators_added=int(new_ops.sum()),
        operators_updated=len({key for key, _field in op_updates}),
        scans_added=int(new_scans.sum()), scans_updated=len(changed_scans),
        scans_unchanged=int((~new_scans).sum()) - len(changed_scans),
        auto_results_removed=removed,
    )
    log.info("imported %s: %s", table_path, result)
    return result


def _changed_rows(incoming: pd.DataFrame, stored: pd.DataFrame, key: str, fields: tuple,
                  path: Path) -> tuple[list[tuple[str, str]], list[Problem]]:
    """The (key, field) pairs the incoming rows set (a stored empty value filled in, or a stored
    value changed), and a problem for each row that changes a stored value."""
    import pandas as pd

    both = incoming.merge(stored, on=key, suffixes=("", "_stored"))
    updates, problems = [], []
    for row in both.itertuples(index=False):
        values = row._asdict()
        diffs = []
        for field in fields:
            new, old = values[field], values[field + "_stored"]
            if pd.isna(new) or (not pd.isna(old) and new == old):
                continue
            updates.append((values[key], field))
            if not pd.isna(old):  # filling in an empty value is no conflict
                diffs.append(f"{'group' if field == 'grp' else field} {_show(old)} -> "
                             f"{_show(new)}")
        if diffs:
            problems.append(Problem(
                path, None, key, f"{values[key]!r} is stored with other data: {'; '.join(diffs)}"))
    return updates, problems


def _refuse_groups_differing_in_case(incoming: pd.DataFrame, stored: pd.DataFrame,
                                     path: Path) -> None:
    """Refuse group names that differ from a stored group's only in case."""
    known = {group.casefold(): group for group in stored["grp"].unique()}
    clashes = sorted({(group, known[group.casefold()]) for group in incoming["grp"].unique()
                      if group.casefold() in known and group != known[group.casefold()]})
    if clashes:
        raise InputError([Problem(path, None, "group", (
            f"group {new!r} differs only in case from the database's {old!r}: spell each group "
            f"one way")) for new, old in clashes])


def _refuse_moving_labelled_scans(store: Store, updates: list[tuple[str, str]],
                                  stored: pd.DataFrame, path: Path) -> None:
    """Refuse to change the operator of scans that have rows in other tables.

    DuckDB rewrites a row whose indexed column (the operator's foreign key) changes, which it
    cannot do while other tables refer to the row, even inside the transaction deleting them.
    """
    moved = [scan for scan, field in updates if field == "operator_id"]
    if not moved:
        return
    referenced = store.con.execute(
        "SELECT DISTINCT scan_id FROM (SELECT scan_id FROM events UNION ALL "
        "SELECT scan_id FROM window_probs UNION ALL SELECT scan_id FROM freeze_frames UNION ALL "
        "SELECT scan_id FROM run_scans) WHERE list_contains(?, scan_id) ORDER BY scan_id",
        [moved]).fetchall()
    if referenced:
        operator = stored.set_index("scan_id")["operator_id"]
        raise InputError([Problem(path, None, "operator_id", (
            f"scan {scan!r} already has labels, so its operator ({operator[scan]!r}) cannot be "
            f"changed in this database: build a new database from the corrected manifest and "
            f"import the labels again")) for (scan,) in referenced])


def _new_video_hashes(incoming: pd.DataFrame, updates: list[tuple[str, str]],
                      stored: pd.DataFrame) -> dict[str, tuple[str | None, bool]]:
    """Scans given another video path: scan -> (the new file's SHA-256, None where it does not
    exist yet; whether its content differs from the stored video's).

    The stored video's hash is the one recorded (by `label`, or by an earlier correction), else
    that of the old file if it still exists; where either is unknown, the new video counts as
    other content. A video given to a scan that had none is no change of content.
    """
    import pandas as pd

    old_rows = stored.set_index("scan_id")
    new_paths = incoming.set_index("scan_id")["video_path"]
    videos: dict[str, tuple[str | None, bool]] = {}
    for scan, field in updates:
        if field != "video_path":
            continue
        new_path = Path(new_paths[scan])
        new_sha = file_sha256(new_path) if new_path.is_file() else None
        old_path, old_sha = old_rows.at[scan, "video_path"], old_rows.at[scan, "video_sha256"]
        if pd.isna(old_path):
            videos[scan] = (new_sha, False)
            continue
        if pd.isna(old_sha):
            old_sha = (file_sha256(old_path) if Path(old_path).is_file() else None)
        videos[scan] = (new_sha, old_sha is None or new_sha != old_sha)
    return videos


def _update_rows(store: Store, table: str, key: str, incoming: pd.DataFrame,
                 updates: list[tuple[str, str]]) -> None:
    """Set each (key, field) of `updates` to the incoming value, one field at a time: an
    unchanged indexed column is never rewritten (see `_refuse_moving_labelled_scans`)."""
    fields = sorted({field for _key, field in updates})
    for field in fields:
        keys = [k for k, f in updates if f == field]
        rows = incoming.loc[incoming[key].isin(keys), [key, field]]
        view = f"_update_{table}"
        store.con.register(view, rows)
        try:
            store.con.execute(f"UPDATE {table} SET {field} = u.{field} FROM {view} u "
                              f"WHERE {table}.{key} = u.{key}")
        finally:
            store.con.unregister(view)


def _remove_automatic_results(store: Store,
                              videos: dict[str, tuple[str | None, bool]]) -> dict[str, int]:
    """Record the new videos' hashes, and delete the automatic results of the scans whose video
    changed content. Returns scan -> automatic events removed (scans that had automatic
    results)."""
    removed: dict[str, int] = {}
    for scan, (sha, changed) in videos.items():
        store.con.execute("UPDATE scans SET video_sha256 = ? WHERE scan_id = ?", [sha, scan])
        if not changed:
            continue
        n_events = store.scalar(
            "SELECT count(*) FROM events JOIN runs USING (run_id) "
            "WHERE scan_id = ? AND source = 'auto'", [scan])
        n_runs = store.scalar(
            "SELECT count(*) FROM run_scans JOIN runs USING (run_id) "
            "WHERE scan_id = ? AND source = 'auto'", [scan])
        for table in ("events", "window_probs", "freeze_frames", "run_scans"):
            store.con.execute(
                f"DELETE FROM {table} WHERE scan_id = ? AND run_id IN "
                f"(SELECT run_id FROM runs WHERE source = 'auto')", [scan])
        store.con.execute(
            "UPDATE scans SET n_frames = NULL, duration_s = NULL WHERE scan_id = ?", [scan])
        if n_events or n_runs:
            removed[scan] = int(n_events)
    return removed


# --- labels ---------------------------------------------------------------------------------

def read_labels(path: str | Path, *, scan_fps: dict[str, float | None],
                scan_durations: dict[str, float | None] | None = None) -> pd.DataFrame:
    """Read and validate a label file against the known scans.

    Parameters
    ----------
    path : str or Path
        CSV or Parquet with the columns in the module docstring.
    scan_fps : dict
        Known scan ids mapped to their frame rate (None where unknown); labels for other scans
        are refused, and frame-based labels need the frame rate.
    scan_durations : dict, optional
        Scan id -> length of its video in seconds, where known (from decoding it). An event
        ending after the end is refused naming its line; one ending within a frame after it
        (1/fps, or 1/30 s where the fps is unknown) is cut at the end.

    Returns
    -------
    pandas.DataFrame
        Columns ``scan_id, start_s, end_s, label, confidence``, sorted by scan and start.

    Raises
    ------
    InputError
        Listing every malformed cell, unknown label or scan, empty or negative interval and
        overlap of two events of one scan.
    """
    import pandas as pd

    table = read_table(path, required=("scan_id", LABELS_TIME_COLUMNS, "label"),
                       optional=LABELS_OPTIONAL)
    in_frames = "start_frame" in table.columns
    start_col, end_col = LABELS_TIME_COLUMNS[1] if in_frames else LABELS_TIME_COLUMNS[0]
    unit = "a frame index (integer >= 0)" if in_frames else "a time in seconds"
    problems: list[Problem] = []
    unknown_scans: dict[str, list[int]] = defaultdict(list)
    unknown_labels = False
    rows: list[tuple] = []
    row_index: list[int] = []
    valid_codes = set(taxonomy.codes())
    scan_ids, labels = table.columns["scan_id"], table.columns["label"]
    confidences = table.columns.get("confidence")
    for i in range(len(table)):
        before = len(problems)
        scan_id, label = scan_ids[i], labels[i]
        if not scan_id:
            problems.append(table.problem(i, "scan_id", "expected a value, found an empty cell"))
        elif scan_id not in scan_fps:
            unknown_scans[scan_id].append(i)
        if label not in valid_codes:
            unknown_labels = True
            problems.append(table.problem(i, "label", _unknown_label(label)))
        times = []
        for column in (start_col, end_col):
            value, message = _number(table.columns[column][i], unit, minimum=0)
            if message is None and in_frames and not float(value).is_integer():
                message = f"expected {unit}, got {table.columns[column][i]!r}"
            if message:
                problems.append(table.problem(i, column, message))
            times.append(value)
        confidence = None
        if confidences and confidences[i]:
            confidence, message = _number(confidences[i], "a probability in [0, 1]", minimum=0)
            if message is None and confidence > 1:
                message = f"expected a probability in [0, 1], got {confidences[i]!r}"
            if message:
                problems.append(table.problem(i, "confidence", message))
        if len(problems) > before or scan_id not in scan_fps:
            continue
        start, end = times
        if end <= start:
            problems.append(table.problem(
                i, end_col, f"{end_col} ({end:g}) must be greater than {start_col} ({start:g})"))
            continue
        if in_frames:
            fps = scan_fps[scan_id]
            if fps is None:
                problems.append(table.problem(
                    i, start_col,
                    f"scan {scan_id!r} has no fps in the manifest, so frames cannot be turned "
                    f"into seconds: add its fps to the manifest or give start_s, end_s"))
                continue
            start, end = start / fps, end / fps
        duration = (scan_durations or {}).get(scan_id)
        if duration is not None and end > duration:
            frame_s = 1 / (scan_fps[scan_id] or DEFAULT_FPS)
            if end > duration + frame_s or start >= duration:
                problems.append(table.problem(i, end_col, (
                    f"this event ends at {end:g} s, after the end of scan {scan_id!r} "
                    f"({duration:g} s): check the scan id and the times")))
                continue
            end = duration  # within a frame of the end: rounding, cut at the end
        rows.append((scan_id, start, end, label, confidence))
        row_index.append(i)
    for scan_id, indices in unknown_scans.items():
        where = ", ".join(table.location(i) for i in indices[:5])
        more = f" and {len(indices) - 5} more" if len(indices) > 5 else ""
        problems.append(table.problem(
            None, "scan_id",
            f"scan {scan_id!r} ({where}{more}) is not in the database: ingest a manifest that "
            f"lists it first"))
    if unknown_labels:
        problems.append(table.problem(
            None, "label", f"valid label codes: {', '.join(taxonomy.codes())}"))
    events = pd.DataFrame(rows, columns=["scan_id", "start_s", "end_s", "label", "confidence"])
    events["confidence"] = events["confidence"].astype("float64")
    events["_row"] = row_index
    events = events.sort_values(["scan_id", "start_s", "end_s"], kind="stable")
    problems.extend(_overlaps(events, table, start_col))
    if problems:
        raise InputError(problems)
    return events.drop(columns="_row").reset_index(drop=True)


def _unknown_label(label: str) -> str:
    if not label:
        return "expected a label code, found an empty cell"
    return taxonomy.unknown_label_message(label).split(";")[0]


def _overlaps(events: pd.DataFrame, table: InputTable, start_col: str) -> list[Problem]:
    """A problem for each event that starts before the previous event of its scan ends."""
    previous_end = events.groupby("scan_id", sort=False)["end_s"].shift()
    previous_row = events.groupby("scan_id", sort=False)["_row"].shift()
    clash = events["start_s"] < previous_end
    problems = []
    for row, prev in zip(events.loc[clash, "_row"], previous_row[clash], strict=True):
        problems.append(table.problem(
            row, start_col,
            f"this {table.columns['label'][row]} event of scan {table.columns['scan_id'][row]!r} "
            f"overlaps the {table.columns['label'][int(prev)]} event on "
            f"{table.location(int(prev))}; events of one scan must not overlap",
        ))
    return problems


def ingest_labels(
    store: Store, path: str | Path, *, source: str = "manual", run_name: str | None = None,
    others_as: str | None = None, classes: Sequence[str] | None = None,
) -> LabelsImport:
    """Validate a label file and store its events as one run, in one transaction.

    Parameters
    ----------
    store : Store
        Open read-write.
    path : str or Path
        CSV or Parquet (see the module docstring).
    source : {'manual', 'auto'}
        Whether a person or a program made the labels.
    run_name : str, optional
        Name of the run. An existing run of this source and name has its events replaced by the
        file's. Without a name, a file whose contents were imported before (same source, same
        mapping of labels) is not imported again, and a new file becomes a new run named after
        the file. Every import records when it wrote each scan (table ``run_scans``), so an
        imported or replaced run is the newest run of its scans.
    others_as : str, optional
        Import every label outside `classes` as this taxonomy code (e.g. ``"Bk"``), as a model
        of those classes sees it (`fetal_analytics.events.relabel_others`). Needs `classes`.
    classes : sequence of str, optional
        The model's classes (taxonomy codes, e.g. its output codes); `others_as` must be one.

    Returns
    -------
    LabelsImport

    Raises
    ------
    InputError
        The file is malformed or refers to unknown scans, or `others_as` is not one of
        `classes`; nothing is written.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    if (others_as is None) != (classes is None):
        raise ValueError("`others_as` and `classes` go together: give both or neither")
    path = Path(path)
    params_json = None
    if others_as is not None:
        classes = tuple(classes)
        if others_as not in classes:
            raise InputError([Problem(path, None, None, (
                f"--others-as {others_as} is not one of the model's classes "
                f"({', '.join(classes)}): pick one of them, or check --classes-of"))])
        params_json = json.dumps({"others_as": others_as, "classes": list(classes)})
    stored = store.con.execute("SELECT scan_id, fps, duration_s FROM scans").fetchall()
    scan_fps = {scan: (None if fps is None or math.isnan(fps) else fps)
                for scan, fps, _ in stored}
    events = read_labels(path, scan_fps=scan_fps,
                         scan_durations={scan: duration for scan, _, duration in stored})
    relabelled: dict[str, int] = {}
    if others_as is not None:
        mapped = relabel_others(events, classes, code=others_as)
        events, relabelled = mapped.events, mapped.relabelled
        log.info("%s: %d events of labels outside the classes imported as %s: %s", path,
                 mapped.n_events, others_as, relabelled)
    sha = file_sha256(path)
    n_scans, n_events = events["scan_id"].nunique(), len(events)
    existing = _existing_import(store, source, run_name, sha, params_json, path)

    def outcome(run_id: int, name: str, status: str, removed: tuple[int, int] = (0, 0)
                ) -> LabelsImport:
        return LabelsImport(run_id, name, source, status, n_scans, n_events, others_as,
                            relabelled, *removed)

    if existing is not None and existing[2:] == (sha, params_json):
        run_id, name = existing[:2]
        log.info("%s was imported before as run %d (%s); nothing to do", path, run_id, name)
        return outcome(run_id, name, "unchanged")
    with store.transaction():
        if existing is None:
            name = run_name or _free_run_name(store, source, path.name)
            run_id = store.scalar(
                "INSERT INTO runs (name, source, kind, params_json, input_path, input_sha256, "
                "status, finished_at) VALUES (?, ?, 'import', ?, ?, ?, 'finished', "
                "current_timestamp) RETURNING run_id",
                [name, source, params_json, str(path.resolve()), sha],
            )
            status = "created"
        else:
            run_id, name = existing[:2]
            removed = store.con.execute(
                "SELECT count(DISTINCT scan_id), count(*) FROM events WHERE run_id = ?",
                [run_id]).fetchone()
            for table in ("events", "run_scans"):
                store.con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
            store.con.execute(
                "UPDATE runs SET params_json = ?, input_path = ?, input_sha256 = ?, "
                "finished_at = current_timestamp WHERE run_id = ?",
                [params_json, str(path.resolve()), sha, run_id])
            status = "replaced"
        store.insert_frame("events", events.assign(run_id=run_id))
        # The run's scans were written now: it becomes their newest run of this source.
        store.con.execute(
            "INSERT INTO run_scans (run_id, scan_id, written_at) "
            "SELECT DISTINCT run_id, scan_id, current_timestamp FROM events WHERE run_id = ?",
            [run_id])
    log.info("imported %d events of %d scans from %s as run %d (%s)", n_events, n_scans, path,
             run_id, status)
    return outcome(run_id, name, status, removed if status == "replaced" else (0, 0))


def _existing_import(store: Store, source: str, run_name: str | None, sha: str,
                     params_json: str | None,
                     path: Path) -> tuple[int, str, str, str | None] | None:
    """The run this import updates: the named run, or else an import of identical contents and
    mapping. Returns (run_id, name, input_sha256, params_json)."""
    if run_name is None:
        return store.con.execute(
            "SELECT run_id, name, input_sha256, params_json FROM runs WHERE source = ? "
            "AND kind = 'import' AND input_sha256 = ? AND params_json IS NOT DISTINCT FROM ? "
            "ORDER BY run_id LIMIT 1", [source, sha, params_json]).fetchone()
    row = store.con.execute(
        "SELECT run_id, name, input_sha256, params_json, kind FROM runs "
        "WHERE source = ? AND name = ?", [source, run_name]).fetchone()
    if row is None:
        return None
    if row[4] != "import":
        raise InputError([Problem(path, None, None, (
            f"run name {run_name!r} belongs to an automatic labelling run ({row[0]}); "
            f"choose another --run-name"))])
    return row[:4]


def _free_run_name(store: Store, source: str, base: str) -> str:
    taken = {name for (name,) in store.con.execute(
        "SELECT name FROM runs WHERE source = ?", [source]).fetchall()}
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base} ({n})"
    return name
