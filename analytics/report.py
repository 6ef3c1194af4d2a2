"""Every number of an operator's skill report, against a reference group of operators.

`operator_report` gathers what a trainer reads about one operator: their scans and the period
they span; their workflow features (scan duration, FASP coverage, order, transitions,
revisits, background share, freezes) as percentiles among the reference operators' means and
z-scores; minutes, share of labelled time and freezes per category with 95% CIs beside the
reference operators' range; coverage of each FASP-required structure; the trend of scan
duration and coverage over dates; the leave-one-operator-out skill estimate
(`analytics.skill`); the timelines of their scans; and a short list of findings, sentences
generated from those numbers with the thresholds stated (`THRESHOLDS`).

The report is about workflow, never a verdict on a person: the skill estimate is worded as how
much the workflow resembles a group's, beside the classifier's own accuracy.

Reference operators: the operators of the reference group (default ``"expert"``) with scans in
the selection, the operator of the report left out (an expert is compared with the *other*
experts). Each reference operator contributes one value, the mean of their scans
(`analytics.groups.operator_values`), so percentiles are "among the reference operators'
means".

What cannot be computed (one scan: no interval and no trend; no other operator in the
reference group: no percentile; no automatic labels for the operator: nothing to compare; a
single group: no skill estimate) is NaN in the tables and said in `OperatorReport.notes`; the
report is still made.

For many operators, `report_inputs` reads the cohort once and `operator_report` reuses it.
Durations are minutes; shares are fractions in [0, 1]; percentiles are fractions in [0, 1].
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from analytics.operators import UnknownOperatorError, profile_of
from fetal_analytics.results import Result

if TYPE_CHECKING:
    import pandas as pd

    from analytics.selection import EventSelection
    from analytics.skill import SkillEstimate
    from fetal_analytics.store import Store

__all__ = [
    "FEATURE_LABELS",
    "REPORT_FEATURES",
    "THRESHOLDS",
    "TIMELINE_SCANS",
    "TREND_FEATURES",
    "OperatorReport",
    "ReportInputs",
    "check_operators",
    "operator_report",
    "report_inputs",
    "report_operators",
]

log = logging.getLogger(__name__)

REPORT_FEATURES = ("span_min", "total_min", "fasp_coverage", "time_to_full_coverage_min",
                   "order_edit_distance", "n_transitions", "n_revisits", "bk_share",
                   "n_freezes", "transition_entropy_rate")
"""The workflow features of the report's profile table, in order (`scan_features` columns)."""

FEATURE_LABELS = {
    "span_min": "Scan duration (minutes, first to last labelled second)",
    "total_min": "Labelled time (minutes)",
    "fasp_coverage": "FASP-required structures seen (share of 7)",
    "time_to_full_coverage_min": "Time until all FASP-required structures seen (minutes)",
    "order_edit_distance": "Order: edit distance to the reference order (0 = same order)",
    "n_transitions": "Transitions between categories per scan",
    "n_revisits": "Revisits of structures per scan",
    "bk_share": "Background search (share of labelled time)",
    "n_freezes": "Freezes per scan",
    "transition_entropy_rate": "Unpredictability of transitions (bits per transition)",
}
"""Plain-language names of the report's features, with units."""

TREND_FEATURES = ("span_min", "fasp_coverage")
"""Features whose trend over scan dates the report fits: scan duration and FASP coverage."""

THRESHOLDS = {"high_percentile": 0.9, "low_percentile": 0.1, "min_reference": 3,
              "structure_seen": 0.5}
"""When a finding is reported: an operator mean at or above the 90th percentile, or at or
below the 10th, of the reference operators' means (and only with at least 3 reference
operators); a FASP-required structure seen in fewer than half of the operator's scans; a
trend whose 95% CI excludes zero."""

TIMELINE_SCANS = 12
"""At most this many of the operator's scans (the newest) are drawn as timelines."""


