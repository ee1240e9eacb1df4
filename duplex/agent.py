"""The Agent interface: what every agent (cascaded baseline, learned models) implements.

An agent advances many sessions at once, one tick per call: it takes one
slice of each session's user audio and returns one slice of its own audio
for each. Everything a session carries from tick to tick lives in an explicit
`AgentState` object that the agent creates (`new_state`), resets and drops;
the agent object itself holds only what sessions share (weights, workers).

Timing convention (DESIGN.md "Time"): the slice passed for a session's tick t
is the user's audio during tick t; the slice returned is what the agent says
during tick t+1.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audio.frames import SAMPLE_RATE, TICK_MS, samples_per_tick


class UnsupportedError(Exception):
    """The agent cannot do what was asked (e.g. speak given text)."""


@dataclass
class AgentState:
    """Per-session state every agent keeps; agents subclass it for their own fields.

    `user_vad` (Silero's speech probability for each 32 ms window of this
    tick's user audio) and `user_speaking` (after hysteresis) are set by the
    runtime before every step, from its one voice activity detector on the
    user's input. `speaking` and `interrupted` are set by the agent on every step: whether
    the slice it just returned holds speech, and (when speech ends) whether the
    user's speech made it stop. `events` is an outbox of protocol events
    (dicts with a "type") that the engine drains after each tick.
    """

    seed: int = 0
    tick: int = 0
    user_vad: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    user_speaking: bool = False
    speaking: bool = False
    interrupted: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)


class Agent(ABC):
    name: str = "agent"
    tick_ms: int = TICK_MS
    sample_rate: int = SAMPLE_RATE
    can_say: bool = False
    """True when the agent can speak given text (PROTOCOL.md `agent.say`)."""
    can_predict_partner: bool = False
    """True when `predict_partner` gives real predictions (SyncLLM latency compensation)."""

    @property
    def tick_samples(self) -> int:
        return samples_per_tick(self.tick_ms, self.sample_rate)

    @abstractmethod
    def new_state(self, seed: int = 0) -> AgentState:
        """A fresh session."""

    def reset(self, state: AgentState) -> AgentState:
        """Start a session over: drops its state and returns a fresh one with the same seed."""
        self.drop(state)
        return self.new_state(state.seed)

    def drop(self, state: AgentState) -> None:
        """Release whatever the session holds beyond plain memory (pending jobs)."""

    @abstractmethod
    def step(self, states: Sequence[AgentState], listen: np.ndarray) -> np.ndarray:
        """Advance each session by one tick.

        listen: (len(states), tick_samples) float32, the user's audio this tick.
        Returns (len(states), tick_samples) float32, the agent's audio for the next tick.
        Implementations increment each state's `tick`.
        """

    def say(self, state: AgentState, text: str, say_id: str) -> None:
        """Speak text as the session's next turn; emits `agent.say.done` when it ends."""
        raise UnsupportedError(f"agent {self.name!r} cannot speak given text")

    def predict_partner(self, states: Sequence[AgentState]) -> np.ndarray | None:
        """The agent's prediction of each session's next partner slice, (B, tick_samples).
        Only called when `can_predict_partner` is set."""
        raise NotImplementedError

    def revise_partner(self, state: AgentState, tick: int, audio: np.ndarray) -> None:
        """The real partner slice of `tick` has arrived after a prediction stood in for it.
        Agents that keep the partner's stream in their context replace it; others ignore it."""

    def close(self) -> None:
        """Release shared resources (worker threads)."""


class PerSessionAgent(Agent):
    """An agent whose sessions share no computation (the baseline, the scripted user):
    a tick is `step_one` for each session in turn."""

    def step(self, states: Sequence[AgentState], listen: np.ndarray) -> np.ndarray:
        out = np.zeros_like(listen)
        for i, state in enumerate(states):
            out[i] = self.step_one(state, listen[i])
            state.tick += 1
        return out

    @abstractmethod
    def step_one(self, state: AgentState, listen: np.ndarray) -> np.ndarray:
        """One tick of one session: its user audio in, its next slice of speech out."""
