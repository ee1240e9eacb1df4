import numpy as np
import pytest

from audio.frames import (
    TICK_SAMPLES,
    TickSlicer,
    float_to_pcm16,
    pcm16_to_float,
    split_ticks,
)
from audio.resample import StreamingResampler, resample
from audio.tts import TTSError, Voice, check_voice, synthesize
from audio.vad import SpeechGate, StreamingVAD, vad_probabilities
from audio.wav import AudioError, read_mono, write_wav


def test_streaming_vad_equals_offline(speech):
    audio = np.concatenate([np.zeros(3000, np.float32), speech["question"], np.zeros(5000, np.float32)])
    offline = vad_probabilities(audio)
    vad = StreamingVAD()
    rng = np.random.default_rng(0)
    streamed, i = [], 0
    while i < len(audio):  # ragged chunks, not only ticks
        n = int(rng.integers(1, 3000))
        streamed.append(vad.process(audio[i : i + n]))
        i += n
    np.testing.assert_array_equal(np.concatenate(streamed), offline)
    assert offline.max() > 0.9 and offline[:5].max() < 0.5


def test_streams_batched_together_score_as_they_do_alone(speech):
    from audio.vad import VADState, process_streams

    signals = [speech["question"], speech["short"], np.zeros(9000, np.float32) + 0.001]
    alone = [vad_probabilities(x) for x in signals]
    states = [VADState() for _ in signals]
    got = [[] for _ in signals]
    for t in range(0, max(len(x) for x in signals) + 1280, 1280):
        # the streams join at different ticks, so their windows are out of phase
        active = [b for b in range(3) if t >= 1280 * b]
        chunks = [signals[b][t - 1280 * b : t - 1280 * b + 1280] for b in active]
        for b, p in zip(active, process_streams([states[b] for b in active], chunks)):
            got[b].append(p)
    for b in range(3):
        np.testing.assert_allclose(np.concatenate(got[b]), alone[b], atol=1e-5)


def test_speech_gate_reports_start_and_stop(speech):
    audio = np.concatenate([np.zeros(8000, np.float32), speech["short"], np.zeros(16000, np.float32)])
    gate = SpeechGate()
    events = gate.update(vad_probabilities(audio))
    assert events == ["started", "stopped"]


@pytest.mark.parametrize("rate", [8000, 24000, 48000])
def test_streaming_resampler_equals_offline_up_to_its_delay(rate, speech):
    audio = resample(speech["question"], 16000, rate)
    chunk = rate * 80 // 1000
    audio = audio[: len(audio) // chunk * chunk]
    r = StreamingResampler(rate, 16000)
    streamed = np.concatenate([r.process(audio[i : i + chunk]) for i in range(0, len(audio), chunk)])
    assert len(streamed) == len(audio) * 16000 // rate
    offline = resample(audio, rate, 16000)
    d = r.delay_out
    # away from the signal's end (where offline sees zero padding) they agree
    np.testing.assert_allclose(streamed[d:-200], offline[: len(streamed) - d - 200], atol=1e-4)


def test_tick_slicer_and_split_ticks():
    s = TickSlicer()
    s.push(np.ones(1000))
    assert s.pop_tick() is None
    s.push(np.ones(2000))
    assert s.pop_tick().shape == (TICK_SAMPLES,) and s.buffered() == 3000 - TICK_SAMPLES
    ticks = split_ticks(np.ones(TICK_SAMPLES + 1))
    assert ticks.shape == (2, TICK_SAMPLES) and ticks[1, 1:].sum() == 0


def test_pcm16_round_trip():
    x = np.linspace(-1, 1, 101, dtype=np.float32)
    np.testing.assert_allclose(pcm16_to_float(float_to_pcm16(x)), x, atol=1 / 16000)


def test_espeak_voices_speed_and_pitch():
    slow = synthesize("counting to five", Voice(speed=120))
    fast = synthesize("counting to five", Voice(speed=240))
    assert len(slow) > 1.5 * len(fast)
    assert synthesize("  ") .size == 0
    with pytest.raises(TTSError, match="unknown espeak-ng voice"):
        check_voice(Voice("en-us", "no-such-variant"))


def test_wav_errors_are_one_clear_line(tmp_path):
    (tmp_path / "text.wav").write_text("not audio at all")
    (tmp_path / "empty.wav").write_bytes(b"")
    for name, match in [("missing.wav", "no such file"), ("text.wav", "not a readable audio file"), ("empty.wav", "not a readable")]:
        with pytest.raises(AudioError, match=match) as err:
            read_mono(tmp_path / name)
        assert "\n" not in str(err.value)
    write_wav(tmp_path / "long.wav", np.zeros(16000 * 3), 16000)
    with pytest.raises(AudioError, match="longer than"):
        read_mono(tmp_path / "long.wav", max_seconds=2)
    with pytest.raises(AudioError, match="does not exist"):
        write_wav(tmp_path / "nope" / "x.wav", np.zeros(10), 16000)
