"""Training the listen-while-speaking model (LSLM, Ma et al. 2024) on the synchronous speech LM.

Two stages share this module:

- **tts** (stage 1): the agent speaks a sentence given as its text stream.
  The user channel is silent. The model learns to turn text tokens into codec
  tokens with natural timing, and to emit silence when there is nothing to say.
- **listen** (stage 2): the same, while the user channel carries something
  at a random moment of the agent's speech: a command interruption ("stop",
  "wait", "hold on"), a voice interruption (any sentence in another voice),
  a backchannel ("mm-hmm", "yeah") or noise. After an interruption the
  target falls silent `stop_ticks` after the onset (LSLM stops within a few
  ticks); after a backchannel or noise it goes on unchanged.

Every example is a pure function of (seed, example index): the agent's
sentence is rendered with espeak-ng word timings, placed on a canvas of
`ticks` ticks, encoded by the frozen codec; the user's channel is encoded by
the frozen listen encoder. Token timing follows the contract in
duplex/lm_agent.py: the column at position t holds codebook 0 of frame t and
codebooks 1.. of frame t - d, where frame f is the agent's audio of tick
f + 1 + d; each word's text tokens start `text_lead` ticks before its audio.

Each checkpoint folder is a complete agent (tokenizer and the frozen codec
and listen encoder copied in), so `duplex respond --model FOLDER` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audio.frames import SAMPLE_RATE, TICK_SAMPLES
from audio.tts import Voice, speak_words, synthesize
from training.speech_lm_stage import Example, SpeechLMStage, SpeechLMStageConfig
from training.speech_source import coloured_noise, random_voice
from training.speech_text import training_sentence
from training.trainer import TrainConfig

COMMANDS = ("stop", "wait", "hold on", "stop please", "wait a second", "sorry, hold on")
BACKCHANNELS = ("mm-hmm", "yeah", "right", "okay", "uh-huh")
AGENT_VOICE = Voice("en-us", None, 165, 45)


@dataclass(frozen=True)
class LSMStageConfig(SpeechLMStageConfig):
    listening: bool = False
    """False: stage 1 (tts); True: stage 2 (listen while speaking; --init with a stage 1 checkpoint)."""
    interrupt_prob: float = 0.5
    backchannel_prob: float = 0.2
    noise_prob: float = 0.15
    stop_ticks: tuple[int, int] = (1, 3)
    snr_db: tuple[float, float] = (5.0, 20.0)


class LSMStage(SpeechLMStage):
    def __init__(self, config: LSMStageConfig):
        super().__init__(config)
        self.name = "lsm-listen" if config.listening else "lsm-tts"

    def example(self, index: int) -> Example:
        """The index-th example: pure function of (seed, index)."""
        c = self.config
        rng = np.random.default_rng([c.seed, index, 7])
        speech = speak_words(training_sentence(c.seed, index), AGENT_VOICE)
        n = self.batches.samples
        start_tick = int(rng.integers(1, 8))
        agent = np.zeros(n, np.float32)
        placed = speech.audio[: n - start_tick * TICK_SAMPLES]
        agent[start_tick * TICK_SAMPLES : start_tick * TICK_SAMPLES + len(placed)] = placed
        words = [(w.text, start_tick + w.start * SAMPLE_RATE / TICK_SAMPLES) for w in speech.words]
        user = np.zeros(n, np.float32)
        kind = "tts"
        if c.listening:
            kind, cut_tick = self._user_event(rng, user, start_tick, start_tick + len(placed) / TICK_SAMPLES, agent)
            if cut_tick is not None:
                fade = np.linspace(1.0, 0.0, 160, dtype=np.float32)
                cut = cut_tick * TICK_SAMPLES
                agent[cut : cut + 160] *= fade[: len(agent[cut : cut + 160])]
                agent[cut + 160 :] = 0.0
                words = [(w, t) for w, t in words if t < cut_tick]
        return Example(agent, user, words, kind=kind)

    def _user_event(self, rng, user, speech_start, speech_end, agent) -> tuple[str, int | None]:
        """Write a user event into `user`; returns (kind, tick where the agent's speech is cut, or None)."""
        c = self.config
        if speech_end - speech_start < 6:
            return "clean", None
        onset = int(rng.integers(int(speech_start) + 3, int(speech_end) - 1))
        draw = rng.random()
        if draw < c.interrupt_prob:
            text = COMMANDS[int(rng.integers(len(COMMANDS)))] if rng.random() < 0.5 else training_sentence(
                c.seed + 1, int(rng.integers(1 << 30)))
            self._place(user, synthesize(text, random_voice(rng, held_out=False)), onset, agent, rng)
            return "interruption", onset + int(rng.integers(c.stop_ticks[0], c.stop_ticks[1] + 1))
        if draw < c.interrupt_prob + c.backchannel_prob:
            self._place(user, synthesize(BACKCHANNELS[int(rng.integers(len(BACKCHANNELS)))],
                                         random_voice(rng, held_out=False)), onset, agent, rng)
            return "backchannel", None
        if draw < c.interrupt_prob + c.backchannel_prob + c.noise_prob:
            noise = coloured_noise(rng, len(user))
            user += noise * _rms(agent) / 10 ** (rng.uniform(*c.snr_db) / 20)
            return "noise", None
        return "clean", None

    def _place(self, user: np.ndarray, audio: np.ndarray, tick: int, agent: np.ndarray, rng) -> None:
        loud = np.flatnonzero(np.abs(audio) > 0.01)
        audio = audio[loud[0] :] if len(loud) else audio
        start = tick * TICK_SAMPLES
        part = audio[: len(user) - start]
        level = _rms(agent) * 10 ** (rng.uniform(-6, 6) / 20) / _rms(part)
        user[start : start + len(part)] += part * level


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) + 1e-9


PRESETS: dict[str, tuple[LSMStageConfig, TrainConfig]] = {
    "default": (LSMStageConfig(), TrainConfig(steps=6000, batch_size=8, lr=6e-4, lr_warmup_steps=200, checkpoint_minutes=5)),
    "listen": (
        LSMStageConfig(listening=True),
        TrainConfig(steps=4000, batch_size=8, lr=3e-4, lr_warmup_steps=100, checkpoint_minutes=5),
    ),
}
"""Named settings: `default` is stage 1 (tts) from scratch; `listen` is stage 2, which
needs --init pointing at a stage 1 checkpoint folder."""
CONFIG_CLASS = LSMStageConfig


def build_stage(config: LSMStageConfig) -> LSMStage:
    return LSMStage(config)
