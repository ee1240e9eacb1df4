"""The speech LM's phoneme input: how each word it is given to say sounds, from espeak-ng.

Why: the text stream carries byte-level BPE tokens, and a small model learns
slowly how spelling sounds: after an hour of training it said the words it
had heard many times and babbled words it had never heard (docs/benchmarks.md).
English spelling is irregular; espeak-ng's pronunciation rules are not ours
to relearn. So beside a word's first text token the model also reads the
word's phonemes (espeak-ng's ASCII mnemonics, stress marks included), and
a word it never heard is made of sounds it has.

A second stream (`phoneme_streams` 2) also gives, at every tick, the
phonemes of the word being voiced: from `text_lead - 1` ticks after its
announcement, the position whose codebook-0 target is the word's first
frame, until the next word's turn or `VOICED_HOLD_TICKS`. Training places
words on the audio this way and the agent, which decides when each word is
announced, knows the same positions; so the model need not find, by
attention alone, which of the words it has read it is saying now (what a
small model was seen to lose: "ten, eleven, twelve" came back as "Sven,
iron, iron, tavern, twelve").

A word's phonemes enter as `slots` ids, one per character of the mnemonic
string (0 = empty slot); the model gives each (slot, character) pair its own
embedding and sums them, so the code keeps the order of the sounds. The
alphabet is printable ASCII, fixed, so no vocabulary file goes with a model.
"""

from __future__ import annotations

import bisect
from functools import lru_cache

import numpy as np

from audio.espeak_lib import espeak_library

ALPHABET_SIZE = 96
"""Ids 1..95 are the printable ASCII characters ' '..'~'; 0 is an empty slot."""
VOICED_HOLD_TICKS = 8
"""The longest a word counts as being voiced (640 ms) when no next word follows it."""
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


def voiced_word(announced: list[int], position: int, text_lead: int) -> int | None:
    """Index of the word being voiced at `position`, given the (increasing) positions at which each word's
    phonemes were announced (read beside its first text token); None between words."""
    k = bisect.bisect_right(announced, position - text_lead + 1) - 1
    if k < 0 or position >= announced[k] + text_lead - 1 + VOICED_HOLD_TICKS:
        return None
    return k
