"""The natural voice (Piper joe): deterministic, timed word by word like espeak-ng, usable as training speech."""

from __future__ import annotations

import numpy as np
import pytest

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


def test_speech_source_draws_pooled_sentences_in_the_natural_voice_reproducibly():
    config = SpeechSourceConfig(seconds=0.5, natural_prob=1.0, natural_pool=3)
    first, again = SpeechSource(config), SpeechSource(config)
    batch = first.batch(0, 4)
    assert np.array_equal(batch.clean.numpy(), again.batch(0, 4).clean.numpy())
    assert len(first._natural_cache) <= 3 and float(batch.clean.abs().max()) > 0
