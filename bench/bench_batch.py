"""Seconds one core takes to make one lsm batch: what a GPU run's batch workers must keep up with.

    python bench/bench_batch.py [--preset gpu-listen] [--batch 64] [--user-pools 0,300] [--sentences 200]

For each user-pool size (0: every user event said by its own espeak-ng
process), the preset's stage with a small sentence pool (made first, in two
processes, and not timed) makes one batch on one thread with the listen
features left to the loss, as on a GPU; the median of --repeats batches.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

from training import token_cache
from training.lsm_stage import PRESETS, LSMStage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="gpu-listen", choices=sorted(PRESETS))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--user-pools", default="0,300")
    parser.add_argument("--sentences", type=int, default=200, help="the sentence pool (small: only its size differs)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as cache:
        token_cache.CACHE_ROOT = Path(cache)  # nothing reused, nothing left behind
        for user_pool in (int(n) for n in args.user_pools.split(",")):
            stage = LSMStage(replace(PRESETS[args.preset][0], sentence_pool=args.sentences, user_pool=user_pool))
            stage.prepare(2, progress=False)
            stage.batches.listen_later = True
            stage.batch(0, 4, 0, 1)  # warm-up: the codec's silence, caches
            seconds = []
            for step in range(1, args.repeats + 1):
                started = time.perf_counter()
                stage.batch(step, args.batch, 0, 1)
                seconds.append(time.perf_counter() - started)
            print(f"{args.preset}, user pool {user_pool}: a batch of {args.batch} in "
                  f"{statistics.median(seconds):.2f} s on one thread (listen features left to the loss)", flush=True)


if __name__ == "__main__":
    main()