class _Quiet:
    """Record the warnings of a block (degenerate data) as notes instead of printing them."""

    def __init__(self, notes: list[str]):
        self.notes = notes

    def __enter__(self):
        self._catch = warnings.catch_warnings(record=True)
        self._caught = self._catch.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self._catch.__exit__(*exc)
        for w in self._caught:
            if issubclass(w.category, UserWarning) and str(w.message) not in self.notes:
                self.notes.append(str(w.message))
        return False


@dataclass(frozen=True)
class ReportInputs:
    """The cohort tables every operator's report reads, computed once.

    Attributes
    ----------
    selection : EventSelection
    reference : str
        The reference group.
    scan_features : pandas.DataFrame
        `analytics.features.scan_features` of the selection.
    category_times : pandas.DataFrame
        `analytics.features.category_times` of the selection.
    operator_values : pandas.DataFrame
        `analytics.groups.operator_values_of` of those two.
    trends : OperatorTrends
        `analytics.operators.trends_of` of `TREND_FEATURES`.
    scans : pandas.DataFrame
        `fetal_analytics.queries.list_scans`: every scan of the database, labelled or not.
    skill : SkillEstimate or None
        The leave-one-operator-out skill estimate, None where it cannot be made.
    skill_note : str
        Why there is no skill estimate ("" when there is one).
    as_of : str
        When the newest finished run of the database finished (ISO), "" if never: the date the
        report's data stand at, and the date stamped into its files.
    """

    selection: EventSelection
    reference: str
    scan_features: pd.DataFrame = field(repr=False)
    category_times: pd.DataFrame = field(repr=False)
    operator_values: pd.DataFrame = field(repr=False)
    trends: Any = field(repr=False)
    scans: pd.DataFrame = field(repr=False)
    skill: SkillEstimate | None = field(repr=False)
    skill_note: str = ""
    as_of: str = ""


def report_inputs(store: Store, selection: EventSelection, *, reference: str = "expert",
                  skill: bool = True, require_reference: bool = False) -> ReportInputs:
    """Read the cohort tables of the reports once (see `ReportInputs`).

    Parameters
    ----------
    store : Store
    selection : EventSelection
    reference : str, optional
        The reference group (default ``"expert"``); also the skill estimate's positive group.
    skill : bool, optional
        Fit the skill estimate (a few seconds; off for a quick report).
    require_reference : bool, optional
        Raise when no operator of the database belongs to `reference` (a group the user named,
        perhaps misspelt); by default the reports say there is nothing to compare with.

    Raises
    ------
    UnknownGroupError
        With `require_reference`, a reference group without operators (naming the groups).
    """
    from analytics.features import category_times, scan_features
    from analytics.groups import GroupError, operator_values_of
    from analytics.operators import trends_of
    from analytics.skill import skill_estimate
    from fetal_analytics.queries import list_scans
    from fetal_analytics.runs import list_runs

    listed = list_scans(store)
    if require_reference:
        from analytics.groups import UnknownGroupError
        from fetal_analytics.checks import close_match_hint

        groups = sorted(listed["group"].dropna().unique())
        if reference not in groups:
            raise UnknownGroupError(
                f"no operator of group {reference!r} in the database"
                f"{close_match_hint(reference, groups)}; groups: {', '.join(groups)}")
    scans = scan_features(store, selection)
    cats = category_times(store, selection)
    estimate, skill_note = None, "the skill estimate was not asked for"
    if skill:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                estimate, skill_note = skill_estimate(store, selection,
                                                      positive_group=reference), ""
        except GroupError as exc:
            skill_note = f"no skill estimate: {exc}"
    finished = [r.finished_at for r in list_runs(store) if r.status == "finished"
                and r.finished_at is not None]
    as_of = max(finished).isoformat(timespec="seconds") if finished else ""
    return ReportInputs(selection=selection, reference=reference, scan_features=scans,
                        category_times=cats, operator_values=operator_values_of(scans, cats),
                        trends=trends_of(scans, features=TREND_FEATURES,
                                         selection=selection.description),
                        scans=listed, skill=estimate, skill_note=skill_note,
                        as_of=as_of)


