"""The listen-while-speaking evaluation on the cascaded baseline (which can speak given text)."""

import pytest

from duplex.baseline import CascadedBaseline
from training.eval_lsm import Trial, _f1, _trial, evaluate_agent, wer


def test_f1_pits_interruptions_against_backchannels_and_noise():
    trials = [Trial("interruption", True, 0.2), Trial("interruption", False, None),
              Trial("backchannel", True, 0.3), Trial("noise", False, None)]
    assert _f1(trials, "interruption") == pytest.approx(2 * 1 / (2 * 1 + 1 + 1))
    assert wer("Seven plus five is twelve.", "7 plus 5 is 12") == 0.0


def test_a_stop_is_speech_that_ends_within_a_second_of_the_onset():
    import numpy as np

    from audio.frames import SAMPLE_RATE
    from audio.tts import Voice, synthesize

    speech = synthesize("the quick brown fox jumps over the lazy dog and runs far away", Voice("en-us"))
    assert len(speech) > 4 * SAMPLE_RATE
    assert not _trial("silence", speech, onset=1.0).stopped
    cut = _trial("interruption", speech[: int(1.5 * SAMPLE_RATE)], onset=1.0)
    assert cut.stopped and 0.3 < cut.stop_s < 0.7
    assert _trial("noise", np.zeros(SAMPLE_RATE * 3, np.float32), onset=1.0).stop_s == 0.0


@pytest.mark.slow
def test_the_baseline_stops_on_interruptions_and_on_backchannels_too():
    agent = CascadedBaseline(virtual_clock=True, fixed_latency_s=0.3)
    row = evaluate_agent(agent, sentences=1, judge="small")
    assert row["trials"] == 4
    assert row["f1_clean"] is not None and row["stop_latency_median_s"] < 0.5
    # a cascaded stack cannot tell "mm-hmm" from a barge-in: it stops on both
    assert row["false_stops_backchannel"] == 1.0
    assert row["wer"] <= row["wer_floor_espeak"] + 0.3
    assert row["stops_silent_user"] == 0.0  # told nothing, it says the whole sentence
