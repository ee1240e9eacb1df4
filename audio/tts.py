"""Speech synthesis to 16 kHz float arrays: espeak-ng, and Piper for a natural voice.

espeak-ng is a formant synthesiser: cheap, deterministic, with many voices,
speeds and pitches, which is what synthetic training data and the cascaded
baseline need. `synthesize` runs the `espeak-ng` program (Debian package),
which writes a 22.05 kHz WAV to stdout. `speak_words` runs the same engine
in-process through libespeak-ng (audio/espeak_lib.py), much faster, and times
every word for alignments. A Voice with engine "piper" speaks through
audio/piper_tts.py instead (both functions), far slower (bench/bench_tts.py).
"""

from __future__ import annotations

import bisect
import io
import re
import subprocess
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import soundfile as sf

from audio.espeak_lib import EspeakLibraryError, RawSynthesis, WordEvent, espeak_library
from audio.frames import SAMPLE_RATE
from audio.piper_tts import PIPER_VOICES, PiperError, piper_speaker
from audio.resample import resample
from audio.timbres import espeak_data_path, espeak_program, timbre_names

SPOKEN_FORMS = {"mm-hmm": {"espeak": "[[m@m'h@m]]", "piper": "[[məmˈhəm]]"}}
"""Written words the engines would read letter by letter ("em em hum"), and the phonemes that make them
say them as people do (espeak-ng's ASCII phoneme names; IPA for Piper): the same sounds in both."""


class TTSError(Exception):
    """Synthesis failed; the message is one line meant for the user."""


@dataclass(frozen=True)
class Voice:
    """A voice: for espeak-ng a language/voice name, optional variant, speed (words per minute) and
    pitch (0-99); for Piper (engine "piper") a voice of audio/piper_tts.py and a speed (pitch unused)."""

    name: str = "en-us"
    variant: str | None = None
    speed: int = 170
    pitch: int = 50
    engine: str = "espeak"

    @property
    def espeak_name(self) -> str:
        return f"{self.name}+{self.variant}" if self.variant else self.name


def espeak_command(*args: str, generated_timbres: bool = True) -> list[str]:
    """An espeak-ng command line, by default on the project's data folder (system voices + generated timbres,
    audio/timbres.py). Voice listings run on the system folder: espeak-ng does not list linked folders."""
    try:
        return [espeak_program(), *([f"--path={espeak_data_path()}"] if generated_timbres else []), *args]
    except OSError as exc:  # not installed, or no writable cache folder
        raise TTSError(str(exc)) from None


@lru_cache(maxsize=1)
def known_voice_names() -> frozenset[str]:
    """Voice and variant names espeak-ng knows (languages and the !v variants)."""
    out = subprocess.run(espeak_command("--voices", generated_timbres=False), capture_output=True, text=True, check=True).stdout
    names = {line.split()[1] for line in out.splitlines()[1:] if len(line.split()) > 1}
    return frozenset(names) | known_variants()


@lru_cache(maxsize=1)
def known_variants() -> frozenset[str]:
    """The voice variants (timbres) espeak-ng knows: its own !v files, e.g. m3, f5, Gene, and the generated ones."""
    out = subprocess.run(espeak_command("--voices=variant", generated_timbres=False), capture_output=True, text=True,
                         check=True).stdout
    shipped = (re.split(r"\s{2,}", line.split("!v/", 1)[1].strip())[0] for line in out.splitlines() if "!v/" in line)
    return frozenset(shipped) | frozenset(timbre_names())


@lru_cache(maxsize=1)
def _voice_files() -> dict[str, str]:
    """Language name -> voice file of espeak-ng's own (not MBROLA) voice for it, e.g. en-gb -> gmw/en.

    The program accepts a language where a voice name is expected; the
    library's espeak_SetVoiceByName only accepts file names, so
    speak_words translates through this table.
    """
    out = subprocess.run(espeak_command("--voices", generated_timbres=False), capture_output=True, text=True, check=True).stdout
    files: dict[str, str] = {}
    for line in out.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 4 and not fields[4].startswith("mb/"):
            files.setdefault(fields[1], fields[4])
    return files


def library_voice_name(voice: Voice) -> str:
    """The name libespeak-ng's espeak_SetVoiceByName accepts for this voice."""
    base = _voice_files().get(voice.name, voice.name)
    return f"{base}+{voice.variant}" if voice.variant else base


