"""The speech LM's phoneme input: espeak-ng's pronunciations, as ids in order."""

import numpy as np

from models.phonemes import ALPHABET_SIZE, VOICED_HOLD_TICKS, phoneme_ids, voiced_word, word_phonemes


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
