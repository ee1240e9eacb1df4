"""Training stage of the listen encoder: `duplex train listen`.

Self-supervised objective: denoising autoregressive predictive coding
(APC, Chung et al. 2019, made robust the way WavLM's denoising pretraining
is). The encoder hears a *mixture* (the main talker plus, sometimes, a second
espeak voice or coloured noise at 0-20 dB SNR) and, from its causal features
at frame t, predicts the *clean* main talker's log-mel frames t+1, t+2, t+3
(40-120 ms ahead), with an L1 loss.

Why this objective here:
- It is causal by construction, as the streaming encoder must be; masked
  prediction (HuBERT, wav2vec 2.0) assumes a bidirectional encoder and needs
  target clusters or quantisers trained first.
- Predicting the future rather than the present forces the features to carry
  phonetic context (what sound is under way and what tends to follow), which
  is what the CTC probe and the dialogue model need; APC features beat
  log-mel by a wide margin in phone classification in the original paper.
- Predicting the clean talker from the mixture teaches the encoder to follow
  the main voice through noise and a second voice, which is the robustness
  listening while speaking needs (the agent's own voice and the user's
  background are the interference in a real session).
- It costs one forward of the encoder per batch: feasible on a 2-core CPU.

Preset "twin" (session 5; at 1907 steps no better than the default,
docs/benchmarks.md): in half the examples the
target is the same words said by another voice, aligned to the talker by
DTW (training/speech_source.py), so that features are rewarded for what is
said rather than who says it; the default objective's features lost their
advantage over log-mel on held-out voices (docs/benchmarks.md).

Preset "cpc" (session 6): contrastive predictive coding (van den Oord et al.
2018) in place of the L1. The prediction for frame t+k is scored against
every frame of the same utterance's clean target, embedded frame by frame
by a small MLP, and must pick the true one (InfoNCE, cosine similarity at
temperature `cpc_temperature`). An L1 on log-mel is spent mostly on what
is easy to hear and useless to understand (the talker's spectral envelope,
loudness, the exact shape of silence); a choice among the same talker's
other frames can only be made on what changes from sound to sound, the
phonetic content. Negatives from the same utterance only, as in CPC's
same-speaker setting, so that timbre never helps; CPC's features beat
MFCCs by 25 points of linear phone accuracy on LibriSpeech.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.checkpoint import config_to_dict
from models.listen_encoder import MODEL_TYPE, ListenConfig, ListenEncoder
from training.speech_source import SpeechBatch, SpeechSource, SpeechSourceConfig
from training.trainer import TrainConfig


@dataclass(frozen=True)
class ListenStageConfig:
    encoder: ListenConfig = field(default_factory=ListenConfig)
    seconds: float = 4.0
    noise_prob: float = 0.35
    talker_prob: float = 0.35
    snr_db: tuple[float, float] = (0.0, 20.0)
    timbre_prob: float = 0.0  # talkers in generated timbres (audio/timbres.py); the presets set 0.5 (runs before had none)
    twin_prob: float = 0.0  # predict the same words in another voice instead (training/speech_source.py): preset "twin"
    cpc_temperature: float = 0.1
    data_seed: int = 1


def apc_losses(prediction: torch.Tensor, target: torch.Tensor, shifts: tuple[int, ...]) -> torch.Tensor:
    """L1 per shift between predicted (B, T, shifts, D) and clean (B, T, D) future log-mel frames."""
    return torch.stack(
        [(prediction[:, :-shift, i] - target[:, shift:]).abs().mean() for i, shift in enumerate(shifts)]
    )


def cpc_losses(prediction: torch.Tensor, target: torch.Tensor, shifts: tuple[int, ...], temperature: float
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """InfoNCE per shift, and how often the true frame scores highest: the prediction (B, T, shifts, D) at
    frame t chooses frame t+shift among all frames of its own utterance's embedded target (B, T, D)."""
    prediction, target = F.normalize(prediction, dim=-1), F.normalize(target, dim=-1)
    losses, accuracies = [], []
    for i, shift in enumerate(shifts):
        queries, keys = prediction[:, :-shift, i], target[:, shift:]  # query t's true key is key t
        logits = queries @ keys.transpose(1, 2) / temperature  # (B, T - shift, T - shift)
        truth = torch.arange(logits.shape[1], device=logits.device).expand(logits.shape[0], -1)
        losses.append(F.cross_entropy(logits.flatten(0, 1), truth.flatten()))
        accuracies.append((logits.argmax(-1) == truth).float().mean())
    return torch.stack(losses), torch.stack(accuracies)


