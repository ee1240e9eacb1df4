"""Agent-vs-agent simulation across a simulated network, on the virtual clock.

Two agents (side A and side B: the cascaded baseline, a scripted user, or a
learned model) hold many dialogues at once: every dialogue is one session on
each side's engine, and each engine takes one batched step per tick. Each
direction of each dialogue has its own seeded `Link` (one-way delay, jitter,
loss, reordering). What a side hears is made by a `PartnerStream`, either by
plain playout or with SyncLLM-style latency compensation.

Per tick t, for every dialogue: each side hears the partner's slice for tick
t, steps, and sends what it will say during tick t+1, tagged with t+1, into
its link at session time (t+1)*tick. A frame is usable for tick k if it
arrived by the end of tick k, so delays up to one tick cost nothing.

The two sides hear, then step, in two threads (their engines share nothing,
and the model runtimes release the GIL), so a pair uses both cores; all
hearing of a tick ends before any side sends, so the result does not depend
on the threads' timing. Two sides that are one agent object step in turn.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clock.link import Link, LinkParams
from duplex.agent import Agent
from duplex.engine import Engine
from duplex.partner_stream import PartnerStream


@dataclass(frozen=True)
class NetworkConfig(LinkParams):
    """The link model's parameters for both directions (each direction draws its own seed from
    `seed`), and whether agents that can predict their partner compensate for late slices."""

    compensate: bool = True


@dataclass
class SideRecord:
    """One side of one dialogue: what it said and heard (16 kHz), its events and stream counters."""

    said: np.ndarray
    heard: np.ndarray
    events: list[dict[str, Any]] = field(default_factory=list)
    stream: dict[str, int] = field(default_factory=dict)
    link_in: dict[str, Any] = field(default_factory=dict)
    state: Any = None

    def stereo(self) -> np.ndarray:
        """Dialogue convention: channel 0 this side's own speech, channel 1 what it heard."""
        return np.stack([self.said, self.heard], axis=1)


@dataclass
class DialogueRecord:
    index: int
    a: SideRecord
    b: SideRecord


class _Side:
    """One agent's engine and, per dialogue, its session, incoming link and stream."""

    def __init__(self, agent: Agent, n: int, n_ticks: int, seed: int, compensate: bool):
        self.agent = agent
        self.engine = Engine(agent)
        self.sessions = [self.engine.open_session(seed=seed + i) for i in range(n)]
        # Compensation needs an agent that predicts its partner; others hear plain playout.
        self.compensate = compensate and agent.can_predict_partner
        self.streams = [PartnerStream(agent.tick_samples, self.compensate) for _ in range(n)]
        self.said = np.zeros((n, (n_ticks + 1) * agent.tick_samples), np.float32)
        self.heard = np.zeros_like(self.said)
        self.events: list[list[dict]] = [[] for _ in range(n)]

    def hear(self, t: int, incoming: list[Link], now: float) -> None:
        T = self.agent.tick_samples
        for i, (session, stream) in enumerate(zip(self.sessions, self.streams)):
            for tick, audio in stream.deliver(incoming[i].receive(now)):
                self.agent.revise_partner(session.state, tick, audio)
                self.heard[i, tick * T : (tick + 1) * T] = audio
        # predicted after the real slices that arrived replaced earlier predictions (duplex/lm_agent.py)
        predictions = self.agent.predict_partner([s.state for s in self.sessions]) if self.compensate else None
        for i, (session, stream) in enumerate(zip(self.sessions, self.streams)):
            audio = stream.slice_for(t, None if predictions is None else predictions[i])
            self.heard[i, t * T : (t + 1) * T] = audio
            session.push_input(audio)

    def speak(self, t: int, outgoing: list[Link], now: float) -> None:
        T = self.agent.tick_samples
        outputs = self.engine.step()
        for i, session in enumerate(self.sessions):
            if session.failed is not None:
                raise session.failed
            out = outputs[session.id]
            self.said[i, (t + 1) * T : (t + 2) * T] = out
            outgoing[i].send((t + 1, out), now)
            self.events[i].extend(session.drain_events())


def simulate(agent_a: Agent, agent_b: Agent, dialogues: int, seconds: float, net: NetworkConfig, seed: int = 0) -> list[DialogueRecord]:
    """Run `dialogues` conversations between the two agents for `seconds` each."""
    if agent_a.tick_ms != agent_b.tick_ms or agent_a.sample_rate != agent_b.sample_rate:
        raise ValueError("both agents must share one tick length and sample rate")
    tick_s = agent_a.tick_ms / 1000.0
    n_ticks = int(round(seconds / tick_s))
    a = _Side(agent_a, dialogues, n_ticks, seed, net.compensate)
    b = _Side(agent_b, dialogues, n_ticks, seed + 10_000, net.compensate)

    def link(i: int, direction: int) -> Link:
        return Link(dataclasses.replace(net, seed=seed * 7919 + 2 * i + direction))

    a_to_b = [link(i, 0) for i in range(dialogues)]
    b_to_a = [link(i, 1) for i in range(dialogues)]
    with ThreadPoolExecutor(2 if agent_a is not agent_b else 1, thread_name_prefix="simulate-side") as pool:

        def in_parallel(*calls: tuple[Callable[..., None], int, list[Link], float]) -> None:
            for future in [pool.submit(*call) for call in calls]:
                future.result()  # re-raises a side's error

        for t in range(n_ticks):
            end_of_tick = (t + 1) * tick_s
            in_parallel((a.hear, t, b_to_a, end_of_tick), (b.hear, t, a_to_b, end_of_tick))
            in_parallel((a.speak, t, a_to_b, end_of_tick), (b.speak, t, b_to_a, end_of_tick))

    n = n_ticks * agent_a.tick_samples
    records = []
    for i in range(dialogues):
        sides = []
        for side, link_in in ((a, b_to_a[i]), (b, a_to_b[i])):
            sides.append(
                SideRecord(
                    side.said[i, :n].copy(),
                    side.heard[i, :n].copy(),
                    side.events[i],
                    vars(side.streams[i].stats).copy(),
                    link_in.stats.summary(),
                    side.sessions[i].state,
                )
            )
        records.append(DialogueRecord(i, *sides))
    return records
