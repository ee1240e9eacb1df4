"""Synthetic speech stream: reproducible, disjoint voice splits, interference at the asked SNR."""

from __future__ import annotations

import numpy as np

from audio.tts import check_voice
from duplex.domains import USER_VOICE_VARIANTS
from training.speech_source import (
    HELD_OUT_VARIANTS,
    TRAIN_VARIANTS,
    SpeechSource,
    SpeechSourceConfig,
    random_voice,
)
from training.speech_text import held_out_sentence, training_sentence


def test_voice_splits_are_disjoint_and_known_to_espeak():
    assert not set(TRAIN_VARIANTS) & set(HELD_OUT_VARIANTS)
    assert set(USER_VOICE_VARIANTS["test"]) <= set(HELD_OUT_VARIANTS)
    rng = np.random.default_rng(0)
    for _ in range(20):
        check_voice(random_voice(rng, held_out=bool(rng.integers(2))))


def test_held_out_sentences_never_occur_in_training():
    training = {training_sentence(0, i).lower() for i in range(2000)}
    assert not training & {held_out_sentence(i).lower() for i in range(200)}


def test_examples_are_reproducible_and_batches_disjoint_across_processes():
    source = SpeechSource(SpeechSourceConfig(seconds=0.5, talker_prob=0.5, noise_prob=0.5))
    a, b = source.batch(3, 2, rank=0, world_size=2), source.batch(3, 2, rank=0, world_size=2)
    assert np.array_equal(a.mixed.numpy(), b.mixed.numpy())
    other = source.batch(3, 2, rank=1, world_size=2)
    assert not np.array_equal(a.clean.numpy(), other.clean.numpy())
    assert a.clean.shape == (2, 8000) and float(a.mixed.abs().max()) <= 0.99 + 1e-6


def test_interference_is_mixed_at_the_asked_snr():
    source = SpeechSource(SpeechSourceConfig(seconds=1.0, noise_prob=1.0, snr_db=(10.0, 10.0)))
    clean, mixed = source.example(0)
    snr = 10 * np.log10(np.mean(clean**2) / np.mean((mixed - clean) ** 2))
    assert abs(snr - 10.0) < 0.1
