"""What the benchmark scripts share: best-of timing and printing their figures."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    """The smallest wall time of `repeat` calls of `fn` (seconds), and its last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def report(figures: dict[str, Any], *, as_json: bool) -> None:
    """Print the figures as one JSON object, or as aligned name/value lines."""
    if as_json:
        print(json.dumps(figures))
        return
    width = max(map(len, figures))
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
