"""`duplex train STAGE`: train a model of the recipe, resumably.

    duplex train codec  --run-dir ~/.cache/duplex/runs/codec
    duplex train listen --run-dir ~/.cache/duplex/runs/listen
    duplex train listen-ctc --run-dir ~/.cache/duplex/runs/listen-ctc   (the listen encoder fine-tuned to hear words)
    duplex train lsm    --run-dir ~/.cache/duplex/runs/lsm-tts        (stage 1: speak given text)
    duplex train lsm    --preset listen --init RUN/checkpoints/latest --run-dir ~/.cache/duplex/runs/lsm-listen
    duplex train dialogue --init LSM_RUN/checkpoints/latest --data DATA_DIR --run-dir ~/.cache/duplex/runs/dialogue
    torchrun --nproc-per-node 4 -m training.train_cli codec --run-dir RUN   (same run, 4 processes)

A run folder remembers its settings (run.json). Running the same command
again resumes from the latest checkpoint with those settings; options given
again must agree with them, except the ones that do not change the result
(threads, checkpoint and log intervals) and --steps, which may extend a run.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from models.checkpoint import build_dataclass, read_json, write_json
from training import codec_stage, dialogue_stage, listen_ctc_stage, listen_stage, lsm_stage
from training.malloc_tuning import keep_freed_memory
from training.trainer import TrainConfig, Trainer

STAGES: dict[str, ModuleType] = {
    "codec": codec_stage,
    "listen": listen_stage,
    "listen-ctc": listen_ctc_stage,
    "lsm": lsm_stage,
    "dialogue": dialogue_stage,
}
"""Each stage module has PRESETS {name: (stage config, TrainConfig)}, CONFIG_CLASS and build_stage(config)."""

STAGE_PATH_FLAGS = ("init", "data", "codec", "listen")
"""Flags that set a path in the stage's own config, for the stages that have that (text) field."""
FREE_TO_CHANGE = {"steps", "threads", "data_workers", "checkpoint_minutes", "checkpoint_every", "log_every"}
TRAIN_FLAGS = ("steps", "batch_size", "lr", "seed", "threads", "data_workers", "checkpoint_minutes", "checkpoint_every",
               "log_every")

LEAST = {"steps": 1, "batch_size": 1, "lr": 1e-12, "threads": 1, "data_workers": 0, "checkpoint_minutes": 0.0,
         "checkpoint_every": 0, "log_every": 1}
"""The smallest value each numeric flag takes."""


