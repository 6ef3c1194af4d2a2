import json

import pandas as pd
import pytest
from click.testing import CliRunner

from fetal_analytics.cli import main


def invoke(*args, code=0):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def test_simulate_events_only_then_ingest_unchanged(tmp_path):
    out, db = tmp_path / "sim", tmp_path / "sim.duckdb"
    result = invoke("simulate", "--out", out, "--scans", 4, "--minutes", 2, "--seed", 1,
                    "--no-video")
    assert result.output.startswith(f"{out}: 4 scans by 2 operators, ")
    manifest = pd.read_csv(out / "manifest.csv")
    assert list(manifest.columns) == ["scan_id", "operator_id", "group", "acquired_at",
                                      "video_path", "fps", "years_experience"]
    assert manifest["group"].tolist() == ["expert", "trainee", "expert", "trainee"]
    invoke("ingest", "manifest", out / "manifest.csv", "--db", db)
    invoke("ingest", "labels", out / "manual_labels.csv", "--db", db)
    invoke("ingest", "labels", out / "truth" / "events.csv", "--db", db, "--source", "auto")
    info = json.loads(invoke("info", "--db", db, "--format", "json").output)
    assert (info["scans"], info["runs"]) == (4, 2)
    assert info["auto_events"] == len(pd.read_csv(out / "truth" / "events.csv"))


def test_simulate_is_deterministic_for_a_seed(tmp_path):
    for name in ("a", "b"):
        invoke("simulate", "--out", tmp_path / name, "--scans", 3, "--seed", 9, "--no-video")
    for file in ("manifest.csv", "manual_labels.csv", "truth/events.csv", "truth/freezes.csv"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()


def test_simulate_refuses_a_bad_size(tmp_path):
    result = invoke("simulate", "--out", tmp_path, "--size", "640by480", code=2)
    assert "expected WIDTHxHEIGHT such as 640x480, got '640by480'" in result.output


def test_simulate_jobs_render_the_same_videos_in_parallel(tmp_path):
    for name, jobs in (("serial", 1), ("parallel", 2)):
        invoke("simulate", "--out", tmp_path / name, "--scans", 3, "--minutes", 0.05,
               "--size", "96x72", "--seed", 4, "--jobs", jobs)
    serial = sorted((tmp_path / "serial" / "videos").glob("*.mp4"))
    assert [p.name for p in serial] == ["SIM0001.mp4", "SIM0002.mp4", "SIM0003.mp4"]
    for video in serial:
        assert video.read_bytes() == (tmp_path / "parallel" / "videos" / video.name).read_bytes()
    assert ((tmp_path / "serial" / "manifest.csv").read_bytes()
            == (tmp_path / "parallel" / "manifest.csv").read_bytes())
    assert not list((tmp_path / "parallel" / "videos").glob("*.part"))


def test_simulate_refuses_zero_jobs(tmp_path):
    result = invoke("simulate", "--out", tmp_path, "--jobs", 0, code=2)
    assert "--jobs" in result.output


def test_a_scan_that_fails_to_render_in_a_worker_stops_the_cohort(tmp_path):
    from fetal_analytics.synth import simulate_cohort, write_cohort

    cohort = simulate_cohort(scans=3, minutes=0.05, seed=4)
    with pytest.raises(ValueError, match="even"):
        write_cohort(cohort, tmp_path, size=(97, 72), jobs=2)
    assert not list((tmp_path / "videos").glob("*.mp4"))
    assert not (tmp_path / "manifest.csv").exists()
