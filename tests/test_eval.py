"""The evaluation's measures on agent channels built with known timing, and its cases."""

import numpy as np
import pytest

from tests.conftest import place, trimmed_speech
from training.eval_cases import CATEGORIES, make_case
from training.evaluate import Speech, measure


def test_the_takeover_rule_of_full_duplex_bench():
    assert not Speech(0.0, 0.5, "").takeover  # no words: no takeover
    assert Speech(0.0, 0.6, "mm-hmm yeah").backchannel  # short and few words
    assert Speech(0.0, 2.0, "mm-hmm yeah").takeover  # long
    assert Speech(0.0, 0.8, "seven plus five is twelve").takeover  # many words


@pytest.mark.parametrize("category", CATEGORIES)
def test_cases_have_consistent_timing(category):
    case = make_case(category, 0)
    assert 0 < case.turn_start < case.turn_end < len(case.user) / 16000
    for p0, p1 in case.pauses:
        assert case.turn_start < p0 < p1 < case.turn_end
        assert np.abs(case.user[int(p0 * 16000) + 160 : int(p1 * 16000) - 160]).max() < 1e-3  # silent pause


def test_measures_of_a_prompt_correct_answer():
    case = make_case("turn", 0)  # "Tell me the sum of zero and one."
    answer = trimmed_speech("Zero plus one is one.")
    agent = place(len(case.user) / 16000, (case.turn_end + 0.3, answer))
    m = measure(case, agent)
    assert m["took_turn"] and m["correct"]
    assert m["latency_s"] == pytest.approx(0.3, abs=0.05)


def test_measures_of_a_takeover_in_a_pause_and_of_an_interruption():
    pause = make_case("pause", 0)
    p0, _ = pause.pauses[0]
    talk = trimmed_speech("I think you want to know about numbers")
    m = measure(pause, place(len(pause.user) / 16000, (p0 + 0.2, talk)))
    assert m["pause_takeover"]

    inter = make_case("interruption", 0)
    onset, end = inter.interrupt
    counting = trimmed_speech("six, seven, eight, nine, ten, eleven, twelve, thirteen")
    cut = counting[: int((onset - (onset - 1.5) + 0.25) * 16000)]  # stops 250 ms after the onset
    agent = place(len(inter.user) / 16000, (onset - 1.5, cut))
    m = measure(inter, agent)
    assert m["speaking_at_onset"] and m["stop_s"] == pytest.approx(0.25, abs=0.05)
    assert not m["responded"]


def test_an_answer_meant_is_judged_on_the_text_written_after_the_turn():
    case = make_case("turn", 0)  # "Tell me the sum of zero and one."
    silent = np.zeros(len(case.user), np.float32)
    assert not measure(case, silent, meant=[(case.turn_end - 1.0, "one.")])["meant_correct"]  # too early
    meant = [(case.turn_end - 1.0, "two"), (case.turn_end + 0.3, " zero plus one"), (case.turn_end + 0.5, " is one.")]
    m = measure(case, silent, meant=meant)
    assert m["meant_correct"] and not m["correct"]  # meant, but never said aloud
