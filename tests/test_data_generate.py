"""`duplex data generate`: determinism, sharding, resuming, the moshi-finetune layout, splits and bad input."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from duplex.cli import main
from duplex.domains import SPLITS, USER_VOICE_VARIANTS
from training.dataset import DataError, complete_dialogues, read_manifest
from training.generate import Shard, generate
from training.render import RenderConfig

CONFIG = RenderConfig(seed=7, dialogue_s=8.0, split_fractions=(1.0, 1.0, 1.0))
HOURS = 6 * 8.0 / 3600  # six dialogues


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "full"
    generate(out, HOURS, CONFIG, progress=False)
    return out


def test_same_seed_same_bytes_and_shards_add_up_to_the_whole(dataset, tmp_path):
    sharded = tmp_path / "sharded"
    first = generate(sharded, HOURS, CONFIG, Shard(0, 2), workers=1, progress=False)
    second = generate(sharded, HOURS, CONFIG, Shard(1, 2), workers=2, progress=False)
    assert (first.written, second.written) == (3, 3)
    assert files(sharded) == files(dataset)


def test_another_seed_gives_other_dialogues(dataset, tmp_path):
    other = tmp_path / "other"
    generate(other, 2 * 8.0 / 3600, RenderConfig(seed=8, dialogue_s=8.0, split_fractions=(1.0, 1.0, 1.0)), progress=False)
    mine, theirs = (next(folder.rglob("dialogue_0000000.wav")).read_bytes() for folder in (dataset, other))
    assert mine != theirs


def test_layout_is_what_moshi_finetune_reads(dataset):
    entries = read_manifest(dataset / "manifest.jsonl")
    assert len(entries) == 6
    per_split = sum(len(read_manifest(dataset / f"{s}.jsonl")) for s in SPLITS)
    assert per_split == 6
    for line in (dataset / "manifest.jsonl").read_text().splitlines():
        row = json.loads(line)
        assert set(row) == {"path", "duration"} and not Path(row["path"]).is_absolute()
    for entry in entries:
        audio, rate = sf.read(entry["path"], dtype="float32")
        assert rate == 16000 and audio.ndim == 2 and audio.shape[1] == 2
        assert entry["duration"] == pytest.approx(len(audio) / rate, abs=1e-3)
        meta = json.loads(Path(entry["path"]).with_suffix(".json").read_text())
        starts = [a[1][0] for a in meta["alignments"]]
        assert starts == sorted(starts)
        for word, (start, end), who in meta["alignments"]:
            assert isinstance(word, str) and 0 <= start < end <= meta["duration"]
            assert who in ("SPEAKER_MAIN", "SPEAKER_OTHER")
        # our own key: the heard words' phonemes, each inside a word of its speaker
        assert meta["phonemes"] and meta["format_version"] == 2
        for name, (start, end), who in meta["phonemes"]:
            assert name and 0 <= start < end <= meta["duration"] + 1.0
            assert any(w_who == who and w0 - 0.05 <= start < w1 + 0.05 for _, (w0, w1), w_who in meta["alignments"])
        _check_channel_0_is_the_agent(audio, meta)


def _check_channel_0_is_the_agent(audio: np.ndarray, meta: dict) -> None:
    """Where only the agent's words sound, channel 0 carries the energy, and the other way round."""
    for label, loud, quiet in (("SPEAKER_MAIN", 0, 1), ("SPEAKER_OTHER", 1, 0)):
        for _, (start, end), who in meta["alignments"]:
            others = [a for a in meta["alignments"] if a[2] != who and a[1][0] < end and a[1][1] > start]
            if who != label or others or meta.get("noise"):
                continue
            part = audio[int(start * 16000) : int(end * 16000)]
            assert np.abs(part[:, loud]).max() > 10 * max(np.abs(part[:, quiet]).max(), 1e-4)


def test_splits_hold_their_own_user_voices(dataset):
    seen = set()
    for meta_path in complete_dialogues(dataset):
        meta = json.loads(meta_path.read_text())
        assert meta["split"] == meta_path.parent.name
        assert meta["voices"]["user"]["variant"] in USER_VOICE_VARIANTS[meta["split"]]
        seen.add(meta["split"])
    assert len(seen) >= 2


def test_interrupted_run_resumes_without_duplicates_or_torn_files(dataset, tmp_path):
    out = tmp_path / "resume"
    generate(out, HOURS, CONFIG, progress=False)
    victims = complete_dialogues(out)[:2]
    victims[0].unlink()  # killed between writing the WAV and the JSON
    victims[1].with_suffix(".wav").unlink()  # WAV lost, JSON left
    report = generate(out, HOURS, CONFIG, progress=False)
    assert (report.written, report.skipped) == (2, 4)
    assert files(out) == files(dataset)
    assert not list(out.rglob("*.tmp"))


def test_bad_input_is_one_clear_error(tmp_path, capsys):
    for bad in ("3/2", "a/b", "1", "-1/2", "0/0"):
        with pytest.raises(DataError, match="bad shard"):
            Shard.parse(bad)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(DataError, match="cannot write"):
        generate(a_file / "sub", HOURS, CONFIG, progress=False)
    assert main(["data", "generate", "--out", str(tmp_path / "v"), "--hours", "0.01", "--agent-voice", "en-us+nope",
                 "--no-progress"]) == 1
    assert "unknown espeak-ng voice" in capsys.readouterr().err
    assert main(["data", "generate", "--out", str(tmp_path / "p"), "--hours", "0.01", "--agent-voice", "piper:amy",
                 "--no-progress"]) == 1
    assert "unknown Piper voice" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["data", "generate", "--out", str(tmp_path / "s"), "--shard", "2/2"])
    assert "bad shard" in capsys.readouterr().err


def test_a_folder_refuses_a_second_recipe(dataset):
    with pytest.raises(DataError, match="another recipe"):
        generate(dataset, HOURS, RenderConfig(seed=8, dialogue_s=8.0), progress=False)


def test_cli_generate_then_skip(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["data", "generate", "--out", str(out), "--hours", str(8.0 / 3600), "--dialogue-seconds", "8",
            "--no-progress"]
    assert main(args) == 0
    assert "wrote 1 dialogues" in capsys.readouterr().out
    assert main(args) == 0
    assert "skipped 1" in capsys.readouterr().out
