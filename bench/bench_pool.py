"""How fast the lsm stage makes its sentence pool: worker processes render, the codec encodes in batches.

    python bench/bench_pool.py [--sentences 3000] [--workers 14] [--preset gpu] [--no-malloc-tuning]

Makes a pool of --sentences sentences of the preset (in a temporary cache
folder, so nothing is reused) with --workers processes and the codec on the
GPU when there is one, and prints sentences per second and the file's size.
The `gpu` preset's pool of 100,000 takes 100,000 / that rate.
`--no-malloc-tuning` leaves glibc's malloc as it comes, which `duplex train`
does not (training/malloc_tuning.py).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

from training import token_cache
from training.lsm_stage import PRESETS, LSMStage
from training.malloc_tuning import keep_freed_memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--preset", default="gpu", choices=sorted(PRESETS))
    parser.add_argument("--no-malloc-tuning", action="store_true", help="leave glibc's malloc thresholds as they come")
    args = parser.parse_args()
    tuned = not args.no_malloc_tuning and keep_freed_memory()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    stage = LSMStage(replace(PRESETS[args.preset][0], sentence_pool=args.sentences))
    with tempfile.TemporaryDirectory() as cache:
        token_cache.CACHE_ROOT = Path(cache)  # nothing reused, nothing left behind
        started = time.perf_counter()
        stage.prepare(args.workers, progress=False, device=device)
        seconds = time.perf_counter() - started
        size = stage.pool_file().stat().st_size
    print(f"pool of {args.sentences} sentences, {args.workers} processes, codec on {device}, "
          f"malloc {'tuned' if tuned else 'as it comes'}: {seconds:.1f} s, "
          f"{args.sentences / seconds:.0f} sentences/s, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
