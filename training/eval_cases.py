"""Full-Duplex-Bench-style test cases, generated from the dialogue domains with held-out voices.

Each case is the user's channel alone, as in Full-Duplex-Bench: the agent
under test hears it through `duplex respond` and its reply is measured.

- **turn** (smooth turn-taking): a question, then silence. The agent should
  take the turn, soon after the user ends, and answer correctly.
- **pause** (pause handling): a question with a 1-1.6 s pause in the middle.
  The agent should not take the turn in the pause.
- **backchannel**: a long narrative with pauses. The agent may say
  "mm-hmm" but should not take the turn until the narrative ends.
- **interruption**: a question with a long answer (counting), then, while
  the agent answers, a new question. The agent should stop soon and answer
  the new question.

Phrasings and voices come from the test split (never trained on).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from audio.frames import SAMPLE_RATE
from audio.tts import Voice, synthesize
from duplex.domains import Expected, sample_exchange, sample_user_voice

CATEGORIES = ("turn", "pause", "backchannel", "interruption")
QUESTION_DOMAINS = ("arithmetic", "capitals", "repeat", "smalltalk")
INTERRUPT_AFTER_S = 2.5
"""The interrupting question starts this long after the first question ends (the agent is answering by then)."""


@dataclass
class Case:
    category: str
    name: str
    user: np.ndarray
    turn_start: float
    turn_end: float
    """The user's (last) turn: from its first word to its end."""
    pauses: list[tuple[float, float]] = field(default_factory=list)
    interrupt: tuple[float, float] | None = None
    """Start and end of the interrupting question."""
    expected: Expected | None = None
    """What a correct answer to the last question holds."""
    texts: list[str] = field(default_factory=list)


def _speech(text: str, voice: Voice) -> np.ndarray:
    audio = synthesize(text, voice)
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    return audio[loud[0] : loud[-1] + 1] if len(loud) else audio


class _Canvas:
    def __init__(self) -> None:
        self.parts: list[tuple[float, np.ndarray]] = []
        self.t = 0.5

    def say(self, audio: np.ndarray) -> tuple[float, float]:
        start = self.t
        self.parts.append((start, audio))
        self.t = start + len(audio) / SAMPLE_RATE
        return start, self.t

    def wait(self, seconds: float) -> None:
        self.t += seconds

    def render(self, tail_s: float) -> np.ndarray:
        out = np.zeros(int((self.t + tail_s) * SAMPLE_RATE), np.float32)
        for start, audio in self.parts:
            i = int(start * SAMPLE_RATE)
            out[i : i + len(audio)] += audio
        return out


def make_case(category: str, index: int, seed: int = 0, split: str = "test") -> Case:
    rng = np.random.default_rng([seed, index, CATEGORIES.index(category)])
    voice = sample_user_voice(rng, split)
    canvas = _Canvas()
    name = f"{category}_{index:03d}"
    if category == "turn":
        ex = sample_exchange(rng, QUESTION_DOMAINS[index % len(QUESTION_DOMAINS)], split)
        start, end = canvas.say(_speech(ex.question_text, voice))
        return Case(category, name, canvas.render(6.0), start, end, expected=ex.expected, texts=[ex.question_text])
    if category == "pause":
        ex = sample_exchange(rng, QUESTION_DOMAINS[index % len(QUESTION_DOMAINS)], split)
        words = ex.question_text.split()
        cut = len(ex.question_parts[0].split()) if len(ex.question_parts) > 1 else max(1, len(words) // 2)
        start, pause_start = canvas.say(_speech(" ".join(words[:cut]), voice))
        canvas.wait(float(rng.uniform(1.0, 1.6)))
        pause_end, end = canvas.say(_speech(" ".join(words[cut:]), voice))
        return Case(category, name, canvas.render(6.0), start, end, [(pause_start, pause_end)], expected=ex.expected,
                    texts=[ex.question_text])
    if category == "backchannel":
        ex = sample_exchange(rng, "narrative", split)
        pauses = []
        start = canvas.t
        for i, part in enumerate(ex.question_parts):
            if i:
                gap_start = canvas.t
                canvas.wait(float(rng.uniform(0.4, 1.0)))
                pauses.append((gap_start, canvas.t))
            canvas.say(_speech(part, voice))
        return Case(category, name, canvas.render(5.0), start, canvas.t, pauses, texts=[ex.question_text])
    if category == "interruption":
        first = sample_exchange(rng, "counting", split)
        _, first_end = canvas.say(_speech(first.question_text, voice))
        canvas.wait(INTERRUPT_AFTER_S)
        second = sample_exchange(rng, QUESTION_DOMAINS[index % 2], split)  # arithmetic or capitals
        start, end = canvas.say(_speech(second.question_text, voice))
        return Case(category, name, canvas.render(6.0), start, end, interrupt=(start, end), expected=second.expected,
                    texts=[first.question_text, second.question_text])
    raise ValueError(f"unknown case category {category!r}")


def make_cases(per_category: int, seed: int = 0, split: str = "test") -> list[Case]:
    return [make_case(c, i, seed, split) for c in CATEGORIES for i in range(per_category)]
