"""The analytics on a simulated cohort (events-only mode): the configured differences show."""

import pytest

from analytics.agreement import paper_correlation
from analytics.groups import compare_groups
from analytics.selection import select
from fetal_analytics.ingest import ingest_labels, ingest_manifest
from fetal_analytics.store import Store
from fetal_analytics.synth import simulate_cohort, write_cohort


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("simulated")
    out = write_cohort(simulate_cohort(scans=96, operators=24, seed=5), folder / "sim",
                       video=False)
    with Store(folder / "sim.duckdb") as store:
        ingest_manifest(store, out / "manifest.csv")
        ingest_labels(store, out / "manual_labels.csv")
        ingest_labels(store, out / "truth" / "events.csv", source="auto")
        yield store


def test_trainees_search_longer_and_revisit_more(store):
    result = compare_groups(store, select(store, source="auto"), groups=("expert", "trainee"))
    welch = result.table[result.table.test == "welch"].set_index("feature")
    for feature in ("bk_share", "n_revisits"):
        assert welch.loc[feature, "mean_trainee"] > welch.loc[feature, "mean_expert"]
        assert welch.loc[feature, "p_adjusted"] < 0.05, feature


def test_manual_clips_track_the_time_per_category(store):
    result = paper_correlation(store, select(store, source="manual"),
                               select(store, source="auto"))
    assert result.n_manual_scans == result.n_auto_scans == 96
    assert result.pearson_r > 0.7 and result.pearson_p < 0.05