class ListenStage:
    name = "listen"

    def __init__(self, config: ListenStageConfig):
        self.config = config
        self.source = SpeechSource(
            SpeechSourceConfig(
                seconds=config.seconds,
                seed=config.data_seed,
                noise_prob=config.noise_prob,
                talker_prob=config.talker_prob,
                snr_db=config.snr_db,
                timbre_prob=config.timbre_prob,
                twin_prob=config.twin_prob,
            )
        )

    def build_model(self) -> nn.Module:
        return ListenEncoder(self.config.encoder)

    def model_config(self) -> dict[str, Any]:
        return config_to_dict(self.config.encoder, MODEL_TYPE)

    def batch(self, step: int, batch_size: int, rank: int, world_size: int) -> SpeechBatch:
        return self.source.batch(step, batch_size, rank, world_size)

    def prepare(self, workers: int, progress: bool, device: torch.device) -> None:
        pass

    def before_step(self, model: nn.Module, step: int, batch_size: int, rank: int, world_size: int) -> None:
        """Nothing to prepare: the objective is the same at every step."""

    def loss(self, model: nn.Module, batch: SpeechBatch, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        device = next(model.parameters()).device
        # through the DDP wrapper, so that gradients are synchronised
        prediction, target = model(batch.mixed.to(device), batch.target.to(device))
        shifts = self.config.encoder.predict_shifts
        if self.config.encoder.objective == "cpc":
            losses, accuracies = cpc_losses(prediction, target, shifts, self.config.cpc_temperature)
            logged = {f"nce_t+{s}": float(v) for s, v in zip(shifts, losses.detach())}
            return losses.mean(), logged | {f"acc_t+{s}": float(v) for s, v in zip(shifts, accuracies)}
        losses = apc_losses(prediction, target, shifts)
        return losses.mean(), {f"l1_t+{s}": float(v) for s, v in zip(shifts, losses.detach())}

    def on_checkpoint(self, model: nn.Module, folder: Path, step: int) -> None:
        """The loss curve says enough; the CTC probe (bench/bench_listen.py) measures the features."""


TINY = ListenStageConfig(encoder=ListenConfig(d_model=32, layers=2, heads=2, window=10), seconds=0.64)
DEFAULT_TRAIN = TrainConfig(steps=20_000, batch_size=16, lr=5e-4, lr_warmup_steps=500, betas=(0.9, 0.98),
                            weight_decay=0.01, grad_clip=1.0, log_every=10, checkpoint_minutes=5)
PRESETS: dict[str, tuple[ListenStageConfig, TrainConfig]] = {
    "default": (ListenStageConfig(timbre_prob=0.5), DEFAULT_TRAIN),
    # half the examples predict the talker's words in another voice (module docstring)
    "twin": (ListenStageConfig(timbre_prob=0.5, twin_prob=0.5), DEFAULT_TRAIN),
    # contrastive predictive coding instead of the L1 (module docstring)
    "cpc": (ListenStageConfig(encoder=ListenConfig(objective="cpc"), timbre_prob=0.5), DEFAULT_TRAIN),
    "tiny": (TINY, TrainConfig(steps=4, batch_size=2, lr_warmup_steps=1, log_every=1)),
}
"""Named (stage, optimisation) settings; `tiny` is for tests and smoke runs."""
CONFIG_CLASS = ListenStageConfig


def build_stage(config: ListenStageConfig) -> ListenStage:
    return ListenStage(config)
