"""The speech LM's training step alone (forward, backward, AdamW), two ways side by side.

    python bench/bench_lm_train_step.py [--compare heads|optimizer] [--threads 2] [--batch 8] [--ticks 100]
                                        [--steps 24] [--no-malloc-tuning]

The recipe's LM at its default sizes (phoneme streams, partner heads),
random tokens and listen features, the loss of `training/speech_lm_stage.py`
`lm_loss`, the same model stepped in alternating rounds two ways:
`--compare heads` with the partner heads run (what a stage with partner
targets pays) and skipped (what a stage without them now pays: the heads
join the graph with a zero gradient only); `--compare optimizer` with the
for-loop AdamW and the fused one the trainer uses (training/trainer.py
`adamw`), partner heads skipped. Prints the median seconds per step of
each, so that drift in the machine's speed hits both alike. Batch making
and the frozen codec and listen encoder are not included
(bench/bench_train_step.py times a whole stage).
`--no-malloc-tuning` leaves glibc's malloc as it comes, which `duplex train`
does not (training/malloc_tuning.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

from models.lm import SyncLM
from training.malloc_tuning import keep_freed_memory
from training.speech_lm_stage import IGNORE, WITH_PHONEMES, LMBatch, lm_loss
from training.trainer import TrainConfig, adamw


def random_batch(config, batch: int, ticks: int, partner: bool) -> LMBatch:
    g = torch.Generator().manual_seed(0)

    def codes() -> torch.Tensor:
        return torch.randint(0, config.codebook_size, (batch, config.n_codebooks, ticks), generator=g)

    def text() -> torch.Tensor:
        return torch.randint(0, config.text_vocab_size, (batch, ticks), generator=g)

    partner_target = codes() if partner else None
    if partner_target is not None:
        partner_target[:, :, :3] = IGNORE
    return LMBatch(audio_in=codes(), audio_target=codes(), text_in=text(), text_target=text(),
                   listen=torch.randn(batch, ticks, config.listen_dim, generator=g),
                   role=torch.zeros(batch, dtype=torch.long), partner_target=partner_target,
                   phonemes=torch.randint(0, 40, (batch, ticks, config.phoneme_width), generator=g))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", choices=("heads", "optimizer"), default="heads",
                        help="partner heads run vs skipped, or for-loop vs fused AdamW")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--ticks", type=int, default=100)
    parser.add_argument("--steps", type=int, default=24, help="steps in all, alternating the two ways")
    parser.add_argument("--no-malloc-tuning", action="store_true", help="leave glibc's malloc thresholds as they come")
    args = parser.parse_args()
    tuned = not args.no_malloc_tuning and keep_freed_memory()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = dataclasses.replace(WITH_PHONEMES, text_vocab_size=256, listen_dim=256)
    model = SyncLM(config)
    skipped = random_batch(config, args.batch, args.ticks, partner=False)

    def optimizer(fused: bool | None = None) -> torch.optim.AdamW:
        return adamw(model.parameters(), TrainConfig(), torch.device("cpu"), fused)

    if args.compare == "heads":
        shared = optimizer()
        ways = {"partner heads run": (random_batch(config, args.batch, args.ticks, partner=True), shared),
                "partner heads skipped": (skipped, shared)}
    else:
        ways = {"for-loop AdamW": (skipped, optimizer(fused=False)), "fused AdamW": (skipped, optimizer(fused=True))}
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for step in range(args.steps):
        name = list(ways)[step % 2]
        batch, step_with = ways[name]
        began = time.perf_counter()
        loss, _ = lm_loss(model, batch)
        step_with.zero_grad()
        loss.backward()
        step_with.step()
        seconds[name].append(time.perf_counter() - began)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"speech LM training step ({params:.1f} M parameters, batch {args.batch} x {args.ticks} ticks, "
          f"{args.threads} thread(s), malloc {'tuned' if tuned else 'as it comes'}), median of "
          f"{args.steps // 2 - 1} steps each after the first:")
    for name, times in seconds.items():
        print(f"  {name}: {statistics.median(times[1:]):.3f} s")


if __name__ == "__main__":
    main()
