"""How much a speech LM reads the phonemes it is given: its losses with them and without.

    python bench/bench_phoneme_reliance.py --model CHECKPOINT [--batches 4]

Teacher-forced batches of the lsm stage-1 examples (the default pool, seed
1, so not the batches it trained on), every text token visible; the
cross-entropy of each codebook with the phonemes as the model was trained to
read them, with none, and (for a model with more than one stream) with each
stream but one. A model that ignores its phonemes, or one of their streams,
shows the same losses both ways.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
import torch.nn.functional as F

from training.lsm_stage import stage_for_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a learned agent's checkpoint folder with phoneme input")
    parser.add_argument("--batches", type=int, default=4)
    args = parser.parse_args()
    torch.manual_seed(0)
    stage = stage_for_checkpoint(args.model, seed=1)
    lm_config = stage.lm_config
    model = stage.build_model().eval()
    slots, streams = lm_config.phoneme_slots, lm_config.phoneme_streams
    names = ["with phonemes", *(f"without stream {k + 1}" for k in range(streams) if streams > 1), "without"]
    losses = {name: torch.zeros(lm_config.n_codebooks) for name in names}
    with torch.no_grad():
        for step in range(args.batches):
            b = stage.batch(step, 8, 0, 1)
            given = {"with phonemes": b.phonemes, "without": None}
            for k in range(streams if streams > 1 else 0):
                given[f"without stream {k + 1}"] = b.phonemes.clone()
                given[f"without stream {k + 1}"][..., k * slots : (k + 1) * slots] = 0
            for name, phonemes in given.items():
                audio = model(b.audio_in, b.text_in, b.listen, b.role, phonemes)[1]
                for q in range(lm_config.n_codebooks):
                    losses[name][q] += F.cross_entropy(audio[:, q].flatten(0, 1), b.audio_target[:, q].flatten())
    print(f"{args.model}: cross-entropy per codebook, {args.batches} batches of 8 x {stage.config.ticks} ticks")
    print("| phonemes | " + " | ".join(f"cb{q}" for q in range(lm_config.n_codebooks)) + " | mean |")
    print("|---|" + "---:|" * (lm_config.n_codebooks + 1))
    for name, total in losses.items():
        per = total / args.batches
        print(f"| {name} | " + " | ".join(f"{x:.3f}" for x in per.tolist()) + f" | {per.mean():.3f} |")


if __name__ == "__main__":
    main()
