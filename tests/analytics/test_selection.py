"""Which events an analysis reads (`analytics.selection`): per scan, the newest finished run."""

from __future__ import annotations

import pandas as pd

from analytics.selection import select
from fetal_analytics.ingest import ingest_labels, ingest_manifest
from fetal_analytics.store import Store


def chosen(store: Store, **selection) -> dict[str, tuple[int, str]]:
    """{scan_id: (run_id, first label)} of a selection."""
    sel = select(store, **selection)
    sql, params = sel.cte()
    return {scan: (run, label) for scan, run, label in store.con.execute(
        f"WITH {sql} SELECT scan_id, any_value(run_id), arg_min(label, start_s) FROM sel "
        f"GROUP BY scan_id", params).fetchall()}


def test_a_run_replaced_under_its_name_becomes_the_newest_run_of_its_scans(tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("scan_id,operator_id,group\nS1,OP1,expert\nS2,OP2,trainee\n")

    def labels(name: str, rows: list[tuple[str, str]]):
        path = tmp_path / name
        pd.DataFrame([(scan, 0.0, 60.0, label) for scan, label in rows],
                     columns=["scan_id", "start_s", "end_s", "label"]).to_csv(path, index=False)
        return path

    with Store(tmp_path / "runs.duckdb") as store:
        ingest_manifest(store, manifest)
        ingest_labels(store, labels("a.csv", [("S1", "HeD"), ("S2", "HeD")]), run_name="a")
        ingest_labels(store, labels("b.csv", [("S1", "Br")]), run_name="b")
        assert chosen(store, source="manual") == {"S1": (2, "Br"), "S2": (1, "HeD")}
        # Run a is corrected and imported again under its name: it is now S1's newest run,
        # though run b has the higher id.
        result = ingest_labels(store, labels("a2.csv", [("S1", "Sp"), ("S2", "Fm")]),
                               run_name="a")
        assert (result.run_id, result.status) == (1, "replaced")
        assert chosen(store, source="manual") == {"S1": (1, "Sp"), "S2": (1, "Fm")}
        # A run that no longer labels a scan is no longer a run of it.
        ingest_labels(store, labels("a3.csv", [("S2", "Ab")]), run_name="a")
        assert chosen(store, source="manual") == {"S1": (2, "Br"), "S2": (1, "Ab")}
        assert chosen(store, run="a") == {"S2": (1, "Ab")}
