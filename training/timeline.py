"""Lays a synthetic dialogue on two channels with human turn-taking timing.

From a random generator, exchanges drawn from duplex/domains.py become a
timeline: where each utterance of the user and of the agent starts, where an
agent cut off by a barge-in stops, and the annotated events (turn,
backchannel, interruption, pause). The speech itself comes from a `speak`
function passed in (espeak-ng in training/render.py, a cheap stand-in in the
tests), because timing needs each utterance's length and word times, while
mixing samples is render.py's job.

What the timing teaches (SyncLLM synthesises its dialogues the same way):
the agent answers after a short gap, sometimes overlapping the user's last
syllable; it waits through pauses inside a user turn; it says "mm-hmm" in the
pauses of a long user narrative; it goes on when the user backchannels during
its long answers; and when the user barges in, it stops 100-300 ms later and
answers the new question. The defaults and their sources are listed in
docs/data.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from audio.tts import Speech, TimedPhoneme, TimedWord
from duplex.domains import BACKCHANNELS, DOMAINS, Exchange, Expected, sample_exchange

AGENT, USER = "agent", "user"
EVENT_KINDS = ("turn", "backchannel", "interruption", "pause")

Speak = Callable[[str, str], Speech]
"""speak(text, speaker) -> the speech of that speaker saying text."""

DEFAULT_DOMAIN_WEIGHTS = {
    "arithmetic": 0.2, "counting": 0.12, "repeat": 0.12, "capitals": 0.18,
    "smalltalk": 0.1, "about": 0.14, "narrative": 0.14,
}


@dataclass(frozen=True)
class TimelineParams:
    """The distributions a dialogue's timing is drawn from (seconds; probabilities per occasion)."""

    gap_median_s: float = 0.2
    """Median silence between one speaker's end and the other's start: ~200 ms across languages (Stivers et al. 2009)."""
    gap_sigma: float = 0.7
    """Log-normal spread of gaps; 0.7 puts ~6% of gaps above 600 ms and ~1% above 1 s."""
    max_gap_s: float = 3.0
    overlap_prob: float = 0.1
    """Share of speaker changes where the next speaker starts before the previous one ends."""
    overlap_range_s: tuple[float, float] = (0.05, 0.3)
    hesitation_prob: float = 0.25
    """Share of questions broken by a pause mid-sentence: the agent must wait."""
    pause_range_s: tuple[float, float] = (0.3, 2.0)
    """Silences inside a user turn (hesitations, between narrative sentences)."""
    agent_backchannel_prob: float = 0.6
    """Per pause of a narrative: the agent says "mm-hmm" in it."""
    backchannel_delay_range_s: tuple[float, float] = (0.1, 0.35)
    """From the start of the user's pause to the agent's backchannel."""
    resume_after_backchannel_s: float = 0.2
    long_answer_s: float = 2.5
    """Agent answers at least this long may be barged into or backchannelled to."""
    barge_in_prob: float = 0.3
    barge_in_earliest_s: float = 1.0
    agent_stop_range_s: tuple[float, float] = (0.1, 0.3)
    """From the user's barge-in onset to the agent falling silent."""
    max_barge_ins_in_a_row: int = 2
    user_backchannel_prob: float = 0.4
    max_user_backchannels: int = 2
    silence_prob: float = 0.1
    """Between exchanges: a long silence in which nobody speaks (the agent must not fill it)."""
    silence_range_s: tuple[float, float] = (2.0, 6.0)
    lead_in_range_s: tuple[float, float] = (0.3, 1.5)
    tail_range_s: tuple[float, float] = (0.5, 1.5)
    domain_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_DOMAIN_WEIGHTS))


@dataclass(frozen=True)
class Event:
    """An annotated stretch of the dialogue; user turns carry the domain and expected answer."""

    kind: str
    speaker: str
    start: float
    end: float
    text: str = ""
    domain: str | None = None
    expected: Expected | None = None
    interrupted: bool = False


