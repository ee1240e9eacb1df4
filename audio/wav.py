"""WAV input and output.

Reading turns any WAV that soundfile understands into 16 kHz-ready float32
and fails with one clear `AudioError` line on anything else. Writing is
atomic: a temporary file in the same folder is renamed over the target, so
a crash never leaves a half-written output.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

MAX_INPUT_SECONDS = 4 * 3600
"""Inputs longer than this are refused rather than exhausting memory."""


class AudioError(Exception):
    """Audio that cannot be used; the message is one line meant for the user."""


def read_wav(path: str | os.PathLike, max_seconds: float = MAX_INPUT_SECONDS) -> tuple[np.ndarray, int]:
    """Read an audio file as (samples, sample_rate); float32, shape (frames, channels)."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises several types for non-audio input
        raise AudioError(f"{path}: not a readable audio file ({_first_line(exc)})") from None
    if info.frames <= 0:
        raise AudioError(f"{path}: holds no audio")
    if info.frames / info.samplerate > max_seconds:
        raise AudioError(f"{path}: {info.frames / info.samplerate:.0f} s is longer than the {max_seconds:.0f} s limit")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"{path}: cannot decode audio ({_first_line(exc)})") from None
    if len(data) == 0:
        raise AudioError(f"{path}: holds no audio")
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{path}: holds non-finite samples")
    return data, sr


def read_mono(path: str | os.PathLike, max_seconds: float = MAX_INPUT_SECONDS) -> tuple[np.ndarray, int]:
    """Read the first channel of an audio file as a 1-D float32 array and its rate."""
    data, sr = read_wav(path, max_seconds)
    return np.ascontiguousarray(data[:, 0]), sr


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit PCM WAV atomically; audio is (frames,) or (frames, channels) in [-1, 1]."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise AudioError(f"{path}: folder {folder} does not exist")
    audio = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        sf.write(tmp, audio, sample_rate, subtype="PCM_16", format="WAV")
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual mode
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise AudioError(f"{path}: cannot write ({exc.strerror})") from None
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
