"""Stream a WAV file (or the microphone) to a `duplex serve` server and record the conversation.

    python demos/ws_client.py question.wav -o conversation.wav
    python demos/ws_client.py --mic --seconds 20 -o conversation.wav --url ws://HOST:8765/v1/duplex --token T

The input is sent in real time, 40 ms at a time, followed by --tail seconds
of silence so that the agent can finish its answer. The output is a stereo
16 kHz WAV in the project's dialogue convention (channel 0 the agent,
channel 1 the user), timed as the user would have heard it: each agent frame
is placed at the moment it arrived (and back to back with the previous one
while they keep up, as a player with a jitter buffer plays them), so the
recording includes the network's and the server's delay. `duplex metrics`
reads it. Uses only the project's public client API.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

import numpy as np

from audio.devices import DeviceError, find_device, open_input
from audio.frames import SAMPLE_RATE
from audio.resample import resample
from audio.wav import AudioError, read_mono, write_wav
from duplex.client import AgentFrame, VoiceClient, VoiceClientError

CHUNK_S = 0.04


class Recording:
    """The two channels of a conversation, on the client's clock (t = 0 at the first sample sent)."""

    def __init__(self) -> None:
        self.user: list[np.ndarray] = []
        self.agent = np.zeros(0, dtype=np.float32)
        self.start: float | None = None
        self._next = 0  # where the next agent frame goes if it arrives in time

    def sent(self, audio: np.ndarray) -> None:
        """A chunk just captured: its last sample is now, so the first was len(audio) samples ago."""
        if self.start is None:
            self.start = time.monotonic() - len(audio) / SAMPLE_RATE
        self.user.append(audio)

    def received(self, frame: AgentFrame) -> None:
        arrived = int(round((frame.arrived - self.start) * SAMPLE_RATE))
        at = max(self._next, arrived)
        end = at + len(frame.audio)
        if end > len(self.agent):
            self.agent = np.concatenate([self.agent, np.zeros(end - len(self.agent) + SAMPLE_RATE, np.float32)])
        self.agent[at:end] = frame.audio
        self._next = end

    def stereo(self) -> np.ndarray:
        user = np.concatenate(self.user) if self.user else np.zeros(0, np.float32)
        agent = np.zeros(len(user), np.float32)
        agent[: min(len(user), len(self.agent))] = self.agent[: len(user)]
        return np.stack([agent, user], axis=1)


async def wav_chunks(path: str, tail_s: float):
    """The WAV at 16 kHz, then tail_s of silence, in CHUNK_S pieces, each given out when a
    microphone would have finished capturing it (absolute deadlines)."""
    audio, rate = read_mono(path)
    audio = np.concatenate([resample(audio, rate, SAMPLE_RATE), np.zeros(int(tail_s * SAMPLE_RATE), np.float32)])
    step = int(CHUNK_S * SAMPLE_RATE)
    began = time.monotonic()
    for i in range(0, len(audio), step):
        chunk = audio[i : i + step]
        await asyncio.sleep(max(0.0, began + (i + len(chunk)) / SAMPLE_RATE - time.monotonic()))
        yield chunk


async def microphone_chunks(seconds: float, device: int | str | None):
    """The microphone at 16 kHz (PortAudio resamples), as it is captured."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[np.ndarray] = asyncio.Queue()
    step = int(CHUNK_S * SAMPLE_RATE)
    stream = open_input(
        SAMPLE_RATE, step, lambda indata, *_: loop.call_soon_threadsafe(queue.put_nowait, indata[:, 0].copy()), find_device(device, "input")
    )
    try:
        for _ in range(int(seconds / CHUNK_S)):
            yield await queue.get()
    finally:
        stream.stop()
        stream.close()


async def converse(args: argparse.Namespace) -> Recording:
    client = await VoiceClient.connect(args.url, args.token)
    recording = Recording()

    async def receive() -> None:
        async for message in client.messages():
            if isinstance(message, AgentFrame):
                recording.received(message)
            elif args.events or message.get("type") in ("error", "session.closed"):
                print(json.dumps(message), file=sys.stderr)

    receiving = asyncio.create_task(receive())
    if args.say:
        await client.say(args.say)
    source = microphone_chunks(args.seconds, args.input_device) if args.mic else wav_chunks(args.input, args.tail)
    async for chunk in source:
        recording.sent(chunk)
        await client.send_audio(chunk)
    await client.close_session()
    await asyncio.wait_for(receiving, 10)
    return recording


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", nargs="?", metavar="INPUT.wav", help="the user's side to send (any rate; first channel)")
    parser.add_argument("-o", "--output", required=True, metavar="OUTPUT.wav", help="stereo recording: agent left, user right")
    parser.add_argument("--url", default="ws://127.0.0.1:8765/v1/duplex", help="the server (default %(default)s)")
    parser.add_argument("--token", default=os.environ.get("DUPLEX_TOKEN") or None, help="the server's token (default $DUPLEX_TOKEN)")
    parser.add_argument("--mic", action="store_true", help="send the microphone instead of a file")
    parser.add_argument("--seconds", type=float, default=20.0, help="with --mic: how long to record (default 20)")
    parser.add_argument("--input-device", help="with --mic: the microphone's index or name")
    parser.add_argument("--tail", type=float, default=4.0, help="silence sent after the file, for the answer (default 4 s)")
    parser.add_argument("--say", metavar="TEXT", help="ask the agent to say TEXT first (agent.say)")
    parser.add_argument("--events", action="store_true", help="print every event as a JSON line on stderr")
    args = parser.parse_args(argv)
    if not args.mic and not args.input:
        parser.error("give INPUT.wav or --mic")
    if args.input_device is not None and args.input_device.isdigit():
        args.input_device = int(args.input_device)
    try:
        recording = asyncio.run(converse(args))
    except (AudioError, DeviceError, VoiceClientError) as exc:
        print(f"ws_client: error: {exc}", file=sys.stderr)
        return 1
    write_wav(args.output, recording.stereo(), SAMPLE_RATE)
    print(f"wrote {args.output}: {len(recording.stereo()) / SAMPLE_RATE:.1f} s, agent left, user right", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
