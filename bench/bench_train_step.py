"""Seconds per training step of a recipe stage, with batches made in turn or one step ahead in a thread.

    python bench/bench_train_step.py codec --preset 25hz --threads 2
    python bench/bench_train_step.py listen --threads 2
    python bench/bench_train_step.py lsm --codec RUN/checkpoints/latest --listen RUN/checkpoints/latest

One run of the stage at its preset's sizes in a temporary folder, trained in
rounds of --steps steps that alternate between the two ways of making
batches (so that drift in the machine's speed hits both alike); prints the
median seconds per step of each way and the speed-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from training.train_cli import STAGES, make_trainer, resolve_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=sorted(STAGES))
    parser.add_argument("--preset", default="default")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10, help="steps per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per way of making batches")
    parser.add_argument("--warmup", type=int, default=5, help="steps trained (and not timed) first")
    for flag in ("init", "data", "codec", "listen"):
        parser.add_argument(f"--{flag}")
    args = parser.parse_args()

    settings_args = argparse.Namespace(
        stage=args.stage, preset=args.preset, run_dir=None, steps=None, batch_size=None, lr=None, seed=None,
        threads=args.threads, checkpoint_minutes=1e9, checkpoint_every=None, log_every=None,
        init=args.init, data=args.data, codec=args.codec, listen=args.listen,
    )
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(resolve_settings(settings_args, None), Path(tmp), progress=False)
        trainer.run(until=args.warmup)
        per_step: dict[str, list[float]] = {"in turn": [], "one step ahead": []}
        for _ in range(args.rounds):
            for way, ahead in (("in turn", False), ("one step ahead", True)):
                trainer.prefetch = ahead
                before, start = trainer.seconds, trainer.step
                trainer.run(until=trainer.step + args.steps)
                per_step[way].append((trainer.seconds - before) / (trainer.step - start))
    print(f"stage {args.stage}, preset {args.preset}, {args.threads} thread(s), batch {trainer.config.batch_size}, "
          f"{args.rounds} rounds of {args.steps} steps each way")
    medians = {way: statistics.median(values) for way, values in per_step.items()}
    for way, values in per_step.items():
        print(f"batches {way}: median {medians[way]:.3f} s/step (rounds: {', '.join(f'{v:.3f}' for v in values)})")
    print(f"speed-up: {medians['in turn'] / medians['one step ahead']:.2f}x")


if __name__ == "__main__":
    main()
