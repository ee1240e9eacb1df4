"""Small real agents for tests of the runtime's plumbing (engine, simulator, server):
they do real per-tick work with no models, so tests stay fast."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from duplex.agent import Agent, AgentState


@dataclass
class CounterState(AgentState):
    heard: list[np.ndarray] = field(default_factory=list)
    revisions: list[tuple[int, np.ndarray]] = field(default_factory=list)


class TickCounter(Agent):
    """Says a constant slice whose level encodes its tick (tick/1000); remembers what it heard;
    predicts its partner by repeating the last slice it heard; records revisions."""

    name = "tick-counter"
    can_predict_partner = True

    def new_state(self, seed: int = 0) -> CounterState:
        return CounterState(seed=seed)

    def step(self, states: Sequence[AgentState], listen: np.ndarray) -> np.ndarray:
        out = np.zeros_like(listen)
        for i, s in enumerate(states):
            s.heard.append(listen[i].copy())
            s.tick += 1
            out[i] = s.tick / 1000.0  # said during tick s.tick
            s.speaking = True
        return out

    def predict_partner(self, states: Sequence[AgentState]) -> np.ndarray:
        return np.stack([s.heard[-1] if s.heard else np.zeros(self.tick_samples, np.float32) for s in states])

    def revise_partner(self, state: AgentState, tick: int, audio: np.ndarray) -> None:
        state.revisions.append((tick, audio.copy()))
