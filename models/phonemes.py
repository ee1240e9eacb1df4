"""The speech LM's phoneme input: how each word it is given to say sounds, from espeak-ng.

Why: the text stream carries byte-level BPE tokens, and a small model learns
slowly how spelling sounds: after an hour of training it said the words it
had heard many times and babbled words it had never heard (docs/models.md).
English spelling is irregular; espeak-ng's pronunciation rules are not ours
to relearn. So beside a word's first text token the model also reads the
word's phonemes (espeak-ng's ASCII mnemonics, stress marks included), and
a word it never heard is made of sounds it has.

A word's phonemes enter as `slots` ids, one per character of the mnemonic
string (0 = empty slot); the model gives each (slot, character) pair its own
embedding and sums them, so the code keeps the order of the sounds. The
alphabet is printable ASCII, fixed, so no vocabulary file goes with a model.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from audio.espeak_lib import espeak_library

ALPHABET_SIZE = 96
"""Ids 1..95 are the printable ASCII characters ' '..'~'; 0 is an empty slot."""
PHONEME_VOICE = "en-us"
"""The pronunciation rules used for every voice: the agent's voices are all English."""


@lru_cache(maxsize=1 << 16)
def word_phonemes(word: str) -> str:
    """espeak-ng's phonemes of one word as said on its own (punctuation ignored, pauses dropped)."""
    return espeak_library().phonemes(word, PHONEME_VOICE).replace("_:", "").replace("_", "").strip()


def phoneme_ids(word: str, slots: int) -> np.ndarray:
    """(slots,) int64 ids of the word's phoneme characters, cut at `slots` (long words lose their end)."""
    ids = np.zeros(slots, dtype=np.int64)
    text = [c for c in word_phonemes(word) if " " < c <= "~"][:slots]
    ids[: len(text)] = [ord(c) - 31 for c in text]
    return ids
