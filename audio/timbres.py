"""Random espeak-ng timbres: voice variants drawn at random, for training voice-robust models.

espeak-ng ships about a hundred voice variants (timbres: the `!v` files such
as m3, f5, Gene); the project trains on forty of them and holds ten out for
evaluation. Forty timbres are few points in the space of voices, and a model
trained on them hears a held-out timbre as something new: the listen
encoder's features lost most of their advantage over log-mel on held-out
voices, and the codec's worst held-out voices are the ones unlike any
training voice (docs/models.md). The cure is the classic one, vocal-tract
and source variation as data augmentation (VTLP, Jaitly and Hinton 2013),
done here at the source: a variant file is a handful of numbers (pitch
range, formant frequencies, heights and widths, voicing and breath levels,
flutter, roughness), so `TIMBRE_COUNT` random ones, drawn from the ranges
espeak-ng's own variants span, fill the space between the shipped voices.
The held-out variants stay what they are; they are simply no longer the
only unusual voices.

espeak-ng reads variants only from its data folder, so the project runs it
on a private copy of that folder (`espeak_data_path`): the system's files
linked, not copied (folders recreated; MBROLA voices left out), plus the generated variants. Voices that exist in the
system folder sound byte-for-byte the same from the copy.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from audio.cache import CACHE_ROOT

TIMBRE_COUNT = 100
TIMBRE_PREFIX = "timbre"
_SEED = 0x7153  # fixed: a timbre's name always means the same voice


def timbre_names() -> tuple[str, ...]:
    """The generated variants' names, e.g. timbre007 (usable as Voice.variant)."""
    return tuple(f"{TIMBRE_PREFIX}{i:03d}" for i in range(TIMBRE_COUNT))


def timbre_file(index: int) -> str:
    """The text of generated variant `index`: an espeak-ng voice file with randomly drawn settings.

    Ranges follow espeak-ng's own variants: pitch bases of 60-130 (male) or
    140-220 (female), formants scaled together by a vocal-tract factor
    (0.88-1.15) with a little jitter each, voicing 35-250 (anika 30 .. the
    default 100 .. iven 530), optional breath, flutter and roughness.
    """
    rng = np.random.default_rng([_SEED, index])
    female = rng.random() < 0.5
    base = rng.uniform(140, 220) if female else rng.uniform(60, 130)
    top = base + (rng.uniform(40, 110) if female else rng.uniform(20, 80))
    tract = rng.uniform(1.0, 1.15) if female else rng.uniform(0.88, 1.05)
    lines = ["language variant", f"name {TIMBRE_PREFIX}{index:03d}", f"gender {'female' if female else 'male'}",
             f"pitch {base:.0f} {top:.0f}"]
    for formant in range(1, 9):
        scale = tract * rng.uniform(0.95, 1.05) if formant <= 5 else rng.uniform(0.9, 1.1)
        height, width = rng.uniform(60, 140), rng.uniform(60, 140)
        lines.append(f"formant {formant} {100 * scale:.0f} {height:.0f} {width:.0f}")
    lines.append(f"voicing {np.exp(rng.uniform(np.log(35), np.log(250))):.0f}")
    lines.append(f"consonants {rng.uniform(50, 120):.0f} {rng.uniform(40, 120):.0f}")
    if rng.random() < 0.3:
        lines.append("breath " + " ".join(str(int(v)) for v in rng.integers(0, 5, size=8)))
    if rng.random() < 0.4:
        lines.append(f"flutter {int(rng.integers(1, 21))}")
    if rng.random() < 0.3:
        lines.append(f"roughness {int(rng.integers(1, 6))}")
    return "\n".join(lines) + "\n"


@lru_cache(maxsize=1)
def espeak_program() -> str:
    """Path of the espeak-ng program."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise FileNotFoundError("espeak-ng is not installed (Debian: apt-get install espeak-ng; `make test` does it)")
    return path


@lru_cache(maxsize=1)
def system_data_path() -> Path:
    """espeak-ng's own data folder (the one holding phondata and voices/), as the program reports it."""
    version = subprocess.run([espeak_program(), "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"Data at:\s*(\S+)", version)
    if match is None:
        raise FileNotFoundError(f"cannot find espeak-ng's data folder in {version.strip()!r}")
    return Path(match.group(1))


@lru_cache(maxsize=1)
def espeak_data_path() -> str:
    """The parent of the private espeak-ng-data folder (what `espeak-ng --path` and espeak_Initialize take).

    Built once per machine (and again whenever the generated variants
    change), in a temporary folder renamed into place, so that concurrent
    processes never see a half-built one.
    """
    system = system_data_path()
    files = {name: timbre_file(i) for i, name in enumerate(timbre_names())}
    digest = _stable_digest(str(system), *files.values())
    home = CACHE_ROOT / f"espeak-ng-{digest}"
    if (home / "espeak-ng-data" / "voices" / "!v" / timbre_names()[-1]).is_file():
        return str(home)
    try:
        home.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=home.parent, prefix=".espeak-ng."))
    except OSError as exc:
        raise OSError(f"cannot build espeak-ng's data folder in {home.parent} ({exc.strerror}); "
                      "set DUPLEX_CACHE to a writable folder") from None
    try:
        data = staging / "espeak-ng-data"
        _mirror(system, data)
        variants = data / "voices" / "!v"
        for name, text in files.items():
            (variants / name).write_text(text)
        try:
            os.rename(staging, home)
        except OSError:  # another process built it first
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return str(home)


def _mirror(source: Path, target: Path) -> None:
    """Recreate source's folders under target and link its files: espeak-ng lists voices by walking real
    folders (it does not follow linked ones), and reads files through links.

    The MBROLA voices (voices/mb, which need the separate MBROLA program and
    are never used here) are left out: espeak-ng finds a voice in a list of at
    most 349, which its own 322 voices and the generated ones would overflow.
    """
    target.mkdir()
    for entry in source.iterdir():
        if entry.is_dir() and entry.name == "mb" and source.name == "voices":
            continue
        if entry.is_dir():
            _mirror(entry, target / entry.name)
        else:
            (target / entry.name).symlink_to(entry)


def _stable_digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]
