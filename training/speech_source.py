"""Unlabelled speech synthesised on the fly, for the codec and the listen encoder.

Each example is espeak-ng speech (audio/tts.py) of a procedural sentence
(training/speech_text.py) in a random voice: an English accent, a voice
variant, a speed and a pitch, at a random level; optionally mixed with noise
or a second talker. Everything about example i of a stream is a pure function
of (seed, i), so a training step's batch can be rebuilt after a restart
without saving any data-loader state, and every process of a distributed run
draws its own disjoint examples.

Voices are split: the held-out variants and accent never occur in training,
so evaluation measures generalisation to unseen speakers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from audio.frames import SAMPLE_RATE
from audio.tts import Voice, synthesize
from training.speech_text import held_out_sentence, training_sentence

TRAIN_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-029", "en-us-nyc")
TRAIN_VARIANTS = (
    None, "f1", "f2", "f3", "f5", "m1", "m2", "m3", "m4", "m5", "m7", "m8", "klatt", "klatt2", "klatt3",
    "klatt5", "Alex", "Andrea", "Annie", "aunty", "benjamin", "david", "ed", "edward", "iven", "max",
    "michel", "paul", "rob", "robert", "steph", "travis", "victor", "norbert", "shelby", "grandma", "grandpa",
)
HELD_OUT_ACCENTS = ("en-gb-x-gbcwmd",)
HELD_OUT_VARIANTS = ("f4", "m6", "klatt4", "anika", "steph2", "john")


def random_voice(rng: np.random.Generator, held_out: bool) -> Voice:
    """A voice from the training or the held-out pool, with a random speed and pitch."""
    accents = TRAIN_ACCENTS + HELD_OUT_ACCENTS if held_out else TRAIN_ACCENTS
    variants = HELD_OUT_VARIANTS if held_out else TRAIN_VARIANTS
    return Voice(
        name=accents[int(rng.integers(len(accents)))],
        variant=variants[int(rng.integers(len(variants)))],
        speed=int(rng.integers(130, 231)),
        pitch=int(rng.integers(20, 81)),
    )


def coloured_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """White, pink or brown noise (1/f^k spectrum, k = 0, 1, 2), unit RMS."""
    exponent = int(rng.integers(3))
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
    noise = np.fft.irfft(spectrum / freqs ** (exponent / 2), n)
    return (noise / (np.sqrt(np.mean(noise**2)) + 1e-9)).astype(np.float32)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) + 1e-9


@dataclass(frozen=True)
class SpeechSourceConfig:
    """What the stream of examples looks like."""

    seconds: float = 2.56
    seed: int = 0
    held_out: bool = False
    noise_prob: float = 0.0  # chance of coloured noise mixed in
    talker_prob: float = 0.0  # chance of a second voice mixed in
    snr_db: tuple[float, float] = (5.0, 25.0)
    level_dbfs: tuple[float, float] = (-32.0, -16.0)


@dataclass
class SpeechBatch:
    """clean: the main talker alone; mixed: what a microphone would hear (equal to clean without interference)."""

    clean: torch.Tensor  # (B, samples)
    mixed: torch.Tensor  # (B, samples)


class SpeechSource:
    def __init__(self, config: SpeechSourceConfig = SpeechSourceConfig()):
        self.config = config
        self.samples = int(round(config.seconds * SAMPLE_RATE))

    def _speech(self, rng: np.random.Generator, index: int) -> np.ndarray:
        """A random crop (or zero-padded placement) of one sentence, at a random level."""
        voice = random_voice(rng, self.config.held_out)
        text = held_out_sentence(index) if self.config.held_out else training_sentence(self.config.seed, index)
        speech = synthesize(text, voice)
        out = np.zeros(self.samples, dtype=np.float32)
        if len(speech) >= self.samples:
            start = int(rng.integers(0, len(speech) - self.samples + 1))
            out[:] = speech[start : start + self.samples]
        else:
            start = int(rng.integers(0, self.samples - len(speech) + 1))
            out[start : start + len(speech)] = speech
        level = 10 ** (rng.uniform(*self.config.level_dbfs) / 20)
        out *= level / _rms(out)
        return out * min(1.0, 0.99 / (np.abs(out).max() + 1e-9))

    def example(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(clean, mixed) for example `index` of this stream."""
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, index, int(cfg.held_out)])
        clean = self._speech(rng, index)
        mixed = clean
        if rng.random() < cfg.talker_prob:
            mixed = mixed + self._at_snr(clean, self._speech(rng, index + 1_000_000_007), rng)
        if rng.random() < cfg.noise_prob:
            mixed = mixed + self._at_snr(clean, coloured_noise(rng, self.samples), rng)
        peak = np.abs(mixed).max()
        if peak > 0.99:  # keep the mixture in range; the clean target follows the same gain
            clean, mixed = clean * (0.99 / peak), mixed * (0.99 / peak)
        return clean.astype(np.float32), mixed.astype(np.float32)

    def _at_snr(self, clean: np.ndarray, interference: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        snr = rng.uniform(*self.config.snr_db)
        return interference * (_rms(clean) / _rms(interference) / 10 ** (snr / 20))

    def batch(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> SpeechBatch:
        """The batch of process `rank` at training step `step` (disjoint across processes)."""
        first = (step * world_size + rank) * batch_size
        pairs = [self.example(first + i) for i in range(batch_size)]
        return SpeechBatch(
            clean=torch.from_numpy(np.stack([c for c, _ in pairs])),
            mixed=torch.from_numpy(np.stack([m for _, m in pairs])),
        )
