"""`duplex respond`: run an agent offline on a recorded user channel (PROTOCOL.md section 2).

The input WAV is the user's side of a call. The agent hears it tick by tick
on a virtual clock, exactly as it would live, and the output holds what it
said, sample-aligned with the input and of the same length: output[t] is what
the agent says while the user says input[t].
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from audio.frames import SAMPLE_RATE, split_ticks
from audio.resample import resample
from audio.wav import read_mono, write_wav
from clock.clocks import VirtualClock
from clock.tick_loop import TickLoop
from duplex.agent import Agent
from duplex.agents import DEFAULT_MODEL, load_agent
from duplex.engine import Engine


@dataclass
class Response:
    agent_audio: np.ndarray
    """The agent's channel at 16 kHz, as long as the user's."""
    events: list[dict[str, Any]]
    event_times: list[float]
    """When each event came, in seconds of the user's input (the end of the tick it was drained after)."""


def respond_audio(agent: Agent, user: np.ndarray, seed: int = 0, say: str | None = None) -> Response:
    """Run one session of `agent` against a 16 kHz user signal on a virtual clock."""
    engine = Engine(agent)
    session = engine.open_session(seed)
    if say is not None:
        agent.say(session.state, say, "say-0")
    ticks = split_ticks(user, agent.tick_samples)
    n = len(ticks)
    out = np.zeros((n + 1) * agent.tick_samples, dtype=np.float32)
    events: list[dict[str, Any]] = []
    event_times: list[float] = []

    def step(t: int) -> None:
        session.push_input(ticks[t])
        produced = engine.step()[session.id]
        # Said during tick t+1 (DESIGN.md "Time").
        out[(t + 1) * agent.tick_samples : (t + 2) * agent.tick_samples] = produced
        drained = session.drain_events()
        events.extend(drained)
        event_times.extend([(t + 1) * agent.tick_ms / 1000.0] * len(drained))

    TickLoop(VirtualClock(), agent.tick_ms / 1000.0).run(step, n)
    if session.failed is not None:
        raise session.failed
    engine.close_session(session.id)
    return Response(out[: len(user)], events, event_times)


def respond_file(input_path: str, output_path: str, stereo: bool, seed: int, model: str, say: str | None) -> Response:
    user, rate = read_mono(input_path)
    agent = load_agent(model, virtual_clock=True)
    try:
        response = respond_audio(agent, resample(user, rate, SAMPLE_RATE), seed, say)
    finally:
        agent.close()
    reply = _fit(resample(response.agent_audio, SAMPLE_RATE, rate), len(user))
    write_wav(output_path, np.stack([reply, user], axis=1) if stereo else reply, rate)
    return response


def _fit(audio: np.ndarray, length: int) -> np.ndarray:
    """Trim or zero-pad to exactly `length` samples (resampling rounds lengths)."""
    out = np.zeros(length, dtype=np.float32)
    out[: min(length, len(audio))] = audio[:length]
    return out


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "respond",
        help="run the agent offline on a recorded user channel",
        description="Run the agent on INPUT.wav (the user's channel; any rate, first channel used) on a virtual "
        "clock and write what it says to OUTPUT.wav, sample-aligned with the input and of the same length.",
    )
    p.add_argument("input", metavar="INPUT.wav")
    p.add_argument("-o", "--output", metavar="OUTPUT.wav", required=True)
    p.add_argument("--stereo", action="store_true", help="write channel 0 = agent, channel 1 = input")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"agent to run (default {DEFAULT_MODEL})")
    p.add_argument("--say", metavar="TEXT", help="text the agent says as its next turn (agent.say)")
    p.add_argument("--events", action="store_true", help="print the session's events as JSON lines")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import json

    response = respond_file(args.input, args.output, args.stereo, args.seed, args.model, args.say)
    if args.events:
        for event in response.events:
            print(json.dumps(event))
    spoke = sum(1 for e in response.events if e["type"] == "agent.speech.started")
    print(f"wrote {args.output}: the agent took {spoke} turn(s)", file=sys.stderr)
    return 0
