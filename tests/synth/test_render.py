"""The scan simulator's video, checked on the decoded MP4 (PyAV), not on the renderer's internals.

Videos are tiny (160x120 or 320x240, 14-30 s), so the whole file runs in seconds.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import av
import numpy as np
import pytest

from fetal_analytics import taxonomy
from fetal_analytics.synth import simulate_cohort
from fetal_analytics.synth.render import (
    RenderedVideo,
    ScreenConfig,
    class_gallery,
    contact_sheet,
    field_boxes,
    image_area,
    indicator_box,
    render_scan,
)
from fetal_analytics.synth.workflow import Event, Freeze, ScanTimeline

FPS = 30.0
WHEN = datetime(2024, 3, 4, 10, 15, 0)
# Codec noise: once the encoder has settled (~1/3 s into a freeze), consecutive decoded frames
# of a frozen image differ (mean absolute grey-level difference in the image area) by less than
# FROZEN in the median pair, and by less than NOISE in every pair (a keyframe, every 250 frames,
# requantises the image once: up to ~1.5).
FROZEN = 0.25
NOISE = 2.0
# A live image changes by more than this between almost all consecutive frames; never for
# 0.5 s in a row by less.
LIVE = 1.0


def handmade() -> ScanTimeline:
    """Bk, a long heart event with a 1.4 s freeze, a brain event with a measured freeze, Bk."""
    events = (Event("Bk", 0.0, 1.0), Event("HeD", 1.0, 9.0), Event("Br", 9.0, 13.0),
              Event("Bk", 13.0, 14.0))
    freezes = (Freeze(7.0, 8.4, "HeD", False), Freeze(10.6, 11.8, "Br", True))
    return ScanTimeline("HAND01", "OP01", 14.0, events, freezes)


def decode(path: Path) -> np.ndarray:
    """All frames, grey: (n, H, W) int16."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="gray") for f in container.decode(video=0)]
                        ).astype(np.int16)


