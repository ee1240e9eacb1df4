"""Where the project keeps what it builds once per machine: joined Whisper weights, espeak-ng data with
generated timbres, speech from slow voices. `DUPLEX_CACHE` moves it (default ~/.cache/duplex)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ROOT = Path(os.environ.get("DUPLEX_CACHE", "~/.cache/duplex")).expanduser()
