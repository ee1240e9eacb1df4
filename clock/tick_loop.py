"""The tick loop: absolute deadlines, late-tick accounting, catch-up.

Tick n covers [start + n*tick, start + (n+1)*tick). Its input is complete at
the end of that interval, so the loop wakes at start + (n+1)*tick, runs the
step, and the step's result must be ready before the next wake-up,
start + (n+2)*tick. A step that finishes after that is *late*: it is counted,
and the next step runs at once (catch-up) instead of sleeping, so the loop
never drifts and never drops a tick. Deadlines are computed from the start
time, never by sleeping one tick after the last wake-up, so errors do not
accumulate.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from clock.clocks import Clock
from clock.stats import TickStats


class TickLoop:
    def __init__(self, clock: Clock, tick_s: float, start: float | None = None):
        self.clock = clock
        self.tick_s = tick_s
        self.start = clock.now() if start is None else start
        self.next_tick = 0
        self.stats = TickStats()

    def wake_time(self, n: int) -> float:
        """When tick n's input is complete and its step may run."""
        return self.start + (n + 1) * self.tick_s

    def deadline(self, n: int) -> float:
        """When tick n's result must be ready (the next tick's wake time)."""
        return self.wake_time(n + 1)

    def run_one(self, step: Callable[[int], None]) -> None:
        """Wait for the next tick (unless behind), run it, account for its timing."""
        n = self.next_tick
        self.clock.sleep_until(self.wake_time(n))
        began = time.perf_counter()
        step(n)
        compute_ms = (time.perf_counter() - began) * 1000.0
        self.stats.record(compute_ms, late=self.clock.now() > self.deadline(n))
        self.next_tick = n + 1

    def run(self, step: Callable[[int], None], n_ticks: int | None = None, stop: Callable[[], bool] = lambda: False) -> None:
        """Run ticks until n_ticks have run (None: forever) or stop() says so."""
        end = None if n_ticks is None else self.next_tick + n_ticks
        while (end is None or self.next_tick < end) and not stop():
            self.run_one(step)