def report_operators(inputs: ReportInputs) -> list[str]:
    """Every operator of the database with at least one scan, sorted: those `--all` reports
    on (an operator whose scans have no events in the selection still gets a report saying
    so)."""
    return sorted(inputs.scans["operator_id"].dropna().unique().tolist())


def check_operators(inputs: ReportInputs, operators: list[str]) -> None:
    """Raise `UnknownOperatorError` for the first of `operators` with no scan in the database,
    naming those that have."""
    present = report_operators(inputs)
    for operator in operators:
        if operator not in present:
            raise UnknownOperatorError(
                f"no operator {operator!r} in the database; operators: {', '.join(present)}")


@dataclass(frozen=True)
class OperatorReport(Result):
    """One operator's skill report: every number it shows (see the module docstring).

    Attributes
    ----------
    operator : str
        The pseudonymous operator id.
    group : str
        The operator's group.
    reference : str
        The reference group.
    n_reference_operators : int
        Reference operators compared with (the operator left out).
    selection : str
        The events described.
    as_of : str
        When the newest run of the database finished (ISO), "" if unknown.
    n_scans : int
        The operator's scans with events in the selection.
    n_scans_in_database : int
        All of the operator's scans, labelled or not.
    first_scan, last_scan : str
        ISO dates of the operator's first and last scan ("" where undated).
    scans : pandas.DataFrame
        One row per scan of the operator: ``scan_id, acquired_at, manual_runs, auto_runs,
        in_selection`` and, where in the selection, ``span_min, total_min, fasp_coverage,
        time_to_full_coverage_min, order_edit_distance, n_transitions, n_revisits, bk_share,
        n_freezes``.
    profile : pandas.DataFrame
        `analytics.operators.profile_of` on `REPORT_FEATURES`: ``feature, label, value,
        n_scans, reference_mean, reference_sd, reference_n, reference_min, reference_max, z,
        percentile``. For ``time_to_full_coverage_min`` ``n_scans`` counts the scans that saw
        every required structure (the others have no time).
    categories : pandas.DataFrame
        One row per category in scope: ``label, name, n_scans``; the operator's mean over
        scans with a 95% t interval over scans (NaN with one scan) of minutes (``mean_min,
        ci_low_min, ci_high_min``), share of labelled time (``mean_share, ci_low_share,
        ci_high_share``) and freezes during the category (``freezes_per_scan``); the reference
        operators' means: ``reference_mean_min, reference_min_min, reference_max_min,
        reference_mean_share, reference_min_share, reference_max_share,
        reference_freezes_per_scan``, and ``percentile_min`` (of the operator's minutes among
        them).
    coverage : pandas.DataFrame
        One row per FASP-required structure: ``label, name, n_scans, n_seen, share_seen`` and
        ``reference_share_seen`` (mean of the reference operators' shares),
        ``reference_min_share_seen, reference_max_share_seen``.
    trends : pandas.DataFrame
        Per `TREND_FEATURES`: ``feature, label, n_scans, slope_per_30_days,
        slope_per_30_days_ci_low, slope_per_30_days_ci_high, slope_per_30_days_p,
        intercept`` (the fitted line: ``intercept + slope_per_30_days * days / 30`` with days
        since the first dated scan), and that line at the first and last dated scans:
        ``line_start_at, line_end_at, line_start_value, line_end_value``.
    trend_points : pandas.DataFrame
        ``scan_id, acquired_at, days, feature, value``: the points the trends fit.
    skill : dict
        ``available`` (bool), ``positive_group``, ``probability`` (the mean out-of-fold
        probability of the operator's scans resembling the positive group, from a model that
        never saw the operator), ``n_scans``, ``metrics`` (operator-level ``accuracy,
        balanced_accuracy, roc_auc`` with 95% CIs), ``brier``, ``n_operators``, ``pulse``
        and ``note``.
    timelines : pandas.DataFrame
        Events of the newest finished manual and automatic runs of the operator's newest
        `TIMELINE_SCANS` scans: ``scan_id, run_id, run_name, source, row, start_s, end_s,
        label`` (``row`` names the scan and source, e.g. ``"SIM0001 manual"``).
    timeline_rows : list of str
        The timelines' rows, top first.
    findings : pandas.DataFrame
        ``kind, feature, text, threshold``: what stands out, in plain words, and the
        threshold that made it a finding.
    notes : list of str
        What cannot be computed or compared, and why.
    thresholds : dict
        `THRESHOLDS`.
    """

    operator: str
    group: str
    reference: str
    n_reference_operators: int
    selection: str
    as_of: str
    n_scans: int
    n_scans_in_database: int
    first_scan: str
    last_scan: str
    scans: pd.DataFrame
    profile: pd.DataFrame
    categories: pd.DataFrame
    coverage: pd.DataFrame
    trends: pd.DataFrame
    trend_points: pd.DataFrame
    skill: dict
    timelines: pd.DataFrame
    timeline_rows: list[str]
    findings: pd.DataFrame
    notes: list[str]
    thresholds: dict = field(default_factory=lambda: dict(THRESHOLDS))

    frame_field: ClassVar[str] = "profile"


