"""A simulated cohort: operators, scans with ground truth, manual labels, and its files.

Randomness is derived per operator and per scan from the seed (``SeedSequence(seed,
spawn_key=...)``), so a scan is the same whatever the number of scans simulated with it.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fetal_analytics.synth.config import WorkflowConfig, default_config
from fetal_analytics.synth.workflow import (
    Operator,
    ScanTimeline,
    excerpt,
    make_operator,
    simulate_scan,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Cohort", "manual_label_clips", "simulate_cohort", "write_cohort"]

_FIRST_DAY = datetime(2024, 1, 8, 9, 0)


def _rng(seed: int, kind: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(kind, index)))


def manual_label_clips(scan: ScanTimeline, *, config: WorkflowConfig) -> list[tuple[float, float,
                                                                                   str]]:
    """The paper's manual labels of a scan: one clip per freeze, labelled with the frozen class.

    Each clip lasts `config.clip_s` (5 s), two thirds before the freeze onset and one third
    after, cut to the scan; clips of successive freezes never overlap (the model keeps freeze
    onsets a clip apart).

    Returns
    -------
    list of (start_s, end_s, label)
    """
    before = config.clip_s * config.clip_before_fraction
    return [
        (max(0.0, round(f.start_s - before, 3)),
         min(scan.duration_s, round(f.start_s + config.clip_s - before, 3)),
         f.label)
        for f in scan.freezes
    ]


@dataclass(frozen=True)
class Cohort:
    """A simulated cohort and its ground truth.

    Attributes
    ----------
    operators : tuple of Operator
    scans : tuple of ScanTimeline
    acquired_at : tuple of datetime
        When each scan was made (one per working day).
    fps : float
    manual_scan_ids : frozenset of str
        The scans that have manual labels.
    config : WorkflowConfig
    """

    operators: tuple[Operator, ...]
    scans: tuple[ScanTimeline, ...]
    acquired_at: tuple[datetime, ...]
    fps: float
    manual_scan_ids: frozenset[str]
    config: WorkflowConfig

    def manifest(self, video_paths: dict[str, str] | None = None) -> pd.DataFrame:
        """The manifest in the columns `ingest manifest` reads."""
        import pandas as pd

        by_id = {o.operator_id: o for o in self.operators}
        return pd.DataFrame([{
            "scan_id": s.scan_id, "operator_id": s.operator_id,
            "group": by_id[s.operator_id].group,
            "acquired_at": when.isoformat(timespec="minutes"),
            "video_path": (video_paths or {}).get(s.scan_id, ""), "fps": self.fps,
            "years_experience": by_id[s.operator_id].years_experience,
        } for s, when in zip(self.scans, self.acquired_at, strict=True)])

    def events(self) -> pd.DataFrame:
        """The full ground-truth timelines: scan_id, start_s, end_s, label."""
        import pandas as pd

        return pd.DataFrame(
            [(s.scan_id, e.start_s, e.end_s, e.label) for s in self.scans for e in s.events],
            columns=["scan_id", "start_s", "end_s", "label"])

    def freezes(self) -> pd.DataFrame:
        """The frozen spans: scan_id, start_s, end_s, calipers."""
        import pandas as pd

        return pd.DataFrame(
            [(s.scan_id, f.start_s, f.end_s, f.calipers) for s in self.scans for f in s.freezes],
            columns=["scan_id", "start_s", "end_s", "calipers"])

    def manual_labels(self) -> pd.DataFrame:
        """Freeze-centred 5 s clips of the scans chosen for manual labelling."""
        import pandas as pd

        return pd.DataFrame(
            [(s.scan_id, *clip) for s in self.scans if s.scan_id in self.manual_scan_ids
             for clip in manual_label_clips(s, config=self.config)],
            columns=["scan_id", "start_s", "end_s", "label"])



def simulate_cohort(*, scans: int = 4, operators: int = 2, minutes: float | None = None,
                    seed: int = 0, fps: float = 30.0, manual_fraction: float = 1.0,
                    config: WorkflowConfig | None = None,
                    excerpt_minutes: float | None = None) -> Cohort:
    """Simulate the workflow of a cohort of scans (no video; see `render` for that).

    Parameters
    ----------
    scans : int
        Number of scans; scan ``i`` is made by operator ``i % operators``.
    operators : int
        Number of operators, alternately of each group of `config` (expert, trainee, ...).
    minutes : float, optional
        Length of every scan; default: drawn from the workflow model (about 25-45 min).
    seed : int
        Everything is a deterministic function of the seed.
    fps : float
        Frame rate written to the manifest.
    manual_fraction : float
        Share of scans, chosen at random, that get manual labels.
    config : WorkflowConfig, optional
        Default: `default_config()`.
    excerpt_minutes : float, optional
        Keep a random excerpt of this length from each natural-length scan (its start drawn
        from the seed): short videos with realistic event durations, e.g. for training data.
        Exclusive with `minutes`.
    """
    if minutes is not None and excerpt_minutes is not None:
        raise ValueError("give `minutes` or `excerpt_minutes`, not both")
    if excerpt_minutes is not None and excerpt_minutes <= 0:
        raise ValueError(f"excerpt_minutes must be positive, got {excerpt_minutes}")
    if scans < 1 or operators < 1:
        raise ValueError("scans and operators must be at least 1")
    if not 0 <= manual_fraction <= 1:
        raise ValueError(f"manual_fraction must be in [0, 1], got {manual_fraction}")
    if minutes is not None and minutes <= 0:
        raise ValueError(f"minutes must be positive, got {minutes}")
    config = config or default_config()
    groups = list(config.groups)
    width = max(2, len(str(operators)))
    people = tuple(
        make_operator(f"OP{k + 1:0{width}d}", groups[k % len(groups)], config=config,
                      rng=_rng(seed, 0, k))
        for k in range(operators))
    width = max(4, len(str(scans)))
    timelines = tuple(
        simulate_scan(f"SIM{i + 1:0{width}d}", people[i % operators], config=config,
                      rng=_rng(seed, 1, i), minutes=minutes)
        for i in range(scans))
    if excerpt_minutes is not None:
        length = excerpt_minutes * 60.0
        timelines = tuple(
            excerpt(t, float(_rng(seed, 3, i).uniform(0, max(0.0, t.duration_s - length))),
                    length)
            for i, t in enumerate(timelines))
    acquired = tuple(_FIRST_DAY + timedelta(days=i // 4, hours=2 * (i % 4)) for i in range(scans))
    chosen = _rng(seed, 2, 0).permutation(scans)[: round(manual_fraction * scans)]
    return Cohort(people, timelines, acquired, fps,
                  frozenset(timelines[i].scan_id for i in chosen), config)


def write_cohort(cohort: Cohort, out: str | Path, *, video: bool = True,
                 size: tuple[int, int] = (640, 480), seed: int = 0,
                 on_scan: Callable[[ScanTimeline], Callable[[int], None] | None] | None = None,
                 jobs: int = 1) -> Path:
    """Write a cohort in the formats `ingest` reads, with a video per scan unless `video` is False.

    Files under `out`: ``manifest.csv`` (video paths relative to `out`), ``manual_labels.csv``,
    ``truth/events.csv`` (the full timelines), ``truth/freezes.csv`` (scan_id, start_s, end_s,
    calipers) and ``videos/<scan_id>.mp4`` (H.264). The CSVs are written last, so a manifest
    never names a video that is not there.

    Parameters
    ----------
    cohort : Cohort
    out : str or Path
        Folder, created if missing; existing files of the same names are replaced.
    video : bool
        Render and encode the scans' screen videos.
    size : (width, height)
        Video frame size in pixels.
    seed : int
        Seed of the rendering (speckle, probe motion).
    on_scan : callable, optional
        Called with each scan before it is rendered; may return a callable that receives the
        number of frames rendered since its last call (for progress bars). With ``jobs > 1``
        it is called as each scan is finished instead, and what it returns is not used.
    jobs : int
        Scans rendered at once, each in its own process (pixels do not depend on it: a scan's
        frames are a function of its id and `seed`).
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    out = Path(out)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    video_paths: dict[str, str] = {}
    if video:
        from fetal_analytics.synth.render import render_scan

        (out / "videos").mkdir(exist_ok=True)
        video_paths = {scan.scan_id: f"videos/{scan.scan_id}.mp4" for scan in cohort.scans}
        work = zip(cohort.scans, cohort.acquired_at, strict=True)
        if jobs == 1:
            for scan, when in work:
                progress = on_scan(scan) if on_scan else None
                render_scan(scan, out / video_paths[scan.scan_id], acquired_at=when,
                            fps=cohort.fps, size=size, seed=seed, progress=progress)
        else:
            _render_in_processes(work, out, video_paths, fps=cohort.fps, size=size, seed=seed,
                                 on_scan=on_scan, jobs=jobs)
    elif on_scan:
        for scan in cohort.scans:
            on_scan(scan)
    cohort.manifest(video_paths).to_csv(out / "manifest.csv", index=False)
    cohort.manual_labels().to_csv(out / "manual_labels.csv", index=False)
    cohort.events().to_csv(out / "truth" / "events.csv", index=False)
    cohort.freezes().to_csv(out / "truth" / "freezes.csv", index=False)
    return out


def _render_in_processes(work: Iterable[tuple[ScanTimeline, datetime]], out: Path,
                         video_paths: dict[str, str], *, fps: float, size: tuple[int, int],
                         seed: int, on_scan: Callable[[ScanTimeline], object] | None,
                         jobs: int) -> None:
    """Render scans `jobs` at a time in spawned processes (the caller may hold threads)."""
    from fetal_analytics.synth.render import render_scan

    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending = {pool.submit(render_scan, scan, out / video_paths[scan.scan_id],
                               acquired_at=when, fps=fps, size=size, seed=seed): scan
                   for scan, when in work}
        try:
            for future in as_completed(pending):
                future.result()
                if on_scan:
                    on_scan(pending[future])
        except BaseException:
            # A failed scan (or Ctrl-C) stops the cohort: do not render the scans still queued.
            pool.shutdown(cancel_futures=True)
            raise
