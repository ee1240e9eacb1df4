"""Generates a synthetic dialogue dataset: sharded, resumable, on all cores.

The dataset is a fixed list of dialogue indices (enough `dialogue_s`-long
dialogues to fill the requested hours); shard i of N takes every N-th index
starting at i, so any number of machines can share the work and the union of
the shards is exactly the unsharded set. A dialogue whose files are complete
is skipped, so an interrupted run picks up where it stopped.

Every dialogue renders in a process of its own, forked from a clean server
process (multiprocessing's forkserver, one task per child): espeak-ng's
output depends on what the process synthesised before (its wave generator
keeps state from call to call), so only a fresh engine per dialogue makes a
dialogue's bytes independent of which worker rendered what before it. The
fork costs a few per cent of a dialogue's rendering time.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from audio.tts import TTSError, check_voice
from training.dataset import (
    DataError,
    is_complete,
    write_dialogue,
    write_manifests,
    write_text_atomic,
)
from training.render import (
    RenderConfig,
    config_from_json,
    config_to_json,
    dialogue_split,
    render_dialogue,
)


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0-based), written i/N on the command line."""

    index: int = 0
    count: int = 1

    @staticmethod
    def parse(text: str) -> Shard:
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise DataError(f"bad shard {text!r}: write i/N, e.g. 0/4") from None
        if count < 1 or not 0 <= index < count:
            raise DataError(f"bad shard {text!r}: need 0 <= i < N")
        return Shard(index, count)


@dataclass(frozen=True)
class GenerateReport:
    written: int
    skipped: int
    audio_s: float
    """Seconds of dialogue written by this run."""
    wall_s: float
    splits: dict[str, int]
    """Complete dialogues per split in the folder afterwards."""


def dialogue_count(hours: float, dialogue_s: float) -> int:
    if hours <= 0 or dialogue_s <= 0:
        raise DataError("hours and dialogue length must be positive")
    return math.ceil(hours * 3600 / dialogue_s)


def shard_indices(total: int, shard: Shard) -> range:
    return range(shard.index, total, shard.count)


def check_output_dir(out: Path) -> None:
    """Create out if needed and prove it writable, before any work starts."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise DataError(f"{out}: cannot write there ({exc.strerror or exc})") from None


RECIPE = "recipe.json"


def check_recipe(out: Path, config: RenderConfig) -> None:
    """Record the recipe beside the data; refuse to mix dialogues of two recipes in one folder."""
    path = out / RECIPE
    recipe = json.loads(json.dumps(config_to_json(config)))
    if path.exists():
        try:
            stored = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            raise DataError(f"{path}: unreadable; remove it only if the folder holds no dialogues") from None
        if stored != recipe:
            raise DataError(f"{out} holds dialogues of another recipe (seed or parameters); use a new folder")
        return
    write_text_atomic(path, json.dumps(recipe, indent=1) + "\n")


def load_recipe(out: Path) -> RenderConfig:
    """The recipe a dataset folder was made with (defaults if the folder has none)."""
    path = Path(out) / RECIPE
    if not path.exists():
        return RenderConfig()
    try:
        return config_from_json(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: {exc}") from None


_worker_out: Path
_worker_config: RenderConfig


def _init_worker(out: Path, config: RenderConfig) -> None:
    import torch  # resampling runs on torch; one thread per worker process, the processes share the cores

    torch.set_num_threads(1)
    global _worker_out, _worker_config
    _worker_out, _worker_config = out, config


def _render_and_write(index: int) -> float:
    return write_dialogue(_worker_out, render_dialogue(index, _worker_config))


def generate(
    out: Path, hours: float, config: RenderConfig = RenderConfig(), shard: Shard = Shard(),
    workers: int | None = None, progress: bool = True,
) -> GenerateReport:
    """Render this shard's missing dialogues into out and rewrite the manifests."""
    out = Path(out)
    try:
        for voice in config.agent_voices:
            check_voice(voice)
    except TTSError as exc:
        raise DataError(f"agent voice: {exc}") from None
    check_output_dir(out)
    check_recipe(out, config)
    mine = shard_indices(dialogue_count(hours, config.dialogue_s), shard)
    todo = [i for i in mine if not is_complete(out, dialogue_split(config.seed, i, config.split_fractions), i)]
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    start, audio_s = time.perf_counter(), 0.0
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["training.render", "training.dataset"])
    pool = context.Pool(workers, _init_worker, (out, config), maxtasksperchild=1)
    bar = tqdm(total=len(todo), unit="dialogue", disable=not progress, smoothing=0.1)
    try:
        for duration in pool.imap_unordered(_render_and_write, todo):
            audio_s += duration
            bar.update(1)
            bar.set_postfix_str(f"{audio_s / 3600:.2f} h, {audio_s / (time.perf_counter() - start):.0f}x real time")
    finally:
        bar.close()
        pool.terminate()
    splits = write_manifests(out)
    return GenerateReport(len(todo), len(mine) - len(todo), audio_s, time.perf_counter() - start, splits)