def operator_report(store: Store, selection: EventSelection | None, operator: str, *,
                    reference: str = "expert", inputs: ReportInputs | None = None
                    ) -> OperatorReport:
    """Every number of one operator's report.

    Parameters
    ----------
    store : Store
        Read for the timelines (and for `inputs` when not given).
    selection : EventSelection or None
        The events to describe; may be None when `inputs` is given.
    operator : str
        The operator's pseudonymous id.
    reference : str, optional
        The reference group (default ``"expert"``); the operator is left out of it.
    inputs : ReportInputs, optional
        Cohort tables read once for many reports (`report_inputs`); its reference wins.

    Returns
    -------
    OperatorReport

    Raises
    ------
    UnknownOperatorError
        The operator has no scan in the database (naming those that have).
    """
    if inputs is None:
        if selection is None:
            raise ValueError("give `selection` or `inputs`")
        inputs = report_inputs(store, selection, reference=reference)
    reference = inputs.reference
    all_scans = inputs.scans
    check_operators(inputs, [operator])
    notes: list[str] = []
    own_scans = all_scans[all_scans["operator_id"] == operator]
    group = str(own_scans["group"].iloc[0])
    features = inputs.scan_features
    in_selection = features[features["operator_id"] == operator]
    n_scans = len(in_selection)
    if n_scans == 0:
        notes.append(
            f"{operator} has no scans with events in {inputs.selection.description}, so no "
            f"workflow figure can be computed or compared (choose another source or run, "
            f"e.g. --source manual)")
    elif n_scans == 1:
        notes.append(f"{operator} has one scan in the selection: no confidence interval over "
                     f"their scans and no trend can be computed")
    scans_table = _scans_table(own_scans, in_selection)
    dates = own_scans["acquired_at"].dropna()
    first = dates.min().date().isoformat() if len(dates) else ""
    last = dates.max().date().isoformat() if len(dates) else ""

    with _Quiet(notes):
        profile, n_ref = _profile(inputs, operator, reference, n_scans, notes)
        categories = _categories(inputs, operator, reference)
        coverage = _coverage(inputs, operator, reference)
        trends, points = _trends(inputs, operator, notes)
    skill = _skill(inputs, operator)
    if not skill["available"]:
        notes.append(skill["note"])
    timelines, rows = _timelines(store, own_scans)
    if len(own_scans) > TIMELINE_SCANS:
        notes.append(f"timelines show the newest {TIMELINE_SCANS} of {len(own_scans)} scans")
    findings = _findings(profile, categories, coverage, trends, skill, n_ref, reference,
                         n_scans)
    return OperatorReport(
        operator=operator, group=group, reference=reference, n_reference_operators=n_ref,
        selection=inputs.selection.description, as_of=inputs.as_of, n_scans=n_scans,
        n_scans_in_database=len(own_scans), first_scan=first, last_scan=last,
        scans=scans_table, profile=profile, categories=categories, coverage=coverage,
        trends=trends, trend_points=points, skill=skill, timelines=timelines,
        timeline_rows=rows, findings=findings, notes=notes)


# --- parts ---------------------------------------------------------------------------------------

