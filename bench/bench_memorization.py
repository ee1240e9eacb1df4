"""Whether a speech LM learned to speak or learned its training sentences by heart.

    python bench/bench_memorization.py --model CHECKPOINT [--model CHECKPOINT ...] [--batches 3]

Teacher-forced stage-1 batches (every text token and its phonemes visible)
from the training pool (seed 0, the sentences the recipe's runs train on)
and from a pool of sentences it never saw (seed 1, drawn the same way); the
cross-entropy of the text stream, of all codebooks and of codebook 0 on each.
A model that speaks what it reads scores alike on both; one that learned the
pool by heart scores far lower on it than on new sentences (session 8's GPU
run: docs/training.md).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

from training.lsm_stage import stage_for_checkpoint
from training.speech_lm_stage import lm_loss

POOLS = {"training pool (seed 0)": 0, "new sentences (seed 1)": 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, action="append", help="a learned agent's checkpoint folder")
    parser.add_argument("--batches", type=int, default=3, help="batches of 16 examples per pool")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"teacher-forced cross-entropy, {args.batches} batches of 16 x 100 ticks per pool")
    print("| model | pool | text | audio (mean of codebooks) | codebook 0 |")
    print("|---|---|---:|---:|---:|")
    for folder in args.model:
        for pool, seed in POOLS.items():
            stage = stage_for_checkpoint(folder, seed=seed)
            model = stage.build_model().eval()
            with torch.no_grad():
                rows = [lm_loss(model, stage.batch(1000 + step, 16, 0, 1))[1] for step in range(args.batches)]
            mean = {k: float(np.mean([r[k] for r in rows])) for k in ("text", "audio", "cb0")}
            print(f"| {folder} | {pool} | {mean['text']:.3f} | {mean['audio']:.3f} | {mean['cb0']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
