"""Training stage of the codec: `duplex train codec`.

The recipe guards against the collapse a naive run showed on this machine
(constant encoder output, one code per codebook, silence):

1. Warm-up: the autoencoder trains without the quantiser for
   `autoencoder_steps`, so the latent carries speech before it is discretised.
2. At that step the codebooks are initialised by k-means on the encoder's
   outputs over `kmeans_batches` fresh batches (models/rvq.py).
3. Then the full codec trains: log-mel + spectral-convergence + small
   waveform L1 losses, commitment weight 0.25, quantiser dropout (half of the
   steps use a random number of codebooks, so the first ones carry the most),
   EMA codebooks with dead-code restarts.

A second recipe (`--preset vocos --init CODEC_CHECKPOINT`) keeps a trained
codec's encoder and codebooks, frozen, so the tokens stay the same, and trains
a new Vocos-style decoder (models/vocos_decoder.py) on them; no warm-up or
k-means then. `--preset vocos-joint --init VOCOS_CHECKPOINT` goes on training
all three parts together (the tokens then change).

At every checkpoint a held-out sentence in a held-out voice is resynthesised
into `samples/` of the run folder, to listen to while it trains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from audio.frames import SAMPLE_RATE
from audio.wav import write_wav
from models.checkpoint import config_to_dict
from models.codec import MODEL_TYPE, Codec, CodecConfig, load_codec
from training.spectral_loss import MultiScaleSpectralLoss
from training.speech_source import SpeechBatch, SpeechSource, SpeechSourceConfig
from training.trainer import TrainConfig


@dataclass(frozen=True)
class CodecStageConfig:
    codec: CodecConfig = field(default_factory=CodecConfig)
    seconds: float = 1.28
    agent_voice_prob: float = 0.25  # the persona the codec mostly carries
    natural_prob: float = 0.0  # the natural persona (Piper joe), so that both candidates can be measured
    noise_prob: float = 0.0
    timbre_prob: float = 0.0  # generated timbres (audio/timbres.py); 0 in the runs so far, which it would change on resume
    autoencoder_steps: int = 1000
    kmeans_batches: int = 32
    kmeans_iters: int = 20
    commitment_weight: float = 0.25
    quantizer_dropout: float = 0.5
    waveform_weight: float = 0.1
    data_seed: int = 0
    init: str = ""  # codec checkpoint whose encoder and codebooks (and decoder, if of the same kind) start this run
    freeze_encoder: bool = False


class CodecStage:
    name = "codec"

    def __init__(self, config: CodecStageConfig):
        self.config = config
        self.source = SpeechSource(
            SpeechSourceConfig(
                seconds=config.seconds,
                seed=config.data_seed,
                agent_voice_prob=config.agent_voice_prob,
                noise_prob=config.noise_prob,
                timbre_prob=config.timbre_prob,
                natural_prob=config.natural_prob,
            )
        )
        self.spectral = MultiScaleSpectralLoss(config.codec.sample_rate)

    def build_model(self) -> nn.Module:
        model = Codec(self.config.codec)
        if self.config.init:
            start = load_codec(self.config.init)
            parts = ["encoder", "quantizer"]
            if start.config.decoder == self.config.codec.decoder:
                parts.append("decoder")
            for name in parts:
                getattr(model, name).load_state_dict(getattr(start, name).state_dict())
        if self.config.freeze_encoder:
            model.encoder.requires_grad_(False)
            model.quantizer.requires_grad_(False)
        return model

    def _quantize(self, step: int) -> bool:
        return bool(self.config.init) or step >= self.config.autoencoder_steps

    def model_config(self) -> dict[str, Any]:
        return config_to_dict(self.config.codec, MODEL_TYPE)

    def batch(self, step: int, batch_size: int, rank: int, world_size: int) -> SpeechBatch:
        return self.source.batch(step, batch_size, rank, world_size)

    @torch.no_grad()
    def prepare(self, workers: int, progress: bool, device: torch.device) -> None:
        pass

    def before_step(self, model: nn.Module, step: int, batch_size: int, rank: int, world_size: int) -> None:
        if self.config.init or step != self.config.autoencoder_steps:
            return
        init_source = SpeechSource(
            SpeechSourceConfig(seconds=self.config.seconds, seed=self.config.data_seed + 1)
        )
        latents = [
            model.encoder(init_source.batch(i, batch_size, rank, world_size).mixed[:, None])
            for i in range(self.config.kmeans_batches)
        ]
        frames_per_example = self.source.samples // self.config.codec.hop
        model.quantizer.init_from(
            torch.cat(latents), self.config.kmeans_iters, rows_per_step=batch_size * world_size * frames_per_example
        )

    def loss(self, model: nn.Module, batch: SpeechBatch, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.config
        quantize = self._quantize(step)
        n_q = cfg.codec.n_q
        # The same draw on every process: codebooks synchronise their statistics layer by layer.
        shared = torch.Generator().manual_seed(cfg.data_seed * 1_000_003 + step)
        if quantize and torch.rand((), generator=shared) < cfg.quantizer_dropout:
            n_q = int(torch.randint(1, cfg.codec.n_q + 1, (), generator=shared))
        device = next(model.parameters()).device
        target = batch.mixed.to(device)
        if cfg.freeze_encoder:
            codec = getattr(model, "module", model)  # under DistributedDataParallel
            codec.encoder.eval()
            codec.quantizer.eval()  # no EMA step: the codebooks stay those of --init
        out = model(target, n_q=n_q, quantize=quantize)
        spectral = self.spectral.to(device)(out.audio, target)
        waveform = (out.audio - target).abs().mean()
        loss = spectral["mel"] + spectral["stft"] + cfg.waveform_weight * waveform + cfg.commitment_weight * out.commitment
        metrics = {"mel": spectral["mel"].item(), "stft": spectral["stft"].item(), "wave_l1": waveform.item()}
        if out.codes is not None:
            metrics["commit"] = out.commitment.item()
            metrics["codes_used_q0"] = float(out.codes[:, 0].unique().numel())
        return loss, metrics

    def on_checkpoint(self, model: nn.Module, folder: Path, step: int) -> None:
        """Write original | resynthesis of one held-out example to <run>/samples/step-N.wav."""
        held = SpeechSource(SpeechSourceConfig(seconds=4.0, held_out=True))
        clean, _, _ = held.example(0)
        model.eval()
        with torch.no_grad():
            wav = torch.from_numpy(clean)[None].to(next(model.parameters()).device)
            quantize = self._quantize(step)
            resynth = model(wav[:, : len(clean) // model.hop * model.hop], quantize=quantize).audio[0].cpu().numpy()
        model.train()
        gap = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
        samples = folder.parent.parent / "samples"
        samples.mkdir(exist_ok=True)
        write_wav(samples / f"step-{step:07d}.wav", np.clip(np.concatenate([clean, gap, resynth]), -1, 1), SAMPLE_RATE)


TINY = CodecStageConfig(
    codec=CodecConfig(n_filters=4, dimension=16, lstm_layers=1, n_q=2, codebook_size=16),
    seconds=0.64,
    autoencoder_steps=2,
    kmeans_batches=2,
    kmeans_iters=2,
)
PRESETS: dict[str, tuple[CodecStageConfig, TrainConfig]] = {
    "default": (
        CodecStageConfig(),
        TrainConfig(steps=30_000, batch_size=8, lr=1e-3, lr_warmup_steps=200, log_every=10, checkpoint_minutes=5),
    ),
    "vocos": (
        CodecStageConfig(codec=CodecConfig(decoder="vocos"), freeze_encoder=True),
        TrainConfig(steps=12_000, batch_size=8, lr=5e-4, lr_warmup_steps=200, log_every=10, checkpoint_minutes=5),
    ),
    "vocos-joint": (
        CodecStageConfig(codec=CodecConfig(decoder="vocos")),
        TrainConfig(steps=6_000, batch_size=8, lr=3e-4, lr_warmup_steps=200, log_every=10, checkpoint_minutes=5),
    ),
    "25hz": (
        # one example in five in each persona (the natural one is drawn first): both can be measured
        CodecStageConfig(codec=CodecConfig(ratios=(8, 5, 4, 4), n_q=6, decoder="vocos"), natural_prob=0.2),
        TrainConfig(steps=30_000, batch_size=8, lr=1e-3, lr_warmup_steps=200, log_every=10, checkpoint_minutes=5),
    ),
    "tiny": (TINY, TrainConfig(steps=4, batch_size=2, lr_warmup_steps=1, log_every=1)),
}
"""Named (stage, optimisation) settings; `tiny` is for tests and smoke runs."""
CONFIG_CLASS = CodecStageConfig


def build_stage(config: CodecStageConfig) -> CodecStage:
    return CodecStage(config)
