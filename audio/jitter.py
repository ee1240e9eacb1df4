"""A playback jitter buffer: audio that arrives in bursts, played out at a steady rate.

Agent frames arrive one per tick, but not exactly on time (thread scheduling,
the network). The speaker pulls small blocks at its own steady pace. The
buffer absorbs the difference: playback starts once `prime` samples wait;
when it runs dry it plays silence and waits to be primed again (one clean gap
rather than a stutter); and if more than `limit` samples pile up (the sound
card's clock runs slower than the agent's), the oldest are dropped so the lag
cannot grow without bound. `push` and `pull` may run on different threads.
"""

from __future__ import annotations

import threading

import numpy as np


class PlaybackBuffer:
    def __init__(self, prime: int, limit: int):
        if limit < prime:
            raise ValueError("the limit must be at least the priming level")
        self.prime = prime
        self.limit = limit
        self.playing = False
        self.ran_dry = 0
        self.dropped = 0
        self.played = 0
        self._data = np.zeros(0, dtype=np.float32)
        self._lock = threading.Lock()

    def push(self, audio: np.ndarray) -> None:
        with self._lock:
            self._data = np.concatenate([self._data, np.asarray(audio, dtype=np.float32)])
            excess = len(self._data) - self.limit
            if excess > 0:
                self._data = self._data[excess:]
                self.dropped += excess

    def pull(self, n: int) -> np.ndarray:
        """The next n samples for the speaker (silence where there is nothing to play)."""
        out = np.zeros(n, dtype=np.float32)
        with self._lock:
            if not self.playing and len(self._data) >= self.prime:
                self.playing = True
            if not self.playing:
                return out
            take = min(n, len(self._data))
            out[:take] = self._data[:take]
            self._data = self._data[take:]
            self.played += take
            if take < n:
                self.playing = False
                self.ran_dry += 1
        return out

    def buffered(self) -> int:
        with self._lock:
            return len(self._data)
