"""espeak-ng speech synthesis to 16 kHz float arrays.

espeak-ng is a formant synthesiser: cheap, deterministic, with many voices,
speeds and pitches, which is what synthetic training data and the cascaded
baseline need. It runs as a subprocess of the `espeak-ng` program (Debian
package), which writes a 22.05 kHz WAV to stdout.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import soundfile as sf

from audio.frames import SAMPLE_RATE
from audio.resample import resample


class TTSError(Exception):
    """Synthesis failed; the message is one line meant for the user."""


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice: language/voice name, optional variant, speed (words per minute), pitch (0-99)."""

    name: str = "en-us"
    variant: str | None = None
    speed: int = 170
    pitch: int = 50

    @property
    def espeak_name(self) -> str:
        return f"{self.name}+{self.variant}" if self.variant else self.name


@lru_cache(maxsize=1)
def espeak_binary() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise TTSError("espeak-ng is not installed (Debian: apt-get install espeak-ng; `make test` does it)")
    return path


@lru_cache(maxsize=1)
def known_voice_names() -> frozenset[str]:
    """Voice and variant names espeak-ng knows (languages and the !v variants)."""
    out = subprocess.run([espeak_binary(), "--voices"], capture_output=True, text=True, check=True).stdout
    names = {line.split()[1] for line in out.splitlines()[1:] if len(line.split()) > 1}
    variants = subprocess.run([espeak_binary(), "--voices=variant"], capture_output=True, text=True, check=True).stdout
    names |= {line.split("!v/", 1)[1].strip() for line in variants.splitlines() if "!v/" in line}
    return frozenset(names)


def check_voice(voice: Voice) -> None:
    """Raise TTSError if espeak-ng does not know this voice or variant."""
    names = known_voice_names()
    for part in (voice.name, voice.variant):
        if part is not None and part not in names:
            raise TTSError(f"unknown espeak-ng voice {part!r}")


def synthesize(text: str, voice: Voice = Voice(), sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Speak text with espeak-ng; returns mono float32 at sample_rate (empty for empty text)."""
    if not text.strip():
        return np.zeros(0, dtype=np.float32)
    cmd = [espeak_binary(), "-v", voice.espeak_name, "-s", str(voice.speed), "-p", str(voice.pitch), "--stdout", text]
    proc = subprocess.run(cmd, capture_output=True)
    if proc.returncode != 0 or not proc.stdout:
        raise TTSError(f"espeak-ng failed for voice {voice.espeak_name}: {proc.stderr.decode(errors='replace').strip()}")
    audio, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    return resample(audio, sr, sample_rate)
