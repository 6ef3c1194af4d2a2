"""Plotly figures shared by the reports, the timeline export and the dashboard.

No builder computes a statistic: they place the numbers the library returned (means, CIs,
percentiles, fitted lines) on axes. Colours of categories come from the taxonomy; minutes are
the unit of every time axis. Every builder returns a `plotly.graph_objects.Figure`. Figures
meant for print (`for_print=True`) carry the category codes as text inside the bars and draw
reference ranges in grey with dark marks, so a page printed in grey still reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import plotly.graph_objects as go

from fetal_analytics import taxonomy

if TYPE_CHECKING:
    import pandas as pd

HEIGHT = 380
"""Height of most figures, pixels."""

OPERATOR_COLOUR = "#1f3b73"
"""The operator's marks in the report: a dark blue that stays dark in grey."""

REFERENCE_COLOUR = "#bbbbbb"
"""Reference ranges in the report: a light grey."""


def colour(code: str) -> str:
    """The taxonomy colour of a label (grey for a code outside the taxonomy)."""
    try:
        return taxonomy.get(code).colour
    except LookupError:
        return "#999999"


def name(code: str) -> str:
    """``"HeD - heart"``: code and name of a label (the code alone outside the taxonomy)."""
    try:
        return f"{code} - {taxonomy.get(code).name}"
    except LookupError:
        return code


def layout(fig: go.Figure, title: str, *, height: int = HEIGHT, **kwargs) -> go.Figure:
    """The shared layout: title, height (pixels), margins and the white template."""
    kwargs.setdefault("margin", {"l": 60, "r": 20, "t": 50, "b": 50})
    fig.update_layout(title=title, height=height, template="plotly_white", **kwargs)
    return fig


