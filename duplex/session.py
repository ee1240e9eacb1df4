"""One conversation's runtime state outside the agent: its input buffer,
voice activity on the user's side, and the protocol events it produces.

The session keeps the one Silero VAD state of the user's channel; the
engine scores all sessions' ticks in one batch, and each session hands its
scores to the agent (`AgentState.user_vad`, `user_speaking`) before it
steps, so agents that end-point on voice activity (the cascaded baseline)
run no detector of their own.

The engine owns sessions; front ends (respond, server, simulator, chat) push
user audio into `Session.push_input` from any thread and drain
`Session.events`. Everything here is 16 kHz; rates are converted at the edges.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import numpy as np

from audio.frames import TickSlicer
from audio.vad import SpeechGate, VADState
from duplex.agent import AgentState


class Session:
    def __init__(
        self,
        session_id: str,
        state: AgentState,
        tick_ms: int,
        tick_samples: int,
        max_input_ahead_s: float = 2.0,
    ):
        self.id = session_id
        self.state = state
        self.tick_ms = tick_ms
        self.tick_samples = tick_samples
        self.tick = 0
        self.input_underruns = 0
        self.failed: BaseException | None = None
        self.events: deque[dict[str, Any]] = deque()
        self._input = TickSlicer(tick_samples)
        self._lock = threading.Lock()
        self._max_ahead = int(round(max_input_ahead_s * 1000 / tick_ms)) * tick_samples
        self.vad_state = VADState()
        self._user_gate = SpeechGate()
        self._agent_speaking = False

    # -- input (any thread) -------------------------------------------------

    def push_input(self, audio: np.ndarray) -> int:
        """Queue user audio (16 kHz); returns how many samples were dropped as overflow
        (more than max_input_ahead_s ahead of the tick clock)."""
        with self._lock:
            self._input.push(audio)
            return self._input.drop_excess(self._max_ahead)

    def buffered_input(self) -> int:
        with self._lock:
            return self._input.buffered()

    # -- ticks (engine thread) ----------------------------------------------

    def take_input_tick(self) -> np.ndarray:
        """This tick's user audio; silence (and an underrun counted) when it has not arrived."""
        with self._lock:
            tick = self._input.pop_tick()
        if tick is None:
            self.input_underruns += 1
            tick = np.zeros(self.tick_samples, dtype=np.float32)
        return tick

    def hear_voice_activity(self, probs: np.ndarray) -> None:
        """This tick's VAD scores (computed by the engine for all sessions at once, `vad_state`):
        handed to the agent, and reported as user.speech.* events."""
        self.state.user_vad = probs
        for change in self._user_gate.update(probs):
            self.events.append({"type": f"user.speech.{change}", "tick": self.tick, "t_ms": self.tick * self.tick_ms})
        self.state.user_speaking = self._user_gate.speaking

    def after_tick(self) -> None:
        """Turn the agent's state after this tick into protocol events."""
        stamp = {"tick": self.tick, "t_ms": self.tick * self.tick_ms}
        if self.state.speaking and not self._agent_speaking:
            self.events.append({"type": "agent.speech.started", **stamp})
        elif self._agent_speaking and not self.state.speaking:
            self.events.append({"type": "agent.speech.stopped", **stamp, "interrupted": bool(self.state.interrupted)})
        self._agent_speaking = self.state.speaking
        while self.state.events:
            self.events.append(self.state.events.pop(0))
        self.tick += 1

    def drain_events(self) -> list[dict[str, Any]]:
        out = []
        while self.events:
            out.append(self.events.popleft())
        return out