@dataclass(frozen=True)
class Placement:
    """One utterance's speech placed on its speaker's channel; `stop` (seconds into the
    speech) cuts it short where the speaker was interrupted."""

    speaker: str
    start: float
    speech: Speech
    stop: float | None = None

    def words(self) -> list[TimedWord]:
        """The words actually heard, in dialogue time; a word cut mid-way ends at the cut."""
        limit = self.speech.duration if self.stop is None else min(self.stop, self.speech.duration)
        return [
            TimedWord(w.text, self.start + w.start, self.start + min(w.end, limit))
            for w in self.speech.words
            if w.start < limit
        ]

    def phonemes(self) -> list[TimedPhoneme]:
        """The phonemes of the words heard, in dialogue time; a cut word keeps all its sounds, as the speaker
        meant it (the speech LM's frame schedule likewise runs on until it sees the model stop)."""
        heard = len(self.words())
        unheard = self.speech.words[heard].start if heard < len(self.speech.words) else math.inf
        return [TimedPhoneme(p.name, self.start + p.start, self.start + p.end)
                for p in self.speech.phonemes if p.start < unheard]

    @property
    def end(self) -> float:
        """When the last heard sound ends (a cut landing in a pause between words ends at the last word)."""
        heard = self.words()
        return heard[-1].end if heard else self.start


@dataclass(frozen=True)
class Timeline:
    duration: float
    placements: tuple[Placement, ...]
    events: tuple[Event, ...]

    def alignments(self) -> list[list]:
        """moshi-finetune word alignments: [[word, [start, end], SPEAKER_MAIN (agent) | SPEAKER_OTHER], ...] by start."""
        return _timed_rows((w.start, w.end, w.text, p.speaker) for p in self.placements for w in p.words())

    def phoneme_timings(self) -> list[list]:
        """The heard words' phonemes (espeak-ng mnemonics), [[name, [start, end], SPEAKER_...], ...] by start:
        what the speech LM's third phoneme stream plays for the side it says (training/dialogue_stage.py)."""
        return _timed_rows((q.start, q.end, q.name, p.speaker) for p in self.placements for q in p.phonemes())


def _timed_rows(rows: Iterable[tuple[float, float, str, str]]) -> list[list]:
    """(start, end, text, speaker) rows as [[text, [start, end], SPEAKER_MAIN (agent) | SPEAKER_OTHER], ...] by start."""
    return [[text, [start, end], "SPEAKER_MAIN" if speaker == AGENT else "SPEAKER_OTHER"]
            for start, end, text, speaker in sorted(rows)]


def transition_offset(rng: np.random.Generator, params: TimelineParams) -> float:
    """Floor-transfer offset: from one speaker's end to the next one's start; negative is an overlap."""
    if rng.random() < params.overlap_prob:
        return -float(rng.uniform(*params.overlap_range_s))
    return min(params.gap_median_s * math.exp(params.gap_sigma * float(rng.standard_normal())), params.max_gap_s)


