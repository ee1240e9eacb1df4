"""Procedural English sentences for unlabelled-speech training and held-out tests.

The codec and the listen encoder need speech with broad phonetic coverage,
not meaning; the project has no text corpus, so sentences are drawn from a
small grammar (subject, verb, object, place, time) with a few hundred words,
plus numbers, questions and the dialogue domains' kind of phrasing. A
sentence is a pure function of (seed, index), so data streams are
reproducible and resumable. The held-out split uses its own templates and
its own word list, so test sentences never occur in training.

A speech LM that must *say* held-out sentences needs more than a few
hundred words: it has to learn how spelling sounds. `reading_sentence`
draws words from the system's English word list (Debian's wamerican,
about 60,000 plain lower-case words), leaving out every word of the
held-out vocabulary, so that test sentences stay unheard.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

_PEOPLE = (
    "the teacher", "my brother", "a young doctor", "the old farmer", "our neighbour", "the pilot", "my aunt",
    "the little girl", "a tall man", "the baker", "her friend", "the children", "the driver", "his mother",
    "the engineer", "a quiet student", "the captain", "my sister", "the nurse", "the king", "a singer",
    "the waiter", "the gardener", "everybody", "nobody", "the lawyer", "a tourist", "the police officer",
)
_VERBS = (
    "found", "painted", "carried", "opened", "sold", "bought", "washed", "cooked", "fixed", "dropped",
    "watched", "borrowed", "threw", "counted", "cleaned", "described", "remembered", "lost", "wanted",
    "pushed", "pulled", "needed", "noticed", "ordered", "packed", "lifted", "finished", "picked up",
)
_THINGS = (
    "a yellow bicycle", "the heavy box", "three green apples", "an old letter", "the broken chair",
    "a cup of coffee", "the red umbrella", "seven small stones", "the kitchen window", "a pair of shoes",
    "the blue car", "a loaf of bread", "the silver key", "twelve eggs", "the wooden table", "a warm jacket",
    "the morning paper", "a bag of rice", "the garden gate", "a bunch of flowers", "the fishing boat",
    "a bottle of milk", "the school bus", "a large map", "the piano", "some fresh vegetables", "the clock",
)
_PLACES = (
    "in the kitchen", "near the station", "at the market", "behind the house", "on the bridge",
    "in the garden", "at the beach", "under the tree", "next to the church", "in the city", "by the river",
    "at school", "in the village", "on the mountain", "at the airport", "in the office", "on the farm",
)
_TIMES = (
    "yesterday", "this morning", "last night", "on Monday", "every day", "after lunch", "at noon",
    "in the evening", "two weeks ago", "on Sunday", "before dinner", "at six o'clock", "last summer",
)
_ADJECTIVES = ("happy", "tired", "busy", "hungry", "ready", "late", "angry", "surprised", "sure", "afraid")
_NUMBERS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
)

# Held-out vocabulary: never used by the training templates.
_HELD_PEOPLE = ("the fisherman", "a famous writer", "the shopkeeper", "my grandfather", "the librarian", "a stranger")
_HELD_VERBS = ("repaired", "delivered", "discovered", "sharpened", "hid", "polished", "weighed", "wrapped")
_HELD_THINGS = (
    "the golden ring", "a basket of cherries", "the leather suitcase", "a jar of honey", "the paper lantern",
    "an orange kite", "the glass bowl", "a stack of books", "the iron kettle", "a pocket watch",
)
_HELD_PLACES = ("at the harbour", "in the library", "near the lighthouse", "at the bakery", "in the attic")
_HELD_TIMES = ("at midnight", "on Friday", "last winter", "around noon", "three days ago")


def _pick(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    return words[int(rng.integers(len(words)))]


def training_sentence(seed: int, index: int) -> str:
    """The index-th training sentence of a seeded stream."""
    rng = np.random.default_rng([seed, index, 1])
    kind = int(rng.integers(6))
    if kind == 0:
        return f"{_pick(rng, _PEOPLE)} {_pick(rng, _VERBS)} {_pick(rng, _THINGS)} {_pick(rng, _PLACES)} {_pick(rng, _TIMES)}."
    if kind == 1:
        return f"Did {_pick(rng, _PEOPLE)} really leave {_pick(rng, _THINGS)} {_pick(rng, _PLACES)}?"
    if kind == 2:
        a, b = _pick(rng, _NUMBERS), _pick(rng, _NUMBERS)
        return f"What is {a} plus {b}? I think it is {_pick(rng, _NUMBERS)}."
    if kind == 3:
        return f"{_pick(rng, _TIMES).capitalize()}, {_pick(rng, _PEOPLE)} was {_pick(rng, _ADJECTIVES)}."
    if kind == 4:
        start = int(rng.integers(0, 12))
        return "Count with me: " + ", ".join(_NUMBERS[start : start + int(rng.integers(3, 8))]) + "."
    return f"Please tell {_pick(rng, _PEOPLE)} that {_pick(rng, _THINGS)} is {_pick(rng, _PLACES)}."


def held_out_sentence(index: int) -> str:
    """The index-th held-out sentence (a fixed list for evaluation)."""
    rng = np.random.default_rng([index, 2])
    if index % 2 == 0:
        return f"{_pick(rng, _HELD_PEOPLE).capitalize()} {_pick(rng, _HELD_VERBS)} {_pick(rng, _HELD_THINGS)} {_pick(rng, _HELD_PLACES)} {_pick(rng, _HELD_TIMES)}."
    return f"{_pick(rng, _HELD_TIMES).capitalize()}, {_pick(rng, _HELD_PEOPLE)} {_pick(rng, _HELD_VERBS)} {_pick(rng, _HELD_THINGS)}."


DICTIONARY = Path("/usr/share/dict/american-english")
"""The English word list of the Debian package wamerican (`make setup` installs it)."""


def _held_out_vocabulary() -> set[str]:
    phrases = _HELD_PEOPLE + _HELD_VERBS + _HELD_THINGS + _HELD_PLACES + _HELD_TIMES
    return {word.lower() for phrase in phrases for word in phrase.split()}


@lru_cache(maxsize=1)
def dictionary_words() -> tuple[str, ...]:
    """Plain lower-case words of 2-12 letters from the word list, less the held-out vocabulary."""
    if not DICTIONARY.is_file():
        raise FileNotFoundError(f"{DICTIONARY} is missing: install the Debian package wamerican (`make setup` does)")
    held_out = _held_out_vocabulary()
    words = (w for w in DICTIONARY.read_text(encoding="utf-8").split() if w.isascii() and w.isalpha())
    return tuple(w for w in words if w.islower() and 2 <= len(w) <= 12 and w not in held_out)


def reading_sentence(seed: int, index: int) -> str:
    """The index-th sentence of random dictionary words (4 to 9): reading practice, not meaning."""
    rng = np.random.default_rng([seed, index, 3])
    words = dictionary_words()
    picked = [words[int(i)] for i in rng.integers(len(words), size=int(rng.integers(4, 10)))]
    return " ".join([picked[0].capitalize(), *picked[1:]]) + "."
