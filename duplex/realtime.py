"""The engine on the wall clock, in a thread of its own.

Live front ends (the WebSocket server, `duplex chat`) need the engine to tick
in real time no matter what their I/O is doing, so `RealtimeEngine` runs a
wall-clock `TickLoop` in a dedicated thread: one `Engine.step` (one batched
agent call) per tick for every open session. The front end plugs in two
hooks that run on that thread:

- `before_tick()`: move whatever input has arrived into the sessions (and
  apply queued requests such as `agent.say`) right before the step;
- `after_tick(ticks)`: take each session's output slice and events.

The thread also keeps per-session timing statistics: each tick's compute time
and lateness are charged to every session that took part in it, which is what
a session's `session.stats` reports. Sessions are opened and closed from any
thread; they join or leave at the next tick.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from clock.clocks import WallClock
from clock.stats import TickStats
from clock.tick_loop import TickLoop
from duplex.engine import Engine
from duplex.session import Session

log = logging.getLogger(__name__)

STATS_WINDOW_S = 60.0
"""Compute-time percentiles cover the last minute of a session (counts cover all of it)."""


@dataclass
class _Tracked:
    """A session as the tick thread sees it, with its timing statistics."""

    session: Session
    stats: TickStats
    failure_reported: bool = False


@dataclass
class SessionTick:
    """What one session produced in one tick."""

    session: Session
    audio: np.ndarray | None
    """The agent's next slice at 16 kHz; None when the session failed this tick."""
    events: list[dict[str, Any]]
    failed: BaseException | None = None


def _no_input() -> None:
    pass


def _no_output(ticks: list[SessionTick]) -> None:
    pass


class RealtimeEngine:
    def __init__(
        self,
        engine: Engine,
        before_tick: Callable[[], None] = _no_input,
        after_tick: Callable[[list[SessionTick]], None] = _no_output,
    ):
        self.engine = engine
        self.before_tick = before_tick
        self.after_tick = after_tick
        self.loop = TickLoop(WallClock(), engine.tick_s)
        self._tracked: dict[str, _Tracked] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._stats_window = max(1, round(STATS_WINDOW_S / engine.tick_s))

    # -- sessions (any thread) ------------------------------------------------

    def open_session(self, session_id: str, seed: int = 0) -> Session:
        with self._lock:
            session = self.engine.open_session(seed, session_id)
            self._tracked[session_id] = _Tracked(session, TickStats(window=self._stats_window))
        return session

    def close_session(self, session_id: str) -> dict[str, Any]:
        """Remove a session; returns its final statistics."""
        with self._lock:
            summary = self._summary(session_id)
            self._tracked.pop(session_id, None)
        self.engine.close_session(session_id)
        return summary

    def session_stats(self, session_id: str) -> dict[str, Any]:
        """The fields of PROTOCOL.md's `session.stats` for one session (zeros once it is gone)."""
        with self._lock:
            return self._summary(session_id)

    def _summary(self, session_id: str) -> dict[str, Any]:
        tracked = self._tracked.get(session_id)
        if tracked is None:
            return {**TickStats(window=1).summary(), "input_underruns": 0}
        return {**tracked.stats.summary(), "input_underruns": tracked.session.input_underruns}

    # -- the thread -----------------------------------------------------------

    def start(self) -> None:
        """Warm up, then tick in real time from now on."""
        self._warm_up()
        self.loop = TickLoop(WallClock(), self.engine.tick_s)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="tick-loop", daemon=True)
        self._thread.start()

    def _warm_up(self) -> None:
        """Two throwaway ticks on a throwaway engine, so that lazily loaded models (the VAD's, the
        agent's) do not make the first real session's ticks late."""
        engine = Engine(self.engine.agent)
        engine.open_session(session_id="warm-up")
        for _ in range(2):
            engine.step()
        engine.close_session("warm-up")

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            stepped: list[str] = []
            late_before = self.loop.stats.late_ticks
            try:
                self.loop.run_one(lambda n: stepped.extend(self._tick()))
            except Exception:  # a bug in a hook: report it, skip the tick, keep time for everyone else
                log.exception("tick failed")
                self.loop.next_tick += 1
                continue
            self._charge(stepped, self.loop.stats.compute_ms[-1], self.loop.stats.late_ticks > late_before)

    def _tick(self) -> list[str]:
        """One tick: input in, one batched step, output out; returns the ids that took part."""
        self.before_tick()
        outputs = self.engine.step()
        with self._lock:
            tracked = list(self._tracked.values())
        ticks = []
        for entry in tracked:
            session = entry.session
            if session.id in outputs:
                ticks.append(SessionTick(session, outputs[session.id], session.drain_events()))
            elif session.failed is not None and not entry.failure_reported:
                entry.failure_reported = True
                ticks.append(SessionTick(session, None, session.drain_events(), session.failed))
        self.after_tick(ticks)
        return [t.session.id for t in ticks if t.failed is None]

    def _charge(self, session_ids: list[str], compute_ms: float, late: bool) -> None:
        with self._lock:
            for session_id in session_ids:
                tracked = self._tracked.get(session_id)
                if tracked is not None:
                    tracked.stats.record(compute_ms, late)
