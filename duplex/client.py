"""A Python client of the WebSocket voice API (docs/protocol.md), for programs that talk to a server.

`VoiceClient.connect` opens a session at the rates you ask for; then you send
audio and requests whenever you like, and read the server's messages, audio
frames and events in one ordered stream:

    client = await VoiceClient.connect("ws://127.0.0.1:8765/v1/duplex")
    await client.send_audio(chunk)                   # float32 at client.input_rate
    async for message in client.messages():
        if isinstance(message, AgentFrame): ...      # one per tick, float32 at client.output_rate
        else: ...                                    # an event: a dict with a "type"

`RoundTrip` times each tick's trip: from sending the input a tick needs to
receiving the agent's frame for it.
"""

from __future__ import annotations

import json
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

from audio.frames import float_to_pcm16, pcm16_to_float


class VoiceClientError(Exception):
    """The session could not be opened; the message is one line meant for the user."""


@dataclass
class AgentFrame:
    index: int
    """The tick this frame answers (0 for the session's first tick)."""
    audio: np.ndarray
    arrived: float
    """time.monotonic() at arrival."""


class VoiceClient:
    def __init__(self, ws: ClientConnection, session: dict[str, Any]):
        self.ws = ws
        self.session = session
        self.frames_received = 0
        self.samples_sent = 0
        self.closed_stats: dict[str, Any] | None = None

    @property
    def input_rate(self) -> int:
        return self.session["input_sample_rate"]

    @property
    def output_rate(self) -> int:
        return self.session["output_sample_rate"]

    @property
    def tick_ms(self) -> int:
        return self.session["tick_ms"]

    @classmethod
    async def connect(
        cls,
        url: str,
        token: str | None = None,
        input_rate: int = 16000,
        output_rate: int = 16000,
        ssl_context: ssl.SSLContext | None = None,
    ) -> VoiceClient:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            ws = await connect(url, additional_headers=headers, compression=None, max_size=None, ssl=ssl_context, open_timeout=20)
        except InvalidStatus as exc:
            status = exc.response.status_code
            hint = ": the server wants a token (--token or DUPLEX_TOKEN)" if status == 401 else ""
            raise VoiceClientError(f"{url} refused the session with HTTP {status}{hint}") from None
        except InvalidURI:
            raise VoiceClientError(f"{url} is not a ws:// or wss:// address") from None
        except (OSError, TimeoutError) as exc:
            raise VoiceClientError(f"cannot reach {url}: {exc}") from None
        try:
            session = json.loads(await ws.recv())
            if (input_rate, output_rate) != (session["input_sample_rate"], session["output_sample_rate"]):
                await ws.send(json.dumps({"type": "session.update", "input_sample_rate": input_rate, "output_sample_rate": output_rate}))
                session = json.loads(await ws.recv())
                if session["type"] != "session.updated":
                    raise VoiceClientError(f"the server refused the rates: {session.get('message', session)}")
        except ConnectionClosed:
            raise VoiceClientError(f"the server closed the session ({ws.close_code}: {ws.close_reason})") from None
        return cls(ws, session)

    async def send_audio(self, audio: np.ndarray) -> None:
        await self.ws.send(float_to_pcm16(audio))
        self.samples_sent += len(audio)

    async def say(self, text: str, say_id: str | None = None) -> None:
        request = {"type": "agent.say", "text": text}
        if say_id is not None:
            request["id"] = say_id
        await self.ws.send(json.dumps(request))

    async def close_session(self) -> None:
        """Ask the server to end the session; messages() ends after session.closed."""
        try:
            await self.ws.send(json.dumps({"type": "session.close"}))
        except ConnectionClosed:
            pass

    async def messages(self) -> AsyncIterator[AgentFrame | dict[str, Any]]:
        """Frames and events in the order the server sent them, until the connection closes."""
        try:
            async for message in self.ws:
                if isinstance(message, bytes):
                    frame = AgentFrame(self.frames_received, pcm16_to_float(message), time.monotonic())
                    self.frames_received += 1
                    yield frame
                else:
                    event = json.loads(message)
                    if event.get("type") == "session.closed":
                        self.closed_stats = event.get("stats")
                    yield event
        except ConnectionClosed:
            pass

    async def disconnect(self) -> None:
        await self.ws.close()


class RoundTrip:
    """Times ticks end to end: frame k answers the tick that consumed input up to
    (k + 1 - underruns) ticks, so the round trip is the time since that input was sent."""

    def __init__(self, tick_samples: int):
        self.tick_samples = tick_samples
        self.last_ms: float | None = None
        self._sent: deque[tuple[int, float]] = deque()
        self._total = 0

    def sent(self, samples: int, when: float) -> None:
        self._total += samples
        self._sent.append((self._total, when))

    def received(self, frame_index: int, underruns: int, when: float) -> None:
        needed = (frame_index + 1 - underruns) * self.tick_samples
        while len(self._sent) > 1 and self._sent[0][0] < needed:
            self._sent.popleft()
        if self._sent and self._sent[0][0] >= needed:
            self.last_ms = (when - self._sent[0][1]) * 1000.0
