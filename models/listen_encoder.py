"""The streaming listen encoder: how the agent hears the user while it speaks.

Causal all the way, so that a tick's features depend only on audio heard so
far, and streaming with explicit state, so that the runtime feeds it one
80 ms tick at a time:

    log-mel (80 bands, 25 ms window, 10 ms hop; the STFT is a fixed strided
    convolution, so it exports to ONNX and streams by keeping 15 ms of audio)
      -> stack 4 mel frames = one 40 ms frame (2 frames per tick, 25 Hz)
      -> linear to d_model -> causal Transformer (pre-norm, ALiBi position
         biases over a sliding window of past frames, KV cache per session)
      -> features (B, frames_per_tick, d_model) per tick.

Why 25 Hz and not 12.5 Hz: the linear CTC probe that measures the features
must emit up to ~20 characters per second of fast speech, and CTC needs at
least one frame per character. Why ALiBi: position enters as the distance
between query and key only, so a session can run for hours with a bounded
cache and no growing position embedding.

Offline (`encode`) and streaming (`step`) use the same window, so they agree.
The `predictor` heads (and, for the "cpc" objective, `target_embedding`) belong
to the self-supervised pretraining (see training/listen_stage.py) and are
unused at run time.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from audio.frames import SAMPLE_RATE, TICK_SAMPLES
from models.checkpoint import load_model, save_model

MODEL_TYPE = "duplex-listen-encoder"
EMPTY_POSITION = -1e9  # key position of a cache slot that holds nothing yet
LOG_MEL_OFFSET, LOG_MEL_SCALE = 7.0, 5.0
"""Fixed standardisation of natural-log mel energies: measured on the synthetic speech (mean -6.5..-8.2,
std 5.5), so inputs and the pretraining targets are near zero mean, unit scale, with no running statistics."""


class ListenInputError(ValueError):
    """Audio the listen encoder cannot take; one line for the user."""


@dataclass(frozen=True)
class ListenConfig:
    sample_rate: int = SAMPLE_RATE
    tick_samples: int = TICK_SAMPLES
    n_mels: int = 80
    win_length: int = 400
    mel_hop: int = 160
    frames_per_tick: int = 2
    d_model: int = 256
    layers: int = 4
    heads: int = 4
    ff_mult: int = 2
    window: int = 125  # frames of attention context (5 s at 25 Hz)
    predict_shifts: tuple[int, ...] = (1, 2, 3)  # frames ahead that pretraining predicts
    objective: str = "apc"  # pretraining: "apc" (L1 on future log-mel) or "cpc" (InfoNCE); training/listen_stage.py
    cpc_dim: int = 128  # size of the embedded targets that "cpc" scores predictions against

    @property
    def mels_per_frame(self) -> int:
        return self.tick_samples // self.mel_hop // self.frames_per_tick

    @property
    def frame_dim(self) -> int:
        """Size of one stacked log-mel frame (the front end's output, and the SSL target)."""
        return self.n_mels * self.mels_per_frame

    @property
    def head_dim(self) -> int:
        """Size of one predicted future frame: a log-mel frame (apc) or an embedded target frame (cpc)."""
        return self.frame_dim if self.objective == "apc" else self.cpc_dim

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.tick_samples * self.frames_per_tick


class LogMel(nn.Module):
    """Causal log-mel frames stacked to the encoder's frame rate: (B, samples) -> (B, frames, frame_dim).

    The input must be preceded by win_length - mel_hop samples of history
    (zeros at the start of a stream), so that n samples give n / mel_hop mel frames.
    """

    def __init__(self, config: ListenConfig):
        super().__init__()
        self.config = config
        n = config.win_length
        bins = n // 2 + 1
        t = torch.arange(n, dtype=torch.float64)
        k = torch.arange(bins, dtype=torch.float64)[:, None]
        window = torch.hann_window(n, periodic=True, dtype=torch.float64)
        basis = torch.cat([torch.cos(2 * math.pi * k * t / n), -torch.sin(2 * math.pi * k * t / n)]) * window
        self.register_buffer("dft", basis[:, None, :].float(), persistent=False)
        fbank = torchaudio.functional.melscale_fbanks(bins, 0.0, config.sample_rate / 2, config.n_mels, config.sample_rate)
        self.register_buffer("fbank", fbank, persistent=False)

    def forward(self, audio_with_history: torch.Tensor) -> torch.Tensor:
        spec = F.conv1d(audio_with_history[:, None], self.dft, stride=self.config.mel_hop)  # (B, 2*bins, T)
        real, imag = spec.chunk(2, dim=1)
        power = (real.square() + imag.square()).transpose(1, 2) @ self.fbank  # (B, T, n_mels)
        mel = (torch.log(power + 1e-6) + LOG_MEL_OFFSET) / LOG_MEL_SCALE
        b, t, _ = mel.shape
        return mel.reshape(b, t // self.config.mels_per_frame, self.config.frame_dim)


def alibi_slopes(heads: int) -> torch.Tensor:
    """Per-head slopes of the distance penalty (Press et al. 2022): a geometric series from 2^-1."""
    return torch.tensor([2.0 ** (-8.0 * (h + 1) / heads) for h in range(heads)])


def attention_bias(query_pos: torch.Tensor, key_pos: torch.Tensor, slopes: torch.Tensor, window: int) -> torch.Tensor:
    """(B, heads, Tq, Tk) additive bias: -slope * distance inside the causal window, -inf outside."""
    distance = query_pos[:, :, None] - key_pos[:, None, :]
    allowed = (distance >= 0) & (distance < window)
    bias = -slopes[None, :, None, None] * distance[:, None]
    return bias.masked_fill(~allowed[:, None], float("-inf"))


class Block(nn.Module):
    """Pre-norm Transformer block; attention over given keys/values."""

    def __init__(self, config: ListenConfig):
        super().__init__()
        d = config.d_model
        self.heads = config.heads
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, config.ff_mult * d), nn.GELU(), nn.Linear(config.ff_mult * d, d))

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(q, k, v), each (B, heads, T, head_dim)."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        return q, k, v

    def finish(self, x: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        x = x + self.out(attn.transpose(1, 2).reshape(x.shape))
        return x + self.ff(self.norm2(x))


@dataclass
class ListenState:
    """Per-session streaming memory, batch first.

    audio: the last win_length - mel_hop samples (the STFT's overlap);
    keys/values: (B, layers, heads, cache, head_dim), a ring buffer of the
        last frames (frame p in slot p % cache; attention does not care about
        the order, the ALiBi bias reads key_pos);
    key_pos: (B, cache) frame index of each cached key (EMPTY_POSITION if none);
    next_pos: (B,) index of the next frame.

    `step` writes keys, values and key_pos in place (copying the whole cache
    every tick cost more than the attention) and returns fresh audio and
    next_pos. The writes depend only on next_pos and the tick's audio, so a
    step retried from the same state writes the same values again.
    """

    audio: torch.Tensor
    keys: torch.Tensor
    values: torch.Tensor
    key_pos: torch.Tensor
    next_pos: torch.Tensor

    def tensors(self) -> list[torch.Tensor]:
        return [self.audio, self.keys, self.values, self.key_pos, self.next_pos]

    def reset(self, rows: torch.Tensor | list[int] | None = None) -> None:
        """Forget everything for the given sessions (all if None)."""
        index = slice(None) if rows is None else rows
        for t in (self.audio, self.keys, self.values, self.next_pos):
            t[index] = 0
        self.key_pos[index] = EMPTY_POSITION


class ListenEncoder(nn.Module):
    def __init__(self, config: ListenConfig = ListenConfig()):
        super().__init__()
        if config.tick_samples % (config.mel_hop * config.frames_per_tick):
            raise ValueError("a tick must hold a whole number of stacked mel frames")
        self.config = config
        self.frontend = LogMel(config)
        self.input = nn.Sequential(nn.Linear(config.frame_dim, config.d_model), nn.LayerNorm(config.d_model))
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.d_model)
        if config.objective not in ("apc", "cpc"):
            raise ValueError(f"unknown listen pretraining objective {config.objective!r} (apc or cpc)")
        self.predictor = nn.Linear(config.d_model, config.head_dim * len(config.predict_shifts))
        if config.objective == "cpc":  # frame by frame, no context: it cannot see the future it is scored on
            d = config.d_model
            self.target_embedding = nn.Sequential(nn.Linear(config.frame_dim, d), nn.GELU(), nn.Linear(d, config.cpc_dim))
        self.register_buffer("slopes", alibi_slopes(config.heads), persistent=False)

    @property
    def history(self) -> int:
        return self.config.win_length - self.config.mel_hop

    @property
    def cache_size(self) -> int:
        return self.config.window + self.config.frames_per_tick

    # --- offline --------------------------------------------------------------------------------

    def log_mel(self, wav: torch.Tensor) -> torch.Tensor:
        """Stacked log-mel frames (B, frames, frame_dim) of wav (B, samples), samples a multiple of the tick."""
        self._check_wav(wav)
        return self.frontend(F.pad(wav, (self.history, 0)))

    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """Features (B, ticks * frames_per_tick, d_model) of wav (B, samples), samples a multiple of the tick."""
        return self.transform(self.log_mel(wav))

    def transform(self, mel_frames: torch.Tensor) -> torch.Tensor:
        """The Transformer on stacked log-mel frames (B, T, frame_dim) -> (B, T, d_model)."""
        x = self.input(mel_frames)
        pos = torch.arange(x.shape[1], device=x.device, dtype=torch.float32).expand(x.shape[0], -1)
        bias = attention_bias(pos, pos, self.slopes, self.config.window)
        for block in self.blocks:
            q, k, v = block.project(x)
            x = block.finish(x, q, k, v, bias)
        return self.norm(x)

    def forward(self, wav: torch.Tensor, target_wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pretraining forward: (predicted future frames (B, T, len(predict_shifts), head_dim), the target
        frames (B, T, head_dim) they are scored against): target_wav's log-mel frames, embedded for "cpc"."""
        features = self.encode(wav)
        b, t, _ = features.shape
        prediction = self.predictor(features).reshape(b, t, len(self.config.predict_shifts), self.config.head_dim)
        with torch.no_grad():
            target = self.log_mel(target_wav)
        if self.config.objective == "cpc":
            target = self.target_embedding(target)
        return prediction, target

    # --- streaming ------------------------------------------------------------------------------

    def new_state(self, batch: int) -> ListenState:
        cfg = self.config
        device = self.slopes.device
        head_dim = cfg.d_model // cfg.heads
        cache = torch.zeros(batch, cfg.layers, cfg.heads, self.cache_size, head_dim, device=device)
        return ListenState(
            audio=torch.zeros(batch, self.history, device=device),
            keys=cache,
            values=cache.clone(),
            key_pos=torch.full((batch, self.cache_size), EMPTY_POSITION, device=device),
            next_pos=torch.zeros(batch, device=device),
        )

    def step(self, audio: torch.Tensor, state: ListenState) -> tuple[torch.Tensor, ListenState]:
        """Features (B, frames_per_tick, d_model) of one tick of audio (B, tick_samples)."""
        if audio.ndim != 2 or audio.shape[1] != self.config.tick_samples:
            raise ListenInputError(f"step takes (batch, {self.config.tick_samples}) audio, got {tuple(audio.shape)}")
        cfg = self.config
        k_new = cfg.frames_per_tick
        with_history = torch.cat([state.audio, audio], dim=1)
        x = self.input(self.frontend(with_history))
        query_pos = state.next_pos[:, None] + torch.arange(k_new, device=x.device, dtype=x.dtype)
        slots = query_pos.long() % self.cache_size  # ring buffer: frame p lives in slot p % cache_size
        # each new key's (session, head, slot), as flat 1-d indices: the in-place form that ONNX exports
        batch, head_dim = audio.shape[0], cfg.d_model // cfg.heads
        frame_session = torch.arange(batch, device=x.device)[:, None].expand(batch, k_new).reshape(-1)
        state.key_pos[frame_session, slots.reshape(-1)] = query_pos.reshape(-1)
        bias = attention_bias(query_pos, state.key_pos, self.slopes, cfg.window)
        shape = (batch, cfg.heads, k_new)
        session = torch.arange(batch, device=x.device)[:, None, None].expand(shape).reshape(-1)
        head = torch.arange(cfg.heads, device=x.device)[None, :, None].expand(shape).reshape(-1)
        slot = slots[:, None, :].expand(shape).reshape(-1)
        for i, block in enumerate(self.blocks):
            q, k, v = block.project(x)
            layer = torch.full_like(slot, i)
            state.keys[session, layer, head, slot] = k.reshape(-1, head_dim)
            state.values[session, layer, head, slot] = v.reshape(-1, head_dim)
            x = block.finish(x, q, state.keys[:, i], state.values[:, i], bias)
        new_state = ListenState(
            audio=with_history[:, with_history.shape[1] - self.history :],
            keys=state.keys,
            values=state.values,
            key_pos=state.key_pos,
            next_pos=state.next_pos + k_new,
        )
        return self.norm(x), new_state

    def _check_wav(self, wav: torch.Tensor) -> None:
        if wav.ndim != 2 or wav.shape[1] % self.config.tick_samples:
            raise ListenInputError(
                f"the listen encoder takes (batch, n * {self.config.tick_samples}) audio, got {tuple(wav.shape)}"
            )


def save_listen_encoder(model: ListenEncoder, folder: str | os.PathLike) -> None:
    save_model(model, folder, MODEL_TYPE)


def load_listen_encoder(folder: str | os.PathLike) -> ListenEncoder:
    """A listen encoder from a checkpoint folder, in eval mode."""
    return load_model(folder, ListenEncoder, ListenConfig, MODEL_TYPE)