class _DialogueBuilder:
    """The timeline under construction: placements, events, and when each channel is next free."""

    def __init__(self, rng: np.random.Generator, split: str, speak: Speak, params: TimelineParams):
        self.rng, self.split, self.speak, self.params = rng, split, speak, params
        self.placements: list[Placement] = []
        self.events: list[Event] = []
        self.free_at = {AGENT: -math.inf, USER: -math.inf}

    _SAME_SPEAKER_MIN_GAP_S = 0.05
    """A channel never overlaps itself: a planned start earlier than this after the speaker's
    last sound is pushed back (only happens when a backchannel and a turn collide)."""

    def place(self, speaker: str, start: float, speech: Speech, stop: float | None = None) -> Placement:
        start = max(start, self.free_at[speaker] + self._SAME_SPEAKER_MIN_GAP_S)
        placement = Placement(speaker, round(start, 4), speech, stop)
        self.placements.append(placement)
        self.free_at[speaker] = max(self.free_at[speaker], placement.end)
        return placement

    def draw_domain(self, exclude: tuple[str, ...] = ()) -> str:
        names = [d for d in DOMAINS if d not in exclude]
        weights = np.array([self.params.domain_weights.get(d, 0.0) for d in names])
        return names[int(self.rng.choice(len(names), p=weights / weights.sum()))]

    def exchange(self, ex: Exchange, start: float, kind: str = "turn", depth: int = 0) -> float:
        """Place a user question and the agent's answer; returns when the exchange's last sound ends."""
        user_end = self.user_turn(ex, start, kind)
        return self.agent_answer(ex, user_end + transition_offset(self.rng, self.params), depth)

    def user_turn(self, ex: Exchange, start: float, kind: str) -> float:
        p = self.params
        parts = list(ex.question_parts)
        if kind == "turn" and len(parts) == 1 and self.rng.random() < p.hesitation_prob:
            parts = self._hesitate(parts[0])
        placed = [self.place(USER, start, self.speak(parts[0], USER))]
        for part in parts[1:]:
            pause = float(self.rng.uniform(*p.pause_range_s))
            if ex.domain == "narrative" and self.rng.random() < p.agent_backchannel_prob:
                delay = float(self.rng.uniform(*p.backchannel_delay_range_s))
                bc = self.place(AGENT, placed[-1].end + delay, self.speak(self._backchannel(), AGENT))
                self.events.append(Event("backchannel", AGENT, bc.start, bc.end, _text(bc)))
                pause = max(pause, bc.end - placed[-1].end + p.resume_after_backchannel_s)
            placed.append(self.place(USER, placed[-1].end + pause, self.speak(part, USER)))
        for before, after in zip(placed, placed[1:]):
            self.events.append(Event("pause", USER, before.end, after.start))
        end = placed[-1].end
        self.events.append(Event(kind, USER, placed[0].start, end, ex.question_text, ex.domain, ex.expected))
        return end

    def agent_answer(self, ex: Exchange, start: float, depth: int) -> float:
        p = self.params
        speech = self.speak(ex.answer_text, AGENT)
        long_answer = speech.duration >= p.long_answer_s
        roll = self.rng.random()
        if long_answer and depth < p.max_barge_ins_in_a_row and roll < p.barge_in_prob:
            return self._barge_in(ex, start, speech, depth)
        answer = self.place(AGENT, start, speech)
        self.events.append(Event("turn", AGENT, answer.start, answer.end, ex.answer_text))
        if long_answer and roll < p.barge_in_prob + p.user_backchannel_prob:
            self._user_backchannels(answer)
        return answer.end

    def _barge_in(self, ex: Exchange, start: float, speech: Speech, depth: int) -> float:
        """The user cuts into the answer with a new question; the agent stops shortly after and answers it."""
        p = self.params
        onset = start + float(self.rng.uniform(p.barge_in_earliest_s, speech.duration - 0.5))
        stop = onset - start + float(self.rng.uniform(*p.agent_stop_range_s))
        cut = self.place(AGENT, start, speech, stop=stop)
        self.events.append(Event("turn", AGENT, cut.start, cut.end, _text(cut), interrupted=True))
        new_question = sample_exchange(self.rng, self.draw_domain(exclude=("narrative",)), self.split)
        return self.exchange(new_question, onset, kind="interruption", depth=depth + 1)

    def _user_backchannels(self, answer: Placement) -> None:
        """One or two "mm-hmm"s from the user at word boundaries of a long answer; the agent goes on."""
        p = self.params
        words = answer.words()
        candidates = [w.end for w in words[:-1] if answer.start + p.barge_in_earliest_s <= w.end <= answer.end - 0.8]
        count = int(self.rng.integers(1, p.max_user_backchannels + 1))
        last = -math.inf
        for boundary in sorted(self.rng.permutation(candidates)[:count]) if candidates else []:
            if boundary - last < 1.5:
                continue
            bc = self.place(USER, boundary + float(self.rng.uniform(0.0, 0.15)), self.speak(self._backchannel(), USER))
            self.events.append(Event("backchannel", USER, bc.start, bc.end, _text(bc)))
            last = boundary

    def _hesitate(self, question: str) -> list[str]:
        """Break a question of four or more words in two at a word boundary inside it."""
        words = question.split()
        if len(words) < 4:
            return [question]
        k = int(self.rng.integers(2, len(words) - 1))
        return [" ".join(words[:k]), " ".join(words[k:])]

    def _backchannel(self) -> str:
        return BACKCHANNELS[int(self.rng.integers(len(BACKCHANNELS)))]


def _text(placement: Placement) -> str:
    return " ".join(w.text for w in placement.words())


def build_timeline(
    rng: np.random.Generator, split: str, speak: Speak, target_s: float, params: TimelineParams = TimelineParams()
) -> Timeline:
    """A dialogue of exchanges until at least target_s seconds are filled, then a short tail of silence."""
    builder = _DialogueBuilder(rng, split, speak, params)
    t = float(rng.uniform(*params.lead_in_range_s))
    while True:
        end = builder.exchange(sample_exchange(rng, builder.draw_domain(), split), t)
        if end >= target_s:
            break
        if rng.random() < params.silence_prob:
            t = end + float(rng.uniform(*params.silence_range_s))
        else:
            t = end + transition_offset(rng, params)
    last_sound = max(p.end for p in builder.placements)
    duration = round(last_sound + float(rng.uniform(*params.tail_range_s)), 4)
    events = tuple(sorted(builder.events, key=lambda e: (e.start, e.end)))
    return Timeline(duration, tuple(builder.placements), events)
