"""Decoding and clip sampling, checked frame by frame against indices burned into the video."""

from fractions import Fraction

import av
import numpy as np
import pytest

from inference.clips import (
    ClipRequest,
    clip_span_s,
    freeze_clip_bounds,
    sample_clips,
    subclip_starts,
    window_centres,
    window_times,
)
from inference.decode import DecodeError, FrameRing, iter_frames, probe
from inference.streams import STREAMS

BITS = 12
SIZE = (192, 64)  # width, height: 12 blocks of 16 px carry the frame index


def burn(index: int) -> np.ndarray:
    """A frame whose 12 blocks show the bits of `index` (robust to H.264 compression)."""
    image = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    for bit in range(BITS):
        if index >> bit & 1:
            image[:, bit * 16:(bit + 1) * 16] = 255
    return image


def read_index(image: np.ndarray) -> int:
    grey = image if image.ndim == 2 else image.mean(axis=2)
    return sum(1 << bit for bit in range(BITS) if grey[:, bit * 16 + 4:bit * 16 + 12].mean() > 128)


def write_video(path, times_s, *, faststart=True):
    """An H.264 MP4 with one frame at each of `times_s` (millisecond timestamps)."""
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)
        for index, t in enumerate(times_s):
            frame = av.VideoFrame.from_ndarray(burn(index), format="rgb24")
            frame.pts, frame.time_base = round(t * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    return {fps: write_video(folder / f"{fps}.mp4", np.arange(round(8 * fps)) / fps)
            for fps in (25, 30, 60)}


@pytest.mark.parametrize("fps", [25, 30, 60])
def test_every_frame_comes_once_in_order_with_its_timestamp(videos, fps):
    frames = list(iter_frames(videos[fps]))
    assert len(frames) == 8 * fps
    assert [read_index(f.image) for f in frames] == list(range(8 * fps))
    assert [f.index for f in frames] == list(range(8 * fps))
    np.testing.assert_allclose([f.t_s for f in frames], np.arange(8 * fps) / fps, atol=1e-3)
    assert probe(videos[fps]).fps == pytest.approx(fps, rel=0.01)  # a header estimate


def test_resize_and_colour_happen_in_the_decoder(videos):
    first = next(iter(iter_frames(videos[30], size=(96, 32), colour=True)))
    assert first.image.shape == (32, 96, 3) and first.image.dtype == np.uint8
    grey = next(iter(iter_frames(videos[30])))
    assert grey.image.shape == (SIZE[1], SIZE[0])


def test_variable_frame_rate_keeps_true_timestamps(tmp_path):
    rng = np.random.default_rng(0)
    times = np.round(np.cumsum(rng.uniform(0.02, 0.06, 120)), 3)
    frames = list(iter_frames(write_video(tmp_path / "vfr.mp4", times)))
    np.testing.assert_allclose([f.t_s for f in frames], times - times[0], atol=1e-3)
    assert [read_index(f.image) for f in frames] == list(range(120))


def test_an_empty_file_is_refused(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(DecodeError, match=r"empty.mp4: the file is empty \(0 bytes\); decoding "
                                          r"stopped before any frame"):
        list(iter_frames(empty))


def test_a_truncated_file_yields_its_good_frames_then_names_the_last_good_time(videos, tmp_path):
    data = videos[30].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    decoded = []
    with pytest.raises(DecodeError) as error:
        for frame in iter_frames(cut):
            decoded.append(frame)
    assert 0 < len(decoded) < 240
    assert [read_index(f.image) for f in decoded] == list(range(len(decoded)))
    assert error.value.last_good_s == pytest.approx(decoded[-1].t_s)
    assert (f"cut.mp4: the file is truncated: its header says 8.000 s; decoding stopped after "
            f"{len(decoded)} frames (last good timestamp {decoded[-1].t_s:.3f} s)"
            ) in str(error.value)


def test_a_file_cut_before_its_index_cannot_be_opened(tmp_path):
    whole = write_video(tmp_path / "slow.mp4", np.arange(60) / 30, faststart=False)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[:2000])
    with pytest.raises(DecodeError, match=r"cut\.mp4: not a readable video"):
        probe(cut)


@pytest.mark.parametrize("fps", [25, 30, 60])
def test_clips_take_the_nearest_frame_to_each_time(videos, fps):
    freeze_s = 4.0
    start, end = freeze_clip_bounds(freeze_s)
    assert (start, end) == pytest.approx((4.0 - 10 / 3, 4.0 + 5 / 3))
    requests = [ClipRequest((stream, i), t0 + np.arange(12) * STREAMS[stream])
                for stream in STREAMS for i, t0 in enumerate(subclip_starts(start, end, stream))]
    clips = list(sample_clips(iter_frames(videos[fps]), requests, fps_hint=fps))
    assert len(clips) == len(requests)
    by_key = {r.key: r for r in requests}
    for clip in clips:
        wanted = by_key[clip.key].times_s
        expected = np.clip(np.round(wanted * fps), 0, 8 * fps - 1)
        np.testing.assert_array_equal(clip.frame_indices, expected)
        assert [read_index(image) for image in clip.images] == clip.frame_indices.tolist()
        np.testing.assert_allclose(clip.times_s, expected / fps, atol=1e-3)


def test_streams_are_the_papers_strides_at_30_fps(videos):
    requests = [ClipRequest(s, 2.0 + np.arange(12) * STREAMS[s]) for s in STREAMS]
    clips = {c.key: c for c in sample_clips(iter_frames(videos[30]), requests)}
    for stream, stride in (("fr2", 2), ("fr4", 4), ("fr8", 8)):
        assert np.diff(clips[stream].frame_indices).tolist() == [stride] * 11


def test_a_five_second_clip_yields_ten_unique_sub_clips_per_stream(videos):
    for stream in STREAMS:
        starts = subclip_starts(0.5, 5.5, stream)
        assert len(starts) == 10
        requests = [ClipRequest(i, t + np.arange(12) * STREAMS[stream])
                    for i, t in enumerate(starts)]
        clips = list(sample_clips(iter_frames(videos[30]), requests))
        assert len({tuple(c.frame_indices) for c in clips}) == 10
        assert all(c.times_s[0] >= 0.5 - 1 / 60 and c.times_s[-1] <= 5.5 + 1 / 60 for c in clips)
    assert len(subclip_starts(0, 1.0, "fr8")) == 1  # shorter than one clip: centred


def test_clips_before_the_start_and_after_the_end_take_the_edge_frames(videos):
    early = ClipRequest("early", -1.0 + np.arange(12) * 0.2)
    late = ClipRequest("late", 7.5 + np.arange(12) * 0.2)
    clips = {c.key: c for c in sample_clips(iter_frames(videos[30]), [late, early])}
    assert clips["early"].frame_indices[:5].tolist() == [0] * 5
    assert clips["late"].frame_indices[-5:].tolist() == [239] * 5


def test_dense_windows_cover_the_scan_and_fit_every_stream():
    centres = window_centres(60.0, 1.0)
    half = clip_span_s("fr8") / 2
    assert centres[0] == pytest.approx(half) and centres[-1] <= 60 - half
    np.testing.assert_allclose(np.diff(centres), 1.0)
    times = window_times(centres, "fr4")
    assert times.shape == (len(centres), 12)
    np.testing.assert_allclose(times.mean(axis=1), centres)
    with pytest.raises(ValueError, match="unknown stream 'fr3'; valid streams: fr2, fr4, fr8"):
        window_times(1.0, "fr3")


def test_the_ring_refuses_times_it_has_forgotten(videos):
    ring = FrameRing(10, (SIZE[1], SIZE[0]))
    for frame in iter_frames(videos[30]):
        ring.push(frame)
        if frame.index == 9:  # full, nothing forgotten: earlier times take the first frame
            assert ring.gather(np.array([-1.0]))[1].tolist() == [0]
        if frame.index == 50:
            break
    images, indices = ring.gather(np.array([frame.t_s - 0.1]))
    assert indices.tolist() == [47] and read_index(images[0]) == 47
    with pytest.raises(ValueError, match="older than the oldest frame kept"):
        ring.nearest(np.array([0.5]))


def write_dicom(path, n_frames, frame_time_ms):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, UltrasoundMultiFrameImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundMultiFrameImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.Rows, ds.Columns = SIZE[1], SIZE[0]
    ds.NumberOfFrames, ds.FrameTime = n_frames, frame_time_ms
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.stack([burn(i)[..., 0] for i in range(n_frames)]).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_cine_loops_decode_with_their_frame_time(tmp_path):
    path = write_dicom(tmp_path / "cine.dcm", 40, 40.0)  # 25 fps
    info = probe(path)
    assert (info.codec, info.fps, info.n_frames_header, info.width) == ("dicom", 25.0, 40, 192)
    frames = list(iter_frames(path))
    assert [read_index(f.image) for f in frames] == list(range(40))
    np.testing.assert_allclose([f.t_s for f in frames], np.arange(40) / 25)
    clip = next(sample_clips(frames, [ClipRequest("c", np.arange(12) * STREAMS["fr4"])]))
    assert clip.frame_indices.tolist() == np.round(np.arange(12) * 2 / 15 * 25).astype(int).tolist()


def test_step_decimates_the_luma_plane(videos):
    full = next(iter(iter_frames(videos[30])))
    half = next(iter(iter_frames(videos[30], step=2)))
    np.testing.assert_array_equal(half.image, full.image[::2, ::2])
    with pytest.raises(ValueError, match="only decimates greyscale frames without size"):
        next(iter(iter_frames(videos[30], step=2, colour=True)))
