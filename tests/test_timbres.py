"""Generated espeak-ng timbres: deterministic, spoken by both synthesis paths, system voices unchanged."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from audio import timbres
from audio.timbres import espeak_data_path, espeak_program, timbre_file, timbre_names
from audio.tts import (
    TTSError,
    Voice,
    check_voice,
    espeak_command,
    speak_words,
    synthesize,
)
from training.speech_source import HELD_OUT_VARIANTS, random_voice

TEXT = "The fisherman hid a stack of books."


def test_timbre_files_are_fixed_and_all_different():
    assert timbre_file(7) == timbre_file(7)
    texts = {timbre_file(i) for i in range(len(timbre_names()))}
    assert len(texts) == len(timbre_names())
    assert f"name {timbre_names()[7]}" in timbre_file(7)


def test_every_timbre_is_a_known_variant_in_the_private_data_folder():
    variants = Path(espeak_data_path()) / "espeak-ng-data" / "voices" / "!v"
    for i, name in enumerate(timbre_names()):
        assert (variants / name).read_text() == timbre_file(i)
        check_voice(Voice("en-us", name))


def test_timbres_sound_different_through_program_and_library():
    a = synthesize(TEXT, Voice("en-us", timbre_names()[0], 160, 50))
    b = synthesize(TEXT, Voice("en-us", timbre_names()[1], 160, 50))
    plain = synthesize(TEXT, Voice("en-us", None, 160, 50))
    assert len(a) > 8000 and len(b) > 8000
    assert not np.array_equal(a[:8000], b[:8000]) and not np.array_equal(a[:8000], plain[:8000])
    speech = speak_words(TEXT, Voice("en-gb", timbre_names()[2], 160, 50))
    assert [w.text for w in speech.words] == TEXT.split()


def test_system_voices_sound_the_same_from_the_private_folder():
    """The data folder only adds variants: every existing voice renders byte for byte as before."""
    args = ("-v", "en-gb+m3", "-s", "170", "-p", "40", "--stdout", TEXT)
    private = subprocess.run(espeak_command(*args), capture_output=True, check=True).stdout
    system = subprocess.run([espeak_program(), *args], capture_output=True, check=True).stdout
    assert private == system


def test_the_private_folder_is_built_once_in_a_fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(timbres, "CACHE_ROOT", tmp_path)
    espeak_data_path.cache_clear()
    try:
        first = espeak_data_path()
        espeak_data_path.cache_clear()
        assert espeak_data_path() == first and first.startswith(str(tmp_path))
        assert [p.name for p in tmp_path.iterdir()] == [Path(first).name]  # no staging folder left behind
        assert not (Path(first) / "espeak-ng-data" / "voices" / "mb").exists()
    finally:
        espeak_data_path.cache_clear()


@pytest.mark.parametrize("held_out", [False, True])
def test_random_voice_draws_timbres_only_for_training_and_only_when_asked(held_out):
    rng = np.random.default_rng(0)
    with_timbres = [random_voice(rng, held_out, timbre_prob=1.0).variant for _ in range(20)]
    without = [random_voice(rng, held_out).variant for _ in range(50)]
    assert not set(without) & set(timbre_names())
    if held_out:
        assert set(with_timbres) <= set(HELD_OUT_VARIANTS)
    else:
        assert set(with_timbres) <= set(timbre_names())


def test_an_unwritable_cache_is_one_clear_error(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setattr(timbres, "CACHE_ROOT", blocker / "cache")
    espeak_data_path.cache_clear()
    try:
        with pytest.raises(TTSError, match="set DUPLEX_CACHE to a writable folder"):
            synthesize(TEXT, Voice("en-us"))
    finally:
        espeak_data_path.cache_clear()
