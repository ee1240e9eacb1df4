"""Turn-taking statistics from two channels, as dGSLM/SyncLLM and Full-Duplex-Bench define them.

Input: a two-channel signal in the dialogue convention (channel 0 the agent,
channel 1 the user). Everything is measured from the audio alone:

1. Silero VAD per channel gives speech segments (32 ms windows), whose edges
   are then snapped to the signal's energy (10 ms hops; see refine_segments).
2. IPUs (inter-pausal units): speech segments of one channel joined across
   silences shorter than 200 ms.
3. On the joint timeline, every stretch where both channels are active is an
   *overlap*; every stretch where neither is active, between two IPUs, is a
   *pause* when the IPUs before and after it belong to the same speaker and a
   *gap* when the speaker changes (dGSLM, Nguyen et al. 2022).

Full-Duplex-Bench style measures on top of the IPUs:

- response latency: for each user IPU end that the agent answers (its next
  IPU starts after the user's IPU ends and before the user speaks again), the
  time from the user's end to the agent's start;
- takeover after a user pause: for each pause between two user IPUs, whether
  the agent takes the turn in it. Without words, a "takeover" is agent speech
  starting in the pause that lasts at least `backchannel_max_s` (1 s, the
  Full-Duplex-Bench rule's time part); shorter agent speech is a backchannel;
- stop time after a barge-in: for each user IPU starting while the agent
  speaks, how long the agent goes on (None when it does not stop within
  `stop_window_s`).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

import numpy as np

from audio.frames import SAMPLE_RATE
from audio.resample import resample
from audio.vad import (
    REFINE_HOP_S,
    Segment,
    refine_segments,
    speech_segments,
    vad_probabilities,
)
from audio.wav import AudioError, read_wav

IPU_JOIN_S = 0.2
AGENT, USER = 0, 1


@dataclass
class Interval:
    start: float
    end: float
    speaker: int = -1

    @property
    def duration(self) -> float:
        return self.end - self.start


def ipus(segments: list[Segment], join_s: float = IPU_JOIN_S, speaker: int = -1) -> list[Interval]:
    """Join VAD segments of one channel across silences shorter than join_s."""
    out: list[Interval] = []
    for seg in segments:
        if out and seg.start - out[-1].end < join_s - 1e-9:
            out[-1].end = seg.end
        else:
            out.append(Interval(seg.start, seg.end, speaker))
    return out


def channel_ipus(audio: np.ndarray, speaker: int, threshold: float = 0.5) -> list[Interval]:
    """IPUs of one 16 kHz channel (VAD segments with energy-refined edges, joined)."""
    segments = refine_segments(speech_segments(vad_probabilities(audio), threshold), audio)
    return ipus(segments, speaker=speaker)


def _mask(intervals: list[Interval], n_frames: int, frame_s: float) -> np.ndarray:
    m = np.zeros(n_frames, dtype=bool)
    for iv in intervals:
        m[int(round(iv.start / frame_s)) : int(round(iv.end / frame_s))] = True
    return m


def _runs(mask: np.ndarray, frame_s: float) -> list[tuple[float, float]]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [(a * frame_s, b * frame_s) for a, b in zip(edges[::2], edges[1::2])]


@dataclass
class TurnTaking:
    ipus: list[Interval]
    pauses: list[Interval]  # speaker = whose pause
    gaps: list[Interval]  # speaker = who speaks after the gap
    overlaps: list[Interval]


def turn_taking(
    agent_ipus: list[Interval], user_ipus: list[Interval], duration: float, frame_s: float = REFINE_HOP_S
) -> TurnTaking:
    n = int(np.ceil(duration / frame_s)) + 1
    a, u = _mask(agent_ipus, n, frame_s), _mask(user_ipus, n, frame_s)
    overlaps = [Interval(s, e) for s, e in _runs(a & u, frame_s)]
    all_ipus = sorted(agent_ipus + user_ipus, key=lambda iv: (iv.start, iv.end))
    pauses, gaps = [], []
    for start, end in _runs(~(a | u), frame_s):
        # run edges sit on the frame grid, IPU edges need not: allow one frame of rounding
        before = [iv for iv in all_ipus if iv.end <= start + frame_s]
        after = [iv for iv in all_ipus if iv.start >= end - frame_s]
        if not before or not after:
            continue  # leading or trailing silence
        last = max(before, key=lambda iv: iv.end)
        nxt = min(after, key=lambda iv: iv.start)
        if last.speaker == nxt.speaker:
            pauses.append(Interval(start, end, last.speaker))
        else:
            gaps.append(Interval(start, end, nxt.speaker))
    return TurnTaking(all_ipus, pauses, gaps, overlaps)


def response_latencies(agent_ipus: list[Interval], user_ipus: list[Interval]) -> list[float]:
    """Agent start minus user end, for each user IPU the agent answers before the user speaks again."""
    out = []
    for i, u in enumerate(user_ipus):
        next_user = user_ipus[i + 1].start if i + 1 < len(user_ipus) else float("inf")
        starts = [a.start for a in agent_ipus if u.end <= a.start < next_user]
        if starts:
            out.append(min(starts) - u.end)
    return out


def pause_takeovers(agent_ipus: list[Interval], pauses: list[Interval], backchannel_max_s: float = 1.0) -> list[bool]:
    """For each user pause: did the agent take the turn (speech starting in it, >= backchannel_max_s long)?"""
    out = []
    for p in (p for p in pauses if p.speaker == USER):
        out.append(any(p.start <= a.start < p.end and a.duration >= backchannel_max_s for a in agent_ipus))
    return out


def stop_times(agent_ipus: list[Interval], user_ipus: list[Interval], stop_window_s: float = 2.0) -> list[float | None]:
    """For each user IPU starting while the agent speaks: seconds until the agent stops (None if it goes on)."""
    out: list[float | None] = []
    for u in user_ipus:
        for a in agent_ipus:
            if a.start < u.start < a.end:
                t = a.end - u.start
                out.append(t if t <= stop_window_s else None)
                break
    return out


def _describe(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    v = np.asarray(values)
    return {
        "count": len(v),
        "mean_s": round(float(v.mean()), 3),
        "median_s": round(float(np.median(v)), 3),
        "p90_s": round(float(np.percentile(v, 90)), 3),
    }


def dialogue_metrics(stereo: np.ndarray, sample_rate: int = SAMPLE_RATE) -> dict:
    """All measures of a (frames, 2) dialogue signal, channel 0 agent, channel 1 user."""
    if stereo.ndim != 2 or stereo.shape[1] < 2:
        raise AudioError("a dialogue needs two channels (0 = agent, 1 = user)")
    agent = resample(stereo[:, AGENT], sample_rate, SAMPLE_RATE)
    user = resample(stereo[:, USER], sample_rate, SAMPLE_RATE)
    duration = len(agent) / SAMPLE_RATE
    a_ipus, u_ipus = channel_ipus(agent, AGENT), channel_ipus(user, USER)
    tt = turn_taking(a_ipus, u_ipus, duration)
    takeovers = pause_takeovers(a_ipus, tt.pauses)
    stops = stop_times(a_ipus, u_ipus)
    stopped = [s for s in stops if s is not None]
    return {
        "duration_s": round(duration, 3),
        "ipu": {"agent": _describe([i.duration for i in a_ipus]), "user": _describe([i.duration for i in u_ipus])},
        "pause": {
            "agent": _describe([p.duration for p in tt.pauses if p.speaker == AGENT]),
            "user": _describe([p.duration for p in tt.pauses if p.speaker == USER]),
        },
        "gap": {
            "user_to_agent": _describe([g.duration for g in tt.gaps if g.speaker == AGENT]),
            "agent_to_user": _describe([g.duration for g in tt.gaps if g.speaker == USER]),
        },
        "overlap": _describe([o.duration for o in tt.overlaps]),
        "response_latency": _describe(response_latencies(a_ipus, u_ipus)),
        "pause_takeover_rate": round(float(np.mean(takeovers)), 3) if takeovers else None,
        "barge_in": {
            "count": len(stops),
            "stop_rate": round(len(stopped) / len(stops), 3) if stops else None,
            "stop_time": _describe(stopped),
        },
    }


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "metrics",
        help="turn-taking statistics of a two-channel dialogue WAV, as JSON",
        description="Measure IPUs, pauses, gaps, overlaps, response latency, pause takeovers and barge-in stop "
        "times of FILE.wav (channel 0 = agent, channel 1 = user) with Silero VAD.",
    )
    p.add_argument("file", metavar="FILE.wav")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    data, rate = read_wav(args.file)
    print(json.dumps(dialogue_metrics(data, rate), indent=2))
    return 0
