"""A small real agent for the server's and the chat's tests: no models, exact behaviour.

`EchoToneAgent` repeats what it hears one tick later (so a test can check
that audio went through both rate conversions and came back in order), and
speaks `agent.say` text as a 1 kHz tone of 160 ms per word that stops when
the user gets loud (a barge-in), after which it keeps quiet until the user
does. Input with a full-scale sample makes it raise: the tests' way to cause
a fault inside one session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from audio.frames import rms_dbfs
from duplex.agent import Agent, AgentState

LOUD_DBFS = -40.0
SAY_TONE_HZ = 1000.0
SAY_TICKS_PER_WORD = 2
CRASH_LEVEL = 0.999


class InjectedFault(Exception):
    """Raised on purpose by EchoToneAgent on full-scale input."""


@dataclass
class EchoToneState(AgentState):
    say_words: list[str] | None = None
    say_id: str = ""
    say_ticks: int = 0
    said_ticks: int = 0
    yielding: bool = False


class EchoToneAgent(Agent):
    name = "echo-tone"

    def __init__(self, can_say: bool = True):
        self.can_say = can_say

    def new_state(self, seed: int = 0) -> EchoToneState:
        return EchoToneState(seed=seed)

    def say(self, state: AgentState, text: str, say_id: str) -> None:
        if not self.can_say:
            super().say(state, text, say_id)
        state.say_words, state.say_id = text.split(), say_id
        state.say_ticks, state.said_ticks = SAY_TICKS_PER_WORD * len(state.say_words), 0
        state.events.append({"type": "agent.transcript.delta", "text": text})

    def step(self, states: Sequence[AgentState], listen: np.ndarray) -> np.ndarray:
        out = np.zeros_like(listen)
        for i, s in enumerate(states):
            if np.max(np.abs(listen[i])) >= CRASH_LEVEL:
                raise InjectedFault("full-scale input")
            out[i] = self._step_one(s, listen[i])
            s.speaking = rms_dbfs(out[i]) > LOUD_DBFS
            s.tick += 1
        return out

    def _step_one(self, s: EchoToneState, listen: np.ndarray) -> np.ndarray:
        loud = rms_dbfs(listen) > LOUD_DBFS
        s.interrupted = False
        if s.say_words is not None:
            if loud:
                self._finish_say(s, interrupted=True)
                s.yielding = True
                return np.zeros_like(listen)
            t = (np.arange(len(listen)) + s.said_ticks * len(listen)) / self.sample_rate
            s.said_ticks += 1
            if s.said_ticks >= s.say_ticks:
                self._finish_say(s, interrupted=False)
            return (0.3 * np.sin(2 * np.pi * SAY_TONE_HZ * t)).astype(np.float32)
        if s.yielding:
            s.yielding = loud
            return np.zeros_like(listen)
        return listen.copy()

    def _finish_say(self, s: EchoToneState, interrupted: bool) -> None:
        spoken = s.say_words[: s.said_ticks // SAY_TICKS_PER_WORD]
        s.events.append({"type": "agent.say.done", "id": s.say_id, "interrupted": interrupted, "spoken_text": " ".join(spoken)})
        s.interrupted = interrupted
        s.say_words = None
