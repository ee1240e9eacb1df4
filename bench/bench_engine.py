"""Engine throughput on the virtual clock: ticks per second with N baseline sessions.

Each session hears the shipped demo sample (user speech with pauses) on a
loop, so the baseline does its real work: VAD every tick, Whisper ASR and
espeak-ng TTS at every end of turn (run inline on the virtual clock).
Prints one line per N: engine ticks/s, session-ticks/s, and the real-time
factor (seconds of conversation simulated per second of compute, all sessions).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

from audio.frames import split_ticks
from audio.wav import read_mono
from clock.clocks import VirtualClock
from clock.tick_loop import TickLoop
from duplex.baseline import CascadedBaseline
from duplex.engine import Engine


def run(n_sessions: int, seconds: float, sample: np.ndarray) -> tuple[float, float]:
    agent = CascadedBaseline(virtual_clock=True)
    engine = Engine(agent)
    ticks = split_ticks(sample)
    sessions = [engine.open_session(seed=i) for i in range(n_sessions)]
    n_ticks = int(seconds / 0.08)

    def step(t: int) -> None:
        for i, s in enumerate(sessions):
            s.push_input(ticks[(t + 7 * i) % len(ticks)])  # sessions out of phase
        engine.step()

    began = time.perf_counter()
    TickLoop(VirtualClock(), 0.08).run(step, n_ticks)
    elapsed = time.perf_counter() - began
    agent.close()
    return n_ticks / elapsed, n_ticks * 0.08 * n_sessions / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", default="1,4,16", help="comma-separated session counts")
    parser.add_argument("--seconds", type=float, default=30.0, help="conversation seconds per run")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sample, _ = read_mono(os.path.join(os.path.dirname(__file__), "..", "demos", "samples", "user_question.wav"))
    for n in (int(x) for x in args.sessions.split(",")):
        tps, rtf = run(n, args.seconds, sample)
        print(f"engine virtual clock: baseline x{n:<3d} {tps:8.1f} ticks/s  {tps * n:9.1f} session-ticks/s  {rtf:6.1f}x real time (all sessions)")


if __name__ == "__main__":
    main()
