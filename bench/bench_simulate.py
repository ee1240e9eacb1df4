"""Virtual-clock simulation speed: pairs of agents x real-time factor.

Runs N dialogues (scripted user vs an agent, batched in one engine per side)
at a given one-way latency, and prints how many seconds of conversation per
pair are simulated per second of compute. `--model random` is the learned
agent at its default sizes with random weights (bench/random_agent.py): it
costs what the trained one does, whatever it says.

    python bench/bench_simulate.py --model random --pairs 1,4 --threads 2
    python bench/bench_simulate.py --model random --partner model --pairs 1   (agent vs agent)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
from random_agent import save_random_agent

from duplex.agents import load_agent
from duplex.scripted_user import ScriptedUser, domain_scripts
from duplex.simulate import NetworkConfig, simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="baseline",
                        help="'baseline', an agent checkpoint folder, or 'random' (the learned agent's default sizes)")
    parser.add_argument("--pairs", default="1,4")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--latency", type=float, default=160.0)
    parser.add_argument("--partner", choices=("user", "model"), default="user",
                        help="side A: the scripted user, or a second instance of --model (agent vs agent)")
    parser.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads (the issue's figure: 2)")
    parser.add_argument("--compensation", choices=("on", "off"), default="on",
                        help="latency compensation: a learned agent predicts late slices and computes their ticks "
                             "again when the real ones come (duplex/lm_agent.py)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = tempfile.TemporaryDirectory(prefix="duplex-random-agent-")
    model = args.model
    if model == "random":
        save_random_agent(folder.name)
        model = folder.name
    for n in (int(x) for x in args.pairs.split(",")):
        agent = load_agent(model, virtual_clock=True)
        partner = ScriptedUser(domain_scripts(n, seed=0)) if args.partner == "user" else load_agent(model, virtual_clock=True)
        began = time.perf_counter()
        simulate(partner, agent, n, args.seconds,
                 NetworkConfig(delay_ms=args.latency, compensate=args.compensation == "on"))
        elapsed = time.perf_counter() - began
        agent.close()
        partner.close()
        against = "scripted user" if args.partner == "user" else "itself"
        print(f"simulate {args.model} ({args.threads} thread, {args.latency:g} ms, compensation {args.compensation}) "
              f"vs {against}: {n} pair(s) x {args.seconds / elapsed:.1f}x real time "
              f"({n * args.seconds / elapsed:.1f} pair-seconds per second)")
    folder.cleanup()


if __name__ == "__main__":
    main()
