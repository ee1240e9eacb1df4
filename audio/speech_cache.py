"""Speech of slow voices, said once per machine and kept on disk.

Piper speaks at about 9x real time on one core, espeak-ng at a hundred or
more (bench/bench_tts.py); an agent says the same answers over and over,
and training stages pool
thousands of sentences. So `cached_speak_words` keeps every Piper utterance
it renders as a small .npz under the cache folder (DESIGN.md: render each
distinct agent utterance once and cache it): data generation workers,
shards and later runs all read it back. Piper is deterministic here
(audio/piper_tts.py), so a cached utterance is exactly what rendering it
again would give. espeak-ng voices are rendered directly unless the caller
asks to keep them: for them the disk is no faster, but it is steadier
(libespeak-ng carries a little state from one synthesis to the next).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict

import numpy as np

from audio.cache import CACHE_ROOT
from audio.tts import Speech, TimedWord, Voice, speak_words

CACHE_VERSION = 1
"""Bumped whenever rendering changes, so that stale files are never read."""


def cached_speak_words(text: str, voice: Voice, keep: bool | None = None) -> Speech:
    """speak_words(text, voice), read from the disk cache if it was kept before; kept for slow (Piper)
    voices, or for any voice with keep=True (see the lsm stage: libespeak-ng's output depends a little on
    what the process said before, and a kept rendering is the same in every later process)."""
    if not (voice.engine == "piper" if keep is None else keep):
        return speak_words(text, voice)
    path = _path(text, voice)
    if path.is_file():
        with np.load(path, allow_pickle=False) as stored:
            words = tuple(TimedWord(str(w), float(s), float(e))
                          for w, s, e in zip(stored["words"], stored["starts"], stored["ends"]))
            return Speech(stored["audio"], words, int(stored["sample_rate"]))
    speech = speak_words(text, voice)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, audio=speech.audio, sample_rate=np.int64(speech.sample_rate),
                     words=np.array([w.text for w in speech.words], dtype=str),
                     starts=np.array([w.start for w in speech.words], dtype=np.float64),
                     ends=np.array([w.end for w in speech.words], dtype=np.float64))
        os.replace(staging, path)
    except BaseException:
        if os.path.exists(staging):
            os.unlink(staging)
        raise
    return speech


def _path(text: str, voice: Voice):
    key = hashlib.sha256(json.dumps([CACHE_VERSION, asdict(voice), text]).encode()).hexdigest()
    return CACHE_ROOT / "speech" / voice.engine / voice.name / key[:2] / f"{key}.npz"