def check_voice(voice: Voice) -> None:
    """Raise TTSError if the engine does not know this voice (or variant)."""
    if voice.engine == "piper":
        if voice.name not in PIPER_VOICES or voice.variant is not None:
            raise TTSError(f"unknown Piper voice {voice.name!r} (known: {', '.join(sorted(PIPER_VOICES))})")
        return
    if voice.engine != "espeak":
        raise TTSError(f"unknown speech engine {voice.engine!r} (known: espeak, piper)")
    names = known_voice_names()
    for part in (voice.name, voice.variant):
        if part is not None and part not in names:
            raise TTSError(f"unknown espeak-ng voice {part!r}")


def synthesize(text: str, voice: Voice = Voice(), sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Speak text; returns mono float32 at sample_rate (empty for empty text)."""
    if not text.strip():
        return np.zeros(0, dtype=np.float32)
    text = SPOKEN_FORMS.get(text, {}).get(voice.engine, text)
    if voice.engine != "espeak":
        raw = _engine_synthesis(text, voice)
        return resample(raw.audio.astype(np.float32) / 32768.0, raw.sample_rate, sample_rate)
    cmd = espeak_command("-v", voice.espeak_name, "-s", str(voice.speed), "-p", str(voice.pitch), "--stdout", text)
    proc = subprocess.run(cmd, capture_output=True)
    if proc.returncode != 0 or not proc.stdout:
        raise TTSError(f"espeak-ng failed for voice {voice.espeak_name}: {proc.stderr.decode(errors='replace').strip()}")
    audio, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    return resample(audio, sr, sample_rate)


@dataclass(frozen=True)
class TimedWord:
    """A word as written in the text, and when it sounds: seconds from the start of its Speech."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class TimedPhoneme:
    """A phoneme (espeak-ng's ASCII mnemonic, e.g. "oU") and when it sounds: seconds from the start of its Speech."""

    name: str
    start: float
    end: float


@dataclass(frozen=True, eq=False)
class Speech:
    """Synthesised speech trimmed to the voice: audio starts at the first word's onset and ends at the last word's offset.

    eq=False: it holds an array, and arrays do not compare with ==.
    """

    audio: np.ndarray
    words: tuple[TimedWord, ...]
    sample_rate: int = SAMPLE_RATE
    phonemes: tuple[TimedPhoneme, ...] = ()
    """Pauses left out; given by libespeak-ng (speak_words), empty for other engines and kept renderings."""

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


_ENERGY_FRAME_S = 0.005
_SILENCE_BELOW_PEAK_DB = 40.0
"""A 5 ms frame more than this far below the utterance's loudest frame counts as silence."""


def speak_words(text: str, voice: Voice = Voice(), sample_rate: int = SAMPLE_RATE) -> Speech:
    """Speak text through libespeak-ng in-process and time every word.

    Why both sources of timing: espeak-ng's word events say exactly where each
    word's phonemes begin, but a word's span up to the next word's start still
    holds the pause after it (commas, sentence ends). Trimming each span to the
    frames above a silence floor gives onsets and offsets to the 5 ms frame.
    Words are the whitespace-separated tokens of text, punctuation kept, as
    moshi-finetune's alignments write them; a text in SPOKEN_FORMS is one word.
    """
    check_voice(voice)
    spoken = SPOKEN_FORMS.get(text, {}).get(voice.engine)
    if spoken is not None:
        speech = speak_words(spoken, voice, sample_rate)
        return Speech(speech.audio, (TimedWord(text, 0.0, speech.duration),), sample_rate, speech.phonemes)
    tokens = [(m.start(), m.group()) for m in re.finditer(r"\S+", text)]
    if not tokens:
        return Speech(np.zeros(0, dtype=np.float32), (), sample_rate)
    raw = _engine_synthesis(text, voice)
    audio = raw.audio.astype(np.float32) / 32768.0
    token_starts = _token_start_samples(tokens, raw.words, len(raw.audio))
    frame = max(1, round(_ENERGY_FRAME_S * raw.sample_rate))
    loud = _loud_frames(audio, frame)
    spans = []
    for i, (start, word) in enumerate(token_starts):
        stop = token_starts[i + 1][0] if i + 1 < len(token_starts) else len(audio)
        # frames wholly before the next word's onset; a word loud up to there runs into the next one
        first_frame, stop_frame = start // frame, max(start // frame + 1, stop // frame)
        span = _loud_span(loud, first_frame, stop_frame)
        if span is not None:
            end = stop if span[1] == stop_frame else min(span[1] * frame, stop)
            spans.append((word, max(span[0] * frame, start), end))
    if not spans:
        return Speech(np.zeros(0, dtype=np.float32), (), sample_rate)
    first, last = spans[0][1], spans[-1][2]
    out = resample(audio[first:last], raw.sample_rate, sample_rate)
    words = tuple(TimedWord(w, (s - first) / raw.sample_rate, (e - first) / raw.sample_rate) for w, s, e in spans)
    return Speech(out, words, sample_rate, _timed_phonemes(raw, first, last))


def _timed_phonemes(raw: RawSynthesis, first: int, last: int) -> tuple[TimedPhoneme, ...]:
    """The synthesis's phonemes within the kept audio [first, last), each until the next one starts; pauses
    ("_", "_:") mark where a phoneme ends and are left out."""
    bounds = [e.sample for e in raw.phonemes[1:]] + [len(raw.audio)]
    out = []
    for event, end in zip(raw.phonemes, bounds):
        start, end = max(event.sample, first), min(end, last)
        if end > start and not event.name.startswith("_"):
            out.append(TimedPhoneme(event.name, (start - first) / raw.sample_rate, (end - first) / raw.sample_rate))
    return tuple(out)


def _engine_synthesis(text: str, voice: Voice) -> RawSynthesis:
    """Samples and word events from the voice's engine in-process: libespeak-ng, or Piper."""
    try:
        if voice.engine == "piper":
            return piper_speaker(voice.name).synthesize(text, voice.speed)
        return espeak_library().synthesize(text, library_voice_name(voice), voice.speed, voice.pitch)
    except (EspeakLibraryError, PiperError) as exc:
        raise TTSError(str(exc)) from None


def _token_start_samples(
    tokens: list[tuple[int, str]], events: list[WordEvent], total_samples: int
) -> list[tuple[int, str]]:
    """(start sample, token) for every token espeak-ng spoke.

    A token espeak-ng splits (e.g. "twenty-one") gets several events and starts
    at the first. Unstressed words that espeak-ng joins to the word before
    ("most of", "had to") get no event of their own: either the joined word
    has a second event, pointing back into the word before, where they begin,
    or the joined word's span is shared among its tokens in proportion to
    their letters (these are short function words, so the estimate stays
    within a few tens of milliseconds).
    """
    offsets = [offset for offset, _ in tokens]
    own: dict[int, list[int]] = {}
    for event in events:
        index = bisect.bisect_right(offsets, event.char_index) - 1
        if index >= 0 and event.char_index < offsets[index] + len(tokens[index][1]):
            own.setdefault(index, []).append(event.sample)
    starts: list[int | None] = [None] * len(tokens)
    surplus: list[int] = []
    for i in range(len(tokens)):
        if i in own:
            starts[i], surplus = own[i][0], own[i][1:]
        elif surplus:
            starts[i] = surplus.pop(0)
    anchors = [i for i, s in enumerate(starts) if s is not None] + [len(tokens)]
    for j, k in zip(anchors, anchors[1:]):
        end = starts[k] if k < len(tokens) else total_samples
        weights = np.cumsum([max(1, sum(c.isalpha() for c in tokens[i][1])) for i in range(j, k)])
        for i in range(j + 1, k):
            starts[i] = starts[j] + round((end - starts[j]) * weights[i - j - 1] / weights[-1])
    return [(s, tokens[i][1]) for i, s in enumerate(starts) if s is not None]


def _loud_frames(audio: np.ndarray, frame: int) -> np.ndarray:
    """Which frames of the utterance rise above the silence floor."""
    n = -(-len(audio) // frame)
    padded = np.zeros(n * frame, dtype=np.float32)
    padded[: len(audio)] = audio
    rms = np.sqrt(np.mean(np.square(padded.reshape(n, frame)), axis=1))
    floor = max(float(rms.max()) * 10 ** (-_SILENCE_BELOW_PEAK_DB / 20), 1e-4)
    return rms > floor


def _loud_span(loud: np.ndarray, first_frame: int, stop_frame: int) -> tuple[int, int] | None:
    """First and one-past-last loud frame in [first_frame, stop_frame), or None if all are silent."""
    hits = np.flatnonzero(loud[first_frame:stop_frame])
    if len(hits) == 0:
        return None
    return first_frame + int(hits[0]), first_frame + int(hits[-1]) + 1
