"""Residual vector quantisation with EMA codebooks that stay alive on small batches.

Why not the `encodec` package's RVQ: its dead-code expiry writes fresh vectors
into `embed` and, in the same step, overwrites them again from the EMA
averages, so dead codes are never really restarted; and its threshold is an
absolute count calibrated for GPU batches of thousands of frames, while a CPU
batch here holds a few hundred frames at 12.5 Hz. A first naive training run
on this machine collapsed to one code per codebook. This module keeps the
same algorithm (SoundStream/EnCodec: EMA k-means codebooks, commitment loss,
straight-through gradients) and fixes those two points:

- codebooks are initialised by k-means on real encoder outputs (`init_from`),
- a code whose EMA usage falls below `dead_fraction` of the mean usage is
  restarted on a random vector of the current batch, and its EMA statistics
  are reset with it so the restart sticks.

Under torch.distributed the usage statistics are summed over processes and
restarts are broadcast from rank 0, so every process keeps the same codebooks.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class EMACodebook(nn.Module):
    """One codebook of `size` vectors of `dim`, learned by exponential moving averages."""

    def __init__(self, size: int, dim: int, decay: float, dead_fraction: float):
        super().__init__()
        self.size, self.dim, self.decay, self.dead_fraction = size, dim, decay, dead_fraction
        self.register_buffer("embed", torch.randn(size, dim) * 0.01)
        self.register_buffer("embed_sum", self.embed.clone())
        self.register_buffer("usage", torch.ones(size))

    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for each row of x (N, dim)."""
        distance = x.pow(2).sum(1, keepdim=True) - 2 * x @ self.embed.t() + self.embed.pow(2).sum(1)
        return distance.argmin(dim=1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        return F.embedding(codes, self.embed)

    @torch.no_grad()
    def init_from(self, x: torch.Tensor, iters: int, rows_per_step: float) -> None:
        """k-means on x (N, dim); usage is scaled to what one training step sees."""
        centres = x[torch.randint(0, len(x), (self.size,), device=x.device)]
        for _ in range(iters):
            self.embed.copy_(centres)
            assign = self.nearest(x)
            counts = torch.bincount(assign, minlength=self.size).to(x.dtype)
            sums = torch.zeros_like(centres).index_add_(0, assign, x)
            empty = counts == 0
            centres = torch.where(empty[:, None], x[torch.randint(0, len(x), (self.size,), device=x.device)],
                                  sums / counts.clamp(min=1)[:, None])
        self.embed.copy_(centres)
        scale = rows_per_step / len(x)
        counts = torch.bincount(self.nearest(x), minlength=self.size).to(x.dtype) * scale
        self.usage.copy_(counts.clamp(min=self.dead_fraction * rows_per_step / self.size))
        self.embed_sum.copy_(self.embed * self.usage[:, None])

    @torch.no_grad()
    def ema_update(self, x: torch.Tensor, codes: torch.Tensor) -> None:
        """Move codes towards the mean of the rows assigned to them, then restart dead codes."""
        counts = torch.bincount(codes, minlength=self.size).to(x.dtype)
        sums = torch.zeros_like(self.embed).index_add_(0, codes, x)
        rows = torch.tensor(float(len(x)), device=x.device)
        if _distributed():
            for t in (counts, sums, rows):
                dist.all_reduce(t)
        self.usage.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        self.embed.copy_(self.embed_sum / self.usage.clamp(min=1e-8)[:, None])
        self._restart_dead(x, float(rows))

    def _restart_dead(self, x: torch.Tensor, rows: float) -> None:
        mean_usage = rows / self.size
        dead = self.usage < self.dead_fraction * mean_usage
        if not bool(dead.any()):
            return
        fresh = x[torch.randint(0, len(x), (self.size,), device=x.device)]
        self.embed.copy_(torch.where(dead[:, None], fresh, self.embed))
        self.usage.copy_(torch.where(dead, torch.full_like(self.usage, mean_usage), self.usage))
        self.embed_sum.copy_(self.embed * self.usage[:, None])
        if _distributed():
            for t in (self.embed, self.usage, self.embed_sum):
                dist.broadcast(t, 0)


class ResidualVQ(nn.Module):
    """n_q codebooks, each quantising what the previous ones left over."""

    def __init__(self, dim: int, n_q: int, codebook_size: int, decay: float = 0.99, dead_fraction: float = 0.03):
        super().__init__()
        self.n_q = n_q
        self.layers = nn.ModuleList(EMACodebook(codebook_size, dim, decay, dead_fraction) for _ in range(n_q))

    def forward(self, z: torch.Tensor, n_q: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantise z (B, dim, T) with the first n_q codebooks.

        Returns (quantised with straight-through gradient, codes (B, n_q, T),
        commitment loss). In training mode the codebooks take an EMA step.
        """
        n_q = n_q or self.n_q
        b, d, t = z.shape
        residual = z.transpose(1, 2).reshape(b * t, d)
        flat = residual
        quantised = torch.zeros_like(residual)
        codes, commit = [], z.new_zeros(())
        for layer in self.layers[:n_q]:
            idx = layer.nearest(residual.detach())
            if self.training:
                layer.ema_update(residual.detach(), idx)
            q = layer.lookup(idx)
            commit = commit + F.mse_loss(residual, q.detach())
            quantised = quantised + q
            residual = residual - q.detach()
            codes.append(idx)
        commit = commit / n_q
        out = flat + (quantised - flat).detach()
        out = out.reshape(b, t, d).transpose(1, 2)
        return out, torch.stack(codes, 1).reshape(b, t, n_q).transpose(1, 2), commit

    @torch.no_grad()
    def init_from(self, z: torch.Tensor, iters: int, rows_per_step: float) -> None:
        """Initialise every codebook by k-means on the residuals of z (B, dim, T)."""
        residual = z.transpose(1, 2).reshape(-1, z.shape[1])
        for layer in self.layers:
            layer.init_from(residual, iters, rows_per_step)
            residual = residual - layer.lookup(layer.nearest(residual))

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (B, n_q, T) of z (B, dim, T)."""
        residual, codes = z.transpose(1, 2), []
        for layer in self.layers:
            shape = residual.shape[:-1]
            idx = layer.nearest(residual.reshape(-1, residual.shape[-1])).reshape(shape)
            residual = residual - layer.lookup(idx)
            codes.append(idx)
        return torch.stack(codes, 1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Latent (B, dim, T) from codes (B, n_q', T); n_q' <= n_q codebooks are used."""
        total = sum(layer.lookup(codes[:, i]) for i, layer in enumerate(self.layers[: codes.shape[1]]))
        return total.transpose(1, 2)
