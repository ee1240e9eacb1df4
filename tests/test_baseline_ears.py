"""The cascaded baseline's ears (duplex/baseline.py understand_turn): recognisers in order, lazily."""

from __future__ import annotations

import numpy as np
import pytest

import duplex.baseline as baseline
from audio.tts import Voice, synthesize
from duplex.baseline import ASR_MODELS, understand_turn
from duplex.domains import recognition_prompt, understand


@pytest.fixture(scope="module")
def question() -> np.ndarray:
    return synthesize("What is seven plus five?", Voice("en-us", speed=150))


@pytest.fixture
def models_heard(monkeypatch) -> list[str]:
    """The recognisers asked for a best transcript, in order (the real ones run)."""
    asked: list[str] = []
    real = baseline.transcribe

    def spying(audio, model="small", **kwargs):
        asked.append(model)
        return real(audio, model=model, **kwargs)

    monkeypatch.setattr(baseline, "transcribe", spying)
    return asked


def test_a_clear_question_is_understood_by_the_first_recogniser_alone(question, models_heard):
    reply, heard = understand_turn(question, understand, recognition_prompt())
    assert reply is not None and reply.expected == understand("what is 7 plus 5").expected
    assert "plus" in heard.lower()
    assert models_heard == [ASR_MODELS[0]]


def test_words_no_one_understands_go_through_every_recogniser(question, models_heard):
    reply, heard = understand_turn(question, lambda text: None, recognition_prompt())
    assert reply is None
    assert "plus" in heard.lower()  # the first recogniser's best transcript, for the NOT_UNDERSTOOD turn
    assert models_heard == list(ASR_MODELS)


def test_silence_is_no_words_and_asks_no_second_recogniser(models_heard):
    reply, heard = understand_turn(np.zeros(16000, np.float32), understand, recognition_prompt())
    assert (reply, heard) == (None, "")
    assert models_heard == [ASR_MODELS[0]]
