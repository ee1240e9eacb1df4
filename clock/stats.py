"""Per-tick compute statistics: how long each tick's work took, and how many ticks were late."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np


@dataclass
class TickStats:
    """Counts over the whole run; percentiles over the most recent `window` ticks,
    so that a server running for days keeps constant memory."""

    window: int = 10_000
    ticks: int = 0
    late_ticks: int = 0
    compute_ms: deque = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.compute_ms = deque(maxlen=self.window)

    def record(self, compute_ms: float, late: bool) -> None:
        self.ticks += 1
        self.late_ticks += int(late)
        self.compute_ms.append(compute_ms)

    def percentile(self, q: float) -> float:
        return float(np.percentile(np.fromiter(self.compute_ms, float), q)) if self.compute_ms else 0.0

    def summary(self) -> dict:
        return {
            "ticks": self.ticks,
            "late_ticks": self.late_ticks,
            "compute_ms_p50": round(self.percentile(50), 3),
            "compute_ms_p99": round(self.percentile(99), 3),
        }
