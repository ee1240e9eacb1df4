"""Virtual-clock simulation speed: pairs of agents x real-time factor.

Runs N dialogues (scripted user vs an agent, batched in one engine per side)
at a given one-way latency, and prints how many seconds of conversation per
pair are simulated per second of compute.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

from duplex.agents import load_agent
from duplex.scripted_user import ScriptedUser, domain_scripts
from duplex.simulate import NetworkConfig, simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="baseline")
    parser.add_argument("--pairs", default="1,4")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--latency", type=float, default=160.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for n in (int(x) for x in args.pairs.split(",")):
        user = ScriptedUser(domain_scripts(n, seed=0))
        agent = load_agent(args.model, virtual_clock=True)
        began = time.perf_counter()
        simulate(user, agent, n, args.seconds, NetworkConfig(delay_ms=args.latency))
        elapsed = time.perf_counter() - began
        agent.close()
        print(f"simulate {args.model} vs scripted user: {n} pair(s) x {args.seconds / elapsed:.1f}x real time "
              f"({n * args.seconds / elapsed:.1f} pair-seconds per second)")


if __name__ == "__main__":
    main()
