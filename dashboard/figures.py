"""Plotly figures of the dashboard: each builder takes a library result and draws it.

No builder computes a statistic: they place the numbers the library returned (means, CIs,
shares, probabilities) on axes. Colours of categories come from the taxonomy; minutes are the
unit of every time axis. Every builder returns a `plotly.graph_objects.Figure`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import plotly.graph_objects as go

from reports.figures import colour, name, timeline

__all__ = ["GROUP_COLOURS", "HEIGHT", "colour", "name", "timeline"]  # and the builders below

if TYPE_CHECKING:
    import pandas as pd

    from analytics.operators import OperatorProfile
    from fetal_analytics.queries import WindowProbabilities

GROUP_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")
"""Colours of the groups, in the order the groups are listed."""

HEIGHT = 380
"""Height of most figures, pixels."""


def _layout(fig: go.Figure, title: str, *, height: int = HEIGHT, **kwargs) -> go.Figure:
    fig.update_layout(title=title, height=height, margin={"l": 60, "r": 20, "t": 50, "b": 50},
                      template="plotly_white", **kwargs)
    return fig


# --- cohort --------------------------------------------------------------------------------------

def scan_durations(features: pd.DataFrame, groups: list[str]) -> go.Figure:
    """Box plot with points of each scan's labelled span (``span_min``), per group."""
    fig = go.Figure()
    for i, group in enumerate(groups):
        part = features[features["group"] == group]
        fig.add_trace(go.Box(y=part["span_min"], x=[group] * len(part), name=group,
                             boxpoints="all", jitter=0.4, pointpos=0, text=part["scan_id"],
                             marker_color=GROUP_COLOURS[i % len(GROUP_COLOURS)]))
    return _layout(fig, "Scan duration (first to last labelled second)",
                   yaxis_title="minutes", showlegend=False)


def coverage_heatmap(coverage: pd.DataFrame) -> go.Figure:
    """Operators (rows, grouped) x FASP-required structures: share of scans that saw it."""
    operators = list(dict.fromkeys(coverage["operator_id"]))
    labels = list(dict.fromkeys(coverage["label"]))
    table = coverage.pivot(index="operator_id", columns="label", values="share_seen")
    table = table.loc[operators, labels]
    group_of = dict(zip(coverage["operator_id"], coverage["group"], strict=False))
    rows = [f"{op} ({group_of[op]})" for op in operators]
    fig = go.Figure(go.Heatmap(z=table.to_numpy(), x=labels, y=rows, zmin=0, zmax=1,
                               colorscale="Blues", colorbar={"title": "share"},
                               texttemplate="%{z:.0%}", hovertemplate=(
                                   "%{y}<br>%{x}: %{z:.0%} of scans<extra></extra>")))
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, "FASP-required structures seen, share of each operator's scans",
                   height=max(HEIGHT, 28 * len(rows) + 120))


def category_minutes(summary: pd.DataFrame, groups: list[str]) -> go.Figure:
    """Mean minutes per category per group with the 95% CIs of `analytics.summary`."""
    fig = go.Figure()
    for i, group in enumerate(groups):
        part = summary[summary["group"] == group]
        fig.add_trace(go.Bar(
            x=part["label"], y=part["mean_min"], name=group,
            marker_color=GROUP_COLOURS[i % len(GROUP_COLOURS)],
            error_y={"type": "data", "symmetric": False,
                     "array": (part["ci_high_min"] - part["mean_min"]).to_numpy(),
                     "arrayminus": (part["mean_min"] - part["ci_low_min"]).to_numpy()}))
    return _layout(fig, "Minutes per category per scan, mean with 95% CI (operator-clustered)",
                   barmode="group", yaxis_title="minutes", legend_title="group")


# --- one scan ------------------------------------------------------------------------------------

def probability_strip(probs: WindowProbabilities, stream: str) -> go.Figure:
    """A stream's window probabilities as a heat strip: classes x minutes."""
    values = probs.probs[stream]
    fig = go.Figure(go.Heatmap(z=values.T, x=probs.times_s / 60, y=list(probs.classes),
                               zmin=0, zmax=1, colorscale="Viridis",
                               colorbar={"title": "p"},
                               hovertemplate="%{y} at %{x:.2f} min: %{z:.2f}<extra></extra>"))
    fig.update_yaxes(categoryorder="array", categoryarray=list(reversed(probs.classes)))
    return _layout(fig, f"Window probabilities ({stream})", xaxis_title="minutes",
                   height=120 + 22 * len(probs.classes))