def timeline(events: pd.DataFrame, freezes: pd.DataFrame | None, rows: list[str], *,
             title: str = "Categories over the scan", for_print: bool = False) -> go.Figure:
    """The paper's figure 1: one row per run (``rows``, top first), each event a bar from its
    start to its end in minutes, coloured by category; freezes as marks above.

    Parameters
    ----------
    events : pandas.DataFrame
        ``row, start_s, end_s, label`` (seconds).
    freezes : pandas.DataFrame or None
        ``t_s`` (seconds) of the freezes, drawn on a row of their own.
    rows : list of str
        The rows, top first.
    title : str, optional
    for_print : bool, optional
        Write each bar's code inside it (where it fits), for pages printed in grey.
    """
    fig = go.Figure()
    for code in dict.fromkeys(events["label"]):
        part = events[events["label"] == code]
        text = {"text": [code] * len(part), "textposition": "inside",
                "insidetextanchor": "middle", "textfont": {"size": 9},
                "textangle": 0} if for_print else {}
        fig.add_trace(go.Bar(
            base=part["start_s"] / 60, x=(part["end_s"] - part["start_s"]) / 60,
            y=part["row"], orientation="h", name=name(code), marker_color=colour(code),
            marker_line={"width": 0.5, "color": "white"} if for_print else None,
            customdata=part[["start_s", "end_s"]].to_numpy() / 60,
            hovertemplate=(f"{code}: %{{customdata[0]:.2f}}-%{{customdata[1]:.2f}} min"
                           "<extra>%{y}</extra>"), **text))
    if freezes is not None and len(freezes):
        fig.add_trace(go.Scatter(x=freezes["t_s"] / 60, y=["freezes"] * len(freezes),
                                 mode="markers", name="freeze",
                                 marker={"symbol": "line-ns-open", "size": 14,
                                         "color": "black"},
                                 hovertemplate="freeze at %{x:.2f} min<extra></extra>"))
        rows = ["freezes", *rows]
    fig.update_yaxes(categoryorder="array", categoryarray=list(reversed(rows)))
    if for_print:  # the legend below the rows, two names a line
        legend_lines = -(-events["label"].nunique() // 2) + 1
        plot_height = 34 * len(rows)
        bottom = 70 + 17 * legend_lines
        fig.update_layout(uniformtext={"minsize": 7, "mode": "hide"})
        fig.update_xaxes(title_standoff=4)
        return layout(fig, title, barmode="overlay", xaxis_title="minutes",
                      height=50 + plot_height + bottom, legend_title="",
                      legend={"orientation": "h", "y": -62 / plot_height, "yanchor": "top",
                              "x": 0, "font": {"size": 10}, "entrywidth": 0.5,
                              "entrywidthmode": "fraction"},
                      margin={"l": 120, "r": 20, "t": 50, "b": bottom})
    return layout(fig, title, barmode="overlay", xaxis_title="minutes",
                  height=140 + 60 * len(rows), legend_title="category")


# --- the operator report -------------------------------------------------------------------------

def percentile_chart(profile: pd.DataFrame, reference: str, *, high: float, low: float
                     ) -> go.Figure:
    """Each feature's percentile among the reference operators' means (0-100%), with the
    thresholds of the findings shaded.

    Parameters
    ----------
    profile : pandas.DataFrame
        ``label, percentile`` (in [0, 1]; NaN rows are left out), as `OperatorReport.profile`.
    reference : str
    high, low : float
        The thresholds (fractions) shaded as "stands out".
    """
    table = profile.dropna(subset=["percentile"])
    fig = go.Figure(go.Scatter(
        x=table["percentile"] * 100, y=table["label"], mode="markers+text",
        text=[f"{p:.0%}" for p in table["percentile"]],
        textposition=["middle left" if p > 0.8 else "middle right" for p in table["percentile"]],
        marker={"size": 11, "color": OPERATOR_COLOUR, "symbol": "diamond"},
        hovertemplate="%{y}: percentile %{x:.0f}<extra></extra>", showlegend=False))
    for x0, x1 in ((0, low * 100), (high * 100, 100)):
        fig.add_vrect(x0=x0, x1=x1, fillcolor="#999999", opacity=0.18, line_width=0)
    fig.add_vline(x=50, line={"dash": "dot", "color": "#666666", "width": 1})
    fig.update_xaxes(range=[-2, 112], tickvals=[0, 10, 25, 50, 75, 90, 100],
                     title=f"percentile among the {reference} operators")
    fig.update_yaxes(autorange="reversed", categoryorder="array",
                     categoryarray=list(table["label"]))
    return layout(fig, "Where the operator's mean lies among the reference operators",
                  height=110 + 30 * max(len(table), 1), margin={"l": 360, "r": 20, "t": 40,
                                                                  "b": 60})


def category_chart(categories: pd.DataFrame, operator: str, reference: str) -> go.Figure:
    """Minutes per scan on each category, one row each: the operator's mean with its 95% CI
    (dark diamonds and whiskers) over the range of the reference operators' means (grey bars,
    their mean a dark tick)."""
    table = categories
    rows = [f"{c} - {n}" for c, n in zip(table["label"], table["name"], strict=True)]
    fig = go.Figure()
    fig.add_trace(go.Bar(
        y=rows, base=table["reference_min_min"],
        x=table["reference_max_min"] - table["reference_min_min"], orientation="h",
        marker={"color": REFERENCE_COLOUR, "line": {"color": "#777777", "width": 0.5}},
        name=f"{reference} operators: range of their means", width=0.6))
    fig.add_trace(go.Scatter(
        y=rows, x=table["reference_mean_min"], mode="markers",
        marker={"symbol": "line-ns-open", "size": 14, "color": "#444444",
                "line": {"width": 2}},
        name=f"{reference} operators: mean"))
    fig.add_trace(go.Scatter(
        y=rows, x=table["mean_min"], mode="markers", name=f"{operator}: mean, 95% CI",
        marker={"symbol": "diamond", "size": 9, "color": OPERATOR_COLOUR},
        error_x={"type": "data", "symmetric": False, "color": OPERATOR_COLOUR,
                 "array": (table["ci_high_min"] - table["mean_min"]).to_numpy(),
                 "arrayminus": (table["mean_min"] - table["ci_low_min"]).to_numpy()}))
    fig.update_yaxes(autorange="reversed", categoryorder="array", categoryarray=rows)
    return layout(fig, "Minutes per scan on each category", xaxis_title="minutes per scan",
                  height=130 + 21 * max(len(rows), 1),
                  legend={"orientation": "h", "y": -0.6 / max(len(rows), 4) * 4 - 0.02,
                          "x": 0},
                  margin={"l": 230, "r": 20, "t": 40, "b": 90})


def trend_chart(points: pd.DataFrame, trends: pd.DataFrame) -> go.Figure:
    """Scan duration and FASP coverage against scan date, one panel each, with the line the
    library fitted (from ``line_start_*`` to ``line_end_*`` of `OperatorReport.trends`)."""
    from plotly.subplots import make_subplots

    features = list(trends["feature"])
    fig = make_subplots(rows=1, cols=max(len(features), 1),
                        subplot_titles=[t for t in trends["label"]], horizontal_spacing=0.12)
    for i, row in enumerate(trends.itertuples(), 1):
        part = points[points["feature"] == row.feature].sort_values("days")
        fig.add_trace(go.Scatter(x=part["acquired_at"], y=part["value"], mode="markers",
                                 marker={"size": 9, "color": OPERATOR_COLOUR},
                                 name="scan", showlegend=i == 1, text=part["scan_id"],
                                 hovertemplate="%{text}: %{y:.3g}<extra></extra>"),
                      row=1, col=i)
        if row.line_start_value == row.line_start_value:
            fig.add_trace(go.Scatter(x=[row.line_start_at, row.line_end_at],
                                     y=[row.line_start_value, row.line_end_value], mode="lines",
                                     line={"color": "#444444", "dash": "dash"},
                                     name="fitted line", showlegend=i == 1), row=1, col=i)
        if row.feature in ("fasp_coverage", "bk_share"):  # shares: the whole scale
            fig.update_yaxes(range=[0, 1.05], tickformat=".0%", row=1, col=i)
    fig.update_annotations(font_size=11)
    return layout(fig, "", height=300, margin={"l": 50, "r": 20, "t": 40, "b": 40},
                  legend={"orientation": "h", "y": -0.2})
