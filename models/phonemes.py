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

A third stream (`phoneme_streams` 3) gives at every tick the phonemes
that sound in the frame the position's codebook-0 target holds, by
espeak-ng's own timing (`tick_phonemes`): which sound comes now, not only
which word. Why: with the word alone the model must count its way through
the word's sounds by attending to what it has said, and a 9.7 M-parameter
model trained for hours still said held-out sentences at a WER near 1
(docs/benchmarks.md); given the sound of each frame, what is left is how
that sound is said in this voice, a mapping a small model learns quickly
(FastSpeech's durations play this part; here espeak-ng gives them). The
agent renders the text it is asked to say in the voice training used and
plays that schedule from the tick its first word is voiced.

A word's phonemes enter as `slots` ids, one per character of the mnemonic
string (0 = empty slot); the model gives each (slot, character) pair its own
embedding and sums them, so the code keeps the order of the sounds. The
alphabet is printable ASCII, fixed, so no vocabulary file goes with a model.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from audio.espeak_lib import espeak_library
from audio.frames import SAMPLE_RATE, TICK_SAMPLES
from audio.tts import TimedPhoneme

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
    return mnemonic_ids(word_phonemes(word), slots)


def mnemonic_ids(mnemonics: str, slots: int) -> np.ndarray:
    """(slots,) int64 ids of the printable characters of `mnemonics`, cut at `slots`; 0 fills the rest."""
    ids = np.zeros(slots, dtype=np.int64)
    text = [c for c in mnemonics if " " < c <= "~"][:slots]
    ids[: len(text)] = [ord(c) - 31 for c in text]
    return ids


TICK_SECONDS = TICK_SAMPLES / SAMPLE_RATE
SOUNDING_SECONDS = 0.02
"""A phoneme counts as sounding in a tick when it fills this much of it (or half of itself, if shorter)."""


def tick_phonemes(phonemes: Sequence[TimedPhoneme]) -> list[str]:
    """The phonemes sounding in each tick of a speech, from its start: their mnemonics joined, in order
    ("" where none sound: a pause)."""
    if not phonemes:
        return []
    ticks = math.ceil(phonemes[-1].end / TICK_SECONDS)
    out = [""] * ticks
    for p in phonemes:
        least = min(SOUNDING_SECONDS, (p.end - p.start) / 2)
        for j in range(int(p.start // TICK_SECONDS), min(ticks, math.ceil(p.end / TICK_SECONDS))):
            if min(p.end, (j + 1) * TICK_SECONDS) - max(p.start, j * TICK_SECONDS) >= least:
                out[j] += p.name
    return out


def voiced_word(announced: list[int], position: int, text_lead: int) -> int | None:
    """Index of the word being voiced at `position`, given the (increasing) positions at which each word's
    phonemes were announced (read beside its first text token); None between words."""
    k = bisect.bisect_right(announced, position - text_lead + 1) - 1
    if k < 0 or position >= announced[k] + text_lead - 1 + VOICED_HOLD_TICKS:
        return None
    return k
