"""What one side of a simulated call hears of the other, after the network.

Frames cross a `Link` tagged with the sender's tick index (the tick during
which the sender says them). The receiving side needs one slice per tick,
and there are two ways to make one:

- **Playout** (compensation off): frames are played in arrival order, one per
  tick, as a phone's jitter buffer does. The partner is heard late by the
  link's delay; a tick with nothing queued is silence (an underrun).
- **Compensation** (SyncLLM): the receiver keeps the partner's timeline by
  sender tick. For tick k it uses the partner's real slice k if it has
  arrived; otherwise it stands in the receiving agent's *prediction* of that
  slice. (Agents that cannot predict always hear plain playout.) When the real slice arrives
  later it replaces the prediction: the agent is told (`Agent.revise_partner`)
  and the record of what was heard shows the real slice.

Lost frames are silence in both modes, and counted.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from clock.link import Packet

REPLACE_HORIZON_TICKS = 100
"""A prediction older than this (8 s at 80 ms ticks) is no longer replaced: its frame was lost."""


@dataclass
class StreamStats:
    received: int = 0
    underruns: int = 0
    predicted: int = 0
    replaced: int = 0


@dataclass
class PartnerStream:
    tick_samples: int
    compensate: bool
    stats: StreamStats = field(default_factory=StreamStats)
    queue: deque = field(default_factory=deque)
    by_tick: dict[int, np.ndarray] = field(default_factory=dict)
    predicted_ticks: set[int] = field(default_factory=set)

    def deliver(self, packets: list[Packet]) -> list[tuple[int, np.ndarray]]:
        """Take arrived packets; returns (tick, real slice) for each prediction they replace."""
        replaced = []
        for p in packets:
            tick, audio = p.payload
            self.stats.received += 1
            if not self.compensate:
                self.queue.append(audio)
            elif tick in self.predicted_ticks:
                self.predicted_ticks.discard(tick)
                self.stats.replaced += 1
                replaced.append((tick, audio))
            else:
                self.by_tick[tick] = audio
        return replaced

    def slice_for(self, tick: int, prediction: np.ndarray | None = None) -> np.ndarray:
        """The slice heard during `tick`; with compensation, `prediction` stands in for a missing one."""
        if not self.compensate:
            if self.queue:
                return self.queue.popleft()
            self.stats.underruns += 1
            return np.zeros(self.tick_samples, dtype=np.float32)
        audio = self.by_tick.pop(tick, None)
        if audio is not None:
            return audio
        self.stats.predicted += 1
        self.predicted_ticks.add(tick)
        if len(self.predicted_ticks) > REPLACE_HORIZON_TICKS:  # lost frames never come: forget them
            self.predicted_ticks = {t for t in self.predicted_ticks if t > tick - REPLACE_HORIZON_TICKS}
        return prediction
