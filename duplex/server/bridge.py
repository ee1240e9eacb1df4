"""Between the event loop and the tick thread: where audio and requests cross over.

The event loop must never do slow work, and the tick thread must never touch
a socket. So a connection only appends raw PCM bytes and `agent.say`
requests to its `SessionLink`; once per tick, on the tick thread, the
`EngineBridge` decodes and resamples each link's input into its session,
applies its requests, runs the one batched step, encodes each session's
output frame at the client's rate, and hands the whole tick's deliveries to
the event loop in a single thread-safe call.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from audio.frames import SAMPLE_RATE, float_to_pcm16, pcm16_to_float
from audio.rate_convert import RateConverter
from duplex.agent import Agent, UnsupportedError
from duplex.engine import Engine
from duplex.realtime import RealtimeEngine, SessionTick
from duplex.server.protocol import MAX_INPUT_AHEAD_S, STATS_INTERVAL_S, ErrorCode
from duplex.session import Session


@dataclass
class TickDelivery:
    """What one session gets from one tick, in the order it is sent."""

    frame: bytes | None
    events: list[dict[str, Any]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    """(code, message) pairs the tick thread found (overflow, unsupported)."""
    failure: BaseException | None = None
    """Set when the session cannot go on (the agent or the link raised)."""


class SessionLink:
    """One connected session's state shared by the event loop and the tick thread."""

    def __init__(
        self,
        session: Session,
        input_rate: int,
        output_rate: int,
        deliver: Callable[[TickDelivery], None],
    ):
        self.session = session
        self.input_rate = input_rate
        self.output_rate = output_rate
        self.deliver = deliver
        """Called on the event loop with each tick's delivery."""
        self.says: deque[tuple[str, str]] = deque()
        self._raw = bytearray()
        self._lock = threading.Lock()
        self._to_agent = RateConverter(input_rate, SAMPLE_RATE)
        self._to_client = RateConverter(SAMPLE_RATE, output_rate)
        self._max_ahead = MAX_INPUT_AHEAD_S * SAMPLE_RATE
        self.failed = False
        self.tick_errors: list[tuple[str, str]] = []
        """Errors found on the tick thread before the step, sent with the tick's delivery."""

    # -- event loop -----------------------------------------------------------

    def push_audio(self, pcm: bytes) -> int:
        """Queue client PCM; returns how many input samples were dropped as overflow."""
        with self._lock:
            raw_samples = len(self._raw) // 2
            ahead = self.session.buffered_input() + raw_samples * SAMPLE_RATE / self.input_rate
            room = max(0, int((self._max_ahead - ahead) * self.input_rate / SAMPLE_RATE))
            accepted = min(len(pcm) // 2, room)
            self._raw += pcm[: 2 * accepted]
        return len(pcm) // 2 - accepted

    # -- tick thread ----------------------------------------------------------

    def feed(self) -> int:
        """Move arrived input into the session; returns samples dropped there (16 kHz)."""
        with self._lock:
            raw, self._raw = bytes(self._raw), bytearray()
        if not raw:
            return 0
        return self.session.push_input(self._to_agent.process(pcm16_to_float(raw)))

    def encode(self, audio) -> bytes:
        return float_to_pcm16(self._to_client.process(audio))


class EngineBridge:
    def __init__(self, agent: Agent, loop: asyncio.AbstractEventLoop):
        self.agent = agent
        self.engine = Engine(agent)
        self.realtime = RealtimeEngine(self.engine, self._before_tick, self._after_tick)
        self.loop = loop
        self._links: dict[str, SessionLink] = {}
        self._lock = threading.Lock()
        self._stats_every = max(1, round(STATS_INTERVAL_S * 1000 / agent.tick_ms))
        self._closing: deque[tuple[str, Callable[[dict[str, Any]], None]]] = deque()

    def start(self) -> None:
        self.realtime.start()

    def stop(self) -> None:
        self.realtime.stop()

    def open(
        self, session_id: str, seed: int, input_rate: int, output_rate: int, deliver: Callable[[TickDelivery], None]
    ) -> SessionLink:
        """Start a session's tick clock: it takes part from the next tick on."""
        session = self.realtime.open_session(session_id, seed)
        link = SessionLink(session, input_rate, output_rate, deliver)
        with self._lock:
            self._links[session_id] = link
        return link

    def close(self, session_id: str) -> dict[str, Any]:
        """Stop a session; returns its final statistics."""
        with self._lock:
            self._links.pop(session_id, None)
        return self.realtime.close_session(session_id)

    def close_between_ticks(self, session_id: str, done: Callable[[dict[str, Any]], None]) -> None:
        """Stop a session on the tick thread, between two ticks, then call done(final statistics)
        on the event loop: every frame the session was sent is delivered before, and counted in them."""
        self._closing.append((session_id, done))

    def stats(self, link: SessionLink) -> dict[str, Any]:
        """session.stats fields, plus how much input waits for the clock (input_buffered_ms)."""
        stats = self.realtime.session_stats(link.session.id)
        stats["input_buffered_ms"] = round(link.session.buffered_input() * 1000 / SAMPLE_RATE)
        return stats

    # -- hooks, on the tick thread --------------------------------------------

    def _before_tick(self) -> None:
        while self._closing:
            session_id, done = self._closing.popleft()
            self.loop.call_soon_threadsafe(done, self.close(session_id))
        with self._lock:
            links = list(self._links.values())
        for link in links:
            if link.failed:
                continue
            try:
                dropped = link.feed()
                if dropped:
                    link.tick_errors.append((ErrorCode.INPUT_OVERFLOW, overflow_message(dropped, SAMPLE_RATE)))
                while link.says:
                    text, say_id = link.says.popleft()
                    try:
                        self.agent.say(link.session.state, text, say_id)
                    except UnsupportedError as exc:
                        link.tick_errors.append((ErrorCode.UNSUPPORTED, str(exc)))
            except Exception as exc:  # a fault of this session only
                link.failed = True
                self._send(link, TickDelivery(None, failure=exc))

    def _after_tick(self, ticks: list[SessionTick]) -> None:
        batch = []
        for tick in ticks:
            with self._lock:
                link = self._links.get(tick.session.id)
            if link is None or link.failed:
                continue
            errors, link.tick_errors = link.tick_errors, []
            if tick.failed is not None:
                link.failed = True
                batch.append((link, TickDelivery(None, tick.events, errors, tick.failed)))
                continue
            try:
                delivery = TickDelivery(link.encode(tick.audio), tick.events, errors)
                if tick.session.tick % self._stats_every == 0:
                    delivery.events.append({"type": "session.stats", **self.stats(link)})
            except Exception as exc:
                link.failed = True
                delivery = TickDelivery(None, failure=exc)
            batch.append((link, delivery))
        if batch:
            self.loop.call_soon_threadsafe(_deliver_all, batch)

    def _send(self, link: SessionLink, delivery: TickDelivery) -> None:
        self.loop.call_soon_threadsafe(_deliver_all, [(link, delivery)])


def _deliver_all(batch: list[tuple[SessionLink, TickDelivery]]) -> None:
    for link, delivery in batch:
        link.deliver(delivery)


def overflow_message(dropped: int, rate: int) -> str:
    return f"dropped {dropped * 1000 // rate} ms of input that arrived more than {MAX_INPUT_AHEAD_S:g} s ahead of the clock"
