"""Whisper recognition of espeak-ng speech: the best transcript and the n-best list."""

from __future__ import annotations

import numpy as np

from audio.asr import hypotheses, transcribe
from audio.tts import Voice, synthesize

SENTENCE = "what is seven plus five"


def test_transcribe_and_hypotheses_hear_a_clear_question():
    audio = synthesize(SENTENCE, Voice("en-us", speed=150))
    text, _ = transcribe(audio)
    assert "plus" in text.lower()
    heard = hypotheses(audio, n=4)
    assert 1 <= len(heard) <= 4 and len(set(heard)) == len(heard) and all(heard)
    assert any("plus" in h.lower() for h in heard)


def test_hypotheses_of_a_too_short_clip_are_none():
    assert hypotheses(np.zeros(100, np.float32)) == []


def test_silence_and_punctuation_are_not_words():
    from audio.asr import _has_words

    quiet = np.full(16000, 5e-5, np.float32)
    assert transcribe(quiet) == ("", []) and hypotheses(quiet) == []
    assert not _has_words(". . . .") and not _has_words("") and _has_words("7") and _has_words("yes.")


def test_the_baseline_ears_fall_back_on_the_runners_up_and_ignore_silence():
    from duplex.baseline import hear_and_respond

    audio = synthesize(SENTENCE, Voice("en-us", speed=150))
    best, _ = transcribe(audio)
    assert hear_and_respond(audio, "small", None, lambda text: text.upper()) == (best, best.upper())
    # a responder that cannot answer the best transcript gets a runner-up of the beam, and says so
    heard, reply = hear_and_respond(audio, "small", None, lambda text: None if text == best else text)
    assert heard != best and reply == heard and heard in hypotheses(audio)
    assert hear_and_respond(audio, "small", None, lambda text: None)[1] is None
    assert hear_and_respond(np.zeros(16000, np.float32), "small", None, lambda text: text) == ("", None)
