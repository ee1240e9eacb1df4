"""Word-timed espeak-ng synthesis (audio.tts.speak_words), the source of the data's alignments."""

import numpy as np
import pytest

from audio.tts import TTSError, Voice, speak_words

VOICE = Voice("en-us", None, 165, 45)


def frame_db(audio: np.ndarray, start: float, end: float) -> float:
    part = audio[int(start * 16000) : int(end * 16000)]
    return 10 * np.log10(np.mean(part.astype(np.float64) ** 2) + 1e-12)


def test_every_token_gets_a_time_in_order_including_words_espeak_joins():
    text = "First I had to wait ages for the bus. Most of them live in the cold south."
    speech = speak_words(text, VOICE)
    assert [w.text for w in speech.words] == text.split()
    starts = [w.start for w in speech.words]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert all(w.start < w.end for w in speech.words)
    assert speech.words[0].start == 0.0 and speech.words[-1].end == pytest.approx(speech.duration, abs=1e-3)


def test_word_times_match_the_sound():
    """Between sentences the audio is silent, inside each word it is not: alignment and audio agree."""
    speech = speak_words("Apple. River. Stone. Yellow.", VOICE)
    peak = max(frame_db(speech.audio, w.start, w.end) for w in speech.words)
    for before, after in zip(speech.words, speech.words[1:]):
        assert after.start - before.end > 0.1, "sentence ends leave a pause"
        assert frame_db(speech.audio, before.end + 0.01, after.start - 0.01) < peak - 40
    for w in speech.words:
        assert frame_db(speech.audio, w.start, w.start + 0.03) > peak - 45
        assert frame_db(speech.audio, w.end - 0.03, w.end) > peak - 45


def test_same_text_and_voice_give_nearly_the_same_speech():
    """espeak-ng's wave generator carries state between calls: repeats differ by a few samples only
    (byte-identical datasets come from a fresh process per dialogue, see training/generate.py)."""
    a = speak_words("Seven plus five is twelve.", Voice("en-gb", "f3", 150, 60))
    b = speak_words("Seven plus five is twelve.", Voice("en-gb", "f3", 150, 60))
    assert [w.text for w in a.words] == [w.text for w in b.words]
    assert abs(a.duration - b.duration) < 0.005
    assert all(abs(x.start - y.start) < 0.005 for x, y in zip(a.words, b.words))


def test_empty_text_and_unknown_voice():
    assert speak_words("   ", VOICE).duration == 0.0
    with pytest.raises(TTSError, match="unknown espeak-ng voice"):
        speak_words("hello", Voice("en-us", "no-such-variant"))
