"""`duplex release CHECKPOINT DEST`: a training checkpoint made into a shipped model folder.

    duplex release ~/.cache/duplex/runs/codec-vocos/checkpoints/latest checkpoints/codec \\
        --fp16 --metrics bench-codec.txt

DEST gets config.json, model.safetensors (floating tensors in fp16 with
--fp16: half the size, loaded back into fp32 models) and a model card,
README.md, written from the run folder: the --status line given, the stage and its settings, the steps
and training time of this run and of the runs it was initialised from, the
commands that reproduce it, and the benchmark output given with --metrics,
verbatim. A learned agent's checkpoint (stages lsm and dialogue) keeps its
tokenizer beside the weights, and its codec/ and listen/ too, unless DEST's
parent already holds the very same part (checkpoints/codec beside
checkpoints/lm, with identical weights): then parts.json names it instead
of a second copy (models/agent_checkpoint.py). Optimizer and trainer state
stay behind. Writing is atomic.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from models.agent_checkpoint import FROZEN_PARTS, PARTS_NAME
from models.checkpoint import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    read_json,
    read_tensors,
    weights_digest,
    write_pretrained,
)
from models.text_tokenizer import TOKENIZER_NAME
from training.train_cli import STAGES

CARD_NAME = "README.md"
STAGE_DATA = {
    "codec": "speech synthesised on the fly by espeak-ng (training/speech_source.py): the training voices, "
             "speeds and pitches of duplex/domains.py, a quarter in the agent's persona voice; the held-out "
             "voices and sentences are never trained on",
    "listen": "espeak-ng speech synthesised on the fly, mixed with a second voice or coloured noise at 0-20 dB SNR",
    "lsm": "espeak-ng sentences in the agent's persona voice, with interruptions, backchannels and noise mixed in",
    "dialogue": "synthetic two-channel dialogues of `duplex data generate`",
    "listen-ctc": "espeak-ng speech with its transcript, synthesised on the fly: corpus sentences and the dialogue "
                  "domains' train phrasings in training voices, a quarter mixed with a second voice and a quarter "
                  "with coloured noise at 5-25 dB SNR",
}
SHIPPED_PART = {"listen-ctc": "encoder"}
"""Stages whose checkpoint ships one part of the trained model, from that subfolder: the listen-ctc stage's
encoder (its CTC head only serves training)."""


class ReleaseError(Exception):
    """A checkpoint that cannot be released; one line for the user."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("release", help="make a training checkpoint a shipped model folder with a model card",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="a run's checkpoints/step-N (or checkpoints/latest) folder")
    p.add_argument("dest", type=Path, help="the model folder to write (replaced atomically)")
    p.add_argument("--fp16", action="store_true", help="store floating weights in half precision")
    p.add_argument("--metrics", type=Path, help="a text file of benchmark output to quote in the model card")
    p.add_argument("--status", help="what the model meets and does not meet yet, for the card's Status section")
    p.set_defaults(func=run)


def run_history(checkpoint: Path) -> tuple[list[dict[str, Any]], Path | None]:
    """This checkpoint's run and the runs it was initialised from (--init), newest first; and the shipped
    model folder (a model card beside its weights, no run) where that chain starts, if it starts from one."""
    history, seen = [], set()
    while checkpoint is not None and checkpoint.resolve() not in seen:
        seen.add(checkpoint.resolve())
        run_file = checkpoint.resolve().parent.parent / "run.json"
        state_file = checkpoint / "trainer_state.json"
        if history and (checkpoint / CARD_NAME).is_file() and (checkpoint / CONFIG_NAME).is_file():
            return history, checkpoint
        if not run_file.is_file() or not state_file.is_file():
            raise ReleaseError(f"{checkpoint}: not a training checkpoint (no run.json or trainer_state.json beside it)")
        settings, state = read_json(run_file), read_json(state_file)
        history.append({"checkpoint": checkpoint.resolve(), "settings": settings, "state": state})
        init = settings["stage_config"].get("init") or ""
        checkpoint = Path(init) if init else None
    return history, None


def reproduce_command(entry: dict[str, Any]) -> str:
    settings, state = entry["settings"], entry["state"]
    parts = ["duplex train", settings["stage"], "--preset", settings["preset"]]
    init = settings["stage_config"].get("init")
    if init:  # a shipped model folder (with its card) by its place in the repository, else the run before
        shipped = (Path(init) / CARD_NAME).is_file()
        parts += ["--init", ("checkpoints/" if shipped else "RUN_BEFORE/checkpoints/") + Path(init).name]
    if settings["stage_config"].get("data"):
        parts += ["--data", "DATA"]
    preset_train = dataclasses.asdict(STAGES[settings["stage"]].PRESETS[settings["preset"]][1])
    for key in ("steps", "batch_size", "lr", "seed"):  # the settings that change the result
        if settings["train"][key] != preset_train[key]:
            parts += [f"--{key.replace('_', '-')}", str(settings["train"][key])]
    if state["step"] < settings["train"]["steps"]:
        parts += ["--until", str(state["step"])]
    return " ".join(parts)


PER_RUN_FIELDS = {"codec", "listen", "init", "data"}
"""Stage settings given by flags for each run (paths), not by its preset."""


def flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as {"a.b": value}, tuples as lists (as JSON stores them)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out |= flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = json.loads(json.dumps(value))
    return out


