"""Running agents on the Full-Duplex-Bench-style cases and measuring what they did.

Every measure comes from the agent's output channel: Silero VAD for when it
speaks (duplex/metrics.py), Whisper for what it says. The takeover rule is
Full-Duplex-Bench's: agent speech with no words is no takeover; speech of
under 1 s with at most 3 words is a backchannel, not a takeover; anything
else takes the turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audio.asr import transcribe
from audio.frames import SAMPLE_RATE
from duplex.agent import Agent
from duplex.domains import check_answer, normalize
from duplex.metrics import AGENT, Interval, channel_ipus
from duplex.respond import respond_audio
from training.eval_cases import Case
from training.eval_lsm import floor_wer, wer

BACKCHANNEL_MAX_S = 1.0
BACKCHANNEL_MAX_WORDS = 3
STOP_WINDOW_S = 3.0


@dataclass
class Speech:
    """One stretch of the agent's speech and what Whisper heard in it."""

    start: float
    end: float
    text: str

    @property
    def words(self) -> int:
        return len(normalize(self.text))

    @property
    def takeover(self) -> bool:
        if self.words == 0:
            return False
        return not (self.end - self.start < BACKCHANNEL_MAX_S and self.words <= BACKCHANNEL_MAX_WORDS)

    @property
    def backchannel(self) -> bool:
        return self.words > 0 and not self.takeover


@dataclass
class CaseResult:
    case: str
    category: str
    measures: dict[str, Any] = field(default_factory=dict)
    said: list[str] = field(default_factory=list)
    """What the agent meant to say (its transcript events), for intelligibility."""
    heard: str = ""
    """What Whisper heard the agent say over the whole case."""
    wer: float | None = None
    """Whisper's word error rate on the agent's speech against what it meant to say (cases it was not cut in)."""
    wer_floor: float | None = None
    """The same judge's WER on the same words rendered directly by espeak-ng in the agent's voice."""


def _speech(agent_audio: np.ndarray, ipus: list[Interval], judge: str) -> list[Speech]:
    out = []
    for iv in ipus:
        a, b = int(iv.start * SAMPLE_RATE), int(iv.end * SAMPLE_RATE)
        out.append(Speech(iv.start, iv.end, transcribe(agent_audio[a:b], model=judge)[0]))
    return out


def measure(case: Case, agent_audio: np.ndarray, judge: str = "base",
            meant: Sequence[tuple[float, str]] = ()) -> dict[str, Any]:
    """The category's measures for one case; `judge` is the Whisper model that hears the agent; `meant`
    the (time, text) of its transcript deltas: what it meant to say, for the answers judged on its text."""
    speech = _speech(agent_audio, channel_ipus(agent_audio, AGENT), judge)

    def _after(t: float) -> str:
        return transcribe(agent_audio[int(max(0.0, t) * SAMPLE_RATE) :], model=judge)[0]

    def _meant_correct(t: float) -> bool:
        """Whether what it meant to say from t on answers the question: right words, whatever the voice."""
        text = "".join(piece for at, piece in meant if at >= t)
        return bool(case.expected and check_answer(case.expected, text).correct)

    m: dict[str, Any] = {}
    if case.category in ("turn", "pause"):
        answer = [s for s in speech if s.start >= case.turn_end - 0.2]
        m["took_turn"] = any(s.takeover for s in answer)
        m["latency_s"] = round(answer[0].start - case.turn_end, 3) if answer else None
        m["correct"] = bool(case.expected and answer and check_answer(case.expected, _after(answer[0].start)).correct)
        m["meant_correct"] = _meant_correct(case.turn_end - 0.2)
    if case.category == "pause":
        m["pause_takeover"] = any(s.takeover for s in speech for p0, p1 in case.pauses if p0 <= s.start < p1)
    if case.category == "backchannel":
        inside = [s for s in speech if case.turn_start <= s.start < case.turn_end]
        m["backchannels"] = sum(s.backchannel for s in inside)
        m["takeover"] = any(s.takeover for s in inside)
        m["user_turn_s"] = round(case.turn_end - case.turn_start, 3)
    if case.category == "interruption":
        onset, end = case.interrupt
        talking = [s for s in speech if s.start < onset < s.end]
        m["speaking_at_onset"] = bool(talking)
        stop = talking[0].end - onset if talking else None
        m["stop_s"] = round(stop, 3) if stop is not None and stop <= STOP_WINDOW_S else None
        reply = [s for s in speech if s.start >= end - 0.2]
        m["responded"] = bool(reply and case.expected and check_answer(case.expected, _after(reply[0].start)).correct)
        m["meant_correct"] = _meant_correct(end - 0.2)
    return m


def run_cases(agent: Agent, cases: list[Case], seed: int = 0, judge: str = "base") -> list[CaseResult]:
    results = []
    for case in cases:
        response = respond_audio(agent, case.user, seed=seed)
        meant = [(at, e["text"]) for at, e in zip(response.event_times, response.events)
                 if e["type"] == "agent.transcript.delta"]
        said = [text for _, text in meant]
        result = CaseResult(case.name, case.category, measure(case, response.agent_audio, judge, meant), said,
                            transcribe(response.agent_audio, model=judge)[0] if said else "")
        if said and case.category != "interruption":  # an interrupted agent did not say all it meant to
            text = "".join(said)  # deltas are pieces of one text (a learned agent's carry their spaces)
            result.wer, result.wer_floor = round(wer(text, result.heard), 3), round(floor_wer(text, judge), 3)
        results.append(result)
    return results


def _mean(values: list[float | bool | None]) -> float | None:
    """The mean of the values that exist (a rate, for booleans), rounded; None if there are none."""
    known = [v for v in values if v is not None]
    return round(float(np.mean(known)), 3) if known else None


def _median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 3) if values else None


def summarise(results: list[CaseResult]) -> dict[str, Any]:
    """One row of the comparison table."""
    by = lambda cat: [r.measures for r in results if r.category == cat]
    turn, pause, bc, inter = by("turn"), by("pause"), by("backchannel"), by("interruption")
    answered = [m["correct"] for m in turn + pause] + [m["responded"] for m in inter]
    minutes = sum(m["user_turn_s"] for m in bc) / 60
    return {
        "pause_takeover_rate": _mean([m["pause_takeover"] for m in pause]),
        "turn_takeover_rate": _mean([m["took_turn"] for m in turn]),
        "turn_latency_median_s": _median([m["latency_s"] for m in turn if m["latency_s"] is not None]),
        "backchannels_per_min": round(sum(m["backchannels"] for m in bc) / minutes, 2) if minutes else None,
        "backchannel_takeover_rate": _mean([m["takeover"] for m in bc]),
        "stop_latency_median_s": _median([m["stop_s"] for m in inter if m["stop_s"] is not None]),
        "stopped_rate": _mean([m["stop_s"] is not None for m in inter if m["speaking_at_onset"]]),
        "interruption_responded_rate": _mean([m["responded"] for m in inter]),
        "answer_accuracy": _mean(answered),
        "meant_answer_accuracy": _mean([m["meant_correct"] for m in turn + pause + inter]),
        "wer": _mean([r.wer for r in results]),
        "wer_floor_espeak": _mean([r.wer_floor for r in results]),
    }
