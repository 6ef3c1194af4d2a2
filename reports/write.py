"""Write operator reports and timeline exports to files: what the CLI and the dashboard call.

`write_reports` reads the cohort once (`analytics.report.report_inputs`), makes each operator's
`OperatorReport` and writes ``DIR/<operator>.html``, ``.pdf`` and ``.json`` (the formats asked
for), and with `index` ``DIR/index.html`` linking them. `write_timeline` writes one scan's
timeline as HTML, PNG or SVG.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fetal_analytics.checks import check_choice
from fetal_analytics.errors import UserError
from fetal_analytics.results import Result

if TYPE_CHECKING:
    from analytics.report import OperatorReport
    from analytics.selection import EventSelection
    from fetal_analytics.store import Store

__all__ = ["REPORT_FORMATS", "TIMELINE_SUFFIXES", "WrittenReports", "parse_formats",
           "write_reports", "write_timeline"]

log = logging.getLogger(__name__)

REPORT_FORMATS = ("html", "pdf", "json")
"""The report formats, in the order they are written."""

TIMELINE_SUFFIXES = (".html", ".png", ".svg")
"""The files `write_timeline` writes, by suffix."""


class OutputError(UserError, ValueError):
    """An output path or format that cannot be written."""


def parse_formats(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"html,pdf"`` -> ``("html", "pdf")``, checked against `REPORT_FORMATS`, in that order.

    Raises
    ------
    OutputError
        An unknown or empty format list.
    """
    parts = [p.strip().lower() for p in (text.split(",") if isinstance(text, str) else text)]
    parts = [p for p in parts if p]
    if not parts:
        raise OutputError(f"give at least one format of {', '.join(REPORT_FORMATS)}")
    for part in parts:
        check_choice("format", part, REPORT_FORMATS, error=OutputError)
    return tuple(f for f in REPORT_FORMATS if f in parts)


@dataclass(frozen=True)
class WrittenReports(Result):
    """What `write_reports` wrote.

    Attributes
    ----------
    out : str
        The folder.
    files : list of str
        Every file written (paths), reports in operator order, the index last.
    operators : list of str
    index : str
        The index page ("" without one).
    """

    out: str
    files: list[str]
    operators: list[str]
    index: str = ""


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file; give a folder for the reports")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot make the folder {out}: {exc.strerror or exc}") from exc


def write_reports(store: Store, selection: EventSelection, operators: Sequence[str] | None,
                  out: Path, *, formats: Sequence[str] = REPORT_FORMATS,
                  reference: str = "expert", require_reference: bool = False,
                  index: bool | None = None,
                  progress: Callable[[str, int, int], None] | None = None) -> WrittenReports:
    """Write each operator's report in each format.

    Parameters
    ----------
    store : Store
    selection : EventSelection
    operators : sequence of str or None
        Pseudonymous operator ids; None: every operator of the database
        (`analytics.report.report_operators`).
    out : pathlib.Path
        The folder (made if missing).
    formats : sequence of {'html', 'pdf', 'json'}, optional
    reference : str, optional
        The reference group.
    require_reference : bool, optional
        A reference group without operators is an error (see `report_inputs`).
    index : bool, optional
        Write ``index.html`` linking the reports (default: when `operators` is None).
    progress : callable, optional
        Called as ``progress(operator, done, total)`` after each operator.

    Raises
    ------
    UnknownOperatorError
        An operator with no scan in the database: nothing is written.
    UnknownGroupError
        With `require_reference`, a reference group without operators.
    BrowserMissingError
        PDF asked for and no Chromium.
    """
    from analytics.report import (
        check_operators,
        operator_report,
        report_inputs,
        report_operators,
    )
    from reports.html import index_html, report_html, report_json, with_plotly

    formats = parse_formats(formats)
    out = Path(out)
    inputs = report_inputs(store, selection, reference=reference,
                           require_reference=require_reference)
    every = operators is None
    chosen = report_operators(inputs) if every else list(dict.fromkeys(operators))
    check_operators(inputs, chosen)  # before a file is written
    _check_out(out)
    written: list[str] = []
    rows: list[dict] = []
    with ExitStack() as stack:
        browser = None
        if "pdf" in formats:
            from reports.pdf import Chromium

            browser = stack.enter_context(Chromium())
        for i, op in enumerate(chosen):
            report: OperatorReport = operator_report(store, selection, op, inputs=inputs)
            files = []
            page = (report_html(report, inline_plotly=False)
                    if {"html", "pdf"} & set(formats) else "")
            for fmt in formats:
                path = out / f"{op}.{fmt}"
                if fmt == "html":
                    path.write_text(with_plotly(page), encoding="utf-8")
                elif fmt == "json":
                    path.write_text(report_json(report), encoding="utf-8")
                else:
                    browser.pdf(page, path, stamp=report.as_of)
                files.append(path.name)
                written.append(str(path))
            log.info("report of %s: %s", op, ", ".join(files))
            rows.append({"operator": op, "group": report.group, "n_scans": report.n_scans,
                         "first_scan": report.first_scan, "last_scan": report.last_scan,
                         "files": files, "summary": (report.findings["text"].iloc[0]
                                                     if len(report.findings) else "")})
            if progress is not None:
                progress(op, i + 1, len(chosen))
    index_path = ""
    if index if index is not None else every:
        path = out / "index.html"
        path.write_text(index_html(rows), encoding="utf-8")
        written.append(str(path))
        index_path = str(path)
    return WrittenReports(out=str(out), files=written, operators=list(chosen),
                          index=index_path)


def write_timeline(store: Store, scan_id: str, runs: Sequence[str | int] | None, out: Path
                   ) -> Path:
    """Write one scan's timeline, a row per run, as ``.html``, ``.png`` or ``.svg`` (by the
    suffix of `out`).

    Parameters
    ----------
    store : Store
    scan_id : str
    runs : sequence of run ids or names, or None
        None: the newest finished manual and automatic runs of the scan.
    out : pathlib.Path

    Raises
    ------
    OutputError
        Another suffix, or a folder that does not exist.
    UnknownScanError, UnknownRunError
    """
    from fetal_analytics.queries import scan_timeline
    from reports import figures

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in TIMELINE_SUFFIXES:
        raise OutputError(f"--out must end in {', '.join(TIMELINE_SUFFIXES)}, got {out.name!r}")
    if out.is_dir():
        raise OutputError(f"--out {out} is a folder; give a file name")
    if not out.parent.is_dir():
        raise OutputError(f"the folder {out.parent} does not exist")
    timeline = scan_timeline(store, scan_id, list(runs) if runs else None)
    fig = figures.timeline(timeline.events, timeline.freezes, timeline.rows,
                           title=f"Scan {scan_id}: categories over the scan", for_print=True)
    fig.update_layout(width=1000)
    if suffix == ".html":
        from reports.html import CONFIG

        out.write_text(fig.to_html(include_plotlyjs=True, full_html=True, div_id="timeline",
                                   config={**CONFIG, "staticPlot": False}), encoding="utf-8")
        return out
    from reports.pdf import Chromium

    with Chromium() as browser:
        browser.image(fig, out, fmt=suffix[1:])
    return out