class TrainSettingsError(Exception):
    """Settings that contradict the run folder's; one line for the user."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a stage of the recipe: codec, listen, listen-ctc, lsm, dialogue (resumable)", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=sorted(STAGES))
    p.add_argument("--run-dir", type=Path, help="run folder (default ~/.cache/duplex/runs/STAGE)")
    presets = "; ".join(f"{name}: {', '.join(module.PRESETS)}" for name, module in STAGES.items())
    p.add_argument("--preset", help=f"named settings of the stage (default: default). {presets}")
    p.add_argument("--steps", type=int,
                   help="length of the learning-rate schedule (warm-up, then cosine decay to its end); given "
                        "again on a resumed run it extends (or shortens) the schedule, and the rate jumps to "
                        "where the new one stands at the current step")
    p.add_argument("--batch-size", type=int, help="examples per step and process")
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--seed", type=int,
                   help="seeds the initial weights and each step's random draws (the data's own seed is the preset's)")
    p.add_argument("--threads", type=int, help="torch threads per process (default 1)")
    p.add_argument("--data-workers", type=int, help="processes making batches (default 0: one thread beside "
                                                    "the loop); a GPU run wants most of the CPU cores")
    p.add_argument("--until", type=int, metavar="STEP",
                   help="stop with a checkpoint at STEP, on the schedule of --steps (a stage that ends early, "
                        "or a long run split into sessions; the same command without it goes on)")
    p.add_argument("--checkpoint-minutes", type=float, help="checkpoint at least this often (wall clock)")
    p.add_argument("--checkpoint-every", type=int, help="also checkpoint every N steps")
    p.add_argument("--log-every", type=int, help="write the run log (log.jsonl, loss.png) every N steps")
    p.add_argument("--init", help="checkpoint folder whose weights start the run (codec presets vocos and "
                                  "vocos-joint, lsm, dialogue; listen-ctc: the listen encoder to fine-tune, "
                                  "default checkpoints/listen)")
    p.add_argument("--data", help="dataset folder made by `duplex data generate` (dialogue)")
    p.add_argument("--codec", help="codec checkpoint folder the speech LM speaks through (lsm, dialogue; "
                                   "default checkpoints/codec)")
    p.add_argument("--listen", help="listen encoder checkpoint folder (lsm, dialogue; default checkpoints/listen)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    p.set_defaults(func=run)


def resolve_settings(args: argparse.Namespace, stored: dict[str, Any] | None) -> dict[str, Any]:
    """run.json content: the stored settings, else the preset's, with the flags given on top."""
    module = STAGES[args.stage]
    given = {k: getattr(args, k) for k in TRAIN_FLAGS if getattr(args, k) is not None}
    for key, least in LEAST.items():
        if key in given and not given[key] >= least:
            raise TrainSettingsError(f"--{key.replace('_', '-')} must be {least} or more, not {given[key]}")
    if stored is None:
        preset = args.preset or "default"
        if preset not in module.PRESETS:
            raise TrainSettingsError(f"stage {args.stage} has no preset {preset!r} (have {sorted(module.PRESETS)})")
        stage_config, train_config = module.PRESETS[preset]
        settings = {"stage": args.stage, "preset": preset, "stage_config": dataclasses.asdict(stage_config),
                    "train": dataclasses.asdict(train_config)}
        settings["train"].update(given)
        for flag in STAGE_PATH_FLAGS:
            value = getattr(args, flag, None)
            if value is not None:
                if not isinstance(settings["stage_config"].get(flag), str):
                    raise TrainSettingsError(f"stage {args.stage} takes no --{flag}")
                settings["stage_config"][flag] = str(Path(value).expanduser().resolve())
        return settings
    if stored.get("stage") != args.stage:
        raise TrainSettingsError(f"{args.run_dir} is a {stored.get('stage')!r} run, not {args.stage!r}")
    if args.preset is not None and args.preset != stored.get("preset"):
        raise TrainSettingsError(f"{args.run_dir} was started with preset {stored.get('preset')!r}; use a new --run-dir")
    for key, value in given.items():
        if key not in FREE_TO_CHANGE and value != stored["train"][key]:
            raise TrainSettingsError(
                f"{args.run_dir} was started with --{key.replace('_', '-')} {stored['train'][key]}; use a new --run-dir"
            )
    return {**stored, "train": {**stored["train"], **given}}


def make_trainer(settings: dict[str, Any], run_dir: Path, progress: bool = True) -> Trainer:
    module = STAGES[settings["stage"]]
    where = str(run_dir / "run.json")
    stage = module.build_stage(build_dataclass(module.CONFIG_CLASS, settings["stage_config"], where))
    return Trainer(stage, build_dataclass(TrainConfig, settings["train"], where), run_dir, progress=progress)


def run(args: argparse.Namespace) -> int:
    keep_freed_memory()  # a fifth or more off CPU steps (training/malloc_tuning.py)
    run_dir = (args.run_dir or Path("~/.cache/duplex/runs") / args.stage).expanduser()
    settings_path = run_dir / "run.json"
    stored = read_json(settings_path) if settings_path.exists() else None
    settings = resolve_settings(args, stored)
    trainer = make_trainer(settings, run_dir, progress=not args.no_progress)
    if trainer.dist.is_main:
        write_json(settings_path, settings)
    resumed = trainer.resume()
    if trainer.dist.is_main:
        print(f"{'resuming' if resumed else 'starting'} {args.stage} run in {run_dir} at step {trainer.step}",
              file=sys.stderr)
    trainer.run(until=args.until)
    if trainer.dist.is_main:
        print(f"done: {trainer.folder.latest()}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m training.train_cli STAGE ...` (what torchrun launches) = `duplex train STAGE ...`."""
    from duplex.cli import main as duplex_main

    return duplex_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
