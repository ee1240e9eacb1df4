"""`duplex respond` (PROTOCOL.md section 2) with the cascaded baseline, end to end."""

import numpy as np
import pytest
import soundfile as sf

from audio.resample import resample
from audio.wav import write_wav
from duplex.baseline import CascadedBaseline
from duplex.cli import main
from duplex.metrics import dialogue_metrics
from duplex.respond import respond_audio
from tests.conftest import place


@pytest.fixture(scope="module")
def agent():
    a = CascadedBaseline(virtual_clock=True, fixed_latency_s=0.3)
    yield a
    a.close()


def test_baseline_answers_after_the_user_ends_and_reports_events(agent, speech):
    user = place(7.0, (0.5, speech["arithmetic"]))
    r = respond_audio(agent, user, seed=0)
    types = [e["type"] for e in r.events]
    assert types.index("user.speech.started") < types.index("agent.speech.started")
    heard = next(e["text"] for e in r.events if e["type"] == "user.transcript").lower()
    assert "plus" in heard
    said = next(e["text"] for e in r.events if e["type"] == "agent.transcript.delta")
    assert said == "Seven plus five is twelve."
    assert len(r.event_times) == len(r.events) and r.event_times == sorted(r.event_times)
    started = lambda kind: r.event_times[types.index(kind)]
    speech_end = 0.5 + len(speech["arithmetic"]) / 16000
    assert 0.5 < started("user.speech.started") < speech_end < started("agent.speech.started") < 7.0
    m = dialogue_metrics(np.stack([r.agent_audio, user], axis=1))
    # the answer starts at the pause (0.2 s VAD hangover) and takes the fixed 0.3 s, hidden behind the 0.5 s
    # end-of-turn silence: it plays at the timeout, plus a tick, give or take VAD frames
    assert 0.5 <= m["response_latency"]["median_s"] <= 0.8


def test_baseline_stops_when_the_user_barges_in(agent, speech):
    ask = place(3.0, (0.3, speech["short"]))
    agent_audio = respond_audio(agent, np.concatenate([ask, np.zeros(16000 * 6, np.float32)])).agent_audio
    first = np.flatnonzero(np.abs(agent_audio) > 0.01)[0] / 16000
    barge = first + 0.4
    user = place(9.0, (0.3, speech["short"]), (barge, speech["question"]))
    r = respond_audio(agent, user)
    stops = [e for e in r.events if e["type"] == "agent.speech.stopped"]
    assert stops and stops[0]["interrupted"] is True
    m = dialogue_metrics(np.stack([r.agent_audio, user], axis=1))
    assert m["barge_in"]["count"] >= 1 and m["barge_in"]["stop_time"]["median_s"] <= 0.4
    said = [e["text"] for e in r.events if e["type"] == "agent.transcript.delta"]
    assert len(said) == 2 and said[1].startswith(" ") and not said[0].startswith(" ")  # joined, they read as text


def test_say_speaks_given_text_and_reports_it_done(agent):
    r = respond_audio(agent, np.zeros(16000 * 4, np.float32), say="hello from the agent")
    done = [e for e in r.events if e["type"] == "agent.say.done"]
    assert done == [{"type": "agent.say.done", "id": "say-0", "interrupted": False, "spoken_text": "hello from the agent"}]
    assert np.abs(r.agent_audio).max() > 0.1


