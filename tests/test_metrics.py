import json

import numpy as np
import pytest

from audio.vad import VAD_FRAME_S
from audio.wav import write_wav
from duplex.cli import main
from duplex.metrics import (
    Interval,
    dialogue_metrics,
    ipus,
    pause_takeovers,
    response_latencies,
    stop_times,
    turn_taking,
)
from tests.conftest import place

FRAME = VAD_FRAME_S


def test_turn_taking_on_known_intervals():
    agent = [Interval(2.0, 3.0, 0), Interval(5.5, 7.0, 0)]
    user = [Interval(0.0, 1.0, 1), Interval(1.5, 1.8, 1), Interval(4.0, 5.0, 1), Interval(6.5, 8.0, 1)]
    tt = turn_taking(agent, user, duration=9.0)
    assert [(round(p.start, 2), round(p.end, 2), p.speaker) for p in tt.pauses] == [(1.0, 1.5, 1)]
    gaps = [(round(g.start, 2), round(g.end, 2), g.speaker) for g in tt.gaps]  # on the 10 ms grid
    assert gaps == [(1.8, 2.0, 0), (3.0, 4.0, 1), (5.0, 5.5, 0)]
    assert [(round(o.start, 2), round(o.end, 2)) for o in tt.overlaps] == [(6.5, 7.0)]
    assert response_latencies(agent, user) == pytest.approx([0.2, 0.5])
    assert stop_times(agent, user) == pytest.approx([0.5])


def test_ipus_join_silences_shorter_than_200ms():
    from audio.vad import Segment

    joined = ipus([Segment(0, 1), Segment(1.1, 2), Segment(2.3, 3)])
    assert [(i.start, i.end) for i in joined] == [(0, 2), (2.3, 3)]


def test_pause_takeover_needs_a_long_agent_turn():
    pauses = [Interval(1.0, 2.0, 1), Interval(4.0, 5.0, 1)]
    agent = [Interval(1.2, 1.6, 0), Interval(4.1, 5.5, 0)]  # a backchannel, then a takeover
    assert pause_takeovers(agent, pauses) == [False, True]


def _measure(question, answer, gap_s, overlap_s=None):
    """Two channels: user asks at 1 s, agent answers gap_s after the question ends."""
    q_end = 1.0 + len(question) / 16000
    a_start = q_end + gap_s
    user = place(8.0, (1.0, question))
    agent = place(8.0, (a_start, answer))
    return dialogue_metrics(np.stack([agent, user], axis=1)), q_end, a_start


@pytest.mark.parametrize("gap_s", [0.3, 0.7, 1.2])
def test_vad_measured_gap_matches_the_built_one(speech, gap_s):
    m, _, _ = _measure(speech["question"], speech["answer"], gap_s)
    assert m["gap"]["user_to_agent"]["count"] == 1
    assert m["gap"]["user_to_agent"]["median_s"] == pytest.approx(gap_s, abs=FRAME)
    assert m["response_latency"]["median_s"] == pytest.approx(gap_s, abs=FRAME)


def test_vad_measured_overlap_and_stop_time(speech):
    # agent speaks a long answer from 1 s; user barges in at 2 s; agent is cut at 2.5 s
    long = speech["long"]
    agent_audio = long[: int(1.5 * 16000)]
    agent = place(6.0, (1.0, agent_audio))
    user = place(6.0, (2.0, speech["question"]))
    m = dialogue_metrics(np.stack([agent, user], axis=1))
    assert m["overlap"]["count"] == 1
    assert m["overlap"]["median_s"] == pytest.approx(0.5, abs=FRAME)
    assert m["barge_in"]["count"] == 1
    assert m["barge_in"]["stop_time"]["median_s"] == pytest.approx(0.5, abs=FRAME)


def test_vad_measured_user_pause(speech):
    user = place(7.0, (0.5, speech["question"]), (0.5 + len(speech["question"]) / 16000 + 0.8, speech["short"]))
    agent = np.zeros_like(user)
    m = dialogue_metrics(np.stack([agent, user], axis=1))
    assert m["pause"]["user"]["count"] == 1
    assert m["pause"]["user"]["median_s"] == pytest.approx(0.8, abs=FRAME)
    assert m["pause_takeover_rate"] == 0.0


def test_metrics_command_prints_json(tmp_path, speech, capsys):
    m_path = tmp_path / "d.wav"
    user = place(5.0, (0.5, speech["question"]))
    agent = place(5.0, (3.0, speech["answer"]))
    write_wav(m_path, np.stack([agent, user], axis=1), 16000)
    assert main(["metrics", str(m_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["gap"]["user_to_agent"]["count"] == 1


def test_metrics_command_refuses_mono(tmp_path, capsys):
    write_wav(tmp_path / "mono.wav", np.zeros(16000), 16000)
    assert main(["metrics", str(tmp_path / "mono.wav")]) == 1
    assert "two channels" in capsys.readouterr().err
