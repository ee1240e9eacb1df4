"""Synthetic speech stream: reproducible, disjoint voice splits, interference at the asked SNR."""

from __future__ import annotations

import numpy as np

from audio.align import warp_onto
from audio.tts import Voice, check_voice, speak_words
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
    clean, mixed, target = source.example(0)
    assert np.array_equal(target, clean)  # no twin asked for
    snr = 10 * np.log10(np.mean(clean**2) / np.mean((mixed - clean) ** 2))
    assert abs(snr - 10.0) < 0.1


def test_twin_says_the_same_words_on_the_talkers_timeline():
    """The twin is the sentence in another voice, warped so that each word sounds when the talker's does."""
    text = "Please tell everybody that the silver key is at school."
    said = speak_words(text, Voice("en-us", "m1", 150, 50))
    other = speak_words(text, Voice("en-gb", "f3", 200, 70))
    warped = warp_onto(said.audio, other.audio)
    assert len(warped) == len(said.audio)
    rms = lambda a, t0, t1: float(np.sqrt(np.mean(a[int(t0 * 16000) : int(t1 * 16000)] ** 2)))
    whole = rms(warped, 0, said.duration)
    for word in said.words:  # each of the talker's words is spoken in the twin at the same time
        assert rms(warped, word.start, word.end) > 0.3 * whole, word
    for a, b in zip(said.words, said.words[1:]):  # and its pauses are pauses in the twin
        if b.start - a.end > 0.1:
            assert rms(warped, a.end + 0.03, b.start - 0.03) < 0.2 * whole


def test_twin_examples_are_reproducible_and_leave_other_streams_alone():
    twins = SpeechSource(SpeechSourceConfig(seconds=1.0, twin_prob=1.0))
    a, b = twins.batch(0, 3), twins.batch(0, 3)
    assert np.array_equal(a.target.numpy(), b.target.numpy())
    assert not np.array_equal(a.target.numpy(), a.clean.numpy())
    ratio = a.target.pow(2).mean(dim=1) / a.clean.pow(2).mean(dim=1)
    assert ((ratio > 0.8) & (ratio < 1.25)).all()  # at the talker's level
    plain = SpeechSource(SpeechSourceConfig(seconds=1.0)).batch(0, 3)
    assert np.array_equal(plain.target.numpy(), plain.clean.numpy())
