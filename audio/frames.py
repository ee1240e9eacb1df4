"""Tick-sized audio frames.

The runtime's internal audio is 16 kHz mono float32 in [-1, 1], cut into
fixed ticks (80 ms = 1280 samples by default). Everything that moves audio
between the outside world and an agent goes through these helpers, so that
"one tick of audio" means the same thing everywhere.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16_000
TICK_MS = 80
TICK_SAMPLES = SAMPLE_RATE * TICK_MS // 1000


def samples_per_tick(tick_ms: int = TICK_MS, sample_rate: int = SAMPLE_RATE) -> int:
    """Samples in one tick; the tick must hold a whole number of samples."""
    n, rem = divmod(sample_rate * tick_ms, 1000)
    if rem:
        raise ValueError(f"a {tick_ms} ms tick holds no whole number of samples at {sample_rate} Hz")
    return n


def num_ticks(num_samples: int, tick_samples: int = TICK_SAMPLES) -> int:
    """Ticks needed to cover num_samples (the last one may be partial)."""
    return -(-num_samples // tick_samples)


def split_ticks(audio: np.ndarray, tick_samples: int = TICK_SAMPLES) -> np.ndarray:
    """Cut a 1-D signal into (n_ticks, tick_samples), zero-padding the last tick."""
    audio = np.asarray(audio, dtype=np.float32)
    n = num_ticks(len(audio), tick_samples)
    out = np.zeros(n * tick_samples, dtype=np.float32)
    out[: len(audio)] = audio
    return out.reshape(n, tick_samples)


class TickSlicer:
    """Re-slices a stream of arbitrary-length chunks into whole ticks.

    Streaming state is explicit: whatever has arrived but does not yet fill a
    tick waits in `pending` until more arrives.
    """

    def __init__(self, tick_samples: int = TICK_SAMPLES):
        self.tick_samples = tick_samples
        self.pending = np.zeros(0, dtype=np.float32)

    def push(self, chunk: np.ndarray) -> None:
        self.pending = np.concatenate([self.pending, np.asarray(chunk, dtype=np.float32)])

    def buffered(self) -> int:
        return len(self.pending)

    def pop_tick(self) -> np.ndarray | None:
        """One whole tick if buffered, else None (the caller decides what a missing tick means)."""
        if len(self.pending) < self.tick_samples:
            return None
        tick, self.pending = self.pending[: self.tick_samples], self.pending[self.tick_samples :]
        return tick

    def drop_excess(self, max_samples: int) -> int:
        """Drop whatever is buffered beyond max_samples (newest first); returns how many were dropped."""
        excess = len(self.pending) - max_samples
        if excess <= 0:
            return 0
        self.pending = self.pending[:max_samples]
        return excess


def pcm16_to_float(data: bytes) -> np.ndarray:
    """Signed 16-bit little-endian PCM bytes to float32 in [-1, 1)."""
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm16(audio: np.ndarray) -> bytes:
    """float32 in [-1, 1] to signed 16-bit little-endian PCM bytes (clipped)."""
    scaled = np.clip(np.round(np.asarray(audio, dtype=np.float32) * 32767.0), -32768, 32767)
    return scaled.astype("<i2").tobytes()


def rms_dbfs(audio: np.ndarray) -> float:
    """Level of a slice in dB relative to full scale (-100 for silence)."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    return 20.0 * np.log10(rms) if rms > 1e-5 else -100.0
