"""`duplex data generate` and `duplex data stats`: the synthetic dialogue dataset from the command line."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from audio.tts import Voice
from duplex.domains import AGENT_VOICES
from training.data_stats import dataset_stats, plot_histograms, summarize
from training.dataset import DataError
from training.generate import Shard, generate, load_recipe
from training.render import RenderConfig, config_from_json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="generate synthetic two-channel dialogues, or measure a dataset")
    commands = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    gen = commands.add_parser(
        "generate",
        help="render synthetic dialogues (moshi-finetune layout)",
        description="Render dialogues of the closed domains with espeak-ng voices and human turn-taking timing "
        "into DIR: stereo WAVs (channel 0 agent, 1 user), JSON alignments and events, manifests. Deterministic "
        "for a seed; shard i/N renders every N-th dialogue from i; a rerun skips finished dialogues.",
    )
    gen.add_argument("--out", required=True, type=Path, metavar="DIR", help="dataset folder (created if needed)")
    gen.add_argument("--hours", type=float, default=50.0, help="total hours of the whole dataset (default 50)")
    gen.add_argument("--shard", type=_shard, default=Shard(), metavar="i/N", help="this machine's part (default 0/1)")
    gen.add_argument("--seed", type=int, default=None, help="dataset seed (default 0, or the recipe's)")
    gen.add_argument("--dialogue-seconds", type=float, default=None, help="length each dialogue fills (default 60)")
    gen.add_argument("--agent-voice", action="append", metavar="NAME[+VARIANT]",
                     help="espeak-ng voice of the agent persona (repeat for several; default en-us), or "
                          "piper:joe for the natural Piper voice")
    gen.add_argument("--recipe", type=Path, metavar="FILE.json",
                     help="JSON overriding recipe defaults (timeline, noise, ...; see docs/data.md)")
    gen.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")
    gen.set_defaults(func=_generate)

    stats = commands.add_parser(
        "stats",
        help="turn-taking statistics measured from the audio against the annotations",
        description="Measure gaps, pauses, overlaps, IPUs and turn lengths of DIR's dialogues from their audio "
        "(Silero VAD, duplex/metrics.py), check every annotated event is found within one tick, print a JSON "
        "summary and write histograms (PNG).",
    )
    stats.add_argument("dir", type=Path, metavar="DIR")
    stats.add_argument("--limit", type=int, default=None, help="measure only the first N dialogues")
    stats.add_argument("--plots", type=Path, default=None, metavar="OUT", help="histogram folder (default DIR/stats)")
    stats.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    stats.set_defaults(func=_stats)


def _shard(text: str) -> Shard:
    try:
        return Shard.parse(text)
    except DataError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _voice(spec: str) -> Voice:
    """piper:NAME, or an espeak-ng NAME[+VARIANT] at the default persona's speed and pitch."""
    if spec.startswith("piper:"):
        return Voice(spec.removeprefix("piper:"), engine="piper")
    name, _, variant = spec.partition("+")
    return replace(AGENT_VOICES[0], name=name, variant=variant or None)


def _config(args: argparse.Namespace) -> RenderConfig:
    recipe: dict = {}
    if args.recipe is not None:
        try:
            recipe = json.loads(args.recipe.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{args.recipe}: not a readable JSON recipe ({exc})") from None
        if not isinstance(recipe, dict):
            raise DataError(f"{args.recipe}: a recipe is a JSON object")
    if args.seed is not None:
        recipe["seed"] = args.seed
    if args.dialogue_seconds is not None:
        recipe["dialogue_s"] = args.dialogue_seconds
    try:
        config = config_from_json(recipe)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    if args.agent_voice:
        config = replace(config, agent_voices=tuple(_voice(v) for v in args.agent_voice))
    return config


def _generate(args: argparse.Namespace) -> int:
    report = generate(args.out, args.hours, _config(args), args.shard, args.workers, progress=not args.no_progress)
    made = f"wrote {report.written} dialogues"
    if report.written:
        made += f" ({report.audio_s / 3600:.2f} h, {report.audio_s / report.wall_s:.0f}x real time)"
    held = ", ".join(f"{n} {split}" for split, n in report.splits.items())
    print(f"{made}, skipped {report.skipped} already there; {args.out} now holds {held}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    all_stats = dataset_stats(args.dir, args.limit, args.workers)
    summary = summarize(all_stats, load_recipe(args.dir).timeline.gap_median_s)
    plots = args.plots or args.dir / "stats"
    written = plot_histograms(all_stats, plots)
    print(json.dumps(summary, indent=1))
    print(f"histograms: {', '.join(str(p) for p in written)}")
    return 0
