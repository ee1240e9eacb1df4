"""Rate conversion of a live stream whose chunks have any length.

`StreamingResampler` needs chunks that hold a whole number of the rates'
reduced ratio (3 samples for 48 kHz -> 16 kHz, 441 for 44.1 kHz -> 16 kHz).
Network clients and sound cards deliver whatever they like, so
`RateConverter` carries the few samples that do not fill a step over to the
next chunk. Its state (the resampler's history and the carried samples) is
explicit and lives as long as the stream.
"""

from __future__ import annotations

import numpy as np

from audio.resample import StreamingResampler


class RateConverter:
    def __init__(self, from_rate: int, to_rate: int):
        self.from_rate, self.to_rate = from_rate, to_rate
        self.resampler = StreamingResampler(from_rate, to_rate)
        self.carry = np.zeros(0, dtype=np.float32)
        """Input samples waiting for enough company to fill a resampling step."""

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Convert one chunk; returns what can be produced so far (possibly nothing)."""
        chunk = np.asarray(chunk, dtype=np.float32)
        if self.from_rate == self.to_rate:
            return chunk
        audio = np.concatenate([self.carry, chunk]) if len(self.carry) else chunk
        usable = len(audio) - len(audio) % self.resampler.in_step
        self.carry = audio[usable:]
        return self.resampler.process(audio[:usable])
