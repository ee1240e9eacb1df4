"""The listen-while-speaking evaluation on the cascaded baseline (which can speak given text)."""

import pytest

from duplex.baseline import CascadedBaseline
from training.eval_lsm import Trial, _f1, evaluate_agent, wer


def test_f1_pits_interruptions_against_backchannels_and_noise():
    trials = [Trial("interruption", True, 0.2), Trial("interruption", False, None),
              Trial("backchannel", True, 0.3), Trial("noise", False, None)]
    assert _f1(trials, "interruption") == pytest.approx(2 * 1 / (2 * 1 + 1 + 1))
    assert wer("Seven plus five is twelve.", "7 plus 5 is 12") == 0.0


@pytest.mark.slow
def test_the_baseline_stops_on_interruptions_and_on_backchannels_too():
    agent = CascadedBaseline(virtual_clock=True, fixed_latency_s=0.3)
    row = evaluate_agent(agent, sentences=1, judge="small")
    assert row["trials"] == 4
    assert row["f1_clean"] is not None and row["stop_latency_median_s"] < 0.5
    # a cascaded stack cannot tell "mm-hmm" from a barge-in: it stops on both
    assert row["false_stops_backchannel"] == 1.0
    assert row["wer"] <= row["wer_floor_espeak"] + 0.3
