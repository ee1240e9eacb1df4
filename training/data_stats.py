"""Turn-taking statistics of a synthetic dataset, measured from its audio against its annotations.

The annotations say what the generator meant; the audio is what a model
will hear. Measuring the audio with the same tools the evaluation uses
(duplex/metrics.py: Silero VAD with energy-refined edges, IPUs, pauses,
gaps, overlaps) and comparing shows whether the two agree:

- event recall: the share of annotated turns, backchannels, interruptions
  and pauses whose start and end the audio reproduces within one tick (80 ms);
- turn-transition gaps: for each speaker change between turns with silence
  in between, the gap measured on the audio; its median is compared with the
  recipe's gap parameter;
- distributions of gaps, pauses, overlaps, IPUs (dGSLM definitions) and turn
  lengths, measured and annotated, as numbers and as histograms (PNG).
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audio.frames import TICK_MS
from audio.vad import Segment
from duplex.metrics import (
    AGENT,
    USER,
    Interval,
    TurnTaking,
    channel_ipus,
    ipus,
    turn_taking,
)
from training.dataset import (
    DataError,
    complete_dialogues,
    event_from_json,
    read_dialogue,
)
from training.timeline import Event

TOLERANCE_S = TICK_MS / 1000
SPEAKERS = {"agent": AGENT, "user": USER}
QUANTITIES = ("gap", "pause", "overlap", "ipu", "turn")


@dataclass
class DialogueStats:
    """One dialogue's measured and annotated quantities (seconds), and its event matches."""

    measured: dict[str, list[float]] = field(default_factory=lambda: {q: [] for q in QUANTITIES})
    annotated: dict[str, list[float]] = field(default_factory=lambda: {q: [] for q in QUANTITIES})
    found: dict[str, list[bool]] = field(default_factory=dict)
    """Per event kind: for each annotated event, whether the audio shows it within the tolerance."""
    transition_gaps: list[tuple[float, float]] = field(default_factory=list)
    """(annotated, measured) silence at each speaker change between turns."""
    misses: list[dict] = field(default_factory=list)


def annotated_ipus(alignments: list, speaker: str) -> list[Interval]:
    """IPUs of the annotation: one speaker's word spans joined across short silences, as the audio's are."""
    label = "SPEAKER_MAIN" if speaker == "agent" else "SPEAKER_OTHER"
    words = sorted((start, end) for _, (start, end), who in alignments if who == label)
    return ipus([Segment(s, e) for s, e in words], speaker=SPEAKERS[speaker])


def _quantities(tt: TurnTaking) -> dict[str, list[float]]:
    return {
        "gap": [g.duration for g in tt.gaps],
        "pause": [p.duration for p in tt.pauses],
        "overlap": [o.duration for o in tt.overlaps],
        "ipu": [i.duration for i in tt.ipus],
    }


def _covering(ipus_: list[Interval], start: float, end: float, tol: float) -> list[Interval]:
    return [iv for iv in ipus_ if iv.end > start - tol and iv.start < end + tol]


def match_event(event: Event, channel: list[Interval], tol: float = TOLERANCE_S) -> tuple[float, float] | None:
    """The measured (start, end) of an annotated event on its speaker's IPUs, or None if not within tol.

    A pause is found when an IPU ends at its start and another begins at its
    end; any other event when the IPUs it covers begin at its start and end at
    its end (a turn with pauses in it spans several IPUs).
    """
    if event.kind == "pause":
        ends = [iv.end for iv in channel if abs(iv.end - event.start) <= tol]
        starts = [iv.start for iv in channel if abs(iv.start - event.end) <= tol]
        return (ends[0], starts[0]) if ends and starts else None
    covered = _covering(channel, event.start, event.end, tol)
    if not covered:
        return None
    start, end = covered[0].start, max(iv.end for iv in covered)
    return (start, end) if abs(start - event.start) <= tol and abs(end - event.end) <= tol else None