def _scans_table(own: pd.DataFrame, in_selection: pd.DataFrame) -> pd.DataFrame:
    keep = ["scan_id", *[f for f in REPORT_FEATURES if f != "transition_entropy_rate"]]
    table = own[["scan_id", "acquired_at", "manual_runs", "auto_runs"]].merge(
        in_selection[keep], on="scan_id", how="left")
    table.insert(4, "in_selection", table["scan_id"].isin(in_selection["scan_id"]))
    table["manual_runs"] = table["manual_runs"].map(lambda v: ", ".join(v))
    table["auto_runs"] = table["auto_runs"].map(lambda v: ", ".join(v))
    return table.sort_values(["acquired_at", "scan_id"], kind="stable").reset_index(drop=True)


def _reference_ids(inputs: ReportInputs, operator: str, reference: str) -> list[str]:
    values = inputs.operator_values
    return sorted(values.loc[(values["group"] == reference)
                             & (values["operator_id"] != operator), "operator_id"].unique())


def _profile(inputs: ReportInputs, operator: str, reference: str, n_scans: int,
             notes: list[str]) -> tuple[pd.DataFrame, int]:
    import pandas as pd

    columns = ["feature", "label", "value", "n_scans", "reference_mean", "reference_sd",
               "reference_n", "reference_min", "reference_max", "z", "percentile"]
    n_ref = len(_reference_ids(inputs, operator, reference))
    if n_ref == 0:
        groups = sorted(inputs.operator_values["group"].unique())
        notes.append(f"no other operator of group {reference!r} has scans in the selection "
                     f"(groups present: {', '.join(groups)}), so {operator} cannot be placed "
                     f"among the reference operators: no percentile, z or reference range")
    elif n_ref < 2:
        notes.append(f"one other operator of group {reference!r}: no z-score (an SD needs two "
                     f"reference operators)")
    if n_scans == 0:
        return pd.DataFrame(columns=columns), n_ref
    values = inputs.operator_values
    values = values[values["feature"].isin(REPORT_FEATURES)]
    table = profile_of(values, operator, reference=reference).table
    table["feature"] = pd.Categorical(table["feature"], categories=list(REPORT_FEATURES))
    table = table.sort_values("feature").assign(feature=lambda t: t["feature"].astype(str))
    table.insert(1, "label", table["feature"].map(FEATURE_LABELS))
    return table[columns].reset_index(drop=True), n_ref


def _t_interval(values, ci: float = 0.95, *, bounds: tuple[float, float] = (0.0, math.inf)
                ) -> tuple[float, float]:
    """The t interval of the mean of `values` over scans, clipped to `bounds` (minutes and
    shares cannot be negative); NaN with fewer than 2 values."""
    import numpy as np
    from scipy import stats

    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return math.nan, math.nan
    half = float(stats.t.ppf(0.5 + ci / 2, len(values) - 1)
                 * values.std(ddof=1) / math.sqrt(len(values)))
    mean = float(values.mean())
    return max(mean - half, bounds[0]), min(mean + half, bounds[1])


