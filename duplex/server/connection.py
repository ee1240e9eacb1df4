"""One client's session, on the event loop: PROTOCOL.md's session life, errors and closes.

A `Connection` reads the client's frames and answers them at once (nothing
here blocks or computes: audio bytes and requests are handed to the
`SessionLink` for the tick thread). Everything the client is sent, events and
audio frames alike, goes through one outbox in order, drained by a writer
task; a client that stops reading is closed before its outbox can grow without
bound.

The session's tick clock starts at its first audio byte: before that the
client may still change rates (docs/protocol.md).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from audio.frames import SAMPLE_RATE
from duplex.agent import Agent
from duplex.server.bridge import (
    EngineBridge,
    SessionLink,
    TickDelivery,
    overflow_message,
)
from duplex.server.protocol import (
    MAX_ERRORS,
    MAX_OUTBOX_S,
    MAX_PENDING_SAYS,
    Close,
    CloseSession,
    ErrorCode,
    ProtocolError,
    Say,
    SessionUpdate,
    parse_request,
)


@dataclass(frozen=True)
class _CloseItem:
    """Outbox marker: close the socket once everything before it is sent."""

    code: int
    reason: str


class Connection:
    def __init__(self, ws: ServerConnection, bridge: EngineBridge, agent: Agent):
        self.ws = ws
        self.bridge = bridge
        self.agent = agent
        self.id = "sess_" + secrets.token_hex(8)
        self.input_rate = SAMPLE_RATE
        self.output_rate = SAMPLE_RATE
        self.seed = 0
        self.link: SessionLink | None = None
        """Exists from the first audio byte (when the tick clock starts) on."""
        self.errors = 0
        self.frames_sent = 0
        self.final_stats: dict[str, Any] | None = None
        self.closing: _CloseItem | None = None
        self.close_requested = False
        """session.close arrived; the session ends at the tick thread's next tick boundary."""
        self._says_waiting: list[tuple[str, str]] = []
        self._pending_says = 0
        self._say_count = 0
        self._outbox: asyncio.Queue = asyncio.Queue()
        self._max_outbox = 4 * round(MAX_OUTBOX_S * 1000 / agent.tick_ms)
        self._writer: asyncio.Task | None = None
        self._closer: asyncio.Task | None = None

    # -- life -----------------------------------------------------------------

    async def run(self) -> None:
        """Serve the client until the connection is closed, by either side."""
        self._writer = asyncio.create_task(self._write())
        self._send_event({"type": "session.created", **self._description()})
        try:
            async for message in self.ws:
                if self.closing is not None or self.close_requested:
                    continue  # keep reading so that the closing handshake completes
                try:
                    self._on_message(message)
                except Exception as exc:
                    self._fail(exc)
        except ConnectionClosed:
            pass
        finally:
            self._stop_session()
            if self._closer is not None:
                await self._closer
            if not self._writer.done():
                self._writer.cancel()

    def finish(self, code: int, reason: str, flush: bool = True) -> None:
        """Close the session: after what is queued (flush) or at once (shutdown, a client not reading)."""
        if self.closing is not None:
            return
        self.closing = _CloseItem(code, reason)
        self._stop_session()
        if flush:
            self._outbox.put_nowait(self.closing)
        else:
            if self._writer is not None:
                self._writer.cancel()
            self._closer = asyncio.create_task(self.ws.close(code, reason))

    def _stop_session(self) -> None:
        if self.final_stats is None:
            self.final_stats = self.bridge.close(self.id)

    def _fail(self, exc: BaseException) -> None:
        """A fault of the server in this session: tell the client, close with 1011 (whatever the error count)."""
        if self.closing is not None:
            return
        self.errors += 1
        message = f"internal server error ({type(exc).__name__}); session closed"
        self._send_event({"type": "error", "code": ErrorCode.INTERNAL, "message": message})
        self.finish(Close.INTERNAL, "internal error")

    # -- client to server -----------------------------------------------------

    def _on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self._on_audio(message)
            return
        try:
            request = parse_request(message)
        except ProtocolError as exc:
            self._send_error(exc.code, exc.message)
            return
        if isinstance(request, SessionUpdate):
            self._on_update(request)
        elif isinstance(request, Say):
            self._on_say(request)
        elif isinstance(request, CloseSession):
            self.close_requested = True
            if self.link is None:
                self._closed(self.bridge.close(self.id))
            else:
                self.bridge.close_between_ticks(self.id, self._closed)

    def _closed(self, stats: dict[str, Any]) -> None:
        """The session has stopped ticking after session.close: answer session.closed, close with 1000."""
        if self.closing is not None:
            return
        self.final_stats = stats
        self._send_event({"type": "session.closed", "stats": stats})
        self.finish(Close.NORMAL, "session closed by the client")

    def _on_audio(self, data: bytes) -> None:
        if len(data) % 2:
            self._send_error(ErrorCode.INVALID_AUDIO, f"binary frame of {len(data)} bytes: 16-bit PCM needs an even count")
            return
        if not data:
            return
        if self.link is None:
            self.link = self.bridge.open(self.id, self.seed, self.input_rate, self.output_rate, self._on_tick)
            self.link.says.extend(self._says_waiting)
            self._says_waiting = []
        dropped = self.link.push_audio(data)
        if dropped:
            self._send_error(ErrorCode.INPUT_OVERFLOW, overflow_message(dropped, self.input_rate))

    def _on_update(self, update: SessionUpdate) -> None:
        if self.link is not None:
            changed = [
                name
                for name, new, old in (
                    ("input_sample_rate", update.input_sample_rate, self.input_rate),
                    ("output_sample_rate", update.output_sample_rate, self.output_rate),
                )
                if new is not None and new != old
            ]
            if changed:
                self._send_error(ErrorCode.RATE_LOCKED, f"{' and '.join(changed)} cannot change once audio has started")
                return
            if update.seed is not None and update.seed != self.seed:
                self._send_error(ErrorCode.INVALID_EVENT, "seed cannot change once audio has started")
                return
        self.input_rate = update.input_sample_rate or self.input_rate
        self.output_rate = update.output_sample_rate or self.output_rate
        self.seed = self.seed if update.seed is None else update.seed
        self._send_event({"type": "session.updated", **self._description()})

    def _on_say(self, say: Say) -> None:
        if not self.agent.can_say:
            self._send_error(ErrorCode.UNSUPPORTED, f"model {self.agent.name!r} cannot speak given text")
            return
        if self._pending_says >= MAX_PENDING_SAYS:
            self._send_error(ErrorCode.INPUT_OVERFLOW, f"{MAX_PENDING_SAYS} agent.say requests are already pending")
            return
        self._say_count += 1
        self._pending_says += 1
        request = (say.text, say.id if say.id is not None else f"say-{self._say_count}")
        if self.link is None:
            self._says_waiting.append(request)
        else:
            self.link.says.append(request)

    # -- server to client -----------------------------------------------------

    def _on_tick(self, delivery: TickDelivery) -> None:
        """One tick's output for this session (called on the event loop by the bridge)."""
        if self.closing is not None:
            return
        for code, message in delivery.errors:
            self._send_error(code, message)
        if delivery.failure is not None:
            self._fail(delivery.failure)
            return
        self._enqueue(delivery.frame)
        self.frames_sent += 1
        for event in delivery.events:
            if event.get("type") == "agent.say.done":
                self._pending_says = max(0, self._pending_says - 1)
            self._send_event(event)

    def _send_event(self, event: dict[str, Any]) -> None:
        self._enqueue(json.dumps(event))

    def _send_error(self, code: str, message: str) -> None:
        if self.closing is not None:
            return
        self.errors += 1
        self._send_event({"type": "error", "code": code, "message": message})
        if self.errors >= MAX_ERRORS:
            self.finish(Close.POLICY, f"too many errors ({MAX_ERRORS})")

    def _enqueue(self, item: str | bytes) -> None:
        self._outbox.put_nowait(item)
        if self.closing is None and self._outbox.qsize() > self._max_outbox:
            self.finish(Close.POLICY, f"client is not reading: more than {MAX_OUTBOX_S:g} s of output waiting", flush=False)

    async def _write(self) -> None:
        try:
            while True:
                item = await self._outbox.get()
                if isinstance(item, _CloseItem):
                    await self.ws.close(item.code, item.reason)
                    return
                await self.ws.send(item)
        except ConnectionClosed:
            pass

    def _description(self) -> dict[str, Any]:
        """The fields session.created and session.updated share."""
        return {
            "session_id": self.id,
            "tick_ms": self.agent.tick_ms,
            "input_sample_rate": self.input_rate,
            "output_sample_rate": self.output_rate,
            "model": self.agent.name,
        }
