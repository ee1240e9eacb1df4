"""The engine: any number of sessions advanced in lock step, one batched agent call per tick.

`Engine.step` is one tick for every open session. Who calls it decides the
clock: `duplex respond` and the simulator call it from a virtual-clock
`TickLoop`, the server from a wall-clock one in its own thread. Sessions may
be opened and closed from other threads; they join or leave at the next tick.

A fault in one session never disturbs another: when the batched call raises,
each session is retried alone, and the ones that still raise are marked
`failed` and dropped from the engine, for their front end to report.
"""

from __future__ import annotations

import itertools
import logging
import threading

import numpy as np

from audio.vad import process_streams
from duplex.agent import Agent
from duplex.session import Session

log = logging.getLogger(__name__)


class Engine:
    def __init__(self, agent: Agent):
        self.agent = agent
        self.sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count()

    @property
    def tick_s(self) -> float:
        return self.agent.tick_ms / 1000.0

    def open_session(self, seed: int = 0, session_id: str | None = None) -> Session:
        session_id = session_id or f"s{next(self._ids)}"
        session = Session(
            session_id,
            self.agent.new_state(seed),
            self.agent.tick_ms,
            self.agent.tick_samples,
        )
        with self._lock:
            self.sessions[session_id] = session
        return session

    def close_session(self, session_id: str) -> None:
        with self._lock:
            session = self.sessions.pop(session_id, None)
        if session is not None:
            self.agent.drop(session.state)

    def step(self) -> dict[str, np.ndarray]:
        """One tick for all sessions; returns each session's output slice by id."""
        with self._lock:
            sessions = list(self.sessions.values())
        if not sessions:
            return {}
        listen = np.stack([s.take_input_tick() for s in sessions])
        scores = process_streams([s.vad_state for s in sessions], list(listen))
        for session, probs in zip(sessions, scores):
            session.hear_voice_activity(probs)
        outputs = self._agent_step(sessions, listen)
        result = {}
        for i, session in enumerate(sessions):
            if session.failed is None:
                session.after_tick()
                result[session.id] = outputs[i]
        return result

    def _agent_step(self, sessions: list[Session], listen: np.ndarray) -> np.ndarray:
        try:
            return self.agent.step([s.state for s in sessions], listen)
        except Exception as exc:  # logged, so that a fault the retry hides still shows
            log.warning("batched agent step failed (%s: %s); retrying its %d sessions one by one",
                        type(exc).__name__, exc, len(sessions))
        outputs = np.zeros_like(listen)
        for i, session in enumerate(sessions):
            try:
                outputs[i] = self.agent.step([session.state], listen[i : i + 1])[0]
            except Exception as exc:
                session.failed = exc
                self.close_session(session.id)
        return outputs
