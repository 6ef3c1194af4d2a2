"""The names of the input streams and of the fused stream: one definition, no heavy imports.

A clip stream is named after the paper's stride at 30 fps and defined by its spacing in seconds
(12 frames each 1/15, 2/15 or 4/15 s apart: FR/2, FR/4, FR/8), so any frame rate samples alike;
the 2D stream takes single frames. Datasets hold, models take, and labelling runs store window
probabilities of these streams; labelling also stores their late fusion under `FUSED`. The
command line builds its choice lists from these constants, so this module imports nothing.
"""

from __future__ import annotations

__all__ = ["FUSED", "INPUT_STREAMS", "STREAMS", "STREAM_2D", "WINDOW_PROB_STREAMS"]

STREAMS: dict[str, float] = {"fr2": 1 / 15, "fr4": 2 / 15, "fr8": 4 / 15}
"""Seconds between the sampled frames of each clip stream (the paper's strides at 30 fps)."""

STREAM_2D = "2d"
"""The stream of single frames (the frame nearest a window's centre)."""

INPUT_STREAMS: tuple[str, ...] = (*STREAMS, STREAM_2D)
"""Every stream a dataset can hold and a model can take: the clip streams, then ``2d``."""

FUSED = "fused"
"""The stream name of the late fusion of a model's streams (the mean of their softmax)."""

WINDOW_PROB_STREAMS: tuple[str, ...] = (FUSED, *INPUT_STREAMS)
"""Every stream a labelling run stores window probabilities of (``window_probs.stream``)."""
