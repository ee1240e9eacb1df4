"""A network link model for latency injection.

Frames sent into a `Link` come out after a one-way delay plus jitter, or not
at all (loss); with `reorder` off the link is FIFO like a TCP stream (a frame
never overtakes an earlier one), with it on frames are delivered strictly by
their own arrival time, so jitter reorders them as UDP would. Times are plain
seconds on whichever clock the caller uses, so the same link serves the
virtual-clock simulator and a wall-clock client. Seeded, hence reproducible.

Jitter is the standard deviation of a normal perturbation of the delay,
truncated so that no frame arrives before it was sent.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LinkParams:
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    reorder: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.delay_ms < 0 or self.jitter_ms < 0:
            raise ValueError("delay and jitter must be >= 0 ms")
        if not 0.0 <= self.loss < 1.0:
            raise ValueError("loss must be in [0, 1)")


@dataclass(order=True)
class Packet:
    deliver_at: float
    seq: int
    sent_at: float = field(compare=False)
    payload: Any = field(compare=False)


@dataclass
class LinkStats:
    sent: int = 0
    lost: int = 0
    delivered: int = 0
    delays_ms: list[float] = field(default_factory=list)
    reordered: int = 0

    def summary(self) -> dict:
        d = np.asarray(self.delays_ms) if self.delays_ms else np.zeros(1)
        return {
            "sent": self.sent,
            "lost": self.lost,
            "loss_rate": self.lost / self.sent if self.sent else 0.0,
            "delivered": self.delivered,
            "reordered": self.reordered,
            "delay_ms_mean": float(d.mean()),
            "delay_ms_std": float(d.std()),
        }


class Link:
    """One direction of a connection."""

    def __init__(self, params: LinkParams = LinkParams()):
        self.params = params
        self.rng = np.random.default_rng(params.seed)
        self.queue: list[Packet] = []
        self.stats = LinkStats()
        self._seq = 0
        self._last_arrival = float("-inf")
        self._last_seq_out = -1

    def send(self, payload: Any, now: float) -> None:
        p = self.params
        seq = self._seq
        self._seq += 1
        self.stats.sent += 1
        if p.loss and self.rng.random() < p.loss:
            self.stats.lost += 1
            return
        delay = p.delay_ms + (self.rng.normal(0.0, p.jitter_ms) if p.jitter_ms else 0.0)
        arrival = now + max(delay, 0.0) / 1000.0
        if not p.reorder:
            arrival = max(arrival, self._last_arrival)
        self._last_arrival = arrival
        heapq.heappush(self.queue, Packet(arrival, seq, now, payload))

    def receive(self, now: float) -> list[Packet]:
        """Every packet whose arrival time is <= now, in arrival order."""
        out = []
        while self.queue and self.queue[0].deliver_at <= now + 1e-12:
            packet = heapq.heappop(self.queue)
            self.stats.delivered += 1
            self.stats.delays_ms.append((packet.deliver_at - packet.sent_at) * 1000.0)
            if packet.seq < self._last_seq_out:
                self.stats.reordered += 1
            self._last_seq_out = max(self._last_seq_out, packet.seq)
            out.append(packet)
        return out

    def in_flight(self) -> int:
        return len(self.queue)
