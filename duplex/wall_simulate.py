"""`duplex simulate --wall`: the simulation on the wall clock, through real WebSocket sessions.

Each side that is not the scripted user is a live session of a running
`duplex serve` (so `--a baseline --b baseline` opens two connections); the
scripted user runs in this process on the wall clock. A relay loop ticks
every 80 ms on absolute deadlines: it takes what each side said since the
last tick, passes it through that direction's `Link` (delay, jitter, loss,
reordering, in wall-clock seconds) and hands what arrives to the other side —
as PCM frames on its socket, or as the local user's next input slice. So the
server meets realistic network conditions: late, bunched and missing audio.

Frames are tagged with the sender's tick index inside the link, as on the
virtual clock; the server's wire format is PCM only (PROTOCOL.md), so the
receiving side plays frames out in arrival order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from dataclasses import dataclass, field

import numpy as np

from audio.frames import TICK_SAMPLES, float_to_pcm16, pcm16_to_float
from clock.link import Link
from duplex.agent import Agent
from duplex.partner_stream import PartnerStream
from duplex.simulate import DialogueRecord, NetworkConfig, SideRecord


class WallSimulationError(Exception):
    """The server could not be reached or refused the session."""


@dataclass
class _Remote:
    """A session on the server: frames it says arrive on its socket, one per tick."""

    ws: object
    frames: list[np.ndarray] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)

    async def read(self) -> None:
        async for message in self.ws:
            if isinstance(message, bytes):
                self.frames.append(pcm16_to_float(message))
            else:
                self.events.append(json.loads(message))

    def take_said(self) -> list[np.ndarray]:
        out, self.frames = self.frames, []
        return out

    async def hear(self, audio: np.ndarray) -> None:
        await self.ws.send(float_to_pcm16(audio))


@dataclass
class _Local:
    """The in-process side (the scripted user), stepped once per relay tick."""

    agent: Agent
    stream: PartnerStream
    state: object = None
    said_now: list[np.ndarray] = field(default_factory=list)
    heard: list[np.ndarray] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)

    def step(self, t: int) -> None:
        listen = self.stream.slice_for(t)
        self.heard.append(listen)
        self.said_now = [self.agent.step([self.state], listen[None, :])[0]]
        self.events.extend(self.state.events)
        self.state.events.clear()

    def take_said(self) -> list[np.ndarray]:
        return self.said_now


async def _connect(url: str, token: str | None, seed: int):
    import websockets

    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        ws = await websockets.connect(url, additional_headers=headers, max_size=1 << 20)
    except (OSError, websockets.exceptions.InvalidHandshake) as exc:
        raise WallSimulationError(f"cannot open a session at {url}: {exc}") from None
    created = json.loads(await ws.recv())
    if created.get("type") != "session.created" or created.get("tick_ms") != 80:
        raise WallSimulationError(f"{url} did not open an 80 ms session: {created}")
    await ws.send(json.dumps({"type": "session.update", "seed": seed}))
    return ws


async def simulate_wall(
    url: str, local: dict[str, Agent], seconds: float, net: NetworkConfig, seed: int = 0, token: str | None = None
) -> DialogueRecord:
    """One dialogue between side "a" and side "b"; a side in `local` runs here, the others on the server."""
    sides: dict[str, object] = {}
    readers = []
    for i, name in enumerate("ab"):
        if name in local:
            agent = local[name]
            sides[name] = _Local(agent, PartnerStream(TICK_SAMPLES, compensate=False), agent.new_state(seed))
        else:
            remote = _Remote(await _connect(url, token, seed + i))
            readers.append(asyncio.create_task(remote.read()))
            sides[name] = remote
    links = {
        name: Link(dataclasses.replace(net, seed=seed * 7919 + i))
        for i, name in enumerate("ab")
    }  # keyed by sender
    n_ticks = int(round(seconds / 0.08))
    said = {n: np.zeros((n_ticks + 64) * TICK_SAMPLES, np.float32) for n in "ab"}
    heard = {n: np.zeros_like(said[n]) for n in "ab"}
    said_count = {n: 0 for n in "ab"}
    heard_count = {n: 0 for n in "ab"}
    for side in sides.values():  # the server starts a session's tick clock at its first audio byte
        if isinstance(side, _Remote):
            await side.hear(np.zeros(TICK_SAMPLES, np.float32))
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        for t in range(n_ticks):
            await asyncio.sleep(max(0.0, start + (t + 1) * 0.08 - loop.time()))  # absolute deadlines
            now = loop.time() - start
            for name, side in sides.items():
                if isinstance(side, _Local):
                    side.step(t)
                for frame in side.take_said():
                    k = said_count[name]
                    if k < n_ticks + 64:
                        said[name][k * TICK_SAMPLES : (k + 1) * TICK_SAMPLES] = frame
                    said_count[name] += 1
                    links[name].send((k, frame), now)
            for name, other in (("a", "b"), ("b", "a")):
                packets = links[other].receive(now)
                side = sides[name]
                if isinstance(side, _Local):
                    side.stream.deliver(packets)
                    continue
                for p in packets:
                    k = heard_count[name]
                    if k < n_ticks + 64:
                        heard[name][k * TICK_SAMPLES : (k + 1) * TICK_SAMPLES] = p.payload[1]
                    heard_count[name] += 1
                    await side.hear(p.payload[1])
        for side in sides.values():
            if isinstance(side, _Remote):
                await side.ws.send(json.dumps({"type": "session.close"}))
                await asyncio.wait_for(side.ws.wait_closed(), timeout=5)
    finally:
        for task in readers:
            task.cancel()
        for side in sides.values():
            if isinstance(side, _Remote):
                await side.ws.close()

    n = n_ticks * TICK_SAMPLES
    records = []
    for name, other in (("a", "b"), ("b", "a")):
        side = sides[name]
        heard_audio = np.concatenate(side.heard)[:n] if isinstance(side, _Local) else heard[name][:n]
        records.append(
            SideRecord(said[name][:n].copy(), heard_audio, side.events, {}, links[other].stats.summary(),
                       side.state if isinstance(side, _Local) else None)
        )
    return DialogueRecord(0, *records)

