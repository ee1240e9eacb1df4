"""The cascaded half-duplex baseline: VAD end-pointing -> Whisper ASR -> responder -> espeak-ng TTS.

This is the design most voice stacks ship, and the reference every learned
model is measured against; it is not the product's model. It ends the
user's turn in one of two ways: after a fixed silence (500 ms, the common
default), or as the best cascaded stacks do, by asking Smart Turn v3.2
(audio/smart_turn.py) at each pause whether the turn sounds finished, with a
3 s silence as the fallback. Per session it is a small state machine:

    LISTENING --user speech--> USER_TURN --end of turn--> THINKING
    USER_TURN --a pause begins--> (answer prepared speculatively; dropped if the user goes on)
    THINKING --ASR+responder+TTS done--> SPEAKING --audio played--> LISTENING
    SPEAKING --user speech >= barge_in_s--> USER_TURN (interrupted)
    THINKING --user speaks again--> USER_TURN (the pending answer is dropped,
                                                the turn's audio is kept)
    THINKING --Smart Turn: not finished--> USER_TURN

The default responder answers the dialogue domains of duplex/domains.py, so
the baseline and the learned models face the same dialogues, and it speaks
with the agent persona's voice (AGENT_VOICES), as the learned models do.

In silence mode the answer is prepared as soon as the user pauses (the VAD's
200 ms hangover), while the end-of-turn timeout runs: when the pause turns
out to be the end of the turn, the answer is already on its way (it plays no
earlier than the timeout); when the user goes on, it is dropped. Smart Turn
mode likewise runs its model and the answer together at the pause.

ASR, the responder and TTS run as one job on an `Offloader`, off the tick
loop: on the wall clock ticks keep time while they work; on the virtual clock
their result lands at the tick their measured compute would have reached, so
`duplex respond` shows the latency a real user would meet.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np

from audio.asr import hypotheses, transcribe
from audio.smart_turn import end_of_turn_probability
from audio.tts import Voice, synthesize
from audio.vad import VAD_FRAME_S, SpeechGate
from clock.offload import Job, Offloader
from duplex.agent import AgentState, PerSessionAgent
from duplex.domains import AGENT_VOICES, DomainResponder


class Responder(Protocol):
    """The baseline's brain, text in, text out; None means nothing to say. Its recognition_prompt
    (None for none) primes the recogniser with the words it expects to hear."""

    recognition_prompt: str | None

    def respond(self, text: str) -> str | None: ...


ASR_MODEL = "small"
"""The baseline's ears: Whisper small (the packaged model), beam 5, primed with the responder's
vocabulary. Whisper base hears a few more questions but costs over twice the compute per question
(`bench/bench_domain_hearing.py`, docs/benchmarks.md), which would add most of a second to every answer
and crowd the tick loops of a loaded server, so the small model stays."""

N_BEST = 5
"""When the responder cannot answer Whisper's transcript, it tries the next-best transcripts of a beam
search (audio/asr.py `hypotheses`) before asking the user to repeat: 75% of test-split questions
understood instead of 68%, for 0.18 s more per question on average, spent only on the turns it helps
(`bench/bench_domain_hearing.py`, docs/benchmarks.md)."""

END_OF_TURN_MODES = ("silence", "smart_turn")
SMART_TURN_THRESHOLD = 0.5
SMART_TURN_FALLBACK_S = 3.0
"""In Smart Turn mode, a silence this long ends the turn whatever the model said (pipecat's default)."""

NOT_UNDERSTOOD = "Sorry, could you say that again?"
"""What the baseline says to words its responder cannot answer, as deployed voice agents do."""

ReplyT = TypeVar("ReplyT")


def hear_and_respond(audio: np.ndarray, model: str, prompt: str | None,
                     respond: Callable[[str], ReplyT | None]) -> tuple[str, ReplyT | None]:
    """What was heard and the reply to it: Whisper's best transcript, then the runners-up of its beam
    (N_BEST) until `respond` can answer one; ("", None) when nothing recognisable was said. The baseline's
    ears, shared with the bench that measures them (bench/bench_domain_hearing.py)."""
    heard, _ = transcribe(audio, model=model, prompt=prompt)
    if not heard:
        return "", None
    reply = respond(heard)
    if reply is None:
        for alternative in hypotheses(audio, model=model, n=N_BEST, prompt=prompt):
            reply = respond(alternative)
            if reply is not None:
                return alternative, reply
    return heard, reply

PRE_ROLL_S = 0.3
"""Audio kept from before the detected onset, so ASR hears the first phoneme."""


class Mode(enum.Enum):
    LISTENING = "listening"
    USER_TURN = "user_turn"
    THINKING = "thinking"
    SPEAKING = "speaking"


@dataclass
class Utterance:
    """What the agent is saying now: its text, audio, and how much has played."""

    text: str
    audio: np.ndarray
    played: int = 0
    say_id: str | None = None

    def spoken_text(self) -> str:
        """The words said so far, estimated by the share of audio played (espeak speaks at a steady rate)."""
        words = self.text.split()
        share = self.played / max(1, len(self.audio))
        return " ".join(words[: int(round(share * len(words)))])


@dataclass
class BaselineState(AgentState):
    mode: Mode = Mode.LISTENING
    gate: SpeechGate = field(default_factory=SpeechGate)
    history: list[np.ndarray] = field(default_factory=list)
    turn: list[np.ndarray] = field(default_factory=list)
    job: Job | None = None
    pending_say: tuple[str, str] | None = None
    """The (text, id) of an agent.say whose audio is being prepared."""
    utterance: Utterance | None = None
    say_queue: list[tuple[str, str]] = field(default_factory=list)
    overlap_windows: int = 0
    turn_checked: bool = False
    """Smart Turn has judged the user's current silence (it runs once per pause)."""
    has_spoken: bool = False
    """The session's later transcript deltas start with a space, so that joined deltas read as text."""


class CascadedBaseline(PerSessionAgent):
    name = "baseline"
    can_say = True

    def __init__(
        self,
        virtual_clock: bool,
        responder: Responder | None = None,
        voice: Voice = AGENT_VOICES[0],
        end_of_turn: str = "silence",
        end_of_turn_s: float = 0.5,
        barge_in_s: float = 0.15,
        fixed_latency_s: float | None = None,
    ):
        if end_of_turn not in END_OF_TURN_MODES:
            raise ValueError(f"end_of_turn must be one of {END_OF_TURN_MODES}")
        self.responder = responder or DomainResponder()
        self.voice = voice
        self.smart_turn = end_of_turn == "smart_turn"
        if self.smart_turn:
            self.name = "baseline-smart-turn"
            end_of_turn_s = SMART_TURN_FALLBACK_S
        self.end_of_turn_windows = max(1, round(end_of_turn_s / VAD_FRAME_S))
        self.barge_in_windows = max(1, round(barge_in_s / VAD_FRAME_S))
        self.offloader = Offloader(virtual_clock, self.tick_ms / 1000.0, fixed_latency_s=fixed_latency_s)
        self._pre_roll_ticks = max(1, round(PRE_ROLL_S * 1000 / self.tick_ms))

    def new_state(self, seed: int = 0) -> BaselineState:
        return BaselineState(seed=seed)

    def drop(self, state: AgentState) -> None:
        if isinstance(state, BaselineState) and state.job is not None:
            state.job.future.cancel()

    def close(self) -> None:
        self.offloader.close()

    def say(self, state: AgentState, text: str, say_id: str) -> None:
        state.say_queue.append((text, say_id))

    # -- the tick ------------------------------------------------------------

    def step_one(self, s: BaselineState, listen: np.ndarray) -> np.ndarray:
        probs = s.user_vad  # the runtime's VAD of this tick (duplex/session.py)
        s.gate.update(probs)
        s.history = (s.history + [listen])[-self._pre_roll_ticks :]
        user_active = s.gate.speaking
        s.interrupted = False

        if s.mode is Mode.SPEAKING:
            s.overlap_windows = s.overlap_windows + int(np.sum(probs >= s.gate.threshold)) if user_active else 0
            if s.overlap_windows >= self.barge_in_windows:
                self._finish_utterance(s, interrupted=True)
                s.mode, s.turn = Mode.USER_TURN, list(s.history)
                return self._silence(s)
            return self._play(s)

        if s.mode is Mode.THINKING:
            s.turn.append(listen)  # until answered, the user's turn may go on: keep its audio
            if user_active:  # the user was not done: keep listening, drop the pending answer
                s.job.future.cancel()
                if s.pending_say is not None:  # say it after this user turn instead
                    s.say_queue.insert(0, s.pending_say)
                s.job, s.pending_say = None, None
                s.mode = Mode.USER_TURN
                return self._silence(s)
            ready, result = self.offloader.poll(s.job, s.tick)
            if not ready:
                return self._silence(s)
            s.job = None
            if result is None:  # Smart Turn judged the turn unfinished: wait for more, or the fallback
                s.mode = Mode.USER_TURN
                return self._silence(s)
            text, audio, heard = result
            s.turn = []
            if heard:
                s.events.append({"type": "user.transcript", "text": heard})
            if len(audio):
                s.utterance = Utterance(text, audio, say_id=s.pending_say[1] if s.pending_say else None)
                s.pending_say = None
                s.events.append({"type": "agent.transcript.delta", "text": (" " if s.has_spoken else "") + text})
                s.has_spoken = True
                s.mode = Mode.SPEAKING
                return self._play(s)
            self._finish_say_without_audio(s)
            s.mode = Mode.LISTENING
            return self._silence(s)

        if s.mode is Mode.USER_TURN:
            s.turn.append(listen)
            if user_active:
                s.turn_checked = False
                if s.job is not None:  # a speculative answer to what was only a pause: the user went on
                    s.job.future.cancel()
                    s.job = None
                return self._silence(s)
            silence = s.gate.silence_windows
            if self.smart_turn:
                if not s.turn_checked and silence >= s.gate.hangover_windows:
                    s.turn_checked = True
                    audio = np.concatenate(s.turn)
                    s.job = self.offloader.submit(lambda: self._answer_if_complete(audio), s.tick)
                    s.mode = Mode.THINKING
                return self._silence(s)
            if s.job is None:  # the pause has begun: start answering now, speculatively
                audio = np.concatenate(s.turn)
                s.job = self.offloader.submit(lambda: self._answer(audio), s.tick)
            if silence >= self.end_of_turn_windows:
                s.mode = Mode.THINKING
            return self._silence(s)

        # LISTENING
        if user_active:
            s.mode, s.turn = Mode.USER_TURN, list(s.history)
        elif s.say_queue:
            s.pending_say = s.say_queue.pop(0)
            text = s.pending_say[0]
            s.job = self.offloader.submit(lambda: (text, self._speak(text), ""), s.tick)
            s.mode = Mode.THINKING
        return self._silence(s)

    # -- jobs (run off the tick loop) -----------------------------------------

    def _answer_if_complete(self, audio: np.ndarray) -> tuple[str, np.ndarray, str] | None:
        """Smart Turn first; the answer only when it judges the turn complete (None otherwise)."""
        return self._answer(audio) if end_of_turn_probability(audio) > SMART_TURN_THRESHOLD else None

    def _answer(self, audio: np.ndarray) -> tuple[str, np.ndarray, str]:
        heard, reply = hear_and_respond(audio, ASR_MODEL, self.responder.recognition_prompt, self.responder.respond)
        if not heard:
            return "", np.zeros(0, np.float32), heard  # nothing recognisable was said: stay silent
        reply = reply or NOT_UNDERSTOOD
        return reply, self._speak(reply), heard

    def _speak(self, text: str) -> np.ndarray:
        return synthesize(text, self.voice, self.sample_rate) * 0.9

    # -- output helpers -------------------------------------------------------

    def _silence(self, s: BaselineState) -> np.ndarray:
        s.speaking = False
        return np.zeros(self.tick_samples, dtype=np.float32)

    def _play(self, s: BaselineState) -> np.ndarray:
        u = s.utterance
        chunk = u.audio[u.played : u.played + self.tick_samples]
        u.played += len(chunk)
        out = np.zeros(self.tick_samples, dtype=np.float32)
        out[: len(chunk)] = chunk
        s.speaking = True
        if u.played >= len(u.audio):
            self._finish_utterance(s, interrupted=False)
            s.speaking = True  # this last slice still holds speech; the stop shows next tick
        return out

    def _finish_utterance(self, s: BaselineState, interrupted: bool) -> None:
        u = s.utterance
        s.utterance, s.mode, s.overlap_windows = None, Mode.LISTENING, 0
        s.interrupted = interrupted
        s.speaking = False
        if u is not None and u.say_id is not None:
            s.events.append(
                {"type": "agent.say.done", "id": u.say_id, "interrupted": interrupted, "spoken_text": u.spoken_text()}
            )

    def _finish_say_without_audio(self, s: BaselineState) -> None:
        if s.pending_say is not None:
            s.events.append({"type": "agent.say.done", "id": s.pending_say[1], "interrupted": False, "spoken_text": ""})
        s.pending_say = None