def dialogue_stats(audio: np.ndarray, meta: dict, tol: float = TOLERANCE_S) -> DialogueStats:
    stats = DialogueStats()
    duration = len(audio) / meta["sample_rate"]
    measured = {"agent": channel_ipus(audio[:, 0], AGENT), "user": channel_ipus(audio[:, 1], USER)}
    annotated = {s: annotated_ipus(meta["alignments"], s) for s in SPEAKERS}
    stats.measured.update(_quantities(turn_taking(measured["agent"], measured["user"], duration)))
    stats.annotated.update(_quantities(turn_taking(annotated["agent"], annotated["user"], duration)))
    events = [event_from_json(e) for e in meta["events"]]
    spans: dict[int, tuple[float, float]] = {}
    for i, event in enumerate(events):
        span = match_event(event, measured[event.speaker], tol)
        stats.found.setdefault(event.kind, []).append(span is not None)
        if span is None:
            stats.misses.append({"kind": event.kind, "speaker": event.speaker, "start": event.start, "end": event.end})
        else:
            spans[i] = span
        if event.kind in ("turn", "interruption"):
            stats.annotated["turn"].append(event.end - event.start)
            if span is not None:
                stats.measured["turn"].append(span[1] - span[0])
    turns = [i for i, e in enumerate(events) if e.kind in ("turn", "interruption")]
    for a, b in zip(turns, turns[1:]):
        before, after = events[a], events[b]
        if before.speaker != after.speaker and after.start > before.end and a in spans and b in spans:
            stats.transition_gaps.append((after.start - before.end, spans[b][0] - spans[a][1]))
    return stats


def _one(path: str) -> DialogueStats:
    audio, meta = read_dialogue(Path(path))
    stats = dialogue_stats(audio, meta)
    for miss in stats.misses:
        miss["dialogue"] = Path(path).stem
    return stats


def dataset_stats(folder: Path, limit: int | None = None, workers: int | None = None) -> list[DialogueStats]:
    """Stats of the first `limit` complete dialogues of folder (all by default), on all cores."""
    paths = [str(p) for p in complete_dialogues(Path(folder))][:limit]
    if not paths:
        raise DataError(f"{folder}: no complete dialogues (a WAV with its JSON) under train/, valid/ or test/")
    workers = max(1, min(workers or os.cpu_count() or 1, len(paths)))
    if workers == 1:
        return [_one(p) for p in paths]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return pool.map(_one, paths)


def _describe(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    v = np.asarray(values)
    return {"count": len(v), "median_s": round(float(np.median(v)), 3), "mean_s": round(float(v.mean()), 3),
            "p10_s": round(float(np.percentile(v, 10)), 3), "p90_s": round(float(np.percentile(v, 90)), 3)}


def summarize(all_stats: list[DialogueStats], gap_parameter_s: float) -> dict:
    """Totals over dialogues: event recall per kind, transition gaps against the parameter, distributions."""
    found: dict[str, list[bool]] = {}
    for s in all_stats:
        for kind, hits in s.found.items():
            found.setdefault(kind, []).extend(hits)
    every = [h for hits in found.values() for h in hits]
    gaps = [g for s in all_stats for g in s.transition_gaps]
    measured_gaps = [m for _, m in gaps]
    return {
        "dialogues": len(all_stats),
        "event_recall": round(float(np.mean(every)), 4) if every else None,
        "event_recall_by_kind": {k: {"found": int(sum(v)), "of": len(v)} for k, v in sorted(found.items())},
        "tolerance_s": TOLERANCE_S,
        "transition_gap": {
            "parameter_median_s": gap_parameter_s,
            "annotated": _describe([a for a, _ in gaps]),
            "measured": _describe(measured_gaps),
            "measured_minus_annotated_median_s": round(float(np.median([m - a for a, m in gaps])), 3) if gaps else None,
        },
        "measured": {q: _describe([x for s in all_stats for x in s.measured[q]]) for q in QUANTITIES},
        "annotated": {q: _describe([x for s in all_stats for x in s.annotated[q]]) for q in QUANTITIES},
        "misses": [m for s in all_stats for m in s.misses][:20],
    }


def plot_histograms(all_stats: list[DialogueStats], out: Path) -> list[Path]:
    """One PNG per quantity: measured and annotated distributions overlaid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for q in QUANTITIES:
        measured = [x for s in all_stats for x in s.measured[q]]
        annotated = [x for s in all_stats for x in s.annotated[q]]
        values = measured + annotated
        if not values:
            continue
        bins = np.linspace(0.0, float(np.percentile(values, 99)) or 1.0, 40)
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.hist(annotated, bins=bins, alpha=0.5, label=f"annotated (n={len(annotated)})")
        ax.hist(measured, bins=bins, alpha=0.5, label=f"measured from audio (n={len(measured)})")
        ax.set_xlabel(f"{q} duration (s)")
        ax.set_ylabel("count")
        ax.legend()
        fig.tight_layout()
        path = out / f"{q}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