def _categories(inputs: ReportInputs, operator: str, reference: str) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    from fetal_analytics import taxonomy

    cats = inputs.category_times
    own = cats[cats["operator_id"] == operator]
    refs = _reference_ids(inputs, operator, reference)
    ref_means = (cats[cats["operator_id"].isin(refs)]
                 .groupby(["label", "operator_id"], sort=False)[
                     ["duration_min", "share", "n_freezes"]].mean().reset_index())
    rows = []
    for label in dict.fromkeys(cats["label"]):
        mine = own[own["label"] == label]
        ref = ref_means[ref_means["label"] == label]
        minutes = mine["duration_min"].to_numpy(dtype=float)
        shares = mine["share"].to_numpy(dtype=float)
        low_min, high_min = _t_interval(minutes)
        low_share, high_share = _t_interval(shares, bounds=(0.0, 1.0))
        mean_min = float(minutes.mean()) if len(minutes) else math.nan
        ref_min = ref["duration_min"].to_numpy(dtype=float)
        ref_share = ref["share"].to_numpy(dtype=float)
        try:
            name = taxonomy.get(label).name
        except LookupError:
            name = label
        rows.append({
            "label": label, "name": name, "n_scans": len(mine),
            "mean_min": mean_min, "ci_low_min": low_min, "ci_high_min": high_min,
            "mean_share": float(shares.mean()) if len(shares) else math.nan,
            "ci_low_share": low_share, "ci_high_share": high_share,
            "freezes_per_scan": float(mine["n_freezes"].mean()) if len(mine) else math.nan,
            "reference_n": len(ref),
            "reference_mean_min": float(ref_min.mean()) if len(ref) else math.nan,
            "reference_min_min": float(ref_min.min()) if len(ref) else math.nan,
            "reference_max_min": float(ref_min.max()) if len(ref) else math.nan,
            "reference_mean_share": float(ref_share.mean()) if len(ref) else math.nan,
            "reference_min_share": float(ref_share.min()) if len(ref) else math.nan,
            "reference_max_share": float(ref_share.max()) if len(ref) else math.nan,
            "reference_freezes_per_scan": float(ref["n_freezes"].mean()) if len(ref)
            else math.nan,
            "percentile_min": (float(((ref_min < mean_min).sum()
                                      + 0.5 * (ref_min == mean_min).sum()) / len(ref_min))
                               if len(ref_min) and mean_min == mean_min else math.nan),
        })
    frame = pd.DataFrame(rows)
    return frame.replace({np.inf: np.nan}) if len(frame) else frame


def _coverage(inputs: ReportInputs, operator: str, reference: str) -> pd.DataFrame:
    import pandas as pd

    from analytics.operators import structure_coverage_of
    from fetal_analytics import taxonomy

    table = structure_coverage_of(inputs.category_times)
    own = table[table["operator_id"] == operator].set_index("label")
    refs = table[table["operator_id"].isin(_reference_ids(inputs, operator, reference))]
    rows = []
    for label in taxonomy.FASP_REQUIRED:
        ref = refs.loc[refs["label"] == label, "share_seen"].to_numpy(dtype=float)
        has = label in own.index
        rows.append({
            "label": label, "name": taxonomy.get(label).name,
            "n_scans": int(own.loc[label, "n_scans"]) if has else 0,
            "n_seen": int(own.loc[label, "n_seen"]) if has else 0,
            "share_seen": float(own.loc[label, "share_seen"]) if has else math.nan,
            "reference_share_seen": float(ref.mean()) if len(ref) else math.nan,
            "reference_min_share_seen": float(ref.min()) if len(ref) else math.nan,
            "reference_max_share_seen": float(ref.max()) if len(ref) else math.nan,
        })
    return pd.DataFrame(rows)


