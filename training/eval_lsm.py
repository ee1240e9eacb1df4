"""Listen-while-speaking evaluation (LSLM's measures) for any agent that can speak given text.

On held-out sentences, each agent is asked to say the sentence (`agent.say`)
while the user is silent, interrupts, backchannels, or makes noise:

- **intelligibility**: Whisper's word error rate on what the agent said,
  beside the same judge's WER on the same sentences rendered directly by
  espeak-ng in the agent's voice (the judge's own floor), in the same run;
- **interruption**: the user cuts in one second into the agent's speech with
  a command ("stop", "wait", ...) or a sentence, in a held-out voice, clean
  or with noise at 10 dB SNR. LSLM's rule: a stop counts when the agent falls
  silent within 1 s of the onset. Precision and recall (hence F1) pit the
  interruptions (should stop) against backchannels and noise (should not);
- **stop latency**: from the onset to the agent's silence;
- **stops with a silent user**: the same rule on the run without the user,
  so the agent's own early ends and long pauses, which count as stops in
  every trial, are seen apart (a control, not part of F1);
- **spoken_text**: on interrupted utterances, the word error rate between the
  `agent.say.done` report and Whisper's transcript of what was really said.

The interruption's onset is placed on the agent's own timing: a first run
without the user finds when the agent starts speaking; since every run is
seeded and the user is silent until the onset, the agent does the same
thing up to it in the measured run.
"""

from __future__ import annotations

from dataclasses import dataclass

import jiwer
import numpy as np

from audio.asr import transcribe
from audio.frames import SAMPLE_RATE
from audio.tts import Voice, synthesize
from duplex.agent import Agent
from duplex.domains import AGENT_VOICES, BACKCHANNELS, normalize
from duplex.metrics import AGENT, channel_ipus
from duplex.respond import respond_audio
from training.speech_source import coloured_noise, random_voice
from training.speech_text import held_out_sentence

COMMANDS = ("stop", "wait", "hold on", "wait a moment")
STOP_WINDOW_S = 1.0
ONSET_AFTER_S = 1.0
KINDS = ("interruption", "interruption_noisy", "backchannel", "noise")


@dataclass
class Trial:
    kind: str
    stopped: bool
    stop_s: float | None
    spoken_report: str | None = None
    spoken_heard: str | None = None


def _words(text: str) -> str:
    return " ".join(normalize(text))


def wer(reference: str, hypothesis: str) -> float:
    ref, hyp = _words(reference), _words(hypothesis)
    return float(jiwer.wer(ref, hyp)) if ref else 0.0


def _speech_start(audio: np.ndarray) -> float | None:
    ipus = channel_ipus(audio, AGENT)
    return ipus[0].start if ipus else None


def _user_event(kind: str, rng: np.random.Generator, length: int, onset_s: float, level: float) -> np.ndarray:
    user = np.zeros(length, np.float32)
    voice = random_voice(rng, held_out=True)
    if kind.startswith("interruption"):
        text = COMMANDS[int(rng.integers(len(COMMANDS)))] if rng.random() < 0.5 else held_out_sentence(
            int(rng.integers(1000, 2000)))
        audio = synthesize(text, voice)
    elif kind == "backchannel":
        audio = synthesize(BACKCHANNELS[int(rng.integers(len(BACKCHANNELS)))], voice)
    else:
        audio = coloured_noise(rng, int(1.5 * SAMPLE_RATE)) * 0.3
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    audio = audio[loud[0] :] if len(loud) else audio
    audio = audio * level / (np.sqrt(np.mean(audio**2)) + 1e-9)
    i = int(onset_s * SAMPLE_RATE)
    part = audio[: length - i]
    user[i : i + len(part)] += part
    if kind == "interruption_noisy":
        noise = coloured_noise(rng, length)
        user += noise * level / 10 ** (10 / 20)  # 10 dB SNR against the interrupting speech
    return user


def call_length(text: str) -> int:
    """Samples of a call long enough for the agent to say the text and fall silent."""
    return int((len(text.split()) * 0.45 + 4.0) * SAMPLE_RATE)


def said_quietly(agent: Agent, text: str, seed: int, judge: str) -> tuple[np.ndarray, float]:
    """The agent's audio when asked to say text to a silent user, and the judge's WER on it."""
    quiet = respond_audio(agent, np.zeros(call_length(text), np.float32), seed=seed, say=text)
    return quiet.agent_audio, wer(text, transcribe(quiet.agent_audio, model=judge)[0])