# --- operators -----------------------------------------------------------------------------------

def feature_distributions(values: pd.DataFrame, feature: str, groups: list[str]) -> go.Figure:
    """Operator-level values of one feature (the values `compare_groups` tests), per group."""
    part = values[values["feature"] == feature]
    fig = go.Figure()
    for i, group in enumerate(groups):
        g = part[part["group"] == group]
        fig.add_trace(go.Box(y=g["value"], x=[group] * len(g), name=group, boxpoints="all",
                             jitter=0.4, pointpos=0, text=g["operator_id"],
                             marker_color=GROUP_COLOURS[i % len(GROUP_COLOURS)]))
    return _layout(fig, f"{feature}: one point per operator (mean of their scans)",
                   showlegend=False)


def transition_heatmap(matrix: pd.DataFrame, group: str) -> go.Figure:
    """A group's row-stochastic transition matrix: from (rows) -> to (columns); the colour
    scale runs from 0 to the largest probability, so rare transitions stay visible."""
    fig = go.Figure(go.Heatmap(z=matrix.to_numpy(), x=list(matrix.columns),
                               y=list(matrix.index), zmin=0, colorscale="Blues",
                               colorbar={"title": "P"},
                               hovertemplate="%{y} -> %{x}: %{z:.2f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title="from")
    return _layout(fig, f"Transitions, {group} (background left out)", xaxis_title="to",
                   height=420)


def ngram_bars(table: pd.DataFrame, groups: list[str]) -> go.Figure:
    """The most frequent n-grams per group, by share of the group's n-grams."""
    fig = go.Figure()
    for i, group in enumerate(groups):
        part = table[table["group"] == group]
        fig.add_trace(go.Bar(x=part["share"], y=part["ngram"], orientation="h", name=group,
                             marker_color=GROUP_COLOURS[i % len(GROUP_COLOURS)]))
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, "Most common sequences (background left out)", barmode="group",
                   xaxis_title="share",
                   height=max(HEIGHT, 22 * table["ngram"].nunique() + 120))


def profile_chart(profile: OperatorProfile) -> go.Figure:
    """An operator's z-score on each feature against the reference group's operators."""
    table = profile.table.dropna(subset=["z"])
    fig = go.Figure(go.Bar(x=table["z"], y=table["feature"], orientation="h",
                           marker_color=["#d62728" if abs(z) >= 2 else "#1f77b4"
                                         for z in table["z"]],
                           hovertemplate="%{y}: z = %{x:.2f}<extra></extra>"))
    fig.add_vrect(x0=-2, x1=2, fillcolor="#dddddd", opacity=0.3, line_width=0)
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, f"{profile.operator} ({profile.group}) against the {profile.reference} "
                   f"operators: z-score", xaxis_title="z", height=max(HEIGHT, 20 * len(table)
                                                                     + 120))


def trend_chart(points: pd.DataFrame, feature: str, highlight: str | None) -> go.Figure:
    """Learning curves: one line per operator of a feature over their scans, in date order."""
    part = points[points["feature"] == feature]
    fig = go.Figure()
    groups = list(dict.fromkeys(part.sort_values("group")["group"]))
    for operator, line in part.groupby("operator_id", sort=True):
        group = line["group"].iloc[0]
        chosen = highlight is None or operator == highlight
        fig.add_trace(go.Scatter(
            x=line["acquired_at"], y=line["value"], mode="lines+markers", name=operator,
            legendgroup=group, opacity=1.0 if chosen else 0.25,
            line={"color": GROUP_COLOURS[groups.index(group) % len(GROUP_COLOURS)],
                  "width": 3 if highlight == operator else 1.5},
            hovertemplate=f"{operator} ({group})<br>%{{x|%Y-%m-%d}}: %{{y:.3g}}<extra></extra>"))
    return _layout(fig, f"{feature} over each operator's scans", xaxis_title="date",
                   yaxis_title=feature)


# --- agreement -----------------------------------------------------------------------------------

