"""Training augmentation, as the paper: one method drawn per clip, applied alike to every frame.

Methods: rotation within +-30 degrees, horizontal flip, vertical flip, Gaussian noise, shear up to
0.2. Applying the same transform to all frames keeps a clip's motion intact.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["METHODS", "augment_clip"]

METHODS = ("rotate", "hflip", "vflip", "noise", "shear")
MAX_ROTATION_DEG = 30.0
MAX_SHEAR = 0.2
NOISE_SD = 10.0  # grey levels


def augment_clip(clip: np.ndarray, rng: np.random.Generator, *,
                 method: str | None = None) -> np.ndarray:
    """Augment a clip with one randomly drawn method.

    Parameters
    ----------
    clip : ndarray
        (frames, H, W) or (frames, H, W, C) uint8; a single image is a clip of one frame.
    rng : numpy.random.Generator
    method : str, optional
        One of `METHODS`; drawn uniformly when None.

    Returns
    -------
    ndarray
        Same shape and dtype as `clip`.
    """
    method = method or METHODS[int(rng.integers(len(METHODS)))]
    if method == "hflip":
        return np.ascontiguousarray(clip[:, :, ::-1])
    if method == "vflip":
        return np.ascontiguousarray(clip[:, ::-1])
    if method == "noise":
        noisy = clip.astype(np.float32) + rng.normal(0.0, NOISE_SD, clip.shape[1:])
        return np.clip(noisy, 0, 255).astype(clip.dtype)
    height, width = clip.shape[1:3]
    centre = (width / 2, height / 2)
    if method == "rotate":
        matrix = cv2.getRotationMatrix2D(centre, float(rng.uniform(-MAX_ROTATION_DEG,
                                                                   MAX_ROTATION_DEG)), 1.0)
    elif method == "shear":
        shear = float(rng.uniform(-MAX_SHEAR, MAX_SHEAR))
        matrix = np.array([[1.0, shear, -shear * centre[1]], [0.0, 1.0, 0.0]])
    else:
        raise ValueError(f"unknown augmentation {method!r}; valid: {', '.join(METHODS)}")
    return np.stack([cv2.warpAffine(frame, matrix, (width, height), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT) for frame in clip])
