"""De-identified copies of screen recordings and stills: everything outside the image area black.

Burned-in screen text (names, ids, dates of birth on real scanners) can identify patients; the
image area detected by `inference.roi` is all that analysis needs. Use this before frames leave
the site or are shown to anyone.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

from inference.decode import STILL_SUFFIXES, iter_frames, load_still, probe, sample_frames
from inference.roi import (
    ImageArea,
    deidentify,
    detect_image_area,
    detect_image_area_from_frames,
)

__all__ = ["deidentify_file"]

log = logging.getLogger(__name__)


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
    DecodeError
        `source` cannot be read.
    ValueError
        No image area is found.
    """
    import av
    import cv2

    source, out = Path(source), Path(out)
    if out.resolve() == source.resolve():
        raise ValueError(f"{out}: write the de-identified copy to another file than the source")
    out.parent.mkdir(parents=True, exist_ok=True)
    if source.suffix.lower() in STILL_SUFFIXES:
        still = load_still(source)
        area = detect_image_area(still)
        if not cv2.imwrite(str(out), cv2.cvtColor(deidentify(still, area), cv2.COLOR_RGB2BGR)):
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
                video = av.VideoFrame.from_ndarray(deidentify(frame.image, area), format="rgb24")
                video.pts, video.time_base = round(frame.t_s * 1000), Fraction(1, 1000)
                container.mux(stream.encode(video))
            container.mux(stream.encode(None))
        partial.replace(out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    log.info("%s: kept %s, wrote %s", source, area.to_dict(), out)
    return area
