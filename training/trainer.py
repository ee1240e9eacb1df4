"""The shared training loop: seeded, resumable, distributed-ready, with a log and a loss plot.

A training *stage* (codec, listen encoder, ...) says what the model is, what
step s's batch is and what the loss is; this loop does the rest the same way
for every stage:

- Determinism: the model is built under `seed`, and every step reseeds torch
  from (seed, step, rank) while batches are pure functions of (step, rank).
  Hence a run killed and resumed from a checkpoint continues exactly as the
  uninterrupted run would have (no RNG or data-loader state to restore).
- Checkpoints every `checkpoint_minutes` (and at the end): a folder
  `checkpoints/step-NNNNNNN/` in the Hugging Face layout (config.json +
  model.safetensors, loadable by the model's own loader) plus
  optimizer.safetensors and trainer_state.json; written under a temporary
  name and renamed, so the newest `step-*` folder is always complete. The
  symlink `checkpoints/latest` points at it. Older ones are pruned.
- torchrun: with WORLD_SIZE > 1 the process group is initialised, the model
  is wrapped in DistributedDataParallel and each rank draws its own batches;
  rank 0 alone writes.
- Batches are made one step ahead in a background thread (`_Batches`),
  while the current step computes: making a batch means synthesising speech
  (an espeak-ng process) and, for the speech LM stages, running the frozen
  codec and listen encoder, which left the cores half idle between steps.
  With `data_workers` > 0 a torch DataLoader makes them in that many worker
  processes instead, several steps ahead: what a GPU needs, whose steps are
  far faster than one core makes batches. Batches are pure functions of
  (step, rank) that touch no torch RNG, so neither changes a result (tested).
- A tqdm progress bar, `log.jsonl` (one line per logged step) and `loss.png`.
- Stopping: SIGTERM or Ctrl-C ends the run after the current step with a
  checkpoint, so a stopped run loses no work (a SIGKILL loses at most
  `checkpoint_minutes`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from models.checkpoint import (
    atomic_path,
    load_weights,
    read_json,
    read_tensors,
    save_pretrained,
    write_json,
    write_tensors,
)

OPTIMIZER_NAME = "optimizer.safetensors"
TRAINER_STATE_NAME = "trainer_state.json"
KEEP_CHECKPOINTS = 2
SMOOTHING = 20  # logged points averaged by the plot's second line: per-batch losses are noisy


@dataclass(frozen=True)
class TrainConfig:
    """How to optimise, independent of what is trained."""

    steps: int = 1000
    batch_size: int = 8
    lr: float = 3e-4
    lr_warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    betas: tuple[float, float] = (0.8, 0.99)
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    seed: int = 0
    log_every: int = 10
    checkpoint_minutes: float = 5.0
    checkpoint_every: int = 0  # steps; 0 = by time only
    threads: int = 1
    data_workers: int = 0
    """Processes making batches (a DataLoader's workers); 0: one thread beside the loop."""


class Stage(Protocol):
    """What a stage provides to the loop."""

    name: str

    def build_model(self) -> nn.Module: ...

    def model_config(self) -> dict[str, Any]:
        """The model's config.json content."""
        ...

    def batch(self, step: int, batch_size: int, rank: int, world_size: int) -> Any:
        """Step `step`'s batch: a pure function of its arguments (no torch RNG, no model state), because
        the loop makes it in a background thread while the step before it trains."""
        ...

    def loss(self, model: nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Scalar loss to minimise and the figures to log; `model` may be DDP-wrapped."""
        ...

    def prepare(self, workers: int, progress: bool, device: torch.device) -> None:
        """Hook run once before the loop, told how many worker processes will make batches and where the
        model trains (e.g. build what the workers should share rather than each build their own)."""
        ...

    def before_step(self, model: nn.Module, step: int, batch_size: int, rank: int, world_size: int) -> None:
        """Hook run before the step's batch (e.g. codebook initialisation at a set step)."""
        ...

    def on_checkpoint(self, model: nn.Module, folder: Path, step: int) -> None:
        """Hook run on rank 0 after a checkpoint is written (e.g. write audio samples)."""
        ...


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to min_lr_ratio * lr at the last step."""
    if step < config.lr_warmup_steps:
        return config.lr * (step + 1) / config.lr_warmup_steps
    span = max(1, config.steps - config.lr_warmup_steps)
    progress = min(1.0, (step - config.lr_warmup_steps) / span)
    return config.lr * (config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step) * 1009 + rank


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Distributed:
    """Join the torchrun process group when launched by torchrun, else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed(device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device, backend = torch.device("cuda", local_rank), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return Distributed(rank=dist.get_rank(), world_size=dist.get_world_size(), device=device)


# --- optimizer state as safetensors -----------------------------------------------------------


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """Flatten an optimizer's per-parameter state to named tensors (no pickle)."""
    out = {}
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            out[f"{index}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return out


def load_optimizer_tensors(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    current = optimizer.state_dict()
    optimizer.load_state_dict({"state": state, "param_groups": current["param_groups"]})


# --- run folder --------------------------------------------------------------------------------


def _running_mean(values: list[float], width: int) -> list[float]:
    """Mean of each value and up to width-1 values before it."""
    sums = np.cumsum([0.0, *values])
    return [(sums[i + 1] - sums[max(0, i + 1 - width)]) / min(width, i + 1) for i in range(len(values))]


class RunFolder:
    """The files of one run: settings, log, plot and checkpoints."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()
        self.settings = self.root / "run.json"
        self.log = self.root / "log.jsonl"
        self.plot = self.root / "loss.png"
        self.checkpoints = self.root / "checkpoints"
        self.latest_link = self.checkpoints / "latest"

    def latest(self) -> Path | None:
        """The newest checkpoint folder (checkpoints appear complete, by rename), or None."""
        folders = sorted(self.checkpoints.glob("step-*"))
        return folders[-1] if folders else None

    def point_latest_at(self, folder: Path) -> None:
        """Switch the `checkpoints/latest` symlink atomically (for --init paths and people)."""
        tmp = self.checkpoints / ".latest.tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(folder.name)
        os.replace(tmp, self.latest_link)

    def read_log(self) -> list[dict[str, float]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def truncate_log(self, last_step: int) -> None:
        """Drop log lines written after the checkpoint being resumed (they will be redone)."""
        kept = [row for row in self.read_log() if row["step"] <= last_step]
        with atomic_path(self.log) as tmp:
            tmp.write_text("".join(json.dumps(row) + "\n" for row in kept))

    def append_log(self, row: dict[str, float]) -> None:
        with open(self.log, "a") as f:
            f.write(json.dumps(row) + "\n")

    def write_plot(self, title: str) -> None:
        rows = self.read_log()
        if not rows:
            return
        keys = [k for k in rows[-1] if k not in ("step", "lr", "seconds")]
        fig, axes = plt.subplots(len(keys), 1, figsize=(8, 2.2 * len(keys)), sharex=True, squeeze=False)
        for ax, key in zip(axes[:, 0], keys):
            steps = [r["step"] for r in rows if key in r]
            values = [r[key] for r in rows if key in r]
            ax.plot(steps, values, linewidth=0.6, alpha=0.35)
            ax.plot(steps, _running_mean(values, SMOOTHING), linewidth=1.2)
            ax.set_ylabel(key, fontsize=8)
            if all(v > 0 for v in values):
                ax.set_yscale("log")
            ax.grid(alpha=0.3)
        axes[-1, 0].set_xlabel("step")
        fig.suptitle(title)
        fig.tight_layout()
        with atomic_path(self.plot) as tmp:
            fig.savefig(tmp, format="png", dpi=90)
        plt.close(fig)


def adamw(params, config: TrainConfig, device: torch.device, fused: bool | None = None) -> torch.optim.AdamW:
    """The run's AdamW, with torch's fused kernel where it has one (CPU, CUDA) unless `fused` says: on
    this machine's CPU the speech LM's training step took 0.65 s with it against 0.70 s with the default
    for-loop version (bench/bench_lm_train_step.py --compare optimizer). Same update, same state dict."""
    return torch.optim.AdamW(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay,
                             fused=device.type in ("cpu", "cuda") if fused is None else fused)


class Trainer:
    def __init__(
        self, stage: Stage, config: TrainConfig, run_dir: str | os.PathLike, progress: bool = True, prefetch: bool = True
    ):
        self.stage, self.config, self.folder, self.progress = stage, config, RunFolder(run_dir), progress
        self.dist = init_distributed()
        torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        self.model = stage.build_model().to(self.dist.device)
        self.optimizer = adamw(self.model.parameters(), config, self.dist.device)
        self.wrapped: nn.Module = (
            DistributedDataParallel(self.model) if self.dist.world_size > 1 else self.model
        )
        self.step = 0
        self.seconds = 0.0  # training wall time over all sessions of the run, up to self.step
        self.prefetch = prefetch

    # --- checkpoints ---

    def resume(self) -> bool:
        """Load the latest checkpoint of the run folder if there is one; True if resumed."""
        folder = self.folder.latest()
        if folder is None:
            return False
        load_weights(self.model, read_tensors(folder / "model.safetensors"), str(folder))
        load_optimizer_tensors(self.optimizer, read_tensors(folder / OPTIMIZER_NAME))
        state = read_json(folder / TRAINER_STATE_NAME)
        self.step = int(state["step"])
        self.seconds = float(state.get("seconds", 0.0))
        if self.dist.is_main:
            self.folder.truncate_log(self.step)
        return True

    def save_checkpoint(self) -> Path:
        """Write checkpoint `step` (steps done so far) and point `checkpoints/latest` at it."""
        name = f"step-{self.step:07d}"
        final = self.folder.checkpoints / name
        staging = self.folder.checkpoints / f".{name}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        save_pretrained(staging, self.stage.model_config(), self.model)
        write_tensors(staging / OPTIMIZER_NAME, optimizer_tensors(self.optimizer))
        write_json(staging / TRAINER_STATE_NAME, {"step": self.step, "stage": self.stage.name, "seconds": self.seconds})
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        self.folder.point_latest_at(final)
        for old in sorted(self.folder.checkpoints.glob("step-*"))[:-KEEP_CHECKPOINTS]:
            shutil.rmtree(old, ignore_errors=True)
        self.folder.write_plot(f"{self.stage.name}: {self.folder.root.name}")
        self.stage.on_checkpoint(self.model, final, self.step)
        return final

    # --- the loop ---

    def train_step(self, step: int, batches: _Batches) -> dict[str, float]:
        cfg, d = self.config, self.dist
        torch.manual_seed(step_seed(cfg.seed, step, d.rank))
        self.model.train()
        self.stage.before_step(self.model, step, cfg.batch_size, d.rank, d.world_size)
        batch = batches.get(step)
        lr = learning_rate(cfg, step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss, metrics = self.stage.loss(self.wrapped, batch, step)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"step {step}: loss is {loss.item()}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        return {"loss": loss.item(), **metrics, "grad_norm": float(grad_norm), "lr": lr}

    def run(self, on_step: Callable[[int], None] | None = None, until: int | None = None) -> None:
        """Train from the current step to config.steps (or to `until`, on the same schedule), checkpointing."""
        cfg, main = self.config, self.dist.is_main
        end = cfg.steps if until is None else min(until, cfg.steps)
        if main:
            self.folder.root.mkdir(parents=True, exist_ok=True)
        self.stage.prepare(cfg.data_workers, main and self.progress, self.dist.device)
        bar = tqdm(total=cfg.steps, initial=self.step, desc=self.stage.name, disable=not (main and self.progress))
        last_save, saved_step = time.monotonic(), self.step
        with _Batches(self.stage, cfg.batch_size, self.dist, self.step, end, self.prefetch,
                      cfg.data_workers) as batches, _StopRequest() as stop, _Pauses() as pauses:
            step_seconds = 0.0
            while self.step < end and not stop.agreed(self.dist.world_size, self.dist.device):
                started = time.monotonic()
                metrics = self.train_step(self.step, batches)
                self.step += 1
                # a step that a pause fell into counts as long as the one before it
                step_seconds = step_seconds if pauses.happened() else time.monotonic() - started
                self.seconds += step_seconds
                bar.update(1)
                if main and (self.step % cfg.log_every == 0 or self.step == end):
                    row = {"step": self.step, **metrics, "seconds": round(self.seconds, 1)}
                    self.folder.append_log(row)
                    bar.set_postfix({k: f"{v:.3g}" for k, v in metrics.items() if k != "lr"}, refresh=False)
                due_by_time = time.monotonic() - last_save >= cfg.checkpoint_minutes * 60
                due_by_step = cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0
                if main and (due_by_time or due_by_step or self.step == end):
                    self.save_checkpoint()
                    last_save, saved_step = time.monotonic(), self.step
                if on_step is not None:
                    on_step(self.step)
            bar.close()
            if stop.noted and main:
                if saved_step != self.step:
                    self.save_checkpoint()
                print(f"stopped at step {self.step}; checkpoint written, the same command resumes", flush=True)
        if self.dist.world_size > 1:
            dist.barrier()


class _Batches:
    """The run's batches, steps `start` to `end` in order. With `ahead`, step s+1's is made in a background
    thread while step s trains; with `workers`, a DataLoader makes them in that many processes, forked
    after the stage is built so that they share what it holds (an encoded speech pool, say).
    A context manager that drops the batches in flight on exit (end of the run, or an error)."""

    def __init__(self, stage: Stage, batch_size: int, dist: Distributed, start: int, end: int, ahead: bool,
                 workers: int = 0):
        self.stage, self.batch_size, self.dist, self.end = stage, batch_size, dist, end
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-ahead") if ahead and not workers else None
        self.ahead: tuple[int, Future] | None = None
        self.loader = None
        if workers and start < end:
            steps = _StepBatches(stage, batch_size, dist.rank, dist.world_size)
            self.loader = iter(DataLoader(steps, batch_size=None, sampler=range(start, end), num_workers=workers,
                                          prefetch_factor=4, multiprocessing_context="fork"))
            self.next_step = start

    def _make(self, step: int) -> Any:
        return self.stage.batch(step, self.batch_size, self.dist.rank, self.dist.world_size)

    def get(self, step: int) -> Any:
        if self.loader is not None:
            if step != self.next_step:
                raise RuntimeError(f"batch of step {step} asked for, the workers make {self.next_step}")
            self.next_step += 1
            return next(self.loader)
        if self.ahead is not None and self.ahead[0] == step:
            batch = self.ahead[1].result()
        else:
            batch = self._make(step)
        if self.pool is not None and step + 1 < self.end:
            self.ahead = (step + 1, self.pool.submit(self._make, step + 1))
        return batch

    def __enter__(self) -> _Batches:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        self.loader = None  # the iterator's end stops its workers


class _StepBatches(Dataset):
    """Step s's batch as item s, for a DataLoader (batch_size=None: the stage batches)."""

    def __init__(self, stage: Stage, batch_size: int, rank: int, world_size: int):
        self.stage, self.batch_size, self.rank, self.world_size = stage, batch_size, rank, world_size

    def __getitem__(self, step: int) -> Any:
        return self.stage.batch(step, self.batch_size, self.rank, self.world_size)


class _SignalNote:
    """A flag that any of `signals` sets, for the loop to read: signals can only be caught on the main
    thread, so a run on another thread keeps the defaults. The previous handlers come back on exit."""

    def __init__(self, *signals: signal.Signals) -> None:
        self.noted = False
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._note) for sig in signals}

    def _note(self, signum: int, frame: Any) -> None:
        self.noted = True

    def __enter__(self) -> _SignalNote:
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class _StopRequest(_SignalNote):
    """SIGTERM / SIGINT during a run: noted, so the loop ends after the current step with a checkpoint."""

    def __init__(self) -> None:
        super().__init__(signal.SIGTERM, signal.SIGINT)

    def agreed(self, world_size: int, device: torch.device) -> bool:
        """Whether to stop now; with several processes, all stop together when any was asked to
        (the flag lives on the process group's device: NCCL reduces CUDA tensors only)."""
        if world_size > 1:
            flag = torch.tensor(float(self.noted), device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            self.noted = bool(flag.item())
        return self.noted


class _Pauses(_SignalNote):
    """SIGCONT: the process was stopped (SIGSTOP, as benches beside a run pause it) and goes on. The
    step it was stopped in took wall time that was not training, and the run's training time, which
    model cards report, must not count it."""

    def __init__(self) -> None:
        super().__init__(signal.SIGCONT)

    def happened(self) -> bool:
        """Whether a pause ended since the last call."""
        happened, self.noted = self.noted, False
        return happened
