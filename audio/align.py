"""Two renderings of the same words, aligned: dynamic time warping, and one warped onto the other's timeline.

Used to make a sentence in one voice a target on another voice's timeline
(training/speech_source.py, `twin_prob`). Why DTW rather than the word
timings of `speak_words`: those come from libespeak-ng, whose output drifts
a little with what the process synthesised before, and training examples
must be pure functions of their index; the `espeak-ng` program is
deterministic, and DTW needs nothing but the two waveforms. Both renderings
say the same phonemes, so after removing each one's average spectrum (its
timbre, to first order) their log-mel frames match phoneme by phoneme.

The step pattern is (1,1), (1,2), (2,1): local slopes between 1/2 and 2
(two voices rarely differ more in tempo), and each row of the cost matrix
depends only on the two rows before it, so a row is one vectorised numpy
operation.
"""

from __future__ import annotations

import numpy as np
import torch
import torchaudio

HOP = 160  # 10 ms frames at 16 kHz
_MEL = torchaudio.transforms.MelSpectrogram(16_000, n_fft=400, hop_length=HOP, n_mels=40)


def _features(audio: np.ndarray) -> np.ndarray:
    """Log-mel frames (T, 40) with the utterance's mean removed and each frame scaled to unit length."""
    with torch.no_grad():
        mel = _MEL(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)))
    frames = torch.log(mel + 1e-5).T.numpy()
    frames = frames - frames.mean(axis=0)
    return frames / (np.linalg.norm(frames, axis=1, keepdims=True) + 1e-8)


def dtw_path(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Monotone alignment of feature sequences a (n, d) and b (m, d): (k, 2) frame index pairs from (0, 0)
    to (n-1, m-1), minimising the summed cosine distance under slopes 1/2..2."""
    n, m = len(a), len(b)
    cost = 1.0 - a @ b.T
    total = np.full((n, m), np.inf)
    step = np.zeros((n, m), dtype=np.int8)  # 0: from (i-1, j-1), 1: from (i-1, j-2), 2: from (i-2, j-1)
    total[0, 0] = cost[0, 0]
    for i in range(1, n):
        options = np.full((3, m), np.inf)
        options[0, 1:] = total[i - 1, :-1]
        options[1, 2:] = total[i - 1, :-2]
        if i >= 2:
            options[2, 1:] = total[i - 2, :-1]
        step[i] = options.argmin(axis=0)
        total[i] = cost[i] + options.min(axis=0)
    if not np.isfinite(total[-1, -1]):
        raise ValueError(f"cannot align {n} frames with {m}: their lengths differ by more than a factor of 2")
    path, i, j = [(n - 1, m - 1)], n - 1, m - 1
    moves = ((1, 1), (1, 2), (2, 1))
    while (i, j) != (0, 0):
        di, dj = moves[step[i, j]]
        for k in range(1, max(di, dj) + 1):  # the frames a (1,2) or (2,1) step passes over
            path.append((i - min(k, di), j - min(k, dj)))
        i, j = i - di, j - dj
    return np.array(path[::-1])


def warp_onto(speech: np.ndarray, other: np.ndarray) -> np.ndarray:
    """`other` (the same words, another voice) resampled in time so that each sound falls where it falls in
    `speech`; the result has speech's length. Both are 16 kHz."""
    path = dtw_path(_features(speech), _features(other))
    # every frame of ours is on the path (steps list the frames they pass over): its mean partner frame
    theirs = np.bincount(path[:, 0], weights=path[:, 1]) / np.bincount(path[:, 0])
    when = np.interp(np.arange(len(speech)) / HOP, np.arange(len(theirs)), theirs)  # in frames of `other`
    return np.interp(when * HOP, np.arange(len(other)), other).astype(np.float32)