@pytest.mark.parametrize("rate,length", [(16000, 16000 * 2 + 7), (44100, 44100 * 2 + 3), (8000, 8001)])
def test_respond_output_has_the_inputs_length_and_rate(tmp_path, rate, length, speech):
    user = np.zeros(length, np.float32)
    part = resample(speech["short"], 16000, rate)[: length // 2]
    user[100 : 100 + len(part)] = part
    write_wav(tmp_path / "in.wav", user, rate)
    assert main(["respond", str(tmp_path / "in.wav"), "-o", str(tmp_path / "out.wav")]) == 0
    out, out_rate = sf.read(tmp_path / "out.wav", always_2d=True)
    assert out_rate == rate and out.shape == (length, 1)
    assert main(["respond", str(tmp_path / "in.wav"), "-o", str(tmp_path / "st.wav"), "--stereo"]) == 0
    st, _ = sf.read(tmp_path / "st.wav", always_2d=True)
    assert st.shape == (length, 2)
    np.testing.assert_allclose(st[:, 1], user, atol=1 / 16000)


def test_respond_uses_the_first_channel_of_stereo_input(tmp_path, speech):
    user = place(2.0, (0.2, speech["short"]))
    write_wav(tmp_path / "in.wav", np.stack([user, np.zeros_like(user)], axis=1), 16000)
    assert main(["respond", str(tmp_path / "in.wav"), "-o", str(tmp_path / "out.wav"), "--stereo"]) == 0
    st, _ = sf.read(tmp_path / "out.wav", always_2d=True)
    np.testing.assert_allclose(st[:, 1], user, atol=1 / 16000)


@pytest.mark.parametrize(
    "content,message",
    [(b"", "not a readable"), (b"RIFF\x00\x00\x00\x00WAVEjunk", "not a readable"), (b"hello, I am text", "not a readable")],
)
def test_respond_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, content, message):
    (tmp_path / "bad.wav").write_bytes(content)
    assert main(["respond", str(tmp_path / "bad.wav"), "-o", str(tmp_path / "out.wav")]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == [tmp_path / "bad.wav"]


def test_respond_refuses_missing_and_huge_input(tmp_path, capsys, monkeypatch):
    assert main(["respond", str(tmp_path / "none.wav"), "-o", str(tmp_path / "o.wav")]) == 1
    assert "no such file" in capsys.readouterr().err
    # a header claiming hours of audio is refused before anything is decoded
    monkeypatch.setattr("audio.wav.MAX_INPUT_SECONDS", 1.0)
    write_wav(tmp_path / "long.wav", np.zeros(16000 * 2, np.float32), 16000)
    import duplex.respond as respond_module

    monkeypatch.setattr(respond_module, "read_mono", lambda p: __import__("audio.wav").wav.read_mono(p, max_seconds=1.0))
    assert main(["respond", str(tmp_path / "long.wav"), "-o", str(tmp_path / "o.wav")]) == 1
    assert "longer than" in capsys.readouterr().err
    assert not (tmp_path / "o.wav").exists()


def test_smart_turn_mode_answers_when_the_model_says_the_turn_is_over(speech, monkeypatch):
    import duplex.baseline as baseline_module

    verdicts = []  # what the model said at each pause, as the agent asked it (the real model runs)
    real = baseline_module.end_of_turn_probability

    def recorded(audio: np.ndarray) -> float:
        verdicts.append(real(audio))
        return verdicts[-1]

    monkeypatch.setattr(baseline_module, "end_of_turn_probability", recorded)
    agent = CascadedBaseline(virtual_clock=True, end_of_turn="smart_turn", fixed_latency_s=0.3)
    user = place(8.0, (0.5, speech["arithmetic"]))
    r = respond_audio(agent, user)
    m = dialogue_metrics(np.stack([r.agent_audio, user], axis=1))
    latency = m["response_latency"]["median_s"]
    # judged complete at the first pause: about the VAD hangover + compute; otherwise the 3 s fallback
    assert verdicts
    assert (latency < 1.2) if verdicts[0] > 0.5 else (latency > 3.0)
    assert next(e["text"] for e in r.events if e["type"] == "agent.transcript.delta") == "Seven plus five is twelve."


def test_end_of_turn_probability_is_a_probability(speech):
    from audio.smart_turn import end_of_turn_probability

    values = [end_of_turn_probability(speech[k]) for k in ("question", "short", "long")]
    assert all(0.0 <= v <= 1.0 for v in values) and len(set(values)) == 3


def test_a_short_pause_drops_the_speculative_answer_and_the_whole_turn_is_answered(agent, speech):
    first_end = 0.5 + len(speech["short"]) / 16000
    user = place(8.0, (0.5, speech["short"]), (first_end + 0.35, speech["arithmetic"]))  # a 0.35 s pause
    r = respond_audio(agent, user, seed=0)
    heard = [e["text"].lower() for e in r.events if e["type"] == "user.transcript"]
    said = [e["text"] for e in r.events if e["type"] == "agent.transcript.delta"]
    assert len(heard) == 1 and "hello" in heard[0] and "plus" in heard[0]
    assert said == ["Seven plus five is twelve."]
