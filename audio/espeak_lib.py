"""espeak-ng in-process, through its C library (libespeak-ng), with word events.

Why not the `espeak-ng` program that audio/tts.py runs: starting a process
costs ~10 ms per utterance, which caps data generation, and the program
reports no timing. The library synthesises in-process several hundred times
faster than real time and, through its synth callback, tells where in the
audio every word begins (espeakEVENT_WORD), which is what word alignments
need, and every phoneme (espeakEVENT_PHONEME), which the speech LM reads
frame by frame (models/phonemes.py).

espeak-ng keeps global state (one voice, one callback per process), so there
is one `EspeakLibrary` per process, guarded by a lock; worker processes each
load their own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from audio.timbres import espeak_data_path

# Constants of espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_END = 5
_EVENT_PHONEME = 7
_INITIALIZE_PHONEME_EVENTS = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3
_BUFFER_MS = 500


class EspeakLibraryError(Exception):
    """The library is missing or refused a request; one line for the user."""


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """espeak_EVENT of speak_lib.h."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class WordEvent:
    """espeak-ng starts speaking the word at text character `char_index` (0-based) at audio sample `sample`."""

    char_index: int
    sample: int


@dataclass(frozen=True)
class PhonemeEvent:
    """espeak-ng starts the phoneme `name` (its ASCII mnemonic, e.g. "oU"; "_" is a pause) at audio sample `sample`."""

    name: str
    sample: int


@dataclass(frozen=True)
class RawSynthesis:
    """What one synthesis gives: int16-range samples at the library's rate, word starts, clause ends,
    and phoneme starts (espeak-ng only)."""

    audio: np.ndarray
    sample_rate: int
    words: list[WordEvent]
    clause_ends: list[int]
    phonemes: list[PhonemeEvent] = field(default_factory=list)


class EspeakLibrary:
    """The process's handle on libespeak-ng, in synchronous mode."""

    def __init__(self, data_path: str | None = None) -> None:
        path = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self._lib = ctypes.CDLL(path)
        except OSError:
            raise EspeakLibraryError("libespeak-ng is not installed (Debian: apt-get install libespeak-ng1)") from None
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        self._lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self.sample_rate = self._lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, data_path.encode() if data_path else None, _INITIALIZE_PHONEME_EVENTS
        )
        if self.sample_rate <= 0:
            raise EspeakLibraryError("libespeak-ng failed to initialise (is espeak-ng-data installed?)")
        self._libc = ctypes.CDLL(None)
        self._lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._words: list[WordEvent] = []
        self._clause_ends: list[int] = []
        self._phonemes: list[PhonemeEvent] = []
        self._callback = _Callback(self._on_audio)  # kept referenced: the library holds a raw pointer
        self._lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav, num_samples, events) -> int:
        if wav and num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == _EVENT_WORD:
                self._words.append(WordEvent(event.text_position - 1, event.sample))
            elif event.type == _EVENT_END:
                self._clause_ends.append(event.sample)
            elif event.type == _EVENT_PHONEME:
                self._phonemes.append(PhonemeEvent(event.id.string.decode("ascii", "replace"), event.sample))
            i += 1
        return 0  # 0 = go on synthesising

    def _use_voice(self, voice_name: str) -> None:
        """Make the voice current (the library has one); call with the lock held."""
        if self._lib.espeak_SetVoiceByName(voice_name.encode()) != 0:
            raise EspeakLibraryError(f"unknown espeak-ng voice {voice_name!r}")

    def synthesize(self, text: str, voice_name: str, speed: int, pitch: int) -> RawSynthesis:
        """Speak text (plain UTF-8, no SSML) with an espeak-ng voice name such as "en-us+f3"."""
        with self._lock:
            self._use_voice(voice_name)
            self._lib.espeak_SetParameter(_PARAM_RATE, speed, 0)
            self._lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0)
            self._chunks, self._words, self._clause_ends, self._phonemes = [], [], [], []
            # breath and roughness noise come from libc's rand(), whose state other libraries in the process
            # (onnxruntime, torch) also draw on at unpredictable times: reseed, so the same text gives the same samples
            self._libc.srand(0)
            data = text.encode()
            status = self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            if status != 0:
                raise EspeakLibraryError(f"espeak-ng could not synthesise {text[:40]!r} (error {status})")
            audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)
            return RawSynthesis(audio, self.sample_rate, self._words, self._clause_ends, self._phonemes)

    def phonemes(self, text: str, voice_name: str) -> str:
        """espeak-ng's phonemes for text in its ASCII mnemonics (what `espeak-ng -x` prints), e.g.
        "h@l'oU" for "hello": stress marks included, clauses joined by spaces."""
        with self._lock:
            self._use_voice(voice_name)
            # the library reads a clause per call and advances the pointer, to NULL at the end
            pointer = ctypes.c_char_p(text.encode())
            clauses = []
            while pointer.value:
                clauses.append(self._lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8, 0).decode().strip())
            return " ".join(c for c in clauses if c)


@lru_cache(maxsize=1)
def espeak_library() -> EspeakLibrary:
    """The process's one library handle, loaded on first use, on the project's data folder (audio/timbres.py)."""
    try:
        return EspeakLibrary(espeak_data_path())
    except OSError as exc:  # espeak-ng missing, or no writable cache folder
        raise EspeakLibraryError(str(exc)) from None