def preset_drift(settings: dict[str, Any]) -> list[str]:
    """Where the stage's preset today differs from the settings this run was made with: its reproduce
    command then gives another model, and the card says so. A setting added after the run counts only
    where the preset sets it away from its default (a new setting's default is what runs did before it)."""
    module = STAGES[settings["stage"]]
    now, then = flat(dataclasses.asdict(module.PRESETS[settings["preset"]][0])), flat(settings["stage_config"])
    defaults = flat(dataclasses.asdict(module.CONFIG_CLASS()))
    drift = []
    for key in sorted(set(now) | set(then)):
        if key.split(".")[0] in PER_RUN_FIELDS:
            continue
        if key not in then:
            if now[key] != defaults.get(key):
                drift.append(f"{key} is {now[key]} now (the run predates it)")
        elif key not in now:
            drift.append(f"{key} was {then[key]} (no longer a setting)")
        elif now[key] != then[key]:
            drift.append(f"{key} was {then[key]}, is {now[key]} now")
    return drift


def model_card(config: dict[str, Any], history: list[dict[str, Any]], fp16: bool, metrics: str | None,
               size_bytes: int, status: str | None = None, started_from: Path | None = None) -> str:
    first = history[0]
    stage = first["settings"]["stage"]
    total_seconds = sum(e["state"]["seconds"] for e in history)
    lines = [
        f"# {config.get('model_type', 'model')}: `duplex {stage}` checkpoint",
        "",
        (f"Weights: {WEIGHTS_NAME} ({size_bytes / 1e6:.1f} MB, {'fp16' if fp16 else 'fp32'}; loads into fp32), "
        f"config: {CONFIG_NAME}. Made by `duplex release` from `{first['checkpoint'].name}`."),
        "",
        *(["## Status", "", status, ""] if status else []),
        "## Data",
        "",
        STAGE_DATA.get(stage, "see docs/training.md") + ".",
        "",
        "## Training",
        "",
        (f"Total training time on the machine that made it: {total_seconds / 3600:.2f} h "
        f"({sum(e['state']['step'] for e in history)} steps over {len(history)} run(s)). Oldest run first:"),
        "",
        *([f"Started from the shipped `checkpoints/{started_from.name}`, whose own model card gives its training "
           "(not counted here).", ""] if started_from else []),
    ]
    for entry in reversed(history):
        s, st = entry["settings"], entry["state"]
        lines += [
            (f"- `{s['stage']}` preset `{s['preset']}`: {st['step']} of {s['train']['steps']} scheduled steps, "
            f"{st['seconds'] / 3600:.2f} h, batch {s['train']['batch_size']}, lr {s['train']['lr']}, "
            f"seed {s['train']['seed']}, {s['train']['threads']} thread(s)."),
        ]
    lines += ["", "Reproduce (each run in its own --run-dir; RUN_BEFORE is the previous one's):", "", "```"]
    lines += [reproduce_command(e) for e in reversed(history)]
    lines += ["```", ""]
    for entry in reversed(history):
        drift = preset_drift(entry["settings"])
        if drift:
            lines += [(f"The preset `{entry['settings']['preset']}` of `{entry['settings']['stage']}` has changed since "
                       f"the run that ended at step {entry['state']['step']}, so its command above no longer makes "
                       f"the same model: " + "; ".join(drift) + "."), ""]
    lines += ["## Metrics", ""]
    lines += ["```", metrics.rstrip(), "```"] if metrics else ["Not measured for this release."]
    lines += ["", "## Settings of the last run", "", "```json",
              json.dumps(first["settings"]["stage_config"], indent=2, sort_keys=True), "```", ""]
    return "\n".join(lines)


def release(checkpoint: Path, dest: Path, fp16: bool = False, metrics: str | None = None,
            status: str | None = None) -> None:
    history, started_from = run_history(checkpoint)
    source = checkpoint / SHIPPED_PART.get(history[0]["settings"]["stage"], "")
    config = read_json(source / CONFIG_NAME)
    weights = read_tensors(source / WEIGHTS_NAME)
    if fp16:
        weights = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    size = sum(t.numel() * t.element_size() for t in weights.values())
    files = {CARD_NAME: model_card(config, history, fp16, metrics, size, status, started_from)}
    copies = {TOKENIZER_NAME: checkpoint / TOKENIZER_NAME} if (checkpoint / TOKENIZER_NAME).exists() else {}
    parts = {}
    for part in FROZEN_PARTS:  # an agent folder (lsm, dialogue) ships its codec and listen encoder
        if not (checkpoint / part).is_dir():
            continue
        shipped = dest.parent / part
        digest = weights_digest(checkpoint / part)
        if (shipped / WEIGHTS_NAME).is_file() and weights_digest(shipped) == digest:
            parts[part] = {"path": f"../{part}", "sha256": digest}
        else:
            copies[part] = checkpoint / part
    if parts:
        files[PARTS_NAME] = json.dumps(parts, indent=2) + "\n"
    write_pretrained(dest, config, weights, files, copies)


def run(args: argparse.Namespace) -> int:
    metrics = args.metrics.read_text() if args.metrics else None
    release(args.checkpoint, args.dest, args.fp16, metrics, args.status)
    print(f"released {args.checkpoint} -> {args.dest}")
    return 0
