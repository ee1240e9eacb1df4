"""A scripted user: an Agent that plays the user's side of a dialogue.

It asks its script's questions with an espeak-ng voice, waits for the
partner's answer to end before the next one (with a human-like gap), and
can pause mid-question, backchannel during long answers and barge in. It
records when each question was asked and when the partner answered, so a
simulation can judge the answers afterwards. It is the user side of
`duplex simulate` and the load generator of the server bench.

Its timing rests on what it hears: a Silero VAD gate on the partner's audio
that calls an answer finished after 400 ms of silence (espeak-ng pauses about
300 ms at a comma, and a user who took that for the end would barge in on
every list), plus a gap drawn from a normal distribution (mean 100 ms, sd
100 ms, clipped to [0, 1] s): the partner sees gaps of about half a second.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from audio.tts import Voice, synthesize
from audio.vad import SpeechGate, StreamingVAD
from duplex.agent import AgentState, PerSessionAgent
from duplex.domains import BACKCHANNELS, sample_exchange

END_OF_ANSWER_S = 0.4


@dataclass(frozen=True)
class ScriptLine:
    """One user turn: what to say and, for a question, what a correct answer holds."""

    text: str
    expected: str | None = None
    pause_after_word: int | None = None
    """Pause mid-question after this many words (None: no pause)."""
    pause_s: float = 0.8
    barge_in_after_s: float | None = None
    """Start the *next* line this long into the partner's answer (None: wait for its end)."""
    backchannel_after_s: float | None = None
    """Say a backchannel this long into the partner's answer (None: don't)."""


class Phase(enum.Enum):
    GAP = "gap"  # waiting to start the next line
    SPEAKING = "speaking"
    WAITING = "waiting"  # for the partner's answer to start and end
    DONE = "done"


@dataclass
class AnswerSpan:
    """When the partner answered line `line` (ticks of this session; end None while open)."""

    line: int
    asked_tick: int
    start_tick: int | None = None
    end_tick: int | None = None
    barged_in: bool = False


@dataclass
class ScriptedUserState(AgentState):
    script: list[ScriptLine] = field(default_factory=list)
    line: int = 0
    phase: Phase = Phase.GAP
    wait_ticks: int = 6
    audio: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    played: int = 0
    vad: StreamingVAD = field(default_factory=StreamingVAD)
    gate: SpeechGate = field(default_factory=lambda: SpeechGate(hangover_s=END_OF_ANSWER_S))
    partner_ticks: int = 0
    """Ticks the partner has been speaking in the current answer."""
    backchanneled: bool = False
    answers: list[AnswerSpan] = field(default_factory=list)


