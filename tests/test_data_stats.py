"""`duplex data stats` and the committed sample: audio-measured turn-taking agrees with the annotations."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from duplex.cli import main
from duplex.metrics import Interval
from training.data_stats import (
    annotated_ipus,
    dataset_stats,
    match_event,
    plot_histograms,
    summarize,
)
from training.generate import generate, load_recipe
from training.timeline import Event

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
REGENERATE = "duplex data generate --out data/sample --hours 0.0125 --recipe data/sample/recipe.json"


def test_a_turn_is_found_across_its_ipus_and_only_within_a_tick():
    channel = [Interval(1.0, 2.0), Interval(2.5, 3.0), Interval(5.0, 6.0)]
    assert match_event(Event("turn", "user", 1.05, 2.95), channel) == (1.0, 3.0)
    assert match_event(Event("turn", "user", 1.2, 2.95), channel) is None
    assert match_event(Event("turn", "user", 1.0, 2.85), channel) is None
    assert match_event(Event("pause", "user", 2.04, 2.46), channel) == (2.0, 2.5)
    assert match_event(Event("pause", "user", 2.0, 2.7), channel) is None
    assert match_event(Event("backchannel", "agent", 8.0, 8.4), channel) is None


def test_annotated_ipus_join_words_across_short_silences():
    alignments = [["a", [0.0, 0.3], "SPEAKER_MAIN"], ["b", [0.4, 0.6], "SPEAKER_MAIN"],
                  ["c", [1.0, 1.2], "SPEAKER_MAIN"], ["x", [0.1, 0.2], "SPEAKER_OTHER"]]
    assert [(i.start, i.end) for i in annotated_ipus(alignments, "agent")] == [(0.0, 0.6), (1.0, 1.2)]
    assert [(i.start, i.end) for i in annotated_ipus(alignments, "user")] == [(0.1, 0.2)]


@pytest.fixture(scope="module")
def sample_stats():
    return dataset_stats(SAMPLE, workers=1)


def test_the_sample_audio_shows_every_annotated_event_within_a_tick(sample_stats):
    summary = summarize(sample_stats, load_recipe(SAMPLE).timeline.gap_median_s)
    assert summary["dialogues"] == 3
    assert set(summary["event_recall_by_kind"]) == {"turn", "backchannel", "interruption", "pause"}
    assert summary["event_recall"] >= 0.95, summary["misses"]
    assert abs(summary["transition_gap"]["measured_minus_annotated_median_s"]) <= 0.03


def test_histograms_are_written(sample_stats, tmp_path):
    written = plot_histograms(sample_stats, tmp_path)
    assert {p.name for p in written} == {"gap.png", "pause.png", "overlap.png", "ipu.png", "turn.png"}
    assert all(p.stat().st_size > 1000 for p in written)


def test_the_sample_is_what_the_generator_makes(tmp_path):
    out = tmp_path / "again"
    out.mkdir()
    (out / "recipe.json").write_text((SAMPLE / "recipe.json").read_text())
    generate(out, 3 * load_recipe(SAMPLE).dialogue_s / 3600, load_recipe(SAMPLE), progress=False)
    for path in sorted(SAMPLE.rglob("dialogue_*.json")):
        again = out / path.relative_to(SAMPLE)
        assert again.read_bytes() == path.read_bytes(), f"data/sample is stale; regenerate it: {REGENERATE}"
    for path in sorted(SAMPLE.rglob("dialogue_*.wav")):
        assert same_sound(path, out / path.relative_to(SAMPLE)), f"data/sample is stale; regenerate it: {REGENERATE}"


def same_sound(a: Path, b: Path) -> bool:
    """Same length, and the same loudness in every 80 ms frame of both channels within 3 dB (99% of frames).

    Not bytes: libespeak-ng's breath noise draws on libc's rand(), which
    other libraries also draw on (audio/espeak_lib.py reseeds it before each
    synthesis, but a thread may still draw during one); the annotations above
    must match exactly, and a stale sample differs in them or in its loudness.
    """
    x, _ = sf.read(a, dtype="float32")
    y, _ = sf.read(b, dtype="float32")
    if x.shape != y.shape:
        return False
    frames = len(x) // 1280
    level = lambda z: 20 * np.log10(np.sqrt(np.mean(z[: frames * 1280].reshape(frames, 1280, -1) ** 2, axis=1)) + 1e-4)
    return float(np.quantile(np.abs(level(x) - level(y)), 0.99)) < 3.0


def test_cli_stats_prints_json_and_refuses_an_empty_folder(tmp_path, capsys):
    assert main(["data", "stats", str(SAMPLE), "--limit", "1", "--plots", str(tmp_path / "plots"), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[: out.rindex("}") + 1])["dialogues"] == 1
    assert (tmp_path / "plots" / "gap.png").exists()
    assert main(["data", "stats", str(tmp_path)]) == 1
    assert "no complete dialogues" in capsys.readouterr().err
