"""De-identified frames, stills and screen recordings: everything outside the image area black.

Burned-in screen text (names, ids, dates of birth on real scanners) can identify patients; the
image area detected by `inference.roi` is all that analysis needs. Use this before frames leave
the site or are shown to anyone: `deidentify_frame` for one frame (e.g. a preview), and
`deidentify_file` for a whole still or video. Nothing here imports TensorFlow or Keras.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import numpy as np

from fetal_analytics.tabular import OutputFormatError
from inference.crop import video_image_area
from inference.decode import (
    STILL_SUFFIXES,
    frame_at,
    iter_frames,
    load_still,
    probe,
    sample_frames,
)
from inference.roi import ImageArea, detect_image_area, detect_image_area_from_frames

__all__ = ["VIDEO_OUT_SUFFIXES", "check_output", "deidentify_file", "deidentify_frame",
           "preview_frame"]

VIDEO_OUT_SUFFIXES = (".mp4",)
"""Suffixes of a de-identified video (H.264 in MP4)."""

log = logging.getLogger(__name__)


def deidentify_frame(frame: np.ndarray, area: ImageArea) -> np.ndarray:
    """Black out everything outside the image area (burned-in text can identify patients).

    Parameters
    ----------
    frame : (H, W[, C]) ndarray
        A screen frame.
    area : ImageArea
        The box to keep.

    Returns
    -------
    ndarray
        A new array of `frame`'s shape and dtype: `area` unchanged, zeros elsewhere.
    """
    frame = np.asarray(frame)
    out = np.zeros_like(frame)
    inside = area.crop(frame)
    out[area.y0 : area.y1, area.x0 : area.x1] = inside
    return out


def check_output(source: str | Path, out: str | Path) -> None:
    """Check that `out` can hold the de-identified copy of `source`, before any work.

    A still goes to a still suffix (`inference.decode.STILL_SUFFIXES`), a video to
    `VIDEO_OUT_SUFFIXES`, and never onto the source itself.

    Raises
    ------
    OutputFormatError
        `out` is the source, or its suffix does not suit the source; the message says which
        suffixes do.
    """
    source, out = Path(source), Path(out)
    if out.resolve() == source.resolve():
        raise OutputFormatError(f"{out} is the source: write the de-identified copy to another "
                                f"file, so the original stays")
    still = source.suffix.lower() in STILL_SUFFIXES
    valid = sorted(STILL_SUFFIXES) if still else VIDEO_OUT_SUFFIXES
    if out.suffix.lower() not in valid:
        raise OutputFormatError(
            f"{out}: a {'still' if still else 'video'} is written as "
            f"{'an image' if still else 'H.264 MP4'}; use one of {', '.join(valid)}")


def preview_frame(video: str | Path, t_s: float) -> tuple[np.ndarray, float]:
    """The de-identified frame of a video at a time, in colour, for showing to people.

    Parameters
    ----------
    video : str or Path
        Any video `inference.decode` reads.
    t_s : float
        Seconds from the start of the video.

    Returns
    -------
    (image, t_s) : ((H, W, 3) uint8 ndarray, float)
        The frame shown at `t_s` (see `inference.decode.frame_at`) with everything outside the
        video's image area (detected from its first seconds) black, and the frame's own time.

    Raises
    ------
    inference.decode.DecodeError
        The video cannot be read.
    ValueError
        No image area is found.
    """
    frame = frame_at(video, t_s, colour=True)
    return deidentify_frame(frame.image, video_image_area(video)), frame.t_s


def deidentify_file(source: str | Path, out: str | Path) -> ImageArea:
    """Write a copy of a still or video with everything outside the image area blacked out.

    Parameters
    ----------
    source : str or Path
        A still (PNG, JPEG, TIFF, BMP) or a video.
    out : str or Path
        The copy: a still is written in the format of its suffix; a video as H.264 MP4.

    Returns
    -------
    ImageArea
        The area kept (from the still, or from the video's first 10 seconds).

    Raises
    ------
    OutputFormatError
        `out` is the source or has a suffix that does not suit it (`check_output`).
    DecodeError
        `source` cannot be read.
    ValueError
        No image area is found.
    """
    import av
    import cv2

    source, out = Path(source), Path(out)
    check_output(source, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if source.suffix.lower() in STILL_SUFFIXES:
        still = load_still(source)
        area = detect_image_area(still)
        bgr = cv2.cvtColor(deidentify_frame(still, area), cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(out), bgr):
            raise ValueError(f"{out}: cannot write an image with this suffix")
        return area
    area = detect_image_area_from_frames(sample_frames(source, colour=True))
    rate = Fraction(probe(source).fps).limit_denominator(1001)
    partial = out.with_name(out.name + ".part")
    try:
        with av.open(str(partial), "w", format="mp4",
                     options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=rate,
                                          options={"preset": "veryfast", "crf": "18"})
            stream.pix_fmt = "yuv420p"
            stream.time_base = Fraction(1, 1000)
            for index, frame in enumerate(iter_frames(source, colour=True)):
                if index == 0:
                    stream.height, stream.width = frame.image.shape[:2]
                video = av.VideoFrame.from_ndarray(deidentify_frame(frame.image, area),
                                                   format="rgb24")
                video.pts, video.time_base = round(frame.t_s * 1000), Fraction(1, 1000)
                container.mux(stream.encode(video))
            container.mux(stream.encode(None))
        partial.replace(out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    log.info("%s: kept %s, wrote %s", source, area.to_dict(), out)
    return area
