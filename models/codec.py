"""The streaming neural audio codec: what the agent speaks, as discrete tokens.

An EnCodec-style causal autoencoder at 16 kHz (the `encodec` package's SEANet
encoder, causal, zero-padded) with residual vector quantisation
(models/rvq.py), decoded by the SEANet decoder or by a Vocos-style
inverse-STFT decoder (models/vocos_decoder.py). Its default hop is 1280
samples, so one codec frame is one 80 ms tick: 8 codebooks x 1024 entries
at 12.5 Hz = 8 tokens per tick, 1.0 kbps.

Offline:   codes = codec.encode(wav)            (B, samples) -> (B, n_q, frames)
           wav = codec.decode(codes)            (B, n_q, frames) -> (B, frames*hop)
Ticks:     tokens = codec.encode_ticks(wav)     (B, samples) -> (B, tokens_per_tick, ticks)
           (codec.ticks / codec.frames convert between the two layouts)
Streaming: state = codec.new_decode_state(B)
           audio, state = codec.decode_step(tokens_t, state)   (B, tokens_per_tick) -> (B, tick samples)
           (and new_encode_state / encode_step the other way).
A stream fed tick by tick equals the offline result on the same audio.

The runtime and the speech LM work in 80 ms ticks. A codec whose hop is a
divisor of the tick (640 samples: 25 Hz, two frames per tick) speaks
`frames_per_tick * n_q` tokens per tick, frame by frame: [frame 0's
codebooks, frame 1's codebooks, ...]; with the default hop both views are
the same.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from encodec.modules import SEANetDecoder, SEANetEncoder
from torch import nn

from audio.frames import SAMPLE_RATE, TICK_SAMPLES
from models.checkpoint import load_model, save_model
from models.rvq import ResidualVQ
from models.streaming_seanet import State, StreamingPart, streaming, zero_state
from models.vocos_decoder import StreamingVocos, VocosDecoder

MODEL_TYPE = "duplex-codec"


class CodecInputError(ValueError):
    """Audio the codec cannot take (wrong rate, wrong shape); one line for the user."""


@dataclass(frozen=True)
class CodecConfig:
    """Hyper-parameters of a codec; stored as its config.json."""

    sample_rate: int = SAMPLE_RATE
    ratios: tuple[int, ...] = (8, 8, 5, 4)  # decoder order (upsampling); hop = product
    n_filters: int = 16
    dimension: int = 128
    n_residual_layers: int = 1
    lstm_layers: int = 2
    n_q: int = 8
    codebook_size: int = 1024
    codebook_decay: float = 0.99
    dead_code_fraction: float = 0.03
    decoder: str = "seanet"  # or "vocos": models/vocos_decoder.py
    vocos_dim: int = 256
    vocos_layers: int = 8
    vocos_frame_hop: int = 160  # samples per spectral frame (100 Hz)
    vocos_n_fft: int = 640

    @property
    def hop(self) -> int:
        return int(np.prod(self.ratios))

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    @property
    def bitrate(self) -> float:
        """Bits per second of the token stream."""
        return self.n_q * np.log2(self.codebook_size) * self.frame_rate


@dataclass
class CodecStreamState:
    """What one direction of the codec remembers between ticks, for a batch of sessions.

    `tensors` are batch-first; `reset(rows)` clears chosen sessions, so that a
    batch slot can be handed to a new session without touching the others.
    """

    tensors: State

    def reset(self, rows: torch.Tensor | list[int] | None = None) -> None:
        for t in self.tensors:
            if rows is None:
                t.zero_()
            else:
                t[rows] = 0


@dataclass
class CodecOutput:
    """One training forward: reconstruction, codes and commitment loss."""

    audio: torch.Tensor
    codes: torch.Tensor | None
    commitment: torch.Tensor


class Codec(nn.Module):
    def __init__(self, config: CodecConfig = CodecConfig()):
        super().__init__()
        if config.sample_rate != SAMPLE_RATE or TICK_SAMPLES % config.hop:
            raise ValueError(f"a codec frame ({config.hop} samples at {config.sample_rate} Hz) must divide the "
                             f"{TICK_SAMPLES}-sample tick at {SAMPLE_RATE} Hz")
        self.config = config
        seanet = dict(
            channels=1,
            dimension=config.dimension,
            n_filters=config.n_filters,
            n_residual_layers=config.n_residual_layers,
            ratios=list(config.ratios),
            causal=True,
            pad_mode="constant",
            true_skip=True,
            lstm=config.lstm_layers,
        )
        with warnings.catch_warnings():  # encodec uses the older weight_norm API; it works the same
            warnings.simplefilter("ignore", FutureWarning)
            self.encoder = SEANetEncoder(**seanet)
            if config.decoder == "vocos":
                self.decoder = VocosDecoder(config.dimension, config.hop, config.vocos_dim, config.vocos_layers,
                                            3 * config.vocos_dim, frame_hop=config.vocos_frame_hop,
                                            n_fft=config.vocos_n_fft)
            elif config.decoder == "seanet":
                self.decoder = SEANetDecoder(**seanet)
            else:
                raise ValueError(f"unknown codec decoder {config.decoder!r} (seanet or vocos)")
        self.quantizer = ResidualVQ(
            config.dimension, config.n_q, config.codebook_size, config.codebook_decay, config.dead_code_fraction
        )

    @property
    def hop(self) -> int:
        return self.config.hop

    @property
    def frames_per_tick(self) -> int:
        return TICK_SAMPLES // self.config.hop

    @property
    def tokens_per_tick(self) -> int:
        return self.config.n_q * self.frames_per_tick

    def ticks(self, codes: torch.Tensor) -> torch.Tensor:
        """Frame codes (B, q, frames) as tick tokens (B, frames_per_tick * q, frames // frames_per_tick)."""
        b, q, f = codes.shape
        k = self.frames_per_tick
        return codes.reshape(b, q, f // k, k).permute(0, 3, 1, 2).reshape(b, k * q, f // k)

    def frames(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tick tokens (B, frames_per_tick * q, ticks) as frame codes (B, q, ticks * frames_per_tick)."""
        b, n, t = tokens.shape
        k = self.frames_per_tick
        return tokens.reshape(b, k, n // k, t).permute(0, 2, 3, 1).reshape(b, n // k, t * k)

    # --- training -----------------------------------------------------------------------------

    def forward(self, wav: torch.Tensor, n_q: int | None = None, quantize: bool = True) -> CodecOutput:
        """Reconstruct wav (B, samples), samples a multiple of the hop.

        quantize=False bypasses the quantiser (warm-up of the autoencoder);
        n_q < config.n_q uses only the first codebooks (quantiser dropout).
        """
        z = self.encoder(self._check_wav(wav)[:, None])
        if quantize:
            z, codes, commitment = self.quantizer(z, n_q)
        else:
            codes, commitment = None, z.new_zeros(())
        return CodecOutput(self.decoder(z)[:, 0], codes, commitment)

    # --- offline --------------------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """Codes (B, n_q, frames) of wav (B, samples); the end is zero-padded to a whole frame."""
        wav = self._check_wav(wav, pad=True)
        return self.quantizer.encode(self.encoder(wav[:, None]))

    @torch.no_grad()
    def encode_ticks(self, wav: torch.Tensor) -> torch.Tensor:
        """Tokens (B, tokens_per_tick, ticks) of wav (B, samples); the end is zero-padded to a whole tick."""
        extra = (-wav.shape[-1]) % TICK_SAMPLES
        return self.ticks(self.encode(torch.nn.functional.pad(wav, (0, extra)) if extra else wav))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Audio (B, frames * hop) from codes (B, n_q, frames)."""
        self._check_codes(codes)
        return self.decoder(self.quantizer.decode(codes))[:, 0]

    # --- streaming ------------------------------------------------------------------------------

    @cached_property
    def streaming_encoder(self) -> StreamingPart:
        return streaming(self.encoder.model)

    @cached_property
    def streaming_decoder(self) -> StreamingPart:
        if isinstance(self.decoder, VocosDecoder):
            return StreamingVocos(self.decoder)
        return streaming(self.decoder.model)

    def new_encode_state(self, batch: int) -> CodecStreamState:
        return CodecStreamState(zero_state(self.streaming_encoder, batch, self._device))

    def new_decode_state(self, batch: int) -> CodecStreamState:
        return CodecStreamState(zero_state(self.streaming_decoder, batch, self._device))

    @torch.no_grad()
    def encode_step(self, audio: torch.Tensor, state: CodecStreamState) -> tuple[torch.Tensor, CodecStreamState]:
        """Tokens (B, tokens_per_tick) of one tick of audio (B, TICK_SAMPLES)."""
        if audio.ndim != 2 or audio.shape[1] != TICK_SAMPLES:
            raise CodecInputError(f"encode_step takes (batch, {TICK_SAMPLES}) audio, got {tuple(audio.shape)}")
        z, tensors = self.streaming_encoder(audio[:, None], state.tensors)
        return self.ticks(self.quantizer.encode(z))[:, :, 0], CodecStreamState(tensors)

    @torch.no_grad()
    def decode_step(self, tokens: torch.Tensor, state: CodecStreamState) -> tuple[torch.Tensor, CodecStreamState]:
        """One tick of audio (B, TICK_SAMPLES) from its tokens (B, tokens_per_tick)."""
        if tokens.ndim != 2 or tokens.shape[1] % self.frames_per_tick:
            raise CodecInputError(f"decode_step takes (batch, {self.tokens_per_tick}) tokens, got {tuple(tokens.shape)}")
        codes = self.frames(tokens[:, :, None])
        self._check_codes(codes)
        audio, tensors = self.streaming_decoder(self.quantizer.decode(codes), state.tensors)
        return audio[:, 0], CodecStreamState(tensors)

    # --- checks ---------------------------------------------------------------------------------

    @property
    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def _check_wav(self, wav: torch.Tensor, pad: bool = False) -> torch.Tensor:
        if wav.ndim != 2:
            raise CodecInputError(f"the codec takes (batch, samples) audio, got shape {tuple(wav.shape)}")
        extra = (-wav.shape[1]) % self.hop
        if extra and not pad:
            raise CodecInputError(f"{wav.shape[1]} samples is not a whole number of {self.hop}-sample frames")
        return torch.nn.functional.pad(wav, (0, extra)) if extra else wav

    def _check_codes(self, codes: torch.Tensor) -> None:
        if codes.ndim != 3 or codes.shape[1] > self.config.n_q:
            raise CodecInputError(f"codes must be (batch, <= {self.config.n_q}, frames), got {tuple(codes.shape)}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.config.codebook_size):
            raise CodecInputError(f"codes must lie in [0, {self.config.codebook_size})")


def check_sample_rate(sample_rate: int, config: CodecConfig) -> None:
    """Refuse audio at another rate (resample at the edges: audio/resample.py)."""
    if sample_rate != config.sample_rate:
        raise CodecInputError(
            f"the codec takes {config.sample_rate} Hz audio, got {sample_rate} Hz (resample it first)"
        )


def save_codec(codec: Codec, folder: str | os.PathLike) -> None:
    save_model(codec, folder, MODEL_TYPE)


def load_codec(folder: str | os.PathLike) -> Codec:
    """A codec from a checkpoint folder, in eval mode."""
    return load_model(folder, Codec, CodecConfig, MODEL_TYPE)
