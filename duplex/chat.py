"""`duplex chat`: talk with the agent through this computer's microphone and speaker.

Full duplex, as on a phone: both sides may talk at once, and the agent hears
you while it speaks. Three parts, each on its own thread:

- `SoundCard`: what PortAudio's real-time callback touches. It only copies:
  microphone blocks into a queue, speaker blocks out of a `PlaybackBuffer`.
- a link to the agent, which moves those samples once per tick: `LocalLink`
  runs the engine in this process on its own wall-clock tick thread;
  `RemoteLink` talks to a `duplex serve` server (`--server URL`) through the
  voice API. Both convert between the sound card's rate and the agent's.
- the terminal (the main thread): levels, lag, late ticks, and what was said.

There is no echo canceller yet: with loudspeakers the agent hears itself and
takes its own voice for a barge-in. Use headphones.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

import numpy as np

from audio.devices import Device, find_device, list_devices, open_duplex
from audio.frames import SAMPLE_RATE, rms_dbfs
from audio.jitter import PlaybackBuffer
from audio.rate_convert import RateConverter
from duplex.agent import Agent
from duplex.agents import DEFAULT_MODEL, load_agent
from duplex.client import AgentFrame, RoundTrip, VoiceClient
from duplex.engine import Engine
from duplex.realtime import RealtimeEngine, SessionTick
from duplex.server.protocol import ACCEPTED_RATES

BLOCK_MS = 10
PRIME_MS = 120
MAX_BUFFER_MS = 400
REFRESH_S = 0.2
HEADPHONES = "duplex chat: use headphones: there is no echo canceller yet, so through loudspeakers the agent hears itself"


class ChatError(Exception):
    """The conversation could not start or broke off; one line for the user."""


@dataclass
class ChatStatus:
    """What the links report and the terminal shows (written by link threads, read by the main one)."""

    tick_ms: int = 80
    mic_db: float = -100.0
    speaker_db: float = -100.0
    stats: dict[str, Any] = field(default_factory=dict)
    round_trip_ms: float | None = None
    frames: int = 0
    events: deque = field(default_factory=deque)
    failure: str | None = None


class SoundCard:
    """The sound card's side: called by PortAudio every block, it only copies samples."""

    def __init__(self, rate: int):
        self.rate = rate
        self.block = rate * BLOCK_MS // 1000
        self.speaker = PlaybackBuffer(prime=rate * PRIME_MS // 1000, limit=rate * MAX_BUFFER_MS // 1000)
        self.xruns = 0
        self._mic: deque[np.ndarray] = deque()

    def callback(self, indata: np.ndarray, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status:
            self.xruns += 1
        self._mic.append(indata[:, 0].copy())
        outdata[:, 0] = self.speaker.pull(frames)

    def take_microphone(self) -> np.ndarray:
        """Everything captured since the last call."""
        blocks = []
        while self._mic:
            blocks.append(self._mic.popleft())
        return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)


class Link(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


class LocalLink:
    """The agent in this process: one session on a wall-clock engine thread."""

    def __init__(self, agent: Agent, card: SoundCard, status: ChatStatus):
        self.card = card
        self.status = status
        self.realtime = RealtimeEngine(Engine(agent), self._before_tick, self._after_tick)
        self.to_agent = RateConverter(card.rate, SAMPLE_RATE)
        self.to_speaker = RateConverter(SAMPLE_RATE, card.rate)
        self.trip = RoundTrip(agent.tick_samples)
        status.tick_ms = agent.tick_ms
        self.session = None

    def start(self) -> None:
        self.realtime.start()
        self.session = self.realtime.open_session("chat")

    def stop(self) -> None:
        self.realtime.stop()
        self.status.stats = self.realtime.close_session("chat")

    def _before_tick(self) -> None:
        microphone = self.card.take_microphone()
        if len(microphone) and self.session is not None:
            self.status.mic_db = rms_dbfs(microphone)
            audio = self.to_agent.process(microphone)
            self.session.push_input(audio)
            self.trip.sent(len(audio), time.monotonic())

    def _after_tick(self, ticks: list[SessionTick]) -> None:
        for tick in ticks:
            if tick.failed is not None:
                self.status.failure = f"the agent failed: {tick.failed}"
                continue
            self.card.speaker.push(self.to_speaker.process(tick.audio))
            self.status.speaker_db = rms_dbfs(tick.audio)
            self.status.frames += 1
            self.trip.received(tick.session.tick - 1, tick.session.input_underruns, time.monotonic())
            self.status.round_trip_ms = self.trip.last_ms
            self.status.events.extend(tick.events)
        self.status.stats = self.realtime.session_stats("chat")


class RemoteLink:
    """The agent on a server: the voice API, on an event loop in a thread of its own."""

    SEND_EVERY_S = 0.02

    def __init__(self, url: str, token: str | None, card: SoundCard, status: ChatStatus):
        self.url = url
        self.token = token
        self.card = card
        self.status = status
        self.wire_rate = card.rate if card.rate in ACCEPTED_RATES else SAMPLE_RATE
        self.to_wire = RateConverter(card.rate, self.wire_rate)
        self.to_speaker = RateConverter(self.wire_rate, card.rate)
        self._connected = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="chat-link", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._connected.wait()
        if self.status.failure is not None:
            self._thread.join()
            raise ChatError(self.status.failure)

    def stop(self) -> None:
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            client = await VoiceClient.connect(self.url, self.token, self.wire_rate, self.wire_rate)
        except Exception as exc:
            self.status.failure = str(exc)
            self._connected.set()
            return
        self.status.tick_ms = client.tick_ms
        trip = RoundTrip(client.tick_ms * self.wire_rate // 1000)
        self._connected.set()
        receiving = asyncio.create_task(self._receive(client, trip))
        while not self._stopping.is_set() and not receiving.done():
            microphone = self.card.take_microphone()
            if len(microphone):
                self.status.mic_db = rms_dbfs(microphone)
                audio = self.to_wire.process(microphone)
                await client.send_audio(audio)
                trip.sent(len(audio), time.monotonic())
            try:
                await asyncio.wait_for(self._stopping.wait(), self.SEND_EVERY_S)
            except TimeoutError:
                pass
        await client.close_session()
        try:
            await asyncio.wait_for(receiving, 5)
        except TimeoutError:
            await client.disconnect()
        if client.ws.close_code not in (1000, None) and self.status.failure is None:
            self.status.failure = f"the server closed the session ({client.ws.close_code}: {client.ws.close_reason})"

    async def _receive(self, client: VoiceClient, trip: RoundTrip) -> None:
        async for message in client.messages():
            if isinstance(message, AgentFrame):
                self.card.speaker.push(self.to_speaker.process(message.audio))
                self.status.speaker_db = rms_dbfs(message.audio)
                self.status.frames += 1
                trip.received(message.index, self.status.stats.get("input_underruns", 0), message.arrived)
                self.status.round_trip_ms = trip.last_ms
            elif message.get("type") == "session.stats":
                self.status.stats = message
            elif message.get("type") == "session.closed":
                self.status.stats = message["stats"]
            else:
                self.status.events.append(message)
        if client.ws.close_code not in (1000, None):
            self.status.failure = f"the server closed the session ({client.ws.close_code}: {client.ws.close_reason})"


@dataclass
class ChatSummary:
    seconds: float
    frames: int
    stats: dict[str, Any]
    xruns: int
    speaker_ran_dry: int


def chat(
    agent: Agent | None = None,
    server: str | None = None,
    token: str | None = None,
    input_device: int | str | None = None,
    output_device: int | str | None = None,
    seconds: float | None = None,
    out: TextIO = sys.stderr,
) -> ChatSummary:
    """Hold a conversation until Ctrl-C (or for `seconds`): with `agent` here, or with the agent at `server`."""
    microphone, speaker = find_device(input_device, "input"), find_device(output_device, "output")
    card = SoundCard(microphone.sample_rate)
    status = ChatStatus()
    link: Link = LocalLink(agent, card, status) if server is None else RemoteLink(server, token, card, status)
    print(HEADPHONES, file=out)
    print(f"duplex chat: {microphone.name} -> {'the agent' if server is None else server} -> {speaker.name}; Ctrl-C ends", file=out)
    link.start()
    began = time.monotonic()
    try:
        stream = open_duplex(card.rate, card.block, card.callback, microphone, speaker)
        try:
            _show(status, card, microphone, speaker, out, until=None if seconds is None else began + seconds)
        finally:
            stream.stop()
            stream.close()
    finally:
        link.stop()
    print(file=out)
    if status.failure is not None:
        raise ChatError(status.failure)
    return ChatSummary(time.monotonic() - began, status.frames, dict(status.stats), card.xruns, card.speaker.ran_dry)


def _show(status: ChatStatus, card: SoundCard, microphone: Device, speaker: Device, out: TextIO, until: float | None) -> None:
    """The terminal: a status line redrawn in place, and a line for each thing said."""
    device_ms = (microphone.latency_s + speaker.latency_s) * 1000
    try:
        while (until is None or time.monotonic() < until) and status.failure is None:
            while status.events:
                line = _event_line(status.events.popleft())
                if line:
                    print(f"\r\033[K{line}", file=out)
            buffered_ms = card.speaker.buffered() * 1000 / card.rate
            lag = "–" if status.round_trip_ms is None else f"{device_ms + status.round_trip_ms + buffered_ms:.0f} ms"
            stats = status.stats
            print(
                f"\r\033[Kyou {_meter(status.mic_db)}  agent {_meter(status.speaker_db)}  lag {lag}  "
                f"late {stats.get('late_ticks', 0)}/{stats.get('ticks', 0)} ticks",
                end="",
                file=out,
                flush=True,
            )
            time.sleep(REFRESH_S)
    except KeyboardInterrupt:
        pass


def _meter(db: float, width: int = 10) -> str:
    filled = int(round(np.clip((db + 60) / 60, 0, 1) * width))
    return "#" * filled + "." * (width - filled) + f" {max(db, -99):4.0f} dB"


def _event_line(event: dict[str, Any]) -> str | None:
    kind = event.get("type")
    if kind == "user.transcript":
        return f"you:   {event['text']}"
    if kind == "agent.transcript.delta":
        return f"agent: {event['text']}"
    if kind == "agent.speech.stopped" and event.get("interrupted"):
        return "(the agent stopped: you talked over it)"
    if kind == "error":
        return f"(server error {event['code']}: {event['message']})"
    return None


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "chat",
        help="talk with the agent through the microphone and speaker (use headphones)",
        description="A full-duplex conversation with the agent on this computer's sound card: the agent runs in "
        "this process, or on a `duplex serve` server with --server. Shows levels, lag and late ticks. "
        "Use headphones: there is no echo canceller yet.",
    )
    p.add_argument("--server", metavar="URL", help="talk to the agent of a server (ws://HOST:PORT/v1/duplex)")
    p.add_argument("--token", default=os.environ.get("DUPLEX_TOKEN") or None, help="the server's token (default: $DUPLEX_TOKEN)")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"agent to run in this process (default {DEFAULT_MODEL})")
    p.add_argument("--input-device", type=_device, help="microphone: index or name (default: the system's)")
    p.add_argument("--output-device", type=_device, help="speaker: index or name (default: the system's)")
    p.add_argument("--seconds", type=float, help="end after this long (default: at Ctrl-C)")
    p.add_argument("--list-devices", action="store_true", help="list the sound devices and exit")
    p.set_defaults(func=_run)


def _device(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def _run(args: argparse.Namespace) -> int:
    if args.list_devices:
        print(list_devices())
        return 0
    find_device(args.input_device, "input")  # no sound card: say so before loading a model
    find_device(args.output_device, "output")
    agent = None if args.server else load_agent(args.model, virtual_clock=False)
    try:
        summary = chat(agent, args.server, args.token, args.input_device, args.output_device, args.seconds)
    finally:
        if agent is not None:
            agent.close()
    stats = summary.stats
    print(
        f"duplex chat: {summary.seconds:.0f} s, {stats.get('ticks', 0)} ticks, {stats.get('late_ticks', 0)} late, "
        f"{stats.get('input_underruns', 0)} input underruns, {summary.xruns} sound card over/underruns",
        file=sys.stderr,
    )
    return 0

