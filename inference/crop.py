"""The frames models see: each screen frame cropped to the scan's image area and resized square.

Datasets (`inference.dataset`) and labelling (`inference.labelling`) cut clips from frames
prepared alike, so a model sees at labelling time what it saw in training: the image area is
detected once per video from its first `ROI_SAMPLE_S` seconds (`video_image_area`), and every
frame is cropped to it and resized to S x S pixels (or a model's height x width) with area
interpolation (`cropped_frame`).
Nothing here imports TensorFlow or Keras.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from inference.decode import Frame, sample_frames
from inference.roi import ImageArea, detect_image_area_from_frames

__all__ = ["ROI_SAMPLE_S", "cropped_frame", "cropped_frames", "video_image_area"]

#: Seconds of video, from its start, from which the image area is detected.
ROI_SAMPLE_S = 10.0


def video_image_area(video: str | Path) -> ImageArea:
    """The image area of a video, detected from its first `ROI_SAMPLE_S` seconds.

    Parameters
    ----------
    video : str or Path
        Any video `inference.decode` reads.

    Returns
    -------
    ImageArea
        In pixels of the video's frames.

    Raises
    ------
    inference.decode.DecodeError
        The video cannot be read.
    ValueError
        No image area is found (`inference.roi.detect_image_area_from_frames`).
    """
    return detect_image_area_from_frames(sample_frames(video, seconds=ROI_SAMPLE_S))


def cropped_frame(image: np.ndarray, area: ImageArea, size: int | tuple[int, int]) -> np.ndarray:
    """One frame cropped to `area` and resized to `size`.

    Parameters
    ----------
    image : (H, W[, C]) uint8 ndarray
        A screen frame that contains `area`.
    area : ImageArea
    size : int or (int, int)
        Side of a square output, or ``(height, width)`` (height first, unlike OpenCV), pixels.

    Returns
    -------
    (height, width[, C]) uint8 ndarray
        Area interpolation, also when enlarging (unlike `inference.roi.crop_and_resize`).
    """
    height, width = (size, size) if isinstance(size, int) else size
    return cv2.resize(area.crop(image), (width, height), interpolation=cv2.INTER_AREA)


def cropped_frames(frames: Iterator[Frame], area: ImageArea, size: int) -> Iterator[Frame]:
    """Frames cropped to `area` and resized to `size` x `size` (`cropped_frame`), lazily.

    Index and timestamp of each frame are kept.
    """
    for frame in frames:
        yield Frame(frame.index, frame.t_s, cropped_frame(frame.image, area, size))
