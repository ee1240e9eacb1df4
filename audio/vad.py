"""Silero VAD (v5, the ONNX model shipped by the `silero-vad` package), streaming.

The model scores 512-sample windows (32 ms at 16 kHz) and carries a recurrent
state plus the last 64 samples of context between windows. `VADState`
keeps that state, and any remainder shorter than a window, in plain view, so
feeding audio tick by tick gives exactly the scores that one pass over the
whole signal gives (`vad_probabilities`). `process_streams` runs many
streams (sessions) through the model in one batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import onnxruntime as ort

from audio.frames import SAMPLE_RATE

VAD_WINDOW = 512
VAD_CONTEXT = 64
VAD_FRAME_S = VAD_WINDOW / SAMPLE_RATE


@lru_cache(maxsize=1)
def _session() -> ort.InferenceSession:
    import silero_vad

    path = os.path.join(os.path.dirname(silero_vad.__file__), "data", "silero_vad.onnx")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


@dataclass
class VADState:
    """Everything one stream's detector carries from call to call."""

    rnn: np.ndarray = field(default_factory=lambda: np.zeros((2, 1, 128), dtype=np.float32))
    context: np.ndarray = field(default_factory=lambda: np.zeros(VAD_CONTEXT, dtype=np.float32))
    remainder: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))


def process_streams(states: list[VADState], chunks: list[np.ndarray]) -> list[np.ndarray]:
    """Feed each stream its chunk; returns each stream's scores for the windows it completed.

    All streams go through the model together, one batched call per window
    position (a tick completes two or three windows per stream), which is
    what lets one process run the VAD of many sessions every tick.
    """
    audios = [np.concatenate([s.remainder, np.asarray(c, dtype=np.float32)]) for s, c in zip(states, chunks)]
    counts = [len(a) // VAD_WINDOW for a in audios]
    probs = [np.empty(n, dtype=np.float32) for n in counts]
    sr = np.array(SAMPLE_RATE, dtype=np.int64)
    for i in range(max(counts, default=0)):
        rows = [b for b, n in enumerate(counts) if n > i]
        windows = [audios[b][i * VAD_WINDOW : (i + 1) * VAD_WINDOW] for b in rows]
        x = np.stack([np.concatenate([states[b].context, w]) for b, w in zip(rows, windows)])
        rnn = np.concatenate([states[b].rnn for b in rows], axis=1)
        out, rnn = _session().run(None, {"input": x, "state": rnn, "sr": sr})
        for j, (b, w) in enumerate(zip(rows, windows)):
            probs[b][i] = out[j, 0]
            states[b].rnn = rnn[:, j : j + 1]
            states[b].context = w[-VAD_CONTEXT:]
    for s, a, n in zip(states, audios, counts):
        s.remainder = a[n * VAD_WINDOW :]
    return probs


class StreamingVAD:
    """Speech probability per 32 ms window of a 16 kHz stream, fed in chunks of any size."""

    def __init__(self) -> None:
        self.state = VADState()

    def reset(self) -> None:
        self.state = VADState()

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Scores for every whole window completed by this chunk (possibly none)."""
        return process_streams([self.state], [chunk])[0]


def vad_probabilities(audio: np.ndarray) -> np.ndarray:
    """Speech probability of each whole 32 ms window of a 16 kHz signal."""
    return StreamingVAD().process(audio)


@dataclass(frozen=True)
class Segment:
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def speech_segments(
    probs: np.ndarray,
    threshold: float = 0.5,
    min_speech_s: float = 0.064,
    frame_s: float = VAD_FRAME_S,
) -> list[Segment]:
    """Runs of windows scoring at least threshold, as (start, end) seconds.

    Runs shorter than min_speech_s are dropped as clicks; joining runs across
    short silences is the caller's business (IPUs do it at 200 ms).
    """
    active = np.asarray(probs) >= threshold
    segments: list[Segment] = []
    start = None
    for i, a in enumerate(active):
        if a and start is None:
            start = i
        elif not a and start is not None:
            segments.append(Segment(start * frame_s, i * frame_s))
            start = None
    if start is not None:
        segments.append(Segment(start * frame_s, len(active) * frame_s))
    return [s for s in segments if s.duration >= min_speech_s - 1e-9]


class SpeechGate:
    """Hysteresis on top of streaming VAD scores: speech starts after `onset_s`
    of windows above threshold and ends after `hangover_s` below it.

    Used for the protocol's user.speech.* events and the baseline's end-pointing.
    """

    def __init__(self, threshold: float = 0.5, onset_s: float = 0.064, hangover_s: float = 0.2):
        self.threshold = threshold
        self.onset_windows = max(1, round(onset_s / VAD_FRAME_S))
        self.hangover_windows = max(1, round(hangover_s / VAD_FRAME_S))
        self.speaking = False
        self._run = 0
        self.silence_windows = 0
        """Consecutive windows below threshold so far (for end-of-turn timeouts)."""

    def update(self, probs: np.ndarray) -> list[str]:
        """Feed window scores; returns the transitions, each "started" or "stopped"."""
        events = []
        for p in probs:
            above = p >= self.threshold
            self.silence_windows = 0 if above else self.silence_windows + 1
            if self.speaking:
                self._run = 0 if above else self._run + 1
                if self._run >= self.hangover_windows:
                    self.speaking, self._run = False, 0
                    events.append("stopped")
            else:
                self._run = self._run + 1 if above else 0
                if self._run >= self.onset_windows:
                    self.speaking, self._run = True, 0
                    events.append("started")
        return events


REFINE_HOP_S = 0.01


def refine_segments(segments: list[Segment], audio: np.ndarray, reach_s: float = 0.15) -> list[Segment]:
    """Snap VAD segment edges to where the signal's energy actually rises and falls.

    Silero's scores lag the audio (onsets by ~1 window, offsets by 2-3), which
    biases gaps short and overlaps long by tens of ms. Within `reach_s` of each
    edge, the edge moves to the first (last) 10 ms hop louder than the larger
    of 40 dB below the segment's peak and 6 dB above the channel's noise floor,
    so measured edges are accurate to about a hop on clean and noisy speech.
    """
    if not segments:
        return []
    hop = int(REFINE_HOP_S * SAMPLE_RATE)
    n = len(audio) // hop
    frames = np.asarray(audio[: n * hop], dtype=np.float64).reshape(n, hop)
    energy_db = 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-10)
    floor_db = np.percentile(energy_db, 10)
    reach = int(round(reach_s / REFINE_HOP_S))
    out = []
    for seg in segments:
        a, b = int(seg.start / REFINE_HOP_S), min(n, int(np.ceil(seg.end / REFINE_HOP_S)))
        if b <= a:
            out.append(seg)
            continue
        level = max(energy_db[a:b].max() - 40.0, floor_db + 6.0)
        lo, hi = max(0, a - reach), min(n, b + reach)
        loud = np.flatnonzero(energy_db[lo:hi] > level) + lo
        start_candidates = loud[loud < a + reach]
        end_candidates = loud[loud >= b - reach]
        start = start_candidates[0] if len(start_candidates) else a
        end = end_candidates[-1] + 1 if len(end_candidates) else b
        out.append(Segment(start * REFINE_HOP_S, end * REFINE_HOP_S))
    # refinement may make neighbours touch; keep them ordered and disjoint
    merged: list[Segment] = []
    for seg in out:
        if merged and seg.start <= merged[-1].end:
            merged[-1] = Segment(merged[-1].start, max(merged[-1].end, seg.end))
        else:
            merged.append(seg)
    return merged
