"""An operator report as one self-contained HTML page, and the index of many.

The page is laid out from `OperatorReport.to_dict()` (the numbers of the JSON file, formatted
only) by the Jinja template ``templates/report.html.j2``, with plotly.js inline and the figures
of `reports.figures` drawn as static plots: it opens offline and requests nothing from any
network address. The same page, printed by Chromium, is the PDF (`reports.pdf`), so its CSS
holds the A4 page, the page numbers and the print colours.

Nothing here varies between two runs on the same database: figure ids are numbered, no time of
writing is stamped, and JSON keys keep their order.
"""

from __future__ import annotations

import json
import math
from functools import cache
from html import escape
from typing import TYPE_CHECKING, Any

from fetal_analytics import __version__

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from analytics.report import OperatorReport

__all__ = ["figure_div", "index_html", "plotly_js", "report_figures", "report_html",
           "report_json", "with_plotly"]

CONFIG = {"staticPlot": True, "displaylogo": False, "responsive": False}
"""Plotly's configuration of the report figures: static (no hover), fixed size."""

WIDTH = 660
"""Width of the report figures, pixels (fits the A4 text width)."""


@cache
def plotly_js() -> str:
    """The plotly.js bundle shipped with the plotly package, to inline."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


@cache
def _template():
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("reports", "templates"),
                      autoescape=select_autoescape(["html", "j2"]), keep_trailing_newline=True)
    return env.get_template("report.html.j2")


def _nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def _fixed(value: Any, digits: int = 2) -> str:
    return "&ndash;" if _nan(value) else f"{value:.{digits}f}"


def _pct(value: Any) -> str:
    return "&ndash;" if _nan(value) else f"{value:.0%}"


def _num(value: Any, feature: str) -> str:
    if feature in ("fasp_coverage", "bk_share"):
        return _pct(value)
    return _fixed(value, 1 if feature.endswith("_min") or feature.startswith("n_") else 2)


def _ci(low: Any, high: Any, digits: int = 2) -> str:
    return "&ndash;" if _nan(low) or _nan(high) else f"{low:.{digits}f} to {high:.{digits}f}"


def _pci(low: Any, high: Any) -> str:
    return "&ndash;" if _nan(low) or _nan(high) else f"{low:.0%} to {high:.0%}"


def _rng(low: Any, high: Any, feature: str) -> str:
    if _nan(low) or _nan(high):
        return "&ndash;"
    return f"{_num(low, feature)} to {_num(high, feature)}"


def _pval(value: Any) -> str:
    from fetal_analytics.results import format_p

    return "&ndash;" if _nan(value) else format_p(value, ".2g")


def report_figures(report: OperatorReport) -> dict[str, go.Figure]:
    """The report's figures, from its numbers: ``percentiles`` (where any percentile exists),
    ``categories``, ``trends`` (where dated scans exist) and ``timelines`` (where labelled)."""
    from reports import figures

    built: dict[str, go.Figure] = {}
    if report.profile["percentile"].notna().any():
        built["percentiles"] = figures.percentile_chart(
            report.profile, report.reference, high=report.thresholds["high_percentile"],
            low=report.thresholds["low_percentile"])
    if report.n_scans:
        built["categories"] = figures.category_chart(report.categories, report.operator,
                                                     report.reference)
    if len(report.trend_points):
        built["trends"] = figures.trend_chart(report.trend_points, report.trends)
    if report.timeline_rows:
        built["timelines"] = figures.timeline(
            report.timelines, None, report.timeline_rows, for_print=True,
            title=f"Timelines of {report.operator}'s scans (minutes from the first label)")
    for fig in built.values():
        fig.update_layout(width=WIDTH, font={"family": "DejaVu Sans, Arial, sans-serif",
                                             "color": "#111111"})
    return built


def figure_div(fig: go.Figure, div_id: str) -> tuple[str, str]:
    """(the ``<div>`` of a figure, the script that draws it), with a fixed id so the page is
    the same every time."""
    from plotly.io import to_json

    height = int(fig.layout.height or 380)
    div = f'<div id="{div_id}" style="width:{WIDTH}px;height:{height}px"></div>'
    script = (f"figures.push(Plotly.newPlot({json.dumps(div_id)}, "
              f"{to_json(fig, validate=False)}, {json.dumps(CONFIG)}));")
    return div, script


def _page(report_dict: dict, figures: dict[str, go.Figure], *, inline_plotly: bool = True
          ) -> str:
    divs, scripts = {}, []
    for i, (key, fig) in enumerate(figures.items(), 1):
        divs[key], script = figure_div(fig, f"figure-{i}")
        scripts.append(script)
    script = ("<script>\nvar figures = [];\n" + "\n".join(scripts)
              + "\nPromise.all(figures).then(function () { window.figuresDone = true; });\n"
              "</script>")
    from markupsafe import Markup

    return _template().render(
        r=report_dict, version=__version__, plotly_js=Markup(plotly_js() if inline_plotly else ""),
        figures={k: Markup(v) for k, v in divs.items()}, figure_scripts=Markup(script),
        fixed=lambda v, d=2: Markup(_fixed(v, d)), pct=lambda v: Markup(_pct(v)),
        pct1=lambda v: Markup("&ndash;" if _nan(v) else f"{v:.1%}"),
        num=lambda v, f: Markup(_num(v, f)), ci=lambda a, b, d=2: Markup(_ci(a, b, d)),
        pci=lambda a, b: Markup(_pci(a, b)), rng=lambda a, b, f: Markup(_rng(a, b, f)),
        pval=lambda v: Markup(_pval(v)))


def report_html(report: OperatorReport, *, inline_plotly: bool = True) -> str:
    """The report as one self-contained HTML page (A4 when printed).

    Parameters
    ----------
    report : OperatorReport
    inline_plotly : bool, optional
        Inline plotly.js (the file users open). Off only for `reports.pdf.Chromium`, whose
        window holds plotly.js already: the page is otherwise the same.
    """
    return _page(report.to_dict(), report_figures(report), inline_plotly=inline_plotly)


_PLOTLY_SLOT = "<script data-plotly></script>"


def with_plotly(html: str) -> str:
    """A page made with ``inline_plotly=False`` with plotly.js inlined: the same bytes as
    ``report_html(report)``, without laying the page out twice."""
    return html.replace(_PLOTLY_SLOT, f"<script data-plotly>{plotly_js()}</script>", 1)


def report_json(report: OperatorReport) -> str:
    """Every number of the report as JSON (``format``, ``fetal_analytics_version``, then
    `OperatorReport.to_dict()`; NaN as null)."""
    record = {"format": "fetal-analytics operator report 1",
              "fetal_analytics_version": __version__, **report.to_dict()}
    return json.dumps(record, indent=2, ensure_ascii=False) + "\n"


def index_html(rows: list[dict], *, title: str = "Operator workflow reports") -> str:
    """The index page of `--all`: one row per operator with links to its files.

    Parameters
    ----------
    rows : list of dict
        ``operator, group, n_scans, first_scan, last_scan, files`` (file names, e.g.
        ``["OP01.html", "OP01.pdf"]``), ``summary`` (the first finding).
    """
    body = []
    for row in rows:
        links = " ".join(f'<a href="{escape(f)}">{escape(f.rsplit(".", 1)[1].upper())}</a>'
                         for f in row["files"])
        period = f"{row['first_scan']} to {row['last_scan']}" if row["first_scan"] else ""
        body.append(f"<tr><td>{escape(row['operator'])}</td><td>{escape(row['group'])}</td>"
                    f"<td class=r>{row['n_scans']}</td><td>{escape(period)}</td>"
                    f"<td>{links}</td><td>{escape(row['summary'])}</td></tr>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>body {{ font-family: "DejaVu Sans", Arial, sans-serif; font-size: 10pt; margin: 2em; }}
table {{ border-collapse: collapse; }} th, td {{ border: 1px solid #999; padding: 3px 6px;
vertical-align: top; text-align: left; }} th {{ background: #e4e4e4; }} .r {{ text-align: right; }}
</style></head><body>
<h1>{escape(title)}</h1>
<p>One report per operator (pseudonymous ids), made by fetal-analytics {__version__}.</p>
<table><tr><th>operator</th><th>group</th><th>scans</th><th>period</th><th>files</th>
<th>first finding</th></tr>
{chr(10).join(body)}
</table></body></html>
"""