def _trends(inputs: ReportInputs, operator: str, notes: list[str]
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    trends = inputs.trends
    slopes = trends.slopes[trends.slopes["operator_id"] == operator]
    slopes = slopes.drop(columns=["operator_id", "group", "slope"]).reset_index(drop=True)
    slopes.insert(1, "label", slopes["feature"].map(FEATURE_LABELS))
    points = trends.points[trends.points["operator_id"] == operator]
    if len(points):
        start = points["acquired_at"].min()
        points = points.assign(days=(points["acquired_at"] - start).dt.total_seconds()
                               / 86400.0)
    else:
        points = points.assign(days=[])
    points = points[["scan_id", "acquired_at", "days", "feature", "value"]]
    firsts, lasts, at_first, at_last = [], [], [], []
    for row in slopes.itertuples():  # the fitted line at the first and last dated scan
        part = points[(points["feature"] == row.feature) & points["value"].notna()]
        if len(part) >= 2 and row.intercept == row.intercept:
            first, last = part["days"].min(), part["days"].max()
            firsts.append(part.loc[part["days"].idxmin(), "acquired_at"])
            lasts.append(part.loc[part["days"].idxmax(), "acquired_at"])
            at_first.append(row.intercept + row.slope_per_30_days * first / 30.0)
            at_last.append(row.intercept + row.slope_per_30_days * last / 30.0)
        else:
            firsts.append(None)
            lasts.append(None)
            at_first.append(math.nan)
            at_last.append(math.nan)
    slopes = slopes.assign(line_start_at=firsts, line_end_at=lasts,
                           line_start_value=at_first, line_end_value=at_last)
    n_dated = points["scan_id"].nunique()
    if n_dated < 3 and len(inputs.scan_features[inputs.scan_features["operator_id"]
                                                == operator]):
        notes.append(f"{n_dated} dated scan(s): a trend over dates needs at least 3 "
                     f"for a confidence interval of its slope")
    return slopes, points.reset_index(drop=True)


def _skill(inputs: ReportInputs, operator: str) -> dict:
    estimate = inputs.skill
    base = {"available": False, "positive_group": inputs.reference, "probability": None,
            "n_scans": 0, "metrics": [], "brier": None, "n_operators": {}, "pulse": {},
            "note": inputs.skill_note}
    if estimate is None:
        return base
    row = estimate.operators[estimate.operators["operator_id"] == operator]
    metrics = estimate.metrics[estimate.metrics["level"] == "operator"]
    base.update(n_operators=dict(estimate.n_operators), pulse=dict(estimate.pulse),
                brier=float(estimate.brier),
                metrics=[{k: r[k] for k in ("metric", "value", "ci_low", "ci_high")}
                         for r in metrics.to_dict(orient="records")])
    if row.empty:
        base["note"] = (f"no skill estimate for {operator}: no scans in the selection the "
                        f"classifier was evaluated on")
        return base
    base.update(available=True, probability=float(row["probability"].iloc[0]),
                n_scans=int(row["n_scans"].iloc[0]), note="")
    return base


def _timelines(store: Store, own: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    import pandas as pd

    from fetal_analytics.queries import newest_runs_of_scan, scan_events

    chosen = own.sort_values(["acquired_at", "scan_id"], kind="stable",
                             na_position="first").tail(TIMELINE_SCANS)
    parts, rows = [], []
    for scan_id in chosen["scan_id"]:
        runs = newest_runs_of_scan(store, scan_id)
        if not runs:
            continue
        events = scan_events(store, scan_id, runs)
        for run in runs:
            row = f"{scan_id} {run.source}"
            rows.append(row)
            part = events[events["run_id"] == run.run_id]
            parts.append(part.assign(scan_id=scan_id, row=row))
    columns = ["scan_id", "run_id", "run_name", "source", "row", "start_s", "end_s", "label"]
    if not parts:
        return pd.DataFrame(columns=columns), rows
    return pd.concat(parts, ignore_index=True)[columns], rows


# --- findings ------------------------------------------------------------------------------------

def _fmt(value: float, feature: str) -> str:
    if feature in ("fasp_coverage", "bk_share"):
        return f"{value:.0%}"
    if feature.endswith("_min"):
        return f"{value:.1f} min"
    return f"{value:.2g}" if abs(value) < 1 else f"{value:.1f}"


def _share_of(share: float, n: int) -> str:
    """``"all 6"`` or ``"83% of the 6"``."""
    return f"all {n}" if share >= 1 else f"{share:.0%} of the {n}"


def _findings(profile: pd.DataFrame, categories: pd.DataFrame, coverage: pd.DataFrame,
              trends: pd.DataFrame, skill: dict, n_ref: int, reference: str,
              n_scans: int) -> pd.DataFrame:
    import pandas as pd

    from fetal_analytics import taxonomy

    high, low = THRESHOLDS["high_percentile"], THRESHOLDS["low_percentile"]
    pct = (f"at or beyond the {high:.0%} / {low:.0%} percentiles of the reference operators' "
           f"means")
    rows: list[dict] = []
    if n_scans and n_ref >= THRESHOLDS["min_reference"]:
        for r in profile.itertuples():
            if r.percentile != r.percentile:
                continue
            if r.percentile >= high:
                word, share = "higher", r.percentile
            elif r.percentile <= low:
                word, share = "lower", 1 - r.percentile
            else:
                continue
            rows.append({"kind": "feature", "feature": r.feature, "threshold": pct, "text": (
                f"{r.label}: {_fmt(r.value, r.feature)} on average, {word} than "
                f"{_share_of(share, r.reference_n)} {reference} operators' means (their mean "
                f"{_fmt(r.reference_mean, r.feature)})")})
        main = set(taxonomy.default_model_codes()) - {taxonomy.BACKGROUND}
        scored = categories[categories["label"].isin(main)
                            & categories["percentile_min"].notna()]
        for more, part in ((True, scored[scored["percentile_min"] >= high]),
                           (False, scored[scored["percentile_min"] <= low])):
            if part.empty:
                continue
            listing = "; ".join(
                f"{r.name} ({r.label}) {r.mean_min:.1f} min, "
                f"{_share_of(r.percentile_min if more else 1 - r.percentile_min, r.reference_n)}"
                f" ({r.reference_min_min:.1f}-{r.reference_max_min:.1f})"
                for r in part.itertuples())
            rows.append({"kind": "category", "threshold": pct,
                         "feature": ",".join(f"duration_min:{c}" for c in part["label"]),
                         "text": (
                f"{'More' if more else 'Less'} time per scan than the {reference} operators' "
                f"means on: {listing} (the operator's minutes, how many {reference} operators "
                f"they {'exceed' if more else 'undercut'}, and those operators' range)")})
    elif n_scans:
        rows.append({"kind": "limit", "feature": "", "threshold": "", "text": (
            f"Only {n_ref} other {reference} operator(s) to compare with: no finding is drawn "
            f"from percentiles (at least {THRESHOLDS['min_reference']} are needed)")})
    seen = THRESHOLDS["structure_seen"]
    for r in coverage.itertuples():
        if r.n_scans and r.share_seen < seen:
            rows.append({"kind": "coverage", "feature": f"coverage:{r.label}",
                         "threshold": f"seen in fewer than {seen:.0%} of the scans", "text": (
                f"{r.name} ({r.label}), a FASP-required structure, was seen in {r.n_seen} of "
                f"{r.n_scans} scans")})
    for r in trends.itertuples():
        if (r.slope_per_30_days_ci_low == r.slope_per_30_days_ci_low
                and (r.slope_per_30_days_ci_low > 0 or r.slope_per_30_days_ci_high < 0)):
            word = "rose" if r.slope_per_30_days > 0 else "fell"
            unit = "" if r.feature == "fasp_coverage" else " min"
            rows.append({"kind": "trend", "feature": f"trend:{r.feature}",
                         "threshold": "a 95% CI of the slope that excludes 0", "text": (
                f"{r.label} {word} over the scans' dates by {abs(r.slope_per_30_days):.2g}"
                f"{unit} per 30 days (95% CI {r.slope_per_30_days_ci_low:.2g} to "
                f"{r.slope_per_30_days_ci_high:.2g})")})
    if skill["available"]:
        accuracy = {m["metric"]: m for m in skill["metrics"]}.get("balanced_accuracy")
        acc_text = (f"balanced accuracy {accuracy['value']:.0%}, 95% CI "
                    f"{accuracy['ci_low']:.0%}-{accuracy['ci_high']:.0%}"
                    if accuracy and accuracy["value"] is not None
                    and accuracy["value"] == accuracy["value"] else "accuracy unknown")
        rows.append({"kind": "skill", "feature": "skill", "threshold": "", "text": (
            f"A classifier of workflow features puts the probability that these scans' "
            f"workflow resembles the {skill['positive_group']} group's at "
            f"{skill['probability']:.0%} (trained without this operator; on operators it "
            f"never saw it scores {acc_text}). This is evidence about workflow, not a "
            f"verdict on the person.")})
    if (not rows or all(r["kind"] in ("skill", "limit") for r in rows)) and n_scans:
        rows.insert(0, {"kind": "none", "feature": "", "threshold": "", "text": (
            "Nothing stands out against the thresholds: every feature lies between the 10th "
            "and 90th percentiles of the reference operators' means, or cannot be compared.")})
    return pd.DataFrame(rows, columns=["kind", "feature", "text", "threshold"])
