"""Two clocks behind one interface.

`WallClock` is real time (monotonic). `VirtualClock` advances only when
someone sleeps on it, instantly: runs on it are deterministic and as fast as
the machine allows. Agents and loops take a `Clock` and never ask which one
they got.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    virtual: bool

    def now(self) -> float:
        """Seconds since an arbitrary fixed origin."""
        ...

    def sleep_until(self, t: float) -> None:
        """Block until now() >= t (returns at once if that is already so)."""
        ...


class WallClock:
    virtual = False

    def now(self) -> float:
        return time.monotonic()

    def sleep_until(self, t: float) -> None:
        delay = t - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class VirtualClock:
    virtual = True

    def __init__(self, start: float = 0.0):
        self._t = start

    def now(self) -> float:
        return self._t

    def sleep_until(self, t: float) -> None:
        self._t = max(self._t, t)

    def advance(self, dt: float) -> None:
        self._t += dt
