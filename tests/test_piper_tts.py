"""The natural voice (Piper joe): deterministic, timed word by word like espeak-ng, cached on disk,
usable as training speech."""

from __future__ import annotations

import numpy as np
import pytest

import audio.speech_cache
from audio.speech_cache import cached_speak_words
from audio.tts import TTSError, Voice, check_voice, speak_words, synthesize
from duplex.domains import NATURAL_AGENT_VOICE
from training.speech_source import SpeechSource, SpeechSourceConfig


def test_the_same_text_gives_the_same_samples():
    a = synthesize("The silver key is at school.", NATURAL_AGENT_VOICE)
    b = synthesize("The silver key is at school.", NATURAL_AGENT_VOICE)
    assert len(a) > 8000 and np.array_equal(a, b)
    assert 0.1 < float(np.abs(a).max()) <= 1.0


def test_words_are_timed_in_order_within_the_speech():
    text = "Three days ago, the fisherman hid twenty-one books."
    speech = speak_words(text, NATURAL_AGENT_VOICE)
    assert [w.text for w in speech.words] == text.split()
    starts = [w.start for w in speech.words]
    assert starts == sorted(starts) and starts[0] == 0.0
    assert all(w.end > w.start for w in speech.words)
    assert speech.words[-1].end == pytest.approx(speech.duration, abs=1e-3)  # resampling rounds the length
    # the long word takes longer than the short ones around it
    lengths = {w.text: w.end - w.start for w in speech.words}
    assert lengths["fisherman"] > lengths["the"]


def test_a_token_spoken_as_several_words_is_still_timed():
    speech = speak_words("Count 21 to 23 please.", NATURAL_AGENT_VOICE)
    assert [w.text for w in speech.words] == ["Count", "21", "to", "23", "please."]


def test_speed_stretches_the_speech():
    normal = synthesize("The silver key is at school.", NATURAL_AGENT_VOICE)
    slow = synthesize("The silver key is at school.", Voice("joe", speed=120, engine="piper"))
    assert len(slow) > 1.2 * len(normal)


def test_unknown_piper_voice_or_engine_is_one_clear_error():
    with pytest.raises(TTSError, match="unknown Piper voice"):
        check_voice(Voice("amy", engine="piper"))
    with pytest.raises(TTSError, match="unknown speech engine"):
        check_voice(Voice("en-us", engine="festival"))
    with pytest.raises(TTSError, match="unknown Piper voice"):
        speak_words("hello", Voice("amy", engine="piper"))


@pytest.fixture
def speech_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(audio.speech_cache, "CACHE_ROOT", tmp_path)
    return tmp_path


def test_speech_source_draws_pooled_sentences_in_the_natural_voice_reproducibly(speech_cache):
    config = SpeechSourceConfig(seconds=0.5, natural_prob=1.0, natural_pool=3)
    batch = SpeechSource(config).batch(0, 4)
    assert np.array_equal(batch.clean.numpy(), SpeechSource(config).batch(0, 4).clean.numpy())
    assert float(batch.clean.abs().max()) > 0
    assert 1 <= len(list(speech_cache.rglob("*.npz"))) <= 3  # the pool, rendered once


def test_cached_speech_is_what_rendering_gives_and_is_read_back(speech_cache, monkeypatch):
    text = "Paris is the capital of France."
    first = cached_speak_words(text, NATURAL_AGENT_VOICE)
    fresh = speak_words(text, NATURAL_AGENT_VOICE)
    assert np.array_equal(first.audio, fresh.audio) and first.words == fresh.words

    def no_rendering(*args):
        raise AssertionError("rendered again")

    monkeypatch.setattr(audio.speech_cache, "speak_words", no_rendering)
    again = cached_speak_words(text, NATURAL_AGENT_VOICE)
    assert np.array_equal(again.audio, first.audio) and again.words == first.words
    assert again.sample_rate == first.sample_rate
    assert len(list(speech_cache.rglob("*.npz"))) == 1 and not list(speech_cache.rglob("*.tmp*"))


def test_espeak_voices_are_not_cached(speech_cache):
    cached_speak_words("Paris is the capital of France.", Voice("en-us"))
    assert not list(speech_cache.rglob("*"))
