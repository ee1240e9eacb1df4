"""Unlabelled speech synthesised on the fly, for the codec and the listen encoder.

Each example is espeak-ng speech (audio/tts.py) of a procedural sentence
(training/speech_text.py) in a random voice: an English accent, a voice
variant, a speed and a pitch, at a random level; optionally mixed with noise
or a second talker. Everything about example i of a stream is a pure function
of (seed, i), so a training step's batch can be rebuilt after a restart
without saving any data-loader state, and every process of a distributed run
draws its own disjoint examples.

Voices are split as the dialogue data splits them: the held-out variants
never occur in training, so evaluation measures generalisation to unseen
speakers. A share of the examples can be spoken in the agent's own persona
voice, which is what the codec mostly has to carry.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from audio.align import warp_onto
from audio.frames import SAMPLE_RATE
from audio.speech_cache import cached_speak_words
from audio.timbres import timbre_names
from audio.tts import Voice, synthesize
from duplex.domains import (
    AGENT_VOICES,
    NATURAL_AGENT_VOICE,
    USER_ACCENTS,
    USER_PITCH_RANGE,
    USER_SPEED_RANGE,
    USER_VOICE_VARIANTS,
)
from training.speech_text import held_out_sentence, training_sentence

ACCENTS = USER_ACCENTS
TRAIN_VARIANTS = (None, *USER_VOICE_VARIANTS["train"])
HELD_OUT_VARIANTS = (*USER_VOICE_VARIANTS["valid"], *USER_VOICE_VARIANTS["test"])
"""The dialogue data's voice split (duplex/domains.py): voices held out there are held out here too,
so that no model of the stack has heard the voices the dialogue evaluation speaks with."""
TRAIN_SPEEDS, TRAIN_PITCHES = (130, 230), (20, 80)  # wider than the dialogue data's, for robustness


def random_voice(rng: np.random.Generator, held_out: bool, timbre_prob: float = 0.0) -> Voice:
    """A training voice (wide speed and pitch ranges) or a held-out one (the dialogue data's ranges).

    With probability timbre_prob a training voice takes one of the generated
    timbres (audio/timbres.py) instead of one of espeak-ng's forty training
    variants: many more voices, so that held-out ones are less of a surprise.
    """
    if held_out:
        variants = HELD_OUT_VARIANTS
    elif timbre_prob > 0 and rng.random() < timbre_prob:
        variants = timbre_names()
    else:
        variants = TRAIN_VARIANTS
    speeds, pitches = (USER_SPEED_RANGE, USER_PITCH_RANGE) if held_out else (TRAIN_SPEEDS, TRAIN_PITCHES)
    return Voice(
        name=ACCENTS[int(rng.integers(len(ACCENTS)))],
        variant=variants[int(rng.integers(len(variants)))],
        speed=int(rng.integers(speeds[0], speeds[1] + 1)),
        pitch=int(rng.integers(pitches[0], pitches[1] + 1)),
    )


def coloured_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """White, pink or brown noise (1/f^k spectrum, k = 0, 1, 2), unit RMS."""
    exponent = int(rng.integers(3))
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
    noise = np.fft.irfft(spectrum / freqs ** (exponent / 2), n)
    return (noise / (np.sqrt(np.mean(noise**2)) + 1e-9)).astype(np.float32)


def rms(x: np.ndarray) -> float:
    """Root mean square (in float64; never 0, so that it can divide)."""
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) + 1e-9


def at_snr(speech: np.ndarray, interference: np.ndarray, snr_db: float) -> np.ndarray:
    """`interference` scaled to sit `snr_db` below `speech`."""
    return interference * (rms(speech) / rms(interference) / 10 ** (snr_db / 20))


@dataclass(frozen=True)
class SpeechSourceConfig:
    """What the stream of examples looks like."""

    seconds: float = 2.56
    seed: int = 0
    held_out: bool = False
    agent_voice_prob: float = 0.0  # chance of the agent persona's voice (AGENT_VOICES) instead of a random one
    noise_prob: float = 0.0  # chance of coloured noise mixed in
    talker_prob: float = 0.0  # chance of a second voice mixed in
    timbre_prob: float = 0.0  # chance that a training voice is a generated timbre (random_voice)
    natural_prob: float = 0.0  # chance of the natural persona (NATURAL_AGENT_VOICE, Piper) saying a pooled sentence
    natural_pool: int = 2000  # sentences the natural persona says: Piper is slow, so each is rendered once (disk cache)
    twin_prob: float = 0.0  # chance that the talker's sentence also comes in a second voice, aligned to it (`target`)
    snr_db: tuple[float, float] = (5.0, 25.0)
    level_dbfs: tuple[float, float] = (-32.0, -16.0)


@dataclass
class SpeechBatch:
    """clean: the main talker alone; mixed: what a microphone would hear (equal to clean without interference);
    target: the main talker's words in another voice, on its timeline, where a twin was drawn (else clean)."""

    clean: torch.Tensor  # (B, samples)
    mixed: torch.Tensor  # (B, samples)
    target: torch.Tensor  # (B, samples)


class SpeechSource:
    def __init__(self, config: SpeechSourceConfig = SpeechSourceConfig()):
        self.config = config
        self.samples = int(round(config.seconds * SAMPLE_RATE))

    def _speech(self, rng: np.random.Generator, index: int, twin: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """A random crop (or zero-padded placement) of one sentence at a random level, and its target: with
        `twin`, the same crop of the sentence said by a second voice and warped onto the first's timeline
        (audio/align.py); otherwise the crop itself.

        Why twins: the listen encoder's objective predicts the talker's coming
        log-mel frames, timbre included; predicting another voice's frames of
        the same words rewards features that carry what is said rather than
        who says it (the idea of ContentVec), which is what a probe trained on
        some voices and tested on others can read.
        """
        cfg = self.config
        other = None
        if cfg.natural_prob > 0 and rng.random() < cfg.natural_prob:
            speech = self._natural(int(rng.integers(cfg.natural_pool)))
        else:
            if rng.random() < cfg.agent_voice_prob:
                voice = AGENT_VOICES[int(rng.integers(len(AGENT_VOICES)))]
            else:
                voice = random_voice(rng, cfg.held_out, cfg.timbre_prob)
            text = held_out_sentence(index) if cfg.held_out else training_sentence(cfg.seed, index)
            speech = synthesize(text, voice)
            if twin:  # another voice at the talker's speed: any accent, variant and pitch
                second = replace(random_voice(rng, cfg.held_out, cfg.timbre_prob), speed=voice.speed)
                try:
                    other = warp_onto(speech, synthesize(text, second))
                except ValueError:  # tempos too far apart to align (a variant with its own pace): no twin
                    other = None
        placed = [np.zeros(self.samples, dtype=np.float32) for _ in range(1 if other is None else 2)]
        if len(speech) >= self.samples:
            start = int(rng.integers(0, len(speech) - self.samples + 1))
            for out, audio in zip(placed, (speech, other)):
                out[:] = audio[start : start + self.samples]
        else:
            start = int(rng.integers(0, self.samples - len(speech) + 1))
            for out, audio in zip(placed, (speech, other)):
                out[start : start + len(speech)] = audio
        level = 10 ** (rng.uniform(*cfg.level_dbfs) / 20)
        for out in placed:  # every target at the talker's level
            out *= level / rms(out)
            out *= min(1.0, 0.99 / (np.abs(out).max() + 1e-9))
        return placed[0], placed[-1]

    def _natural(self, sentence: int) -> np.ndarray:
        """Pooled sentence `sentence` in the natural persona's voice, rendered once per machine (disk cache)."""
        text = held_out_sentence(sentence) if self.config.held_out else training_sentence(self.config.seed, sentence)
        return cached_speak_words(text, NATURAL_AGENT_VOICE).audio

    def example(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(clean, mixed, target) for example `index` of this stream (SpeechBatch says what each is)."""
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, index, int(cfg.held_out)])
        twin = cfg.twin_prob > 0 and rng.random() < cfg.twin_prob
        clean, target = self._speech(rng, index, twin)
        mixed = clean
        if rng.random() < cfg.talker_prob:
            mixed = mixed + self._at_snr(clean, self._speech(rng, index + 1_000_000_007)[0], rng)
        if rng.random() < cfg.noise_prob:
            mixed = mixed + self._at_snr(clean, coloured_noise(rng, self.samples), rng)
        peak = np.abs(mixed).max()
        if peak > 0.99:  # keep the mixture in range; the clean targets follow the same gain
            clean, mixed, target = clean * (0.99 / peak), mixed * (0.99 / peak), target * (0.99 / peak)
        return clean.astype(np.float32), mixed.astype(np.float32), target.astype(np.float32)

    def _at_snr(self, clean: np.ndarray, interference: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return at_snr(clean, interference, rng.uniform(*self.config.snr_db))

    def batch(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> SpeechBatch:
        """The batch of process `rank` at training step `step` (disjoint across processes)."""
        first = (step * world_size + rank) * batch_size
        clean, mixed, target = zip(*(self.example(first + i) for i in range(batch_size)))
        return SpeechBatch(*(torch.from_numpy(np.stack(part)) for part in (clean, mixed, target)))
