"""Timing of per-tick steps for the model benches: median and p99 over repeated calls.

A step is timed as the runtime calls it: one tick after another, carrying its
state, after a warm-up so that caches and allocators are settled.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def time_steps(step: Callable[[], None], n: int = 300, warmup: int = 30) -> tuple[float, float]:
    """(median, p99) milliseconds of step() over n calls."""
    for _ in range(warmup):
        step()
    times = np.empty(n)
    for i in range(n):
        start = time.perf_counter()
        step()
        times[i] = time.perf_counter() - start
    return float(np.median(times) * 1e3), float(np.percentile(times, 99) * 1e3)
