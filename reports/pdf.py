"""PDF and static images through Chromium: the report's own HTML page, printed.

Chromium (Debian's ``chromium``, driven by Playwright) runs the page's plotly.js and prints it
with the page's print CSS (A4, page numbers in the margin boxes): the PDF is the HTML's content,
its figures vector graphics. One browser serves every report of a batch (`Chromium`), so a
report costs about a second. The PDF's creation and modification dates are set to the data's
date (`OperatorReport.as_of`), not the time of printing, so the same database gives the same
bytes.

Timelines are exported the same way: `Plotly.toImage` in the page gives the SVG, or a PNG at
twice the figure's pixel size (192 dpi at the figure's 96 dpi layout).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
from typing import TYPE_CHECKING

from fetal_analytics.errors import UserError

if TYPE_CHECKING:
    from pathlib import Path

    import plotly.graph_objects as go

__all__ = [
    "A4_VIEWPORT",
    "CHROMIUM_ENV",
    "BrowserMissingError",
    "Chromium",
    "find_chromium",
    "stamp_pdf_dates",
]

CHROMIUM_ENV = "FETAL_ANALYTICS_CHROMIUM"
"""Environment variable naming the Chromium executable (default: ``chromium`` on the PATH)."""

A4_VIEWPORT = {"width": 794, "height": 1123}
"""The browser window while printing: an A4 page at 96 px per inch."""

PNG_SCALE = 2
"""PNG exports at twice the figure's pixel size (192 dpi for a 96 dpi layout)."""

TIMEOUT_MS = 60_000
"""How long a page may take to draw its figures."""


class BrowserMissingError(UserError, FileNotFoundError):
    """No Chromium to print with."""


def find_chromium() -> str:
    """The Chromium executable: `CHROMIUM_ENV`, else ``chromium`` (or ``chromium-browser``,
    ``google-chrome``) on the PATH.

    Raises
    ------
    BrowserMissingError
        None found, with how to install it.
    """
    named = os.environ.get(CHROMIUM_ENV)
    if named:
        if shutil.which(named) is None and not os.path.isfile(named):
            raise BrowserMissingError(f"{CHROMIUM_ENV}={named} is not an executable")
        return named
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise BrowserMissingError(
        "PDF and image output need Chromium: install Debian's chromium (scripts/system-deps.sh "
        f"does) or set {CHROMIUM_ENV}=PATH; or choose --format html,json / an .html file")


def stamp_pdf_dates(pdf: bytes, stamp: str) -> bytes:
    """`pdf` with its ``/CreationDate`` and ``/ModDate`` set to `stamp` (ISO
    ``YYYY-MM-DDTHH:MM:SS``, UTC; empty: 2000-01-01). The dates keep their length, so the
    file's cross-reference offsets stay right."""
    digits = re.sub(r"\D", "", stamp)[:14].ljust(14, "0") if stamp else "20000101000000"

    def fix(match: re.Match) -> bytes:
        return match.group(1) + digits.encode() + b"+00'00')"

    return re.sub(rb"(/(?:CreationDate|ModDate) \(D:)\d{14}[^)]*\)", fix, pdf)


_SWAP_JS = """html => {
    window.figuresDone = false;
    const doc = new DOMParser().parseFromString(html, "text/html");
    document.querySelectorAll("[data-report]").forEach(e => e.remove());
    doc.head.querySelectorAll("style, title").forEach(e => {
        const copy = document.importNode(e, true);
        copy.setAttribute("data-report", "");
        document.head.appendChild(copy);
    });
    document.title = doc.title;
    const scripts = [...doc.body.querySelectorAll("script")].map(s => s.textContent);
    doc.body.querySelectorAll("script").forEach(s => s.remove());
    document.body.innerHTML = doc.body.innerHTML;
    for (const text of scripts) {
        const script = document.createElement("script");
        script.textContent = text;
        document.body.appendChild(script);
    }
}"""


class Chromium:
    """One headless Chromium for many pages; a context manager.

    Examples
    --------
    >>> with Chromium() as browser:                                     # doctest: +SKIP
    ...     browser.pdf(html, "OP01.pdf", stamp="2024-01-17T15:00:00")
    """

    def __init__(self, executable: str | None = None):
        self.executable = executable or find_chromium()
        self._playwright = self._browser = self._page = None

    def __enter__(self) -> Chromium:
        from playwright.sync_api import Error, sync_playwright

        self._playwright = sync_playwright().start()
        try:
            self._browser = self._playwright.chromium.launch(
                executable_path=self.executable, args=["--no-sandbox", "--disable-gpu"])
        except Error as exc:
            self._playwright.stop()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise BrowserMissingError(f"Chromium ({self.executable}) did not start: "
                                      f"{first}") from exc
        self._page = self._browser.new_page(viewport=A4_VIEWPORT)
        self._page.set_default_timeout(TIMEOUT_MS)
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self._browser is not None:
                self._browser.close()
        finally:
            if self._playwright is not None:
                self._playwright.stop()

    def _load(self, html: str) -> None:
        self._page.set_content(html, wait_until="load")
        self._page.wait_for_function("window.figuresDone === true")
        self._shell = False

    def _swap(self, html: str) -> None:
        """Show a page written without plotly.js (``inline_plotly=False``) in a window that
        loaded plotly.js once: its head's styles and title and its body replace the previous
        page's, and its scripts run. Parsing plotly.js (about 1 s) is paid once per batch."""
        from reports.html import plotly_js

        if not getattr(self, "_shell", False):
            self._page.set_content(f"<!DOCTYPE html><html><head><meta charset='utf-8'>"
                                   f"<script>{plotly_js()}</script></head><body></body></html>",
                                   wait_until="load")
            self._shell = True
        self._page.evaluate(_SWAP_JS, html)
        self._page.wait_for_function("window.figuresDone === true")

    def pdf(self, html: str, out: Path, *, stamp: str = "") -> None:
        """Print a report page (one that sets ``window.figuresDone`` once its figures are
        drawn) to an A4 PDF at `out`, dated `stamp` (see `stamp_pdf_dates`). A page without
        plotly.js inline is shown in the batch's window that holds it (see `_swap`)."""
        from reports.html import plotly_js

        if plotly_js()[:200] in html:
            self._load(html)
        else:
            self._swap(html)
        data = self._page.pdf(prefer_css_page_size=True, print_background=True,
                              display_header_footer=False, outline=True, tagged=True)
        out.write_bytes(stamp_pdf_dates(data, stamp))

    def image(self, fig: go.Figure, out: Path, *, fmt: str) -> None:
        """Write a figure as ``svg`` or ``png`` (at `PNG_SCALE`) to `out`."""
        from reports.html import figure_div, plotly_js

        div, script = figure_div(fig, "figure-1")
        self._load(f"<!DOCTYPE html><html><head><meta charset='utf-8'><script>{plotly_js()}"
                   f"</script></head><body>{div}<script>var figures = [];{script}"
                   f"Promise.all(figures).then(function () {{ window.figuresDone = true; }});"
                   f"</script></body></html>")
        url = self._page.evaluate(
            "([fmt, scale]) => Plotly.toImage(document.getElementById('figure-1'), "
            "{format: fmt, scale: scale})", [fmt, PNG_SCALE if fmt == "png" else 1])
        header, _, payload = url.partition(",")
        if ";base64" in header:
            out.write_bytes(base64.b64decode(payload))
        else:
            from urllib.parse import unquote

            out.write_text(unquote(payload), encoding="utf-8")
