"""Shared test helpers: speech made with espeak-ng, trimmed to its audible extent,
so that tests know exactly where speech starts and ends."""

from __future__ import annotations

import os

os.environ.setdefault("MKL_DYNAMIC", "FALSE")  # as the duplex command sets it (duplex/cli.py): reproducible products

import numpy as np
import pytest
import torch

from audio.frames import SAMPLE_RATE
from audio.tts import Voice, synthesize
from models.codec import Codec, CodecConfig, save_codec
from models.listen_encoder import ListenConfig, ListenEncoder, save_listen_encoder
from models.lm import SyncLMConfig

# One thread: tests are small, and OpenMP threads spinning against a busy second core
# make them ten times slower.
torch.set_num_threads(1)


def trimmed_speech(text: str, voice: Voice = Voice("en-us", "m1")) -> np.ndarray:
    audio = synthesize(text, voice)
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    return audio[loud[0] : loud[-1] + 1]


def place(length_s: float, *parts: tuple[float, np.ndarray]) -> np.ndarray:
    """A silent signal of length_s with each (start_s, audio) part added at its start."""
    out = np.zeros(int(length_s * SAMPLE_RATE), dtype=np.float32)
    for start, audio in parts:
        i = int(start * SAMPLE_RATE)
        out[i : i + len(audio)] += audio[: len(out) - i]
    return out


@pytest.fixture(scope="session", autouse=True)
def speech_cache_in_tmp(tmp_path_factory):
    """Speech kept on disk (audio/speech_cache.py) goes to a folder of this test session, not the user's cache."""
    import audio.speech_cache

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(audio.speech_cache, "CACHE_ROOT", tmp_path_factory.mktemp("cache"))
        yield


@pytest.fixture(scope="session")
def speech():
    """A few cached utterances: name -> trimmed 16 kHz audio."""
    return {
        "question": trimmed_speech("what is the capital of france"),
        "arithmetic": trimmed_speech("what is seven plus five", Voice("en-us")),
        "answer": trimmed_speech("the capital of france is paris", Voice("en-us", "f2")),
        "short": trimmed_speech("hello there", Voice("en-us", "f2")),
        "long": trimmed_speech("one two three four five six seven eight nine ten", Voice("en-us", "f2")),
    }


TINY_LM = SyncLMConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                       intermediate_size=48, sliding_window=64)
"""A speech LM small enough for training stages to run steps in a test."""


@pytest.fixture(scope="session")
def tiny_parts(tmp_path_factory):
    """A folder with an untrained tiny codec/ and listen/ encoder, the frozen parts the LM stages load."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("parts")
    save_codec(Codec(CodecConfig(n_filters=4, dimension=16, n_q=2, codebook_size=16, lstm_layers=0)), folder / "codec")
    save_listen_encoder(ListenEncoder(ListenConfig(d_model=16, layers=1, heads=2, window=8)), folder / "listen")
    return folder