def minutes_scatter(per_category: pd.DataFrame, paired: pd.DataFrame | None = None
                    ) -> go.Figure:
    """Mean minutes per category, manual (x) against automatic (y): the paper's unpaired
    comparison (every scan of each run) and, where given, the paired one (the scans of both,
    automatic labels inside the manually labelled spans)."""
    frames = [per_category] + ([] if paired is None else [paired])
    top = float(max(max(f["manual_mean_min"].max(), f["auto_mean_min"].max()) for f in frames))
    fig = go.Figure(go.Scatter(x=[0, top], y=[0, top], mode="lines", name="equal",
                               line={"dash": "dot", "color": "#888888"}))
    for table, label, symbol in ((per_category, "all scans of each run (paper)", "circle"),
                                 (paired, "scans of both, manual spans", "diamond-open")):
        if table is None:
            continue
        fig.add_trace(go.Scatter(
            x=table["manual_mean_min"], y=table["auto_mean_min"], mode="markers+text",
            text=table["label"], textposition="top center", name=label,
            marker={"size": 11, "symbol": symbol,
                    "color": [colour(c) for c in table["label"]]},
            hovertemplate="%{text}: manual %{x:.2f}, auto %{y:.2f} min<extra></extra>"))
    return _layout(fig, "Mean minutes per scan and category", xaxis_title="manual (minutes)",
                   yaxis_title="automatic (minutes)", legend_title="scans compared")


def bland_altman(per_category: pd.DataFrame) -> go.Figure:
    """Bland-Altman per category: the bias (automatic - manual minutes) with its 95% CI, and
    the 95% limits of agreement."""
    table = per_category.dropna(subset=["bias_min"])
    fig = go.Figure([
        go.Scatter(x=table["label"], y=table["bias_min"], mode="markers", name="bias (95% CI)",
                   marker={"size": 10, "color": "#1f77b4"},
                   error_y={"type": "data", "symmetric": False,
                            "array": (table["bias_ci_high"] - table["bias_min"]).to_numpy(),
                            "arrayminus": (table["bias_min"] - table["bias_ci_low"]).to_numpy()}),
        go.Scatter(x=table["label"], y=table["loa_low_min"], mode="markers",
                   name="limits of agreement", marker={"symbol": "line-ew-open", "size": 18,
                                                       "color": "#d62728"}),
        go.Scatter(x=table["label"], y=table["loa_high_min"], mode="markers",
                   showlegend=False, marker={"symbol": "line-ew-open", "size": 18,
                                             "color": "#d62728"}),
    ])
    fig.add_hline(y=0, line={"dash": "dot", "color": "#888888"})
    return _layout(fig, "Bland-Altman per category (automatic - manual, minutes per scan)",
                   yaxis_title="minutes")


def confusion_heatmap(confusion: pd.DataFrame, title: str) -> go.Figure:
    """Counts of a confusion matrix: truth (rows) x predicted (columns), row-normalised colour."""
    counts = confusion.to_numpy(dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    shares = counts / totals.clip(min=1)
    fig = go.Figure(go.Heatmap(z=shares, x=list(map(str, confusion.columns)),
                               y=list(map(str, confusion.index)), zmin=0, zmax=1,
                               colorscale="Blues", text=counts.astype(int),
                               texttemplate="%{text}", colorbar={"title": "row share"},
                               hovertemplate=("truth %{y}, predicted %{x}: %{text}"
                                              "<extra></extra>")))
    fig.update_yaxes(autorange="reversed", title="truth")
    return _layout(fig, title, xaxis_title="predicted", height=460)


# --- models --------------------------------------------------------------------------------------

def runs_chart(runs: pd.DataFrame) -> go.Figure:
    """Scans labelled by each run, coloured by source."""
    sources = {"manual": "#2ca02c", "auto": "#1f77b4"}
    fig = go.Figure([go.Bar(x=part["n_scans"], y=[f"{r.run_id} · {r.name}"
                                                  for r in part.itertuples()],
                            orientation="h", name=source, marker_color=sources.get(source),
                            hovertemplate="%{y}: %{x} scans<extra></extra>")
                     for source, part in runs.groupby("source", sort=True)])
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, "Scans labelled by each run", xaxis_title="scans",
                   height=max(240, 40 * len(runs) + 120), legend_title="source")
