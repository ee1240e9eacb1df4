"""Slow work off the tick loop, with honest timing on either clock.

An agent that must run something slower than a tick (ASR, TTS) hands it to an
`Offloader` and polls for the result on later ticks, so its ticks keep time.

- Wall clock: the job runs on a worker thread; its result is there from the
  first tick after it finishes.
- Virtual clock: nothing waits for real time, so the job runs to completion at
  once, its compute time is measured, and its result is held back until the
  tick that the same compute would have reached on the wall clock
  (submit tick + ceil(compute / tick)). Thus an offline run shows the delay a
  real user would meet. `fixed_latency_s` replaces the measurement by a
  constant for runs that must be bit-for-bit reproducible.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any


@dataclass
class Job:
    future: Future
    submit_tick: int
    ready_tick: int | None = None  # virtual clock only
    compute_s: float | None = None


class Offloader:
    def __init__(self, virtual: bool, tick_s: float, workers: int = 1, fixed_latency_s: float | None = None):
        self.virtual = virtual
        self.tick_s = tick_s
        self.fixed_latency_s = fixed_latency_s
        self._pool = None if virtual else ThreadPoolExecutor(max_workers=workers, thread_name_prefix="offload")

    def submit(self, fn: Callable[[], Any], tick: int) -> Job:
        if not self.virtual:
            return Job(self._pool.submit(_timed, fn), tick)
        future: Future = Future()
        began = time.perf_counter()
        try:
            future.set_result(_timed(fn))
        except Exception as exc:  # surfaces at poll(), as on the wall clock
            future.set_exception(exc)
        measured = time.perf_counter() - began
        compute_s = measured if self.fixed_latency_s is None else self.fixed_latency_s
        # A job needing 0 < c <= tick lands on the next tick; a free job still costs one tick.
        return Job(future, tick, tick + max(1, math.ceil(compute_s / self.tick_s - 1e-9)), compute_s)

    def poll(self, job: Job, tick: int) -> tuple[bool, Any]:
        """(True, result) once the job's result may be used at this tick, else (False, None).

        The job's own exception, if it raised, is re-raised here."""
        if self.virtual and tick < job.ready_tick:
            return False, None
        if not job.future.done():
            return False, None
        value, compute_s = job.future.result()
        job.compute_s = compute_s if job.compute_s is None else job.compute_s
        return True, value

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    began = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - began