class ScriptedUser(PerSessionAgent):
    name = "scripted-user"

    def __init__(self, scripts: Sequence[Sequence[ScriptLine]], voice: Voice = Voice("en-us", "f2", speed=165),
                 answer_timeout_s: float = 8.0):
        """scripts[i] is the script of the session created with seed i (modulo len(scripts))."""
        if not scripts:
            raise ValueError("a scripted user needs at least one script")
        self.scripts = [list(s) for s in scripts]
        self.voice = voice
        self.timeout_ticks = round(answer_timeout_s * 1000 / self.tick_ms)

    def new_state(self, seed: int = 0) -> ScriptedUserState:
        return ScriptedUserState(seed=seed, script=self.scripts[seed % len(self.scripts)])

    def step_one(self, s: ScriptedUserState, listen: np.ndarray) -> np.ndarray:
        s.gate.update(s.vad.process(listen))
        partner = s.gate.speaking
        s.partner_ticks = s.partner_ticks + 1 if partner else s.partner_ticks

        if s.phase is Phase.WAITING:
            span = s.answers[-1]
            if partner and span.start_tick is None:
                span.start_tick = s.tick
            line = s.script[span.line]
            answered_s = s.partner_ticks * self.tick_ms / 1000
            if span.start_tick is not None and not partner:
                span.end_tick = s.tick
                self._next_line(s, gap=True)
            elif span.start_tick is None and s.tick - span.asked_tick > self.timeout_ticks:
                self._next_line(s, gap=True)
            elif partner and line.barge_in_after_s is not None and answered_s >= line.barge_in_after_s:
                span.end_tick, span.barged_in = s.tick, True
                self._next_line(s, gap=False)
            elif partner and line.backchannel_after_s is not None and not s.backchanneled and answered_s >= line.backchannel_after_s:
                s.backchanneled = True
                s.audio, s.played = _speech(str(s.rng.choice(BACKCHANNELS)), self.voice), 0
            return self._play(s)

        if s.phase is Phase.GAP:
            s.wait_ticks -= 1
            if s.wait_ticks <= 0:
                self._start_line(s)
            return self._play(s)

        if s.phase is Phase.SPEAKING:
            chunk = self._play(s)
            if s.played >= len(s.audio):
                s.phase = Phase.WAITING
                s.answers.append(AnswerSpan(s.line, s.tick))
                s.partner_ticks, s.backchanneled = 0, False
            return chunk
        return self._play(s)

    def _next_line(self, s: ScriptedUserState, gap: bool) -> None:
        s.line += 1
        if s.line >= len(s.script):
            s.phase = Phase.DONE
        elif gap:
            gap_s = float(np.clip(s.rng.normal(0.1, 0.1), 0.0, 1.0))
            s.phase, s.wait_ticks = Phase.GAP, max(1, round(gap_s * 1000 / self.tick_ms))
        else:
            self._start_line(s)

    def _start_line(self, s: ScriptedUserState) -> None:
        line = s.script[s.line]
        s.audio, s.played, s.phase = _line_audio(line, self.voice), 0, Phase.SPEAKING

    def _play(self, s: ScriptedUserState) -> np.ndarray:
        chunk = s.audio[s.played : s.played + self.tick_samples]
        s.played += len(chunk)
        out = np.zeros(self.tick_samples, dtype=np.float32)
        out[: len(chunk)] = chunk
        s.speaking = bool(len(chunk)) and float(np.abs(chunk).max()) > 1e-3
        return out


@lru_cache(maxsize=4096)
def _speech(text: str, voice: Voice) -> np.ndarray:
    """espeak-ng speech trimmed to its audible extent, rendered once per text and voice."""
    audio = synthesize(text, voice)
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    return audio[loud[0] : loud[-1] + 1] if len(loud) else audio


def _line_audio(line: ScriptLine, voice: Voice) -> np.ndarray:
    """The line's speech, with a silent pause after `pause_after_word` words if asked."""
    words = line.text.split()
    if line.pause_after_word is None or not 0 < line.pause_after_word < len(words):
        return _speech(line.text, voice)
    first = _speech(" ".join(words[: line.pause_after_word]), voice)
    rest = _speech(" ".join(words[line.pause_after_word :]), voice)
    return np.concatenate([first, np.zeros(int(line.pause_s * 16000), np.float32), rest])


SCRIPT_DOMAINS = ("arithmetic", "capitals", "counting", "smalltalk", "repeat")


def domain_scripts(n: int, seed: int, split: str = "test", lines: int = 4) -> list[list[ScriptLine]]:
    """n scripts of in-domain questions (duplex/domains.py) with the user behaviours mixed in:
    a mid-question pause in some lines, a backchannel or a barge-in during long answers."""
    scripts = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        script = []
        for j in range(lines):
            domain = SCRIPT_DOMAINS[(i + j) % len(SCRIPT_DOMAINS)]
            ex = sample_exchange(rng, domain, split)
            words = ex.question_text.split()
            pause_after = len(ex.question_parts[0].split()) if len(ex.question_parts) > 1 else None
            if pause_after is None and len(words) >= 5 and rng.random() < 0.25:
                pause_after = int(rng.integers(2, len(words) - 1))
            long_answer = domain == "counting"
            script.append(
                ScriptLine(
                    ex.question_text,
                    ex.expected,
                    pause_after_word=pause_after,
                    pause_s=float(rng.uniform(0.3, 1.2)),
                    barge_in_after_s=float(rng.uniform(0.8, 1.6)) if long_answer and rng.random() < 0.5 else None,
                    backchannel_after_s=1.0 if long_answer and rng.random() < 0.5 else None,
                )
            )
        scripts.append(script)
    return scripts
