"""Renders one synthetic dialogue: voices, timeline and noise become a stereo signal and its annotations.

Everything about dialogue number `index` follows from (seed, index) alone,
through independent random streams for the split, the voices, the timeline
and the noise, so a dialogue comes out byte-identical whichever machine or
shard renders it, and changing the noise recipe leaves the words and timing
alone.

Channel 0 is the agent, channel 1 the user (moshi-finetune's convention).
Only the user channel gets background noise and a random level: the agent's
channel is what a model learns to produce, so it stays clean and steady.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np

from audio.frames import SAMPLE_RATE
from audio.speech_cache import cached_speak_words
from audio.tts import Speech, Voice, speak_words
from duplex.domains import AGENT_VOICES, SPLITS, sample_user_voice
from training.timeline import AGENT, Timeline, TimelineParams, build_timeline

_CUT_FADE_S = 0.01
"""A speaker cut off by a barge-in fades out over 10 ms instead of clicking."""


@dataclass(frozen=True)
class NoiseParams:
    """Background noise on the user channel: how often, how loud (SNR to the user's speech), which colours."""

    prob: float = 0.5
    snr_range_db: tuple[float, float] = (20.0, 40.0)
    colors: tuple[str, ...] = ("white", "pink")
    """"brown" (rumble) exists too but is off by default: it moves VAD-measured speech edges by
    100-200 ms even at 35 dB SNR, so data stats could no longer check the annotations (docs/data.md)."""


@dataclass(frozen=True)
class RenderConfig:
    """Everything a dialogue depends on besides its index."""

    seed: int = 0
    dialogue_s: float = 60.0
    split_fractions: tuple[float, float, float] = (0.9, 0.05, 0.05)
    """Share of dialogues in train / valid / test."""
    agent_voices: tuple[Voice, ...] = AGENT_VOICES
    user_gain_db_range: tuple[float, float] = (-6.0, 0.0)
    timeline: TimelineParams = field(default_factory=TimelineParams)
    noise: NoiseParams = field(default_factory=NoiseParams)


@dataclass(frozen=True)
class RenderedDialogue:
    index: int
    split: str
    audio: np.ndarray
    """(samples, 2) float32 at SAMPLE_RATE: channel 0 agent, channel 1 user."""
    timeline: Timeline
    info: dict
    """How it was made (seed, voices, gain, noise), stored with the annotations."""


def dialogue_split(seed: int, index: int, fractions: tuple[float, float, float]) -> str:
    """The split dialogue `index` belongs to: a fixed draw, so sharding never moves a dialogue between splits."""
    u = np.random.default_rng([seed, index, 0]).random()
    return SPLITS[int(np.searchsorted(np.cumsum(fractions) / sum(fractions), u, side="right").clip(0, 2))]


@lru_cache(maxsize=256)
def _agent_speech(text: str, voice: Voice) -> Speech:
    """The agent says the same answers over and over: each is synthesised once per process (and, for slow
    voices, once per machine: audio/speech_cache.py)."""
    return cached_speak_words(text, voice)


def render_dialogue(index: int, config: RenderConfig) -> RenderedDialogue:
    split = dialogue_split(config.seed, index, config.split_fractions)
    voice_rng, timeline_rng, level_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence([config.seed, index, 1]).spawn(3)
    )
    agent_voice = config.agent_voices[int(voice_rng.integers(len(config.agent_voices)))]
    user_voice = sample_user_voice(voice_rng, split)

    def speak_as(text: str, speaker: str) -> Speech:
        return _agent_speech(text, agent_voice) if speaker == AGENT else speak_words(text, user_voice)

    timeline = build_timeline(timeline_rng, split, speak_as, config.dialogue_s, config.timeline)
    audio = mix(timeline)
    gain_db = float(level_rng.uniform(*config.user_gain_db_range))
    audio[:, 1] *= 10 ** (gain_db / 20)
    noise = add_noise(level_rng, audio[:, 1], config.noise)
    np.clip(audio, -1.0, 1.0, out=audio)
    info = {
        "seed": config.seed,
        "index": index,
        "voices": {"agent": asdict(agent_voice), "user": asdict(user_voice)},
        "user_gain_db": round(gain_db, 2),
        "noise": noise,
    }
    return RenderedDialogue(index, split, audio, timeline, info)