def crop(frames: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    top, bottom, left, right = box
    return frames[:, top:bottom, left:right]


def frozen_mask(scan: ScanTimeline, n: int, fps: float = FPS) -> np.ndarray:
    t = np.arange(n) / fps
    mask = np.zeros(n, bool)
    for f in scan.freezes:
        mask |= (t >= f.start_s) & (t < f.end_s)
    return mask


def changes(frames: np.ndarray) -> np.ndarray:
    """Mean absolute difference between consecutive frames: (n - 1,)."""
    return np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("render")


@pytest.fixture(scope="module")
def cohort():
    return simulate_cohort(scans=2, operators=2, minutes=0.5, seed=11)


@pytest.fixture(scope="module")
def cohort_videos(cohort, folder):
    """Both scans of the cohort at 160x120, with the frames each progress call reported."""
    out = []
    for scan, when in zip(cohort.scans, cohort.acquired_at, strict=True):
        reported: list[int] = []
        video = render_scan(scan, folder / f"{scan.scan_id}.mp4", acquired_at=when,
                            size=(160, 120), seed=11, progress=reported.append)
        out.append((scan, video, decode(video.path), reported))
    return out


@pytest.fixture(scope="module")
def hand_video(folder):
    scan = handmade()
    video = render_scan(scan, folder / "hand.mp4", acquired_at=WHEN, size=(320, 240), seed=5)
    return scan, video, decode(video.path)


def test_the_video_has_one_frame_per_frame_interval_and_reports_progress(cohort_videos):
    for scan, video, frames, reported in cohort_videos:
        assert isinstance(video, RenderedVideo)
        assert video.n_frames == round(scan.duration_s * FPS)
        assert abs(len(frames) - video.n_frames) <= 1
        assert (video.width, video.height) == (160, 120) and frames.shape[1:] == (120, 160)
        assert sum(reported) == video.n_frames
        assert max(reported) <= 31 and len(reported) >= scan.duration_s - 1


def test_other_frame_rates_keep_the_duration(folder):
    scan = ScanTimeline("FR01", "OP01", 3.3, (Event("Sp", 0.0, 3.3),), ())
    video = render_scan(scan, folder / "fr.mp4", acquired_at=WHEN, fps=25.0, size=(160, 120))
    assert video.n_frames == round(3.3 * 25) == len(decode(video.path))
    with av.open(str(video.path)) as container:
        assert float(container.streams.video[0].average_rate) == pytest.approx(25.0)


def test_frozen_spans_are_static_and_show_the_indicator(cohort_videos, hand_video):
    scans = [(s, v, f) for s, v, f, _ in cohort_videos] + [hand_video]
    n_freezes = 0
    for scan, video, frames in scans:
        size = (video.width, video.height)
        area = changes(crop(frames, image_area(size)))
        indicator = crop(frames, indicator_box(size)).astype(float)
        frozen = frozen_mask(scan, len(frames))
        live_look = np.median(indicator[~frozen], axis=0)
        away = np.abs(indicator - live_look).mean(axis=(1, 2))
        t = np.arange(len(frames)) / FPS
        for freeze in scan.freezes:
            n_freezes += 1
            inside = np.flatnonzero((t >= freeze.start_s) & (t < freeze.end_s))
            settled = area[inside[10]:inside[-1]]  # pairs within the freeze, after 1/3 s
            assert np.median(settled) < FROZEN and settled.max() < NOISE, (
                scan.scan_id, freeze, settled)
            # the indicator is on in every frozen frame
            assert away[inside].min() > 8, (scan.scan_id, freeze, away[inside].min())
        # ... and off in every live frame
        assert away[~frozen].max() < 3
    assert n_freezes >= 3


def test_the_live_image_never_stands_still_for_half_a_second(cohort_videos, hand_video):
    scans = [(s, v, f) for s, v, f, _ in cohort_videos] + [hand_video]
    for scan, video, frames in scans:
        area = changes(crop(frames, image_area((video.width, video.height))))
        frozen = frozen_mask(scan, len(frames))
        live_pairs = ~frozen[1:] & ~frozen[:-1]
        still = live_pairs & (area < LIVE)
        longest, run = 0, 0
        for value in still:
            run = run + 1 if value else 0
            longest = max(longest, run)
        assert longest < round(0.5 * FPS) - 1, (scan.scan_id, longest)
        # frozen pairs change far less than live ones
        frozen_pairs = frozen[1:] & frozen[:-1]
        if frozen_pairs.any():
            assert np.median(area[live_pairs]) > 5 * np.median(area[frozen_pairs])


def test_the_clock_ticks_during_a_freeze(hand_video):
    scan, video, frames = hand_video
    freeze = scan.freezes[0]
    assert freeze.end_s - freeze.start_s > 1.2
    clock = crop(frames, field_boxes((video.width, video.height))["clock"])
    t = np.arange(len(frames)) / FPS
    inside = clock[(t >= freeze.start_s) & (t < freeze.end_s)]
    ticks = changes(inside) > 2
    assert 1 <= ticks.sum() <= 3  # one change per second of the span
    image = crop(frames, image_area((video.width, video.height)))
    assert np.median(changes(image[(t >= freeze.start_s) & (t < freeze.end_s)])) < FROZEN


def test_the_same_seed_gives_the_same_frames_and_another_seed_others(folder, cohort,
                                                                     cohort_videos):
    scan, _video, frames, _ = cohort_videos[0]
    again = render_scan(scan, folder / "again.mp4", acquired_at=cohort.acquired_at[0],
                        size=(160, 120), seed=11)
    assert np.array_equal(decode(again.path), frames)
    other = render_scan(scan, folder / "other.mp4", acquired_at=cohort.acquired_at[0],
                        size=(160, 120), seed=12)
    other_frames = decode(other.path)
    area = image_area((160, 120))
    assert np.abs(crop(other_frames, area) - crop(frames, area)).mean() > 5


def test_classes_look_different_and_the_heart_beats_at_2_to_2_5_hz(hand_video):
    _scan, video, frames = hand_video
    image = crop(frames, image_area((video.width, video.height))).astype(float)
    t = np.arange(len(frames)) / FPS
    heart = (t >= 2.0) & (t < 7.0)
    brain = (t >= 9.9) & (t < 10.6)
    mean_heart = image[heart].mean(axis=0)
    mean_brain = image[brain].mean(axis=0)
    first_half = image[(t >= 2.0) & (t < 4.5)].mean(axis=0)
    second_half = image[(t >= 4.5) & (t < 7.0)].mean(axis=0)
    between = np.abs(mean_heart - mean_brain).mean()
    within = np.abs(first_half - second_half).mean()
    assert between > 2 * within and between > 5, (between, within)
    # the heart region (the middle of the image): periodic at the heart rate
    h, w = image.shape[1:]
    region = image[heart, int(0.45 * h):int(0.75 * h), int(0.38 * w):int(0.62 * w)]
    signal = region.mean(axis=(1, 2))
    signal = signal - np.polyval(np.polyfit(np.arange(signal.size), signal, 2),
                                 np.arange(signal.size))
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(signal.size)))
    freqs = np.fft.rfftfreq(signal.size, 1 / FPS)
    band = freqs >= 0.8
    peak = freqs[band][np.argmax(spectrum[band])]
    assert 1.8 <= peak <= 2.7, peak


