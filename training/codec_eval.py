"""Listening test of a codec: Whisper WER and STOI of resynthesised held-out speech.

Held-out sentences (training/speech_text.py) in held-out voices
(training/speech_source.py), or in the agent persona's voice, are spoken by espeak-ng, passed through the codec
(encode, then decode), and both the original and the resynthesis are
transcribed by the same Whisper judge (audio/asr.py). The codec is as good as
its WER is close to the original's; STOI (pystoi) measures intelligibility
without a recogniser.
"""

from __future__ import annotations

from dataclasses import dataclass

import jiwer
import numpy as np
import torch
from pystoi import stoi

from audio.asr import transcribe
from audio.frames import SAMPLE_RATE
from audio.tts import Voice, synthesize
from duplex.domains import normalize
from models.codec import Codec
from training.speech_source import random_voice
from training.speech_text import held_out_sentence


@dataclass
class CodecQuality:
    sentences: int
    wer_original: float
    wer_resynthesis: float
    stoi: float

    @property
    def wer_gap(self) -> float:
        return self.wer_resynthesis - self.wer_original


def held_out_voice(index: int) -> Voice:
    """The voice of held-out example `index`: one of the held-out voices."""
    return random_voice(np.random.default_rng([index, 3]), held_out=True)


def held_out_speech(index: int, voice: Voice | None = None) -> tuple[str, np.ndarray]:
    """(text, audio) of held-out example `index`: a held-out sentence in a held-out voice, or in `voice`
    (a persona's)."""
    text = held_out_sentence(index)
    return text, synthesize(text, voice or held_out_voice(index))


def resynthesize(codec: Codec, audio: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        codes = codec.encode(torch.from_numpy(audio)[None])
        return codec.decode(codes)[0, : len(audio)].numpy()


def stoi_by_codebooks(codec: Codec, sentences: int, counts: tuple[int, ...]) -> dict[str, float]:
    """Mean STOI of held-out speech resynthesised with only the first k codebooks (k in counts), and with
    the quantiser bypassed: where the codec's error comes from, the quantiser or the autoencoder."""
    scores: dict[str, list[float]] = {**{str(k): [] for k in counts}, "no quantiser": []}
    for i in range(sentences):
        _, audio = held_out_speech(i)
        wav = torch.from_numpy(audio[: len(audio) // codec.hop * codec.hop])[None]
        with torch.no_grad():
            codes = codec.encode(wav)
            outputs = {str(k): codec.decode(codes[:, :k])[0] for k in counts}
            outputs["no quantiser"] = codec(wav, quantize=False).audio[0]
        for name, resynthesis in outputs.items():
            scores[name].append(stoi(wav[0].numpy(), resynthesis[: wav.shape[1]].numpy(), SAMPLE_RATE, extended=False))
    return {name: float(np.mean(values)) for name, values in scores.items()}


def stoi_by_voice(codec: Codec, sentences: int) -> dict[str, float]:
    """Mean STOI of held-out sentences per held-out voice variant, and over the same sentences in training
    voices: which voices the codec fails on, and how much of its error is generalisation to new voices."""
    scores: dict[str, list[float]] = {}
    for i in range(sentences):
        text, audio = held_out_speech(i)
        training_voice = random_voice(np.random.default_rng([i, 7]), held_out=False)
        for name, clip in ((held_out_voice(i).variant, audio), ("training voices", synthesize(text, training_voice))):
            scores.setdefault(str(name), []).append(stoi(clip, resynthesize(codec, clip), SAMPLE_RATE, extended=False))
    return {name: float(np.mean(values)) for name, values in sorted(scores.items())}


def codec_quality(codec: Codec, sentences: int = 100, voice: Voice | None = None) -> CodecQuality:
    """Whisper WER of original and resynthesis, and STOI, on held-out sentences in held-out voices or `voice`."""
    references, originals, resyntheses, scores = [], [], [], []
    for i in range(sentences):
        text, audio = held_out_speech(i, voice)
        resynthesis = resynthesize(codec, audio)
        references.append(" ".join(normalize(text)))
        originals.append(" ".join(normalize(transcribe(audio)[0])))
        resyntheses.append(" ".join(normalize(transcribe(resynthesis)[0])))
        scores.append(stoi(audio, resynthesis, SAMPLE_RATE, extended=False))
    return CodecQuality(
        sentences=sentences,
        wer_original=float(jiwer.wer(references, originals)),
        wer_resynthesis=float(jiwer.wer(references, resyntheses)),
        stoi=float(np.mean(scores)),
    )
