"""Running the real server for tests, and a raw protocol client that records what it gets.

`ServerThread` runs a `VoiceServer` on its own event loop in a thread of the
test process (fast to start; any agent object). `server_process` runs it as a
separate process (`duplex serve`, or tests/serve_echo_tone.py for the tests'
agent) for what only a process shows: memory, signals, logs. Both bind 127.0.0.1 on a port the OS
picks. `Recorder` is deliberately not the project's client library: the
conformance tests speak raw WebSocket frames, as a stranger's client would.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from duplex.agent import Agent
from duplex.server.app import ServerConfig, VoiceServer
from duplex.server.process import ServerProcess

ROOT = Path(__file__).resolve().parent.parent


def echo_tone_process(*extra: str) -> ServerProcess:
    """A server process serving EchoToneAgent."""
    return ServerProcess([sys.executable, "-m", "tests.serve_echo_tone", *extra], cwd=ROOT)


class ServerThread:
    def __init__(self, agent: Agent, **config: Any):
        self.agent = agent
        self.config = ServerConfig(port=0, **config)
        self.server: VoiceServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    @property
    def url(self) -> str:
        return self.server.url()

    def __enter__(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(30) or self._failure is not None:
            raise RuntimeError(f"server thread did not start: {self._failure!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            self.server = VoiceServer(self.agent, self.config)
            await self.server.start()
        except BaseException as exc:
            self._failure = exc
            raise
        finally:
            self._ready.set()
        await self._stop.wait()
        await self.server.stop()


@dataclass
class Recorder:
    """Everything one raw client connection received, with arrival times."""

    ws: ClientConnection
    frames: list[bytes] = field(default_factory=list)
    frame_times: list[float] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""

    @classmethod
    async def open(cls, url: str, **kwargs: Any) -> Recorder:
        ws = await connect(url, max_size=None, compression=None, open_timeout=20, **kwargs)
        return cls(ws)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]

    async def send_json(self, obj: Any) -> None:
        await self.ws.send(json.dumps(obj))

    async def receive_until(self, done: Callable[[Recorder], bool], timeout: float = 10.0) -> bool:
        """Receive until done(self) or the connection closes; False on timeout."""
        deadline = time.monotonic() + timeout
        while not done(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                message = await asyncio.wait_for(self.ws.recv(), remaining)
            except TimeoutError:
                return False
            except ConnectionClosed:
                self.close_code = self.ws.close_code
                self.close_reason = self.ws.close_reason or ""
                return done(self)
            self._record(message)
        return True

    async def receive_for(self, seconds: float) -> None:
        await self.receive_until(lambda r: r.close_code is not None, timeout=seconds)

    async def until_closed(self, timeout: float = 10.0) -> int | None:
        await self.receive_until(lambda r: r.close_code is not None, timeout)
        return self.close_code

    def _record(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self.frames.append(message)
            self.frame_times.append(time.monotonic())
        else:
            self.events.append(json.loads(message))

    def agent_audio(self) -> np.ndarray:
        """The received frames as one float signal."""
        data = b"".join(self.frames)
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def pcm(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


async def stream_realtime(rec: Recorder, audio: np.ndarray, rate: int, chunk_ms: int = 40) -> None:
    """Send audio paced by the wall clock (absolute deadlines), receiving meanwhile."""
    chunk = rate * chunk_ms // 1000
    start = time.monotonic()
    for i in range(0, len(audio), chunk):
        await rec.ws.send(pcm(audio[i : i + chunk]))
        await rec.receive_until(lambda r: False, timeout=max(0.0, start + (i + chunk) / rate - time.monotonic()))


def tone(freq: float, seconds: float, rate: int, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_frequency(audio: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.argmax(spectrum) * rate / len(audio))