def mix(timeline: Timeline, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Place every utterance on its channel; a cut utterance stops at its cut with a short fade."""
    out = np.zeros((round(timeline.duration * sample_rate), 2), dtype=np.float32)
    fade = round(_CUT_FADE_S * sample_rate)
    for placement in timeline.placements:
        audio = placement.speech.audio
        if placement.stop is not None:
            audio = audio[: round(placement.stop * sample_rate)].copy()
            tail = min(fade, len(audio))
            audio[len(audio) - tail :] *= np.linspace(1.0, 0.0, tail, dtype=np.float32)
        start = round(placement.start * sample_rate)
        channel = 0 if placement.speaker == AGENT else 1
        out[start : start + len(audio), channel] += audio[: len(out) - start]
    return out


def add_noise(rng: np.random.Generator, channel: np.ndarray, params: NoiseParams) -> dict | None:
    """Add coloured noise in place at a random SNR relative to the channel's speech; returns what was added."""
    if rng.random() >= params.prob:
        return None
    color = params.colors[int(rng.integers(len(params.colors)))]
    snr_db = float(rng.uniform(*params.snr_range_db))
    speech = channel[np.abs(channel) > 1e-3]
    if len(speech) == 0:
        return None
    speech_rms = float(np.sqrt(np.mean(np.square(speech, dtype=np.float64))))
    channel += colored_noise(rng, len(channel), color) * np.float32(speech_rms / 10 ** (snr_db / 20))
    return {"color": color, "snr_db": round(snr_db, 2)}


_COLOR_EXPONENTS = {"white": 0.0, "pink": 0.5, "brown": 1.0}
"""Amplitude spectrum ~ 1/f^exponent: power falls 0, 3 or 6 dB per octave."""
_NOISE_LOWEST_HZ = 60.0


def colored_noise(rng: np.random.Generator, n: int, color: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """n samples of white, pink or brown Gaussian noise at unit RMS (spectrally shaped white noise).

    Nothing below 60 Hz: pink and brown spectra grow without bound towards 0 Hz,
    and unfiltered they are mostly an inaudible drift that would swamp the level.
    """
    if color not in _COLOR_EXPONENTS:
        raise ValueError(f"unknown noise colour {color!r} (known: {', '.join(_COLOR_EXPONENTS)})")
    size = 1 << max(1, (n - 1).bit_length())  # a power of two keeps the FFT fast
    spectrum = np.fft.rfft(rng.standard_normal(size))
    freqs = np.fft.rfftfreq(size, 1.0 / sample_rate)
    audible = freqs >= _NOISE_LOWEST_HZ
    spectrum[audible] /= freqs[audible] ** _COLOR_EXPONENTS[color]
    spectrum[~audible] = 0.0
    noise = np.fft.irfft(spectrum, size)[:n]
    noise -= noise.mean()
    return (noise / max(float(np.sqrt(np.mean(noise**2))), 1e-12)).astype(np.float32)


def config_to_json(config: RenderConfig) -> dict:
    """The recipe as plain JSON (stored as DIR/recipe.json beside a dataset)."""
    return asdict(config)


def config_from_json(data: dict) -> RenderConfig:
    """Rebuild a recipe from JSON; keys left out keep their defaults, unknown keys are an error."""
    data = dict(data)
    try:
        if "agent_voices" in data:
            data["agent_voices"] = tuple(Voice(**v) for v in data["agent_voices"])
        if "timeline" in data:
            data["timeline"] = TimelineParams(**_tuples(data["timeline"]))
        if "noise" in data:
            data["noise"] = NoiseParams(**_tuples(data["noise"]))
        return RenderConfig(**_tuples(data))
    except TypeError as exc:
        raise ValueError(f"bad recipe: {exc}") from None


def _tuples(fields: dict) -> dict:
    """JSON has lists where the recipe has tuples (ranges, fractions)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
