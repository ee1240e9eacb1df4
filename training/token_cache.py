"""Codec tokens of many sentences or dialogues, made once and kept in one file.

Encoding speech is what makes a speech LM's batch expensive, so the stages
encode each sentence of their pool (lsm) or each channel of their dialogues
(dialogue) once. When worker processes make the batches (`--data-workers`,
a GPU run), a stage makes all of its tokens before the loop: processes
produce the audio (render a sentence, read a dialogue) while the codec
encodes it in batches on the training device. They are kept in one
safetensors file under the cache folder, named by everything that decides
its content, so that the batch workers share one copy and later runs (or
another machine the file is copied to) read it back. While tokens are made,
what is done is written every few minutes to a `.partial` file beside it,
from which a killed run goes on (on a 2-core CPU the default dataset's
dialogues take hours).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import multiprocessing.pool
import time
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from tqdm import tqdm

from audio.cache import CACHE_ROOT
from audio.frames import TICK_SAMPLES
from models.checkpoint import read_tensors, weights_digest, write_tensors
from models.codec import Codec

FORMAT_VERSION = 1
"""Bumped whenever what a token file holds changes, so that stale files are never read."""
ENCODE_SAMPLES = 64 * 4 * 16_000
"""Audio the codec encodes at once, in samples (64 sentences of 4 s, or five 60-s dialogue channels):
capped by length, not count, because the encoder's activations of a batch of long audios fill memory."""
SAVE_SECONDS = 300.0
"""How often the tokens made so far are written to the partial file."""


def cache_file(kind: str, codec_folder: str | Path, *key: Any) -> Path:
    """Where tokens of `kind` are kept: named by the codec's weights and `key` (JSON-able), all that
    decides them."""
    codec = weights_digest(codec_folder)
    digest = hashlib.sha256(json.dumps([FORMAT_VERSION, codec, *key]).encode()).hexdigest()[:16]
    return CACHE_ROOT / "tokens" / f"{kind}-{digest}.safetensors"


@torch.no_grad()
def encode_together(codec: Codec, audios: list[np.ndarray]) -> list[torch.Tensor]:
    """Each audio's tokens (Q, ceil(len / tick)), encoded in one padded batch on the codec's device: the
    codec is causal, so an audio's tokens do not depend on the padding after it."""
    batch = np.zeros((len(audios), max(len(a) for a in audios)), np.float32)
    for row, audio in zip(batch, audios):
        row[: len(audio)] = audio
    codes = codec.encode_ticks(torch.from_numpy(batch).to(next(codec.parameters()).device)).cpu()
    return [c[:, : -(-len(a) // TICK_SAMPLES)].clone() for c, a in zip(codes, audios)]


def encode_all(codec: Codec, device: torch.device, workers: int, produce: Callable[[Any], Any], jobs: list[Any],
               audios_of: Callable[[Any], list[np.ndarray]], desc: str,
               progress: bool) -> Iterator[tuple[Any, list[torch.Tensor]]]:
    """(produce(job), the tokens of each of its audios) for every job, in order: `workers` forked processes
    produce (a module-level function, so that only the job crosses to them), the codec encodes on
    `device` and goes back to the CPU afterwards, where batches are made."""
    codec.to(device)
    try:
        with multiprocessing.get_context("fork").Pool(workers, one_torch_thread) as pool, \
                tqdm(total=len(jobs), desc=desc, disable=not progress) as bar:
            waiting: list[tuple[Any, list[np.ndarray]]] = []
            for item in _bounded(pool, produce, jobs, 8 * workers):
                waiting.append((item, audios_of(item)))
                if sum(len(a) for _, audios in waiting for a in audios) >= ENCODE_SAMPLES:
                    yield from _encoded(codec, waiting)
                    bar.update(len(waiting))
                    waiting = []
            yield from _encoded(codec, waiting)
            bar.update(len(waiting))
    finally:
        codec.to("cpu")


def _bounded(pool: multiprocessing.pool.Pool, produce: Callable[[Any], Any], jobs: list[Any],
             ahead: int) -> Iterator[Any]:
    """produce(job) for every job, in order, at most `ahead` jobs produced before they are used: the
    processes otherwise fill memory with audio faster than the codec encodes it (a first version held
    a whole dataset's dialogues, 22 GB)."""
    for first in range(0, len(jobs), ahead):
        yield from pool.imap(produce, jobs[first : first + ahead], chunksize=2)


def _encoded(codec: Codec, waiting: list[tuple[Any, list[np.ndarray]]]) -> Iterator[tuple[Any, list[torch.Tensor]]]:
    if not waiting:
        return
    codes = encode_together(codec, [a for _, audios in waiting for a in audios])
    for item, audios in waiting:
        yield item, codes[: len(audios)]
        codes = codes[len(audios) :]


def keep(path: Path, workers: int, have: dict, made: Callable[[dict], Iterator[tuple[Any, Any]]],
         read: Callable[[Path], dict], write: Callable[[Path, dict], None]) -> dict:
    """What a stage keeps in `path`: read back if an earlier run kept it; else, when worker processes will
    make the batches, `have` with every (key, value) of `made(have)` added (it makes what `have` lacks),
    written to the partial file every SAVE_SECONDS (a killed run goes on from it) and kept in `path` at
    the end. Without workers, `have` as it is: in-process batches make what they use when they use it."""
    if path.is_file():
        return read(path)
    if workers <= 0:
        return have
    partial = partial_file(path)
    if partial.is_file():  # a run killed while making them
        have.update(read(partial))
    save_due = every(SAVE_SECONDS)
    for key, value in made(have):
        have[key] = value
        if save_due():
            write(partial, have)
    write(path, have)
    partial.unlink(missing_ok=True)
    return have


def partial_file(path: Path) -> Path:
    """Where the tokens made so far are kept until all are (see the module's docstring)."""
    return path.with_name(path.name + ".partial")


def every(seconds: float) -> Callable[[], bool]:
    """A clock that answers True once each `seconds` (and then starts again): when to save."""
    last = [time.monotonic()]

    def due() -> bool:
        if time.monotonic() - last[0] < seconds:
            return False
        last[0] = time.monotonic()
        return True

    return due


def one_torch_thread() -> None:
    """A producing process: torch (resampling) on one thread, since the processes share the cores (and a
    forked copy of the parent's thread pool would hang)."""
    torch.set_num_threads(1)


def write_token_file(path: Path, sequences: list[torch.Tensor], tensors: dict[str, torch.Tensor],
                     metadata: Any) -> None:
    """The sequences' tokens end to end (16-bit) with their bounds, other tensors as given, and JSON
    metadata."""
    bounds = np.cumsum([0] + [s.shape[1] for s in sequences])
    write_tensors(path, {"codes": torch.cat(sequences, dim=1).to(torch.int16), "bounds": torch.from_numpy(bounds),
                         **tensors}, metadata={"json": json.dumps(metadata)})


def read_token_file(path: Path) -> tuple[list[torch.Tensor], dict[str, torch.Tensor], Any]:
    """What `write_token_file` wrote: the sequences (int64), the other tensors, the metadata."""
    tensors = read_tensors(path)
    with safe_open(str(path), "pt") as file:
        metadata = json.loads(file.metadata()["json"])
    codes, bounds = tensors.pop("codes"), tensors.pop("bounds").tolist()
    return [codes[:, a:b].long() for a, b in pairwise(bounds)], tensors, metadata
