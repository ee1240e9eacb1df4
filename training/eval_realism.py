"""Turn-taking realism on held-out dialogues (SyncLLM's measure).

Each dialogue of a dataset split (made by `duplex data generate`: held-out
phrasings and user voices in the test split) is replayed with the agent
under test in the agent's place: it hears the recorded user channel through
`duplex respond` and its output becomes the conversation's agent channel.
For that conversation and for the recorded one (the ground truth), the mean
durations of inter-pausal units, pauses and gaps are measured from the
audio (Silero VAD, duplex/metrics.py); the Pearson correlation of each
across dialogues says whether the agent's timing follows what the
dialogue calls for: SyncLLM reports these per-dialogue correlations
between its generated conversations and the ground truth.

The user channel is a recording, so the user does not wait for the agent
(as in Full-Duplex-Bench): an agent that answers at length meets the
user's next question where the recording has it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from audio.frames import SAMPLE_RATE
from duplex.agent import Agent
from duplex.metrics import AGENT, USER, channel_ipus, turn_taking
from duplex.respond import respond_audio
from training.dataset import DataError, read_dialogue, read_manifest

MEASURES = ("ipu", "pause", "gap")


def mean_durations(agent: np.ndarray, user: np.ndarray) -> dict[str, float | None]:
    """Mean seconds of the IPUs, pauses and gaps of a two-channel conversation (both speakers pooled)."""
    a_ipus, u_ipus = channel_ipus(agent, AGENT), channel_ipus(user, USER)
    tt = turn_taking(a_ipus, u_ipus, len(user) / SAMPLE_RATE)
    mean = lambda intervals: float(np.mean([iv.duration for iv in intervals])) if intervals else None
    return {"ipu": mean(tt.ipus), "pause": mean(tt.pauses), "gap": mean(tt.gaps)}


def pearson(pairs: list[tuple[float | None, float | None]]) -> float | None:
    """Pearson's r over the pairs where both values exist; None with fewer than 3 or a constant side."""
    both = np.array([(a, b) for a, b in pairs if a is not None and b is not None], dtype=np.float64)
    if len(both) < 3 or both[:, 0].std() == 0 or both[:, 1].std() == 0:
        return None
    return round(float(np.corrcoef(both[:, 0], both[:, 1])[0, 1]), 3)


def dialogue_paths(data: Path, split: str, count: int) -> list[Path]:
    """The first `count` dialogues of a dataset split."""
    manifest = Path(data).expanduser() / f"{split}.jsonl"
    if not manifest.is_file():
        raise DataError(f"{manifest}: no such manifest; make the data with `duplex data generate --out {data}` "
                        "(or pass --dialogues 0 to skip the realism measure)")
    paths = [Path(row["path"]) for row in read_manifest(manifest)][:count]
    if not paths:
        raise DataError(f"{manifest}: lists no dialogues")
    return paths


def realism(agent: Agent, paths: Iterable[Path], seed: int = 0) -> tuple[dict, list[dict]]:
    """The table's realism columns for one agent, and each dialogue's durations."""
    rows = []
    for i, path in enumerate(paths):
        audio, _ = read_dialogue(path.with_suffix(".json"))
        user = np.ascontiguousarray(audio[:, USER])
        said = respond_audio(agent, user, seed=seed + i).agent_audio
        rows.append({"dialogue": path.name, "truth": mean_durations(audio[:, AGENT], user),
                     "agent": mean_durations(said, user)})
    summary = {f"realism_{m}_r": pearson([(r["agent"][m], r["truth"][m]) for r in rows]) for m in MEASURES}
    return {**summary, "realism_dialogues": len(rows)}, rows
