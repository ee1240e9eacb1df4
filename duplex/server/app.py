"""The WebSocket voice API server (PROTOCOL.md section 1).

`VoiceServer` ties the parts together: the websockets asyncio server for I/O
(handshake checks and the page in `http.py`, one `Connection` per client),
and the `EngineBridge`, whose tick thread advances every session at once on
the wall clock. It enforces the capacity limit, and on `stop()` closes every
session with 1001. Each session's start and end is logged as one JSON line
(logger "duplex.server"), the end with its statistics.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from websockets.asyncio.server import Server, ServerConnection, serve

from duplex.agent import Agent
from duplex.server.bridge import EngineBridge
from duplex.server.connection import Connection
from duplex.server.http import HttpFront
from duplex.server.protocol import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    MAX_FRAME_BYTES,
    PATH,
    Close,
)

log = logging.getLogger("duplex.server")

CLOSE_TIMEOUT_S = 3.0
"""How long a closing handshake may take before the socket is dropped."""


class ServerConfigError(Exception):
    """Server options that cannot work together; the message is one line for the user."""


@dataclass(frozen=True)
class ServerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    max_sessions: int = 16
    certfile: str | None = None
    keyfile: str | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.certfile is None and self.keyfile is None:
            return None
        if self.certfile is None:
            raise ServerConfigError("--keyfile needs --certfile")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(self.certfile, self.keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise ServerConfigError(f"cannot load the TLS certificate {self.certfile}: {exc}") from None
        return context


def log_event(event: str, **fields) -> None:
    """One structured log line: a JSON object with the event's name and a UTC timestamp."""
    record = {"event": event, "time": datetime.now(UTC).isoformat(timespec="milliseconds"), **fields}
    log.info(json.dumps(record))


class VoiceServer:
    def __init__(self, agent: Agent, config: ServerConfig = ServerConfig()):
        if config.max_sessions < 1:
            raise ServerConfigError("--max-sessions must be at least 1")
        self.agent = agent
        self.config = config
        self.connections: set[Connection] = set()
        self.bridge: EngineBridge | None = None
        self._server: Server | None = None
        self._ssl = config.ssl_context()
        self._http = HttpFront(config.token)

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the one the OS chose for port 0)."""
        return self._server.sockets[0].getsockname()[1]

    def url(self, path: str = PATH) -> str:
        scheme = "wss" if self._ssl else "ws"
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"{scheme}://{host}:{self.port}{path}"

    def page_url(self) -> str:
        """Where a browser finds the page (with the token, which the page passes on to its socket)."""
        scheme = "https" if self._ssl else "http"
        url = self.url("/").split("://", 1)[1]
        return f"{scheme}://{url}" + (f"?token={quote(self.config.token)}" if self.config.token else "")

    async def start(self) -> None:
        self.bridge = EngineBridge(self.agent, asyncio.get_running_loop())
        self.bridge.start()
        try:
            self._server = await serve(
                self._handle,
                self.config.host,
                self.config.port,
                process_request=self._http.process_request,
                max_size=MAX_FRAME_BYTES,
                compression=None,  # audio does not compress, and inflating is a denial-of-service lever
                close_timeout=CLOSE_TIMEOUT_S,
                ssl=self._ssl,
            )
        except OSError as exc:
            self.bridge.stop()
            raise ServerConfigError(f"cannot listen on {self.config.host}:{self.config.port}: {exc.strerror}") from None
        log_event("server.start", url=self.url(), model=self.agent.name, max_sessions=self.config.max_sessions)

    async def stop(self) -> None:
        """Close every session with 1001, stop listening and stop the tick thread."""
        for connection in list(self.connections):
            connection.finish(Close.GOING_AWAY, "server shutting down", flush=False)
        if self._server is not None:
            self._server.close(code=Close.GOING_AWAY, reason="server shutting down")
            await self._server.wait_closed()
        if self.bridge is not None:
            self.bridge.stop()
            log_event("server.stop", **self.bridge.realtime.loop.stats.summary())

    async def _handle(self, ws: ServerConnection) -> None:
        if len(self.connections) >= self.config.max_sessions:
            await ws.close(Close.TRY_AGAIN, f"server full: {self.config.max_sessions} sessions running; try again later")
            log_event("session.refused", peer=_peer(ws), reason="capacity")
            return
        connection = Connection(ws, self.bridge, self.agent)
        self.connections.add(connection)
        began = time.monotonic()
        log_event("session.start", session_id=connection.id, peer=_peer(ws), sessions=len(self.connections))
        try:
            await connection.run()
        finally:
            self.connections.discard(connection)
            log_event(
                "session.end",
                session_id=connection.id,
                close_code=ws.close_code,
                close_reason=ws.close_reason,
                duration_s=round(time.monotonic() - began, 3),
                frames_sent=connection.frames_sent,
                errors=connection.errors,
                stats=connection.final_stats,
            )


async def run_until_signal(server: VoiceServer, ready: Callable[[VoiceServer], None]) -> None:
    """Serve until SIGINT or SIGTERM, then close every session with 1001 and return."""
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    ready(server)
    try:
        await stop.wait()
    finally:
        await server.stop()


def _peer(ws: ServerConnection) -> str:
    address = ws.remote_address
    return f"{address[0]}:{address[1]}" if address else "unknown"
