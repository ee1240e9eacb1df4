"""Smart Turn v3.2: an audio end-of-turn classifier, as the best cascaded voice stacks use.

Given the user's speech so far (its last 8 s), it says how likely the user
has finished their turn, from prosody and wording together, where a fixed
silence timeout can only wait. The model (smart-turn-v3.2-cpu.onnx, BSD
2-Clause, by Daily) ships inside the `pipecat-ai` package and runs here with
onnxruntime; its input is Whisper's 80-bin log-mel spectrogram of 8 s of
16 kHz audio (zero-padded on the left), computed by transformers'
`WhisperFeatureExtractor` with the waveform normalised as in pipecat.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import onnxruntime as ort

from audio.frames import SAMPLE_RATE

WINDOW_S = 8


class SmartTurnError(Exception):
    """The model is not installed; one line for the user."""


@lru_cache(maxsize=1)
def _session() -> ort.InferenceSession:
    from importlib import resources

    try:
        path = resources.files("pipecat.audio.turn.smart_turn.data").joinpath("smart-turn-v3.2-cpu.onnx")
    except ModuleNotFoundError:
        raise SmartTurnError("Smart Turn needs the pipecat-ai package (pip install pipecat-ai)") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


@lru_cache(maxsize=1)
def _features():
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=80, sampling_rate=SAMPLE_RATE, chunk_length=WINDOW_S)


def end_of_turn_probability(speech: np.ndarray) -> float:
    """Probability that the user's turn is complete, from 16 kHz audio ending now."""
    n = WINDOW_S * SAMPLE_RATE
    audio = np.zeros(n, dtype=np.float32)
    tail = np.asarray(speech, dtype=np.float32)[-n:]
    audio[n - len(tail) :] = tail
    features = _features()(audio, sampling_rate=SAMPLE_RATE, return_tensors="np", do_normalize=True,
                           padding="max_length", max_length=n, truncation=True)
    out = _session().run(None, {"input_features": features["input_features"].astype(np.float32)})
    return float(out[0].reshape(-1)[0])