def floor_wer(text: str, judge: str, agent_voice: Voice = AGENT_VOICES[0]) -> float:
    """The judge's WER on the text rendered directly by espeak-ng in the agent's voice."""
    return wer(text, transcribe(synthesize(text, agent_voice), model=judge)[0])


def evaluate_agent(agent: Agent, sentences: int, seed: int = 0, judge: str = "base",
                   agent_voice: Voice = AGENT_VOICES[0]) -> dict:
    """The table row for one agent (it must be able to speak given text)."""
    rng = np.random.default_rng(seed)
    wers, floors, trials = [], [], []
    for i in range(sentences):
        text = held_out_sentence(i)
        length = call_length(text)
        quiet_audio, quiet_wer = said_quietly(agent, text, seed + i, judge)
        wers.append(quiet_wer)
        floors.append(floor_wer(text, judge, agent_voice))
        start = _speech_start(quiet_audio)
        if start is None:
            continue
        onset = start + ONSET_AFTER_S
        trials.append(_trial("silence", quiet_audio, onset))
        level = float(np.sqrt(np.mean(quiet_audio[quiet_audio != 0] ** 2)) + 1e-4)
        for kind in KINDS:
            user = _user_event(kind, rng, length, onset, level)
            r = respond_audio(agent, user, seed=seed + i, say=text)
            trial = _trial(kind, r.agent_audio, onset)
            done = [e for e in r.events if e["type"] == "agent.say.done"]
            if kind.startswith("interruption") and done and done[0]["interrupted"]:
                trial.spoken_report = done[0]["spoken_text"]
                # what was said before the stop (the agent may speak again afterwards)
                end = _speech_end(r.agent_audio, onset)
                trial.spoken_heard = transcribe(r.agent_audio[: int((end + 0.1) * SAMPLE_RATE)], model=judge)[0]
            trials.append(trial)
    return summarise(wers, floors, trials)


def _trial(kind: str, agent_audio: np.ndarray, onset: float) -> Trial:
    """LSLM's rule: the agent stopped when its speech that began before onset + STOP_WINDOW_S has ended by
    then. Applied to the agent's audio with a silent user (kind "silence"), it counts the agent's own
    early ends and long pauses, which read as stops in the other trials too: the control for them."""
    stop_s = _speech_end(agent_audio, onset) - onset
    stopped = stop_s <= STOP_WINDOW_S
    return Trial(kind, stopped, stop_s if stopped else None)


def _speech_end(agent_audio: np.ndarray, onset: float) -> float:
    """When the agent's speech that began before onset + STOP_WINDOW_S ends (the onset if there is none)."""
    after = [iv for iv in channel_ipus(agent_audio, AGENT) if iv.start < onset + STOP_WINDOW_S]
    return max((iv.end for iv in after), default=onset)


def _f1(trials: list[Trial], positive: str) -> float | None:
    tp = sum(t.stopped for t in trials if t.kind == positive)
    fp = sum(t.stopped for t in trials if t.kind in ("backchannel", "noise"))
    fn = sum(not t.stopped for t in trials if t.kind == positive)
    return round(2 * tp / (2 * tp + fp + fn), 3) if tp + fp + fn else None


def summarise(wers: list[float], floors: list[float], trials: list[Trial]) -> dict:
    def rate(kind: str) -> float | None:
        these = [t.stopped for t in trials if t.kind == kind]
        return round(float(np.mean(these)), 3) if these else None

    stops = [t.stop_s for t in trials if t.kind.startswith("interruption") and t.stop_s is not None]
    reported = [wer(t.spoken_heard, t.spoken_report) for t in trials if t.spoken_report is not None and t.spoken_heard]
    return {
        "wer": round(float(np.mean(wers)), 3) if wers else None,
        "wer_floor_espeak": round(float(np.mean(floors)), 3) if floors else None,
        "f1_clean": _f1(trials, "interruption"),
        "f1_noisy": _f1(trials, "interruption_noisy"),
        "stop_latency_median_s": round(float(np.median(stops)), 3) if stops else None,
        "false_stops_backchannel": rate("backchannel"),
        "false_stops_noise": rate("noise"),
        "stops_silent_user": rate("silence"),
        "spoken_text_wer": round(float(np.mean(reported)), 3) if reported else None,
        "trials": sum(t.kind != "silence" for t in trials),
    }
