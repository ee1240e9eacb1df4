"""Load on the WebSocket voice server: N concurrent real-time clients on loopback, then connect/disconnect cycles.

A `duplex serve` process (the default agent unless --model) serves N
clients at once. Each streams the shipped demo sample (user speech with
pauses, looped, out of phase with the others) in real time, 80 ms at a time,
so the agent does its real work: VAD every tick, ASR and TTS at every end of
turn. Per N it prints one line: the late-tick rate (late ticks / ticks, from
the sessions' own statistics), the output frame jitter (|interval between
two frames - one tick| at the client, p50 and p99 over all clients), the
worst session's compute p99, and input underruns. Then it opens and closes
--cycles sessions and prints the server's memory and thread count before and
after. The clients run in this process on the same machine, so on a small
machine they compete with the server for the CPU: figures are upper bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import time
from dataclasses import dataclass, field

import numpy as np
from websockets.exceptions import ConnectionClosed

from audio.frames import SAMPLE_RATE
from audio.wav import read_mono
from duplex.agents import DEFAULT_MODEL
from duplex.client import AgentFrame, VoiceClient
from duplex.server.process import ServerProcess

SAMPLE = os.path.join(os.path.dirname(__file__), "..", "demos", "samples", "user_question.wav")


@dataclass
class ClientRun:
    arrivals: list[float] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    close_code: int | None = None


async def stream_client(url: str, sample: np.ndarray, offset: int, seconds: float) -> ClientRun:
    client = await VoiceClient.connect(url)
    tick_s = client.tick_ms / 1000
    chunk = int(tick_s * SAMPLE_RATE)
    run = ClientRun()

    async def receive() -> None:
        async for message in client.messages():
            if isinstance(message, AgentFrame):
                run.arrivals.append(message.arrived)
            elif message.get("type") == "session.stats":
                run.stats = message  # the last word, should the server close the session early

    receiving = asyncio.create_task(receive())
    began = time.monotonic()
    for i in range(int(seconds / tick_s)):
        if receiving.done():  # the server closed the session (e.g. 20 input_overflow errors)
            break
        at = (offset + i * chunk) % (len(sample) - chunk)
        try:
            await client.send_audio(sample[at : at + chunk])
        except ConnectionClosed:
            break
        await asyncio.sleep(max(0.0, began + (i + 1) * tick_s - time.monotonic()))
    await client.close_session()
    await receiving
    run.stats = client.closed_stats or run.stats
    run.close_code = client.ws.close_code
    return run


async def load(url: str, n: int, seconds: float, sample: np.ndarray) -> str:
    offsets = [int(i * len(sample) / n) for i in range(n)]
    runs = await asyncio.gather(*(stream_client(url, sample, offset, seconds) for offset in offsets))
    ticks = sum(r.stats.get("ticks", 0) for r in runs)
    late = sum(r.stats.get("late_ticks", 0) for r in runs)
    jitter = np.concatenate([np.abs(np.diff(r.arrivals) - 0.08) * 1000 for r in runs])
    compute_p99 = max(r.stats.get("compute_ms_p99", 0.0) for r in runs)
    underruns = sum(r.stats.get("input_underruns", 0) for r in runs)
    dropped = sum(r.close_code != 1000 for r in runs)
    return (
        f"server load N={n:<2d} {seconds:.0f} s: late-tick rate {late / max(1, ticks):.4f} ({late}/{ticks})  "
        f"frame jitter p50 {np.percentile(jitter, 50):5.1f} ms p99 {np.percentile(jitter, 99):6.1f} ms  "
        f"compute p99 {compute_p99:6.1f} ms  input underruns {underruns}  sessions closed early {dropped}"
    )


async def connect_cycles(server: ServerProcess, count: int, concurrency: int = 4) -> str:
    silence = np.zeros(1280, np.float32)

    async def cycle() -> None:
        client = await VoiceClient.connect(server.url)
        await client.send_audio(silence)
        await client.close_session()
        async for _ in client.messages():
            pass

    async def cycles(total: int) -> None:
        for _ in range(total // concurrency):
            await asyncio.gather(*(cycle() for _ in range(concurrency)))

    await cycles(100)  # warm-up: allocators and caches settle
    await asyncio.sleep(1.0)
    rss_before, threads_before = server.rss_mb(), server.threads()
    began = time.monotonic()
    await cycles(count)
    elapsed = time.monotonic() - began
    await asyncio.sleep(1.0)
    return (
        f"server connect/disconnect x{count}: {count / elapsed:.0f} sessions/s  "
        f"rss {rss_before:.1f} -> {server.rss_mb():.1f} MB  threads {threads_before} -> {server.threads()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", default="1,4,16,32", help="comma-separated client counts (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=60.0, help="streaming seconds per run (default %(default)s)")
    parser.add_argument("--cycles", type=int, default=1000, help="connect/disconnect cycles (default %(default)s)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="the server's agent (default %(default)s)")
    parser.add_argument(
        "--command",
        help="run this server command instead of duplex serve; it must print 'voice API on URL' "
        "(e.g. 'python -m tests.serve_echo_tone' for the tests' model-free agent)",
    )
    args = parser.parse_args()
    sample, rate = read_mono(SAMPLE)
    assert rate == SAMPLE_RATE
    counts = [int(x) for x in args.sessions.split(",")]
    server = (
        ServerProcess(shlex.split(args.command) + ["--max-sessions", str(max(counts) + 8)])
        if args.command
        else ServerProcess.duplex_serve("--max-sessions", str(max(counts) + 8), "--model", args.model)
    )
    with server:
        for n in counts:
            print(asyncio.run(load(server.url, n, args.seconds, sample)), flush=True)
        if args.cycles:
            print(asyncio.run(connect_cycles(server, args.cycles)), flush=True)


if __name__ == "__main__":
    main()
