"""Training the full-duplex dialogue model on synthetic two-channel dialogues.

The model of the listen-while-speaking stages learns here to decide by
itself when to speak, what to say, when to backchannel and when to stop, as
SyncLLM and MiniCPM-duplex do: one slice per tick through one LM, the agent
channel as the target (codec tokens plus its text stream), the user channel
heard through the listen encoder with middle fusion.

Examples are windows of `ticks` ticks cut at random from the dialogues of a
dataset folder made by `duplex data generate` (moshi-finetune layout). Two
augmentations serve the runtime's other uses:

- **role**: with probability `user_role_prob` the channels are swapped and
  the role input says "user": the model then speaks the user's side (asks,
  narrates, barges in), so one model can play either side of an
  agent-vs-agent simulation;
- **latency**: the heard channel is delayed by 0..`max_listen_delay` ticks,
  so the model keeps its timing when the partner's audio arrives late over a
  network (SyncLLM trains the same way for its latency tolerance).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from audio.frames import TICK_SAMPLES
from models.checkpoint import config_to_dict, load_weights, read_pretrained
from models.codec import load_codec
from models.listen_encoder import load_listen_encoder
from models.lm import MODEL_TYPE, SyncLM, SyncLMConfig
from models.text_tokenizer import TextTokenizer
from training.dataset import DataError, read_dialogue, read_manifest
from training.speech_lm_batches import (
    BatchMaker,
    Example,
    LMBatch,
    complete_agent_folder,
    fitted_lm_config,
    lm_loss,
    tokenizer_corpus,
)
from training.trainer import TrainConfig

AGENT, USER = 0, 1
SPEAKERS = {AGENT: "SPEAKER_MAIN", USER: "SPEAKER_OTHER"}


@dataclass(frozen=True)
class DialogueStageConfig:
    lm: SyncLMConfig = SyncLMConfig()
    codec: str = "checkpoints/codec"
    listen: str = "checkpoints/listen"
    data: str = "~/.cache/duplex/data/default"
    """A dataset folder made by `duplex data generate` (its train split is used)."""
    init: str = ""
    """A checkpoint folder whose LM weights start this run (the listen-while-speaking model)."""
    ticks: int = 150
    text_lead: int = 2
    vocab_size: int = 1024
    user_role_prob: float = 0.25
    max_listen_delay: int = 3
    seed: int = 0


class DialogueStage:
    name = "dialogue"

    def __init__(self, config: DialogueStageConfig):
        self.config = config
        data = Path(config.data).expanduser()
        manifest = data / "train.jsonl"
        if not manifest.is_file():
            raise DataError(f"{data}: no train.jsonl; make the data first with `duplex data generate --out {data}`")
        self.dialogues = [Path(entry["path"]) for entry in read_manifest(manifest)]
        if not self.dialogues:
            raise DataError(f"{manifest}: lists no dialogues")
        codec, listen = load_codec(config.codec), load_listen_encoder(config.listen)
        self.tokenizer = TextTokenizer.train(tokenizer_corpus(config.seed), config.vocab_size)
        self.lm_config = fitted_lm_config(config.lm, codec, listen, self.tokenizer)
        self.batches = BatchMaker(codec, listen, self.tokenizer, self.lm_config, config.ticks, config.text_lead)

    def build_model(self) -> nn.Module:
        model = SyncLM(self.lm_config)
        if self.config.init:
            load_weights(model, read_pretrained(self.config.init)[1], self.config.init)
        return model

    def model_config(self) -> dict[str, Any]:
        return config_to_dict(self.lm_config, MODEL_TYPE)

    def before_step(self, model: nn.Module, step: int, batch_size: int, rank: int, world_size: int) -> None:
        pass

    def batch(self, step: int, batch_size: int, rank: int, world_size: int) -> LMBatch:
        first = (step * world_size + rank) * batch_size
        return self.batches.encode([self.example(first + i) for i in range(batch_size)])

    def loss(self, model: nn.Module, batch: LMBatch, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        return lm_loss(model, batch)

    def on_checkpoint(self, model: nn.Module, folder: Path, step: int) -> None:
        complete_agent_folder(folder, self.tokenizer, self.config.codec, self.config.listen)

    def example(self, index: int) -> Example:
        """The index-th example: a window of a dialogue, possibly role-swapped and with late hearing."""
        c = self.config
        rng = np.random.default_rng([c.seed, index, 11])
        path = self.dialogues[int(rng.integers(len(self.dialogues)))]
        audio, alignments = _dialogue(str(path))
        n = self.batches.samples
        start_tick = int(rng.integers(0, max(1, len(audio) // TICK_SAMPLES - c.ticks)))
        window = np.zeros((n, 2), np.float32)
        part = audio[start_tick * TICK_SAMPLES : start_tick * TICK_SAMPLES + n]
        window[: len(part)] = part
        role = USER if rng.random() < c.user_role_prob else AGENT
        speaker, heard = (USER, AGENT) if role == USER else (AGENT, USER)
        delay = int(rng.integers(0, c.max_listen_delay + 1))
        listen = np.zeros(n, np.float32)
        listen[delay * TICK_SAMPLES :] = window[: n - delay * TICK_SAMPLES, heard]
        words = [
            (word, t0 / (TICK_SAMPLES / 16000) - start_tick)
            for word, (t0, _), who in alignments
            if who == SPEAKERS[speaker] and t0 / (TICK_SAMPLES / 16000) >= start_tick - 1
        ]
        return Example(window[:, speaker].copy(), listen, words, role=role, kind=f"role{role}-delay{delay}")


@lru_cache(maxsize=64)
def _dialogue(json_path: str) -> tuple[np.ndarray, tuple]:
    """A dialogue's stereo audio and its alignments, cached: windows are cut from the same files often."""
    audio, meta = read_dialogue(Path(json_path).with_suffix(".json"))
    return audio, tuple((w, tuple(span), who) for w, span, who in meta["alignments"])


PRESETS: dict[str, tuple[DialogueStageConfig, TrainConfig]] = {
    "default": (
        DialogueStageConfig(),
        TrainConfig(steps=8000, batch_size=8, lr=3e-4, lr_warmup_steps=200, checkpoint_minutes=5),
    ),
}
"""`default` needs --init with the listen-while-speaking checkpoint and a dataset (see docs/training.md)."""
CONFIG_CLASS = DialogueStageConfig


def build_stage(config: DialogueStageConfig) -> DialogueStage:
    return DialogueStage(config)
