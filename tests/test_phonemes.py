"""The speech LM's phoneme input: espeak-ng's pronunciations, as ids in order."""

import numpy as np

from audio.tts import TimedPhoneme, Voice, speak_words
from models.phonemes import (
    ALPHABET_SIZE,
    VOICED_HOLD_TICKS,
    mnemonic_ids,
    phoneme_ids,
    tick_phonemes,
    voiced_word,
    word_phonemes,
)


def test_words_get_espeak_phonemes_with_stress_and_without_punctuation():
    assert word_phonemes("hello") == "h@l'oU"
    assert word_phonemes("beach.") == word_phonemes("beach") == "b'i:tS"
    assert word_phonemes("20").startswith("tw'Ent")  # numbers are read as words


def test_ids_keep_the_order_of_the_sounds_and_long_words_are_cut():
    cat, tack = phoneme_ids("cat", 8), phoneme_ids("tack", 8)
    assert sorted(cat[cat > 0]) == sorted(tack[tack > 0]) and not np.array_equal(cat, tack)  # same sounds, other order
    assert ((cat >= 0) & (cat < ALPHABET_SIZE)).all() and (cat[4:] == 0).all()
    long = phoneme_ids("internationalization", 6)
    assert long.shape == (6,) and (long > 0).all()


def test_a_word_is_voiced_from_its_first_frame_until_the_next_word_or_the_hold():
    announced = [3, 6, 30]  # positions that read each word's phonemes beside its first token
    lead = 2  # the text leads the audio by two ticks: a word is voiced from one position after it is read
    voiced = [voiced_word(announced, p, lead) for p in range(40)]
    assert voiced[:4] == [None] * 4 and voiced[4:7] == [0, 0, 0] and voiced[7] == 1
    assert voiced[7 + VOICED_HOLD_TICKS - 1] == 1 and voiced[7 + VOICED_HOLD_TICKS] is None  # a pause
    assert voiced[31] == 2


def test_each_tick_holds_the_phonemes_that_fill_enough_of_it():
    phonemes = [TimedPhoneme("h", 0.0, 0.07), TimedPhoneme("@", 0.07, 0.095), TimedPhoneme("l", 0.095, 0.17),
                TimedPhoneme("oU", 0.17, 0.30), TimedPhoneme("d", 0.40, 0.41)]
    # tick 1 (80-160 ms): "@" fills 15 ms, under 20 ms but more than half of itself; "h" only 0 ms of it
    assert tick_phonemes(phonemes) == ["h", "@l", "oU", "oU", "", "d"]  # "l" fills only 10 ms of tick 2
    assert tick_phonemes([]) == []
    assert list(mnemonic_ids("oU", 4)) == [ord("o") - 31, ord("U") - 31, 0, 0]


def test_espeak_speech_times_its_phonemes_within_its_words():
    speech = speak_words("hello there", Voice())
    names = [p.name for p in speech.phonemes]
    assert names[:4] == ["h", "@", "l", "oU"] and not any(n.startswith("_") for n in names)
    starts = [p.start for p in speech.phonemes]
    assert starts == sorted(starts) and all(p.end > p.start for p in speech.phonemes)
    assert 0 <= starts[0] and speech.phonemes[-1].end <= speech.duration + 1e-9
    there = speech.words[1].start
    assert min(abs(p.start - there) for p in speech.phonemes if p.name == "D") < 0.03  # "there" starts with D
    ticks = tick_phonemes(speech.phonemes)
    assert ticks[0].startswith("h") and len(ticks) == int(np.ceil(speech.phonemes[-1].end / 0.08))
