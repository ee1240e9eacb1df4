"""A Vocos-style codec decoder: causal ConvNeXt at 100 Hz and an inverse-STFT head.

The SEANet decoder must learn to build every waveform sample with transposed
convolutions at 16 kHz; Vocos (Siuzdak 2023) instead predicts, for each
10 ms frame, the magnitude and phase of a short-time spectrum and lets a fixed
inverse DFT with overlap-add make the waveform. Most of the work is then
matrix products at 100 frames per second, which is faster on a CPU and, for
the same compute, sounds better: what our codec measured (docs/models.md).

Made causal and streaming here:
- the latent frame (12.5 Hz) is projected to `hop // frame_hop` spectral
  frames (no overlap between latent frames, so nothing to remember),
- each ConvNeXt block's depthwise convolution looks only at past frames and
  keeps its last `kernel - 1` inputs as state,
- spectral frame t covers samples [t*frame_hop, t*frame_hop + n_fft): once it
  is added, samples [t*frame_hop, (t+1)*frame_hop) are final, so a tick's
  audio is complete with that tick's frames; the overlapping tail that spills
  into later ticks is the last piece of state.

`forward(z)` is `step(z, zero state)`, so streaming equals offline by
construction (tests/test_vocos_decoder.py checks it all the same). The inverse
DFT is a product with a fixed basis rather than torch.fft, so that the step
exports to ONNX (opset 17 has no inverse real FFT).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from models.streaming_seanet import State, StreamingPart

MAX_LOG_MAGNITUDE = 7.0  # exp(7) ~ 1100: above a full-scale sine's spectral peak at n_fft 640; keeps exp finite


class CausalConvNeXtBlock(nn.Module):
    """Depthwise causal conv -> LayerNorm -> pointwise MLP, with a scaled residual."""

    def __init__(self, dim: int, intermediate: int, kernel: int):
        super().__init__()
        self.history = kernel - 1
        self.dwconv = nn.Conv1d(dim, dim, kernel, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.up = nn.Linear(dim, intermediate)
        self.down = nn.Linear(intermediate, dim)
        self.scale = nn.Parameter(torch.full((dim,), 0.1))

    def forward(self, x: torch.Tensor, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, dim, T), history (B, dim, kernel-1) -> (y, new history)."""
        padded = torch.cat([history, x], dim=-1)
        h = self.dwconv(padded).transpose(1, 2)
        h = self.down(nn.functional.gelu(self.up(self.norm(h))))
        return x + (self.scale * h).transpose(1, 2), padded[..., padded.shape[-1] - self.history :]


def inverse_dft_basis(n_fft: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin) bases (n_fft//2+1, n_fft) so that frame = re @ cos + im @ sin is the windowed inverse real DFT."""
    bins = n_fft // 2 + 1
    k = torch.arange(bins, dtype=torch.float64)[:, None]
    n = torch.arange(n_fft, dtype=torch.float64)[None]
    weight = torch.full((bins, 1), 2.0, dtype=torch.float64)
    weight[0] = weight[-1] = 1.0  # DC and Nyquist appear once in the full spectrum
    angle = 2 * math.pi * k * n / n_fft
    window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)[None]
    cos = weight * torch.cos(angle) / n_fft * window
    sin = -weight * torch.sin(angle) / n_fft * window
    return cos.float(), sin.float()


class VocosDecoder(nn.Module):
    """Latent (B, dimension, T) at hop samples per frame -> audio (B, 1, T * hop)."""

    def __init__(self, dimension: int, hop: int, dim: int = 256, layers: int = 8, intermediate: int = 768,
                 kernel: int = 7, frame_hop: int = 160, n_fft: int = 640):
        super().__init__()
        if hop % frame_hop or n_fft % frame_hop:
            raise ValueError(f"frame_hop {frame_hop} must divide the hop ({hop}) and n_fft ({n_fft})")
        self.dim, self.frame_hop, self.n_fft = dim, frame_hop, n_fft
        self.frames_per_latent = hop // frame_hop
        self.overlap = n_fft // frame_hop - 1  # later frame_hop segments a frame spills into
        self.embed = nn.Linear(dimension, dim * self.frames_per_latent)
        self.blocks = nn.ModuleList(CausalConvNeXtBlock(dim, intermediate, kernel) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_fft + 2)  # log magnitude and phase of n_fft//2+1 bins
        cos, sin = inverse_dft_basis(n_fft)
        self.register_buffer("cos_basis", cos, persistent=False)
        self.register_buffer("sin_basis", sin, persistent=False)

    def state_shapes(self, batch: int) -> list[tuple[int, ...]]:
        blocks = [(batch, self.dim, block.history) for block in self.blocks]
        return [*blocks, (batch, self.overlap * self.frame_hop)]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        state = [z.new_zeros(shape) for shape in self.state_shapes(z.shape[0])]
        return self.step(z, state)[0]

    def step(self, z: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Audio (B, 1, T * hop) of latent frames z (B, dimension, T), carrying state between calls."""
        batch, _, latent_frames = z.shape
        frames = latent_frames * self.frames_per_latent
        x = self.embed(z.transpose(1, 2)).reshape(batch, frames, self.dim).transpose(1, 2)
        new_state = []
        for block, history in zip(self.blocks, state):
            x, history = block(x, history)
            new_state.append(history)
        log_magnitude, phase = self.head(self.norm(x.transpose(1, 2))).chunk(2, dim=-1)
        magnitude = torch.exp(log_magnitude.clamp(max=MAX_LOG_MAGNITUDE))
        segments = (magnitude * torch.cos(phase)) @ self.cos_basis + (magnitude * torch.sin(phase)) @ self.sin_basis
        audio, tail = self._overlap_add(segments.reshape(batch, frames, self.overlap + 1, self.frame_hop), state[-1])
        return audio[:, None], [*new_state, tail]

    def _overlap_add(self, segments: torch.Tensor, tail: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """segments (B, T, overlap+1, frame_hop): piece k of frame t lands in output segment t+k."""
        batch, frames = segments.shape[:2]
        summed = sum(
            nn.functional.pad(segments[:, :, k], (0, 0, k, self.overlap - k)) for k in range(self.overlap + 1)
        )
        carried = nn.functional.pad(tail.reshape(batch, self.overlap, self.frame_hop), (0, 0, 0, frames))
        summed = summed + carried
        return summed[:, :frames].reshape(batch, -1), summed[:, frames:].reshape(batch, -1)


class StreamingVocos(StreamingPart):
    """The decoder in the chunk-by-chunk interface of models/streaming_seanet.py."""

    def __init__(self, decoder: VocosDecoder):
        super().__init__()
        self.decoder = decoder

    def state_shapes(self, batch: int) -> list[tuple[int, ...]]:
        return self.decoder.state_shapes(batch)

    def forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        return self.decoder.step(x, state)
