"""Small synthetic cohorts for the workflow-analytics tests: manifest and events DataFrames.

Imported by the test modules of this folder (``from workflow_cohorts import ...``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Mean seconds per visit of each structure, roughly the paper's shares of a ~30 min scan.
BASE_SECONDS = {"Br": 60.0, "NL": 20.0, "Fa": 20.0, "Sp": 40.0, "HeD": 120.0, "Ab": 30.0,
                "Ki": 20.0, "Fm": 15.0, "3Dm": 60.0, "MaD": 40.0}
ORDER = ("Br", "NL", "Fa", "Sp", "HeD", "Ab", "Ki", "Fm", "3Dm", "MaD")


def manifest_frame(scans: dict[str, tuple[str, str]]) -> pd.DataFrame:
    """A manifest from ``{scan_id: (operator_id, group)}``."""
    return pd.DataFrame(
        [{"scan_id": s, "operator_id": op, "group": grp} for s, (op, grp) in scans.items()])


def events_frame(sequences: dict[str, list[tuple[str, float]]], *, start: float = 0.0,
                 gap: float = 0.0) -> pd.DataFrame:
    """Events from ``{scan_id: [(label, seconds), ...]}``, back to back (plus `gap` seconds)."""
    rows = []
    for scan_id, seq in sequences.items():
        t = start
        for label, seconds in seq:
            rows.append({"scan_id": scan_id, "start_s": t, "end_s": t + seconds, "label": label})
            t += seconds + gap
    return pd.DataFrame(rows, columns=["scan_id", "start_s", "end_s", "label"])


def random_cohort(seed: int, *, groups: tuple[str, ...] = ("expert", "trainee"),
                  operators_per_group: int = 8, scans_per_operator: int = 3,
                  factors: dict[str, dict[str, float]] | None = None,
                  operator_sd: float = 0.15, scan_sd: float = 0.3, revisit_p: float = 0.5,
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A cohort of scans: each visits the structures in a shuffled head-to-toe order, with
    background search between visits and, with probability `revisit_p`, a second heart visit.

    Durations are log-normal around `BASE_SECONDS`, times ``factors[group][label]`` (default
    1), with an operator effect (`operator_sd`, log scale) and scan noise (`scan_sd`).

    Returns
    -------
    (manifest, events)
    """
    rng = np.random.default_rng(seed)
    factors = factors or {}
    manifest, rows = [], []
    for grp in groups:
        for o in range(operators_per_group):
            op = f"{grp[:3].upper()}{o:02d}"
            op_effect = rng.normal(0, operator_sd, size=len(ORDER))
            for s in range(scans_per_operator):
                scan_id = f"{op}-S{s}"
                manifest.append({"scan_id": scan_id, "operator_id": op, "group": grp})
                order = list(ORDER)
                # Swap a few neighbours so the order is not always the reference.
                for _ in range(rng.integers(0, 3)):
                    i = int(rng.integers(0, len(order) - 1))
                    order[i], order[i + 1] = order[i + 1], order[i]
                if rng.random() < revisit_p:
                    order.append("HeD")
                t = 0.0
                for label in order:
                    bk = float(rng.uniform(3, 15))
                    rows.append((scan_id, t, t + bk, "Bk"))
                    t += bk
                    mean = BASE_SECONDS[label] * factors.get(grp, {}).get(label, 1.0)
                    seconds = mean * float(np.exp(op_effect[ORDER.index(label)]
                                                  + rng.normal(0, scan_sd)))
                    rows.append((scan_id, t, t + seconds, label))
                    t += seconds
    events = pd.DataFrame(rows, columns=["scan_id", "start_s", "end_s", "label"])
    return pd.DataFrame(manifest), events


def build(cohort_store, seed: int, **kwargs):
    """A store of a `random_cohort` as manual labels, and the selection of them."""
    from analytics.selection import select

    manifest, events = random_cohort(seed, **kwargs)
    store = cohort_store(manifest, {"manual": events})
    return store, select(store, source="manual")
