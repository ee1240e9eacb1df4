"""Dialogues on disk, in the moshi-finetune layout, so datasets made for it train here and ours train there.

    DIR/manifest.jsonl            {"path": "train/dialogue_0000012.wav", "duration": 61.234} per dialogue
    DIR/train.jsonl, valid.jsonl, test.jsonl   the same lines, one file per split
    DIR/train/dialogue_0000012.wav    stereo 16-bit PCM, 16 kHz: channel 0 (left) agent, 1 (right) user
    DIR/train/dialogue_0000012.json   {"alignments": [[word, [start, end], "SPEAKER_MAIN"|"SPEAKER_OTHER"], ...],
                                       "events": [...], "duration", "split", "sample_rate", ... how it was made}

Paths in the manifests are relative to DIR, as moshi-finetune's are. A
dialogue is complete when its JSON exists: the WAV is written first, both
atomically (temporary file + rename), so a killed run leaves nothing torn
and a rerun redoes exactly the dialogues that lack their JSON.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from audio.frames import SAMPLE_RATE
from audio.wav import read_wav, write_wav
from duplex.domains import SPLITS, Expected
from training.render import RenderedDialogue
from training.timeline import Event

MANIFEST = "manifest.jsonl"
FORMAT_VERSION = 2
"""2: `phonemes` beside `alignments` (session 13)."""


class DataError(Exception):
    """A dataset folder or file that cannot be used; one line for the user."""


def dialogue_name(index: int) -> str:
    return f"dialogue_{index:07d}"


def dialogue_paths(out: Path, split: str, index: int) -> tuple[Path, Path]:
    """(wav, json) of a dialogue."""
    base = Path(out) / split / dialogue_name(index)
    return base.with_suffix(".wav"), base.with_suffix(".json")


def is_complete(out: Path, split: str, index: int) -> bool:
    wav, meta = dialogue_paths(out, split, index)
    return meta.exists() and wav.exists()


def _seconds(x: float) -> float:
    return round(float(x), 3)


def event_to_json(event: Event) -> dict:
    data = {"kind": event.kind, "speaker": event.speaker, "start": _seconds(event.start),
            "end": _seconds(event.end), "text": event.text}
    if event.domain is not None:
        data["domain"] = event.domain
        data["expected"] = event.expected.to_json() if event.expected is not None else None
    if event.interrupted:
        data["interrupted"] = True
    return data


def event_from_json(data: dict) -> Event:
    expected = data.get("expected")
    return Event(data["kind"], data["speaker"], data["start"], data["end"], data.get("text", ""),
                 data.get("domain"), Expected.from_json(expected) if expected else None,
                 data.get("interrupted", False))


def annotations(dialogue: RenderedDialogue) -> dict:
    """The JSON beside the WAV: moshi-finetune's alignments, then our events and provenance."""
    return {
        "alignments": _in_seconds(dialogue.timeline.alignments()),
        "phonemes": _in_seconds(dialogue.timeline.phoneme_timings()),
        "events": [event_to_json(e) for e in dialogue.timeline.events],
        "duration": _seconds(len(dialogue.audio) / SAMPLE_RATE),
        "sample_rate": SAMPLE_RATE,
        "channels": ["agent", "user"],
        "split": dialogue.split,
        "format_version": FORMAT_VERSION,
        **dialogue.info,
    }


def _in_seconds(rows: list[list]) -> list[list]:
    return [[text, [_seconds(s), _seconds(e)], who] for text, (s, e), who in rows]


def write_text_atomic(path: Path, text: str) -> None:
    """Write a text file through a temporary file and a rename, so readers never see half of it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a dataset is meant to be read by others
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_dialogue(out: Path, dialogue: RenderedDialogue) -> float:
    """Write WAV then JSON (the completion mark); returns the duration in seconds."""
    wav, meta = dialogue_paths(out, dialogue.split, dialogue.index)
    wav.parent.mkdir(parents=True, exist_ok=True)
    write_wav(wav, dialogue.audio, SAMPLE_RATE)
    write_text_atomic(meta, json.dumps(annotations(dialogue), separators=(",", ":")) + "\n")
    return len(dialogue.audio) / SAMPLE_RATE


def read_dialogue(json_path: Path) -> tuple[np.ndarray, dict]:
    """(stereo audio, annotations) of a dialogue, checking the pair belongs together."""
    json_path = Path(json_path)
    try:
        meta = json.loads(json_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{json_path}: not a readable dialogue annotation ({exc})") from None
    audio, sr = read_wav(json_path.with_suffix(".wav"))
    if audio.shape[1] != 2 or sr != meta.get("sample_rate", sr):
        raise DataError(f"{json_path.with_suffix('.wav')}: expected stereo at {meta.get('sample_rate')} Hz")
    return audio, meta


def complete_dialogues(out: Path) -> list[Path]:
    """JSON paths of all complete dialogues under out, in split and index order."""
    out = Path(out)
    return [p for split in SPLITS for p in sorted((out / split).glob("dialogue_*.json")) if p.with_suffix(".wav").exists()]


def write_manifests(out: Path) -> dict[str, int]:
    """Rewrite manifest.jsonl and the per-split manifests from the complete dialogues; returns counts per split."""
    out = Path(out)
    lines: dict[str, list[str]] = {split: [] for split in SPLITS}
    for meta_path in complete_dialogues(out):
        meta = json.loads(meta_path.read_text())
        entry = {"path": meta_path.with_suffix(".wav").relative_to(out).as_posix(), "duration": meta["duration"]}
        lines[meta_path.parent.name].append(json.dumps(entry))
    for name, rows in [(MANIFEST, [r for split in SPLITS for r in lines[split]])] + [
        (f"{split}.jsonl", lines[split]) for split in SPLITS
    ]:
        write_text_atomic(out / name, "".join(row + "\n" for row in rows))
    return {split: len(rows) for split, rows in lines.items()}


def read_manifest(path: Path) -> list[dict]:
    """Entries of a manifest (.jsonl), with paths resolved against the manifest's folder."""
    path = Path(path)
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable manifest ({exc})") from None
    return [{**row, "path": str(path.parent / row["path"])} for row in rows]
