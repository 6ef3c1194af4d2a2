"""Sequences: transition matrices and their permutation test, n-grams and directly-follows graphs,
checked against counts made by hand."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest
from workflow_cohorts import events_frame, manifest_frame

from analytics.features import REFERENCE_ORDER
from analytics.groups import UnknownGroupError
from analytics.selection import select
from analytics.sequences import (
    directly_follows_graph,
    ngrams,
    transition_matrices,
    transition_permutation_test,
    write_dfg,
)


@pytest.fixture
def order_cohort(cohort_store):
    """Experts scan head to toe, trainees toe to head (no background): 5 operators each."""
    rng = np.random.default_rng(4)
    scans, sequences = {}, {}
    for grp in ("expert", "trainee"):
        for o in range(5):
            for s in range(2):
                scan_id = f"{grp}{o}-{s}"
                scans[scan_id] = (f"{grp}{o}", grp)
                order = list(REFERENCE_ORDER)
                i = int(rng.integers(0, len(order) - 1))
                order[i], order[i + 1] = order[i + 1], order[i]
                if grp == "trainee":
                    order.reverse()
                sequences[scan_id] = [(c, 10.0) for c in order]
    store = cohort_store(manifest_frame(scans), {"manual": events_frame(sequences, gap=2.0)})
    return store, select(store, source="manual")


def test_transition_matrices(order_cohort):
    store, sel = order_cohort
    matrices = transition_matrices(store, sel, alpha=1.0)
    assert set(matrices) == {"expert", "trainee"}
    expert = matrices["expert"]
    assert list(expert.index) == list(expert.columns)
    assert np.allclose(expert.sum(axis=1), 1.0)
    assert np.allclose(np.diag(expert), 0.0)
    counts = {}
    sequences = store.query_df(
        "SELECT e.scan_id, e.label FROM events e JOIN scans s USING (scan_id) "
        "JOIN operators o USING (operator_id) WHERE o.grp = 'expert' ORDER BY scan_id, start_s")
    for _, seq in sequences.groupby("scan_id"):
        labels = list(seq["label"])
        for a, b in itertools.pairwise(labels):
            counts[a, b] = counts.get((a, b), 0) + 1
    k = len(expert)
    out_br = sum(n for (a, _), n in counts.items() if a == "Br")
    assert expert.loc["Br", "NL"] == pytest.approx(
        (counts.get(("Br", "NL"), 0) + 1) / (out_br + (k - 1)))
    raw = transition_matrices(store, sel, alpha=0.0, groups=["expert"])
    assert set(raw) == {"expert"}
    assert raw["expert"].loc["Br", "NL"] == pytest.approx(counts[("Br", "NL")] / out_br)
    # A category never seen: no counts, so a NaN row unsmoothed and a uniform row smoothed.
    cats = [*REFERENCE_ORDER, "Um"]
    raw = transition_matrices(store, sel, alpha=0.0, categories=cats)["expert"]
    smooth = transition_matrices(store, sel, alpha=0.5, categories=cats)["expert"]
    assert list(raw.index) == cats
    assert raw.loc["Um"].isna().all()
    assert np.allclose(smooth.loc["Um"].drop("Um"), 1 / (len(cats) - 1))
    with pytest.raises(UnknownGroupError):
        transition_matrices(store, sel, groups=["fellow"])
    with pytest.raises(ValueError, match="`alpha` must be >= 0"):
        transition_matrices(store, sel, alpha=-1)


def test_transition_permutation_test(order_cohort, strong):
    store, sel = order_cohort
    result = transition_permutation_test(store, sel, n_perm=500, seed=0)
    assert result.groups == ("expert", "trainee")
    assert result.n_operators == {"expert": 5, "trainee": 5}
    assert 0 < result.statistic <= 1
    # Only the 2 of 252 splits of 10 operators into 5 + 5 that keep the groups reach the
    # observed distance: p is about 1/126.
    assert result.p < 0.02
    assert result.null_distribution.shape == (500,)
    again = transition_permutation_test(store, sel, n_perm=500, seed=0)
    assert again.p == result.p and again.statistic == result.statistic
    frob = transition_permutation_test(store, sel, n_perm=200, distance="frobenius")
    assert frob.distance == "frobenius" and frob.p < 0.05
    with pytest.raises(ValueError, match="did you mean 'frobenius'"):
        transition_permutation_test(store, sel, distance="frobenious")
    # No difference in order between the groups of the other cohort: no small p.
    store, sel = strong
    null = transition_permutation_test(store, sel, n_perm=200, skip_background=True)
    assert null.p > 0.01
    with pytest.raises(dataclasses.FrozenInstanceError):
        null.p = 0.0  # type: ignore[misc]


def test_ngrams(order_cohort):
    store, sel = order_cohort
    bigrams = ngrams(store, sel, n=2, top=3)
    assert list(bigrams.columns) == ["group", "ngram", "count", "share", "n_scans"]
    assert list(bigrams["group"]) == ["expert"] * 3 + ["trainee"] * 3
    for _, part in bigrams.groupby("group"):
        assert list(part["count"]) == sorted(part["count"], reverse=True)
    # 10 expert scans, 8 structures each: 7 bigrams per scan, 70 in all.
    full = ngrams(store, sel, n=2, top=None)
    expert = full[full["group"] == "expert"]
    assert expert["count"].sum() == 70
    assert expert["share"].sum() == pytest.approx(1.0)
    assert expert["ngram"].str.count(" > ").eq(1).all()
    trigrams = ngrams(store, sel, n=3, top=None, by_group=False)
    assert set(trigrams["group"]) == {"all"}
    assert trigrams["count"].sum() == 20 * 6
    top = trigrams.iloc[0]
    assert top["ngram"].count(" > ") == 2
    with pytest.raises(ValueError, match="`n` must be an integer from 1 to 10"):
        ngrams(store, sel, n=0)


def test_directly_follows_graph_and_files(order_cohort, tmp_path):
    store, sel = order_cohort
    dfg = directly_follows_graph(store, sel, group="expert")
    assert list(dfg.columns) == ["source", "target", "count", "n_scans", "mean_gap_s"]
    assert dfg["count"].sum() == 70
    assert np.allclose(dfg["mean_gap_s"], 2.0)
    assert list(dfg["count"]) == sorted(dfg["count"], reverse=True)
    everyone = directly_follows_graph(store, sel)
    assert everyone["count"].sum() == 140
    with pytest.raises(UnknownGroupError, match="groups present"):
        directly_follows_graph(store, sel, group="fellow")

    dot = write_dfg(dfg, tmp_path / "expert.dot", title="Experts")
    text = dot.read_text()
    assert text.startswith("digraph dfg {") and text.rstrip().endswith("}")
    assert '"Br" -> "NL"' in text
    assert '"HeD" [label="HeD\\nHeart incl. Doppler"' in text
    payload = json.loads(write_dfg(dfg, tmp_path / "expert.json").read_text())
    assert {n["id"] for n in payload["nodes"]} == set(dfg["source"]) | set(dfg["target"])
    assert sum(e["count"] for e in payload["edges"]) == 70
    with pytest.raises(ValueError, match=r"\.dot, \.gv, \.json"):
        write_dfg(dfg, tmp_path / "expert.png")


