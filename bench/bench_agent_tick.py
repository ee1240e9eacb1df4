"""Tick cost of the learned agent at its default sizes: listen step + LM step + token sampling + codec decode.

Builds the default listen encoder, speech LM and codec with random weights
(the cost of a tick does not depend on what the weights hold), runs N
sessions in lock step on the virtual clock through the real Engine (one
batched agent call per tick, VAD included), and prints the per-tick compute
p50/p99 and how many ticks would have missed an 80 ms deadline.

`--memory` also prints the process's resident memory twelve times over the
run, for the bar "memory flat over a 1-hour session": run it with
`--sessions 1 --seconds 3600 --memory` (45,000 ticks; the timing figures of
such a run count only on a quiet machine).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
from random_agent import save_random_agent

from clock.clocks import VirtualClock
from clock.tick_loop import TickLoop
from duplex.engine import Engine
from duplex.lm_agent import SpeechLMAgent
from duplex.server.process import rss_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", default="1,16")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--torch-only", action="store_true",
                        help="eager torch for every step (the default uses onnxruntime where it was measured faster)")
    parser.add_argument("--lanes", type=int, default=None,
                        help="groups of sessions stepped in parallel threads (default: --threads)")
    parser.add_argument("--decoder", choices=("vocos", "seanet"), default="vocos",
                        help="the codec's decoder (vocos: what the codec recipe ends with)")
    parser.add_argument("--fp32", action="store_true",
                        help="the speech LM's step with full-precision weights (the agent's default is 8-bit)")
    parser.add_argument("--memory", action="store_true",
                        help="also print resident memory (MB) at twelve points of the run, after the warm-up")
    parser.add_argument("--profile", action="store_true",
                        help="also print the operators that take the most time per tick (cProfile), last session count")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        save_random_agent(folder, args.decoder)
        agent = SpeechLMAgent.from_checkpoint(folder, onnx=not args.torch_only, lanes=args.lanes,
                                             int8=not args.fp32)
        for n in (int(x) for x in args.sessions.split(",")):
            engine = Engine(agent)
            sessions = [engine.open_session(seed=i) for i in range(n)]
            loop = TickLoop(VirtualClock(), 0.08)

            ticks = int(args.seconds / 0.08)
            memory: list[tuple[float, float]] = []

            def step(t: int) -> None:
                for s in sessions:
                    s.push_input(rng.normal(0, 0.05, 1280).astype(np.float32))
                engine.step()
                for s in sessions:
                    s.drain_events()  # as every front end does each tick (an undrained session keeps them all)
                if args.memory and t % max(1, ticks // 12) == 0:
                    memory.append((t * 0.08, rss_mb()))

            loop.run(step, 25)  # warm-up
            loop.stats.compute_ms.clear()
            memory.clear()
            profiler = cProfile.Profile() if args.profile else None
            if profiler:
                profiler.enable()
            loop.run(step, ticks)
            if profiler:
                profiler.disable()
            ms = np.asarray(loop.stats.compute_ms)
            lm_weights = " fp32 LM" if args.fp32 else " int8 LM"
            runtime = "torch" if args.torch_only else "torch+onnxruntime" + lm_weights
            print(f"learned agent tick ({args.threads} thread, {agent.lanes} lane, {runtime}, {args.decoder} decoder): {n:2d} session(s)  p50 {np.percentile(ms, 50):6.1f} ms  "
                  f"p99 {np.percentile(ms, 99):6.1f} ms  over 80 ms: {int((ms > 80).sum())}/{ticks}")
            if memory:
                print("   resident memory (virtual s: MB): " + ", ".join(f"{t:.0f}: {mb:.1f}" for t, mb in memory)
                      + f"; last minus first {memory[-1][1] - memory[0][1]:+.1f} MB")
            if profiler:
                stats = pstats.Stats(profiler).stats
                top = sorted(((v[2], k[2]) for k, v in stats.items()), reverse=True)[:8]
                print("   ms per tick by operator: " + ", ".join(f"{name} {t / ticks * 1000:.1f}" for t, name in top))


if __name__ == "__main__":
    main()
