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
