"""Resampling at the runtime's edges, with torchaudio.

Offline signals go through `resample`. Live streams go through
`StreamingResampler`, which carries the input history needed by the
windowed-sinc filter from chunk to chunk, so that a stream resampled chunk by
chunk equals the whole signal resampled at once (up to a fixed delay of
`delay_out` output samples, zero-filled at the start), and every chunk of n
input samples yields exactly n * out/in output samples.
"""

from __future__ import annotations

from functools import lru_cache
from math import gcd

import numpy as np
import torch
import torchaudio.transforms as T

_LOWPASS_WIDTH = 6  # torchaudio's default filter width, in zero crossings


@lru_cache(maxsize=16)
def _resampler(from_rate: int, to_rate: int) -> T.Resample:
    """torchaudio's resampler with its sinc kernel built once per rate pair; building it costs
    more than applying it to a short utterance (data generation resamples thousands)."""
    return T.Resample(from_rate, to_rate)


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample a 1-D float signal; a no-op when the rates match."""
    audio = np.asarray(audio, dtype=np.float32)
    if from_rate == to_rate:
        return audio
    with torch.no_grad():
        out = _resampler(from_rate, to_rate)(torch.from_numpy(np.ascontiguousarray(audio)))
    return out.numpy()


class StreamingResampler:
    """Resamples a live stream chunk by chunk with a constant delay.

    Chunks must each hold a multiple of `in_step` samples (the rates' reduced
    ratio), which every tick-sized or 10 ms chunk at the supported rates does.
    """

    def __init__(self, from_rate: int, to_rate: int):
        self.from_rate, self.to_rate = from_rate, to_rate
        g = gcd(from_rate, to_rate)
        self.in_step, self.out_step = from_rate // g, to_rate // g
        # Input samples of look-back/look-ahead the sinc kernel needs, rounded up to whole steps.
        reach = int(np.ceil(_LOWPASS_WIDTH * max(1.0, from_rate / to_rate))) + 1
        self.context_steps = -(-reach // self.in_step)
        self.context = self.context_steps * self.in_step
        self.delay_out = self.context_steps * self.out_step
        self.history = np.zeros(2 * self.context, dtype=np.float32)

    def process(self, chunk: np.ndarray) -> np.ndarray:
        chunk = np.asarray(chunk, dtype=np.float32)
        if self.from_rate == self.to_rate:
            return chunk
        if len(chunk) % self.in_step:
            raise ValueError(f"chunk of {len(chunk)} samples is not a multiple of {self.in_step}")
        if len(chunk) == 0:
            return chunk
        # history holds [past context | pending context]; the pending part is now resampled
        # with its future (the new chunk) known, so the output is exact.
        window = np.concatenate([self.history, chunk])
        out = resample(window, self.from_rate, self.to_rate)
        first = self.context // self.in_step * self.out_step
        produced = out[first : first + len(chunk) // self.in_step * self.out_step]
        self.history = window[-2 * self.context :]
        return produced