def test_the_calipers_appear_only_on_measured_freezes(hand_video):
    scan, video, frames = hand_video
    image = crop(frames, image_area((video.width, video.height)))
    t = np.arange(len(frames)) / FPS
    measured = next(f for f in scan.freezes if f.calipers)
    before = image[(t >= measured.start_s - 0.2) & (t < measured.start_s)].astype(float)
    during = image[(t >= measured.start_s + 0.4) & (t < measured.end_s)].astype(float)
    # the measurement box (bright text on black) at the bottom right of the image area
    h, w = image.shape[1:]
    corner = (slice(int(0.8 * h), h), slice(int(0.55 * w), w))
    assert during[:, corner[0], corner[1]].std() > before[:, corner[0], corner[1]].std() + 5


def test_another_screen_preset_moves_the_indicator(folder):
    compact = ScreenConfig.preset("compact")
    assert compact.indicator_text == "FRZ"
    size = (160, 120)
    assert indicator_box(size, compact) != indicator_box(size)
    scan = ScanTimeline("CMP01", "OP01", 4.0, (Event("Br", 0.0, 4.0),),
                        (Freeze(1.5, 3.0, "Br", False),))
    video = render_scan(scan, folder / "compact.mp4", acquired_at=WHEN, size=size, screen=compact)
    frames = decode(video.path)
    box = crop(frames, indicator_box(size, compact)).astype(float)
    t = np.arange(len(frames)) / FPS
    on, off = (t >= 1.6) & (t < 3.0), (t < 1.5) | (t >= 3.0)
    assert np.abs(box[on].mean(axis=0) - box[off].mean(axis=0)).mean() > 8


@pytest.mark.parametrize("name", ["voluson", "compact"])
def test_the_screen_furniture_stays_out_of_the_image_area(name):
    screen = ScreenConfig.preset(name)
    for size in ((160, 120), (640, 480), (1280, 720)):
        boxes = field_boxes(size, screen)
        top, bottom, left, right = boxes.pop("image")
        assert 0 <= top < bottom <= size[1] and 0 <= left < right <= size[0]
        for field, (t, b, lft, rgt) in boxes.items():
            overlap = t < bottom and top < b and lft < right and left < rgt
            assert not overlap, (name, size, field)


def test_unknown_presets_and_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="did you mean 'compact'"):
        ScreenConfig.preset("compakt")
    with pytest.raises(ValueError, match="outside the image area"):
        ScreenConfig(indicator=(0.5, 0.6, 0.5, 0.6))
    scan = handmade()
    with pytest.raises(ValueError, match="size must be even"):
        render_scan(scan, "x.mp4", acquired_at=WHEN, size=(161, 120))
    with pytest.raises(ValueError, match="fps must be"):
        render_scan(scan, "x.mp4", acquired_at=WHEN, fps=0)
    with pytest.raises(ValueError, match="seed must be"):
        render_scan(scan, "x.mp4", acquired_at=WHEN, seed=-1)


def test_the_gallery_has_one_frame_per_class_and_a_contact_sheet():
    frames = class_gallery(size=(160, 120))
    assert list(frames) == list(taxonomy.codes())
    for frame in frames.values():
        assert frame.shape == (120, 160, 3) and frame.dtype == np.uint8
    area = image_area((160, 120))
    looks = {code: crop(frame[None].mean(axis=3), area)[0] for code, frame in frames.items()}
    assert np.abs(looks["HeD"] - looks["Br"]).mean() > 5
    assert frames["3Dm"][..., 0].mean() > frames["3Dm"][..., 2].mean() + 10  # warm colours
    sheet = contact_sheet(frames, columns=5)
    assert sheet.shape[1] == 5 * 160 and sheet.shape[0] > 4 * 120
    assert list(class_gallery(size=(160, 120), codes=["Fm"])) == ["Fm"]


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract is not installed")
def test_the_frame_rate_field_is_readable_by_ocr():
    import pytesseract

    frame = class_gallery(size=(640, 480), codes=["Br"])["Br"]
    top, bottom, left, right = field_boxes((640, 480))["scan"]
    grey = 255 - frame[top:bottom, left:right].mean(axis=2).astype(np.uint8)
    big = np.kron(grey, np.ones((3, 3), np.uint8))
    text = pytesseract.image_to_string(big, config="--psm 7")
    assert "Hz" in text and "cm" in text, text
