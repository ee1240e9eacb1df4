"""`duplex simulate`: agent-vs-agent dialogues across a simulated network, swept over latency.

For each one-way latency and each compensation setting, runs the same
dialogues (same seeds, same scripts) and writes, per dialogue, a stereo WAV
per side (channel 0 what that side said, channel 1 what it heard) and a JSON
of events, answers and network counters; then a summary table (markdown and
JSON) and a plot of the turn-taking measures against latency.

Measures are taken on the user's side (what the user said and heard), which
is what a caller experiences: the response gap after the user's end of turn,
the overlap rate (overlapping time / time anyone speaks), task success (the
domain checker on the Whisper transcript of each answer) and the agent's stop
time after the user's barge-ins.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from audio.asr import transcribe
from audio.wav import write_wav
from duplex.agent import Agent
from duplex.agents import load_agent
from duplex.metrics import AGENT, USER, channel_ipus, stop_times, turn_taking
from duplex.scripted_user import ScriptedUser, ScriptedUserState, domain_scripts
from duplex.simulate import DialogueRecord, NetworkConfig, simulate


class SimulationError(Exception):
    """Bad simulation arguments."""


def make_side(model: str, dialogues: int, seed: int, compute_latency_ms: float | None) -> Agent:
    if model == "user":
        return ScriptedUser(domain_scripts(dialogues, seed))
    fixed = None if compute_latency_ms is None else compute_latency_ms / 1000.0
    return load_agent(model, virtual_clock=True, fixed_latency_s=fixed)


def score_answers(record: DialogueRecord) -> list[dict]:
    """Judge each answer the scripted user (side A) received, on what it heard."""
    from duplex.domains import check_answer

    state: ScriptedUserState = record.a.state
    T = 1280
    out = []
    for span in state.answers:
        expected = state.script[span.line].expected
        if expected is None:
            continue
        if span.start_tick is None:
            out.append({"line": span.line, "answered": False, "correct": False, "transcript": ""})
            continue
        end = span.end_tick if span.end_tick is not None else len(record.a.heard) // T
        text, _ = transcribe(record.a.heard[max(0, span.start_tick - 2) * T : (end + 1) * T])
        verdict = check_answer(expected, text)
        out.append({"line": span.line, "answered": True, "correct": verdict.correct, "transcript": text})
    return out


def user_side_measures(record: DialogueRecord) -> dict:
    """Turn-taking as the user experiences it: its own speech vs the agent as heard."""
    agent = channel_ipus(record.a.heard, AGENT)
    user = channel_ipus(record.a.said, USER)
    tt = turn_taking(agent, user, len(record.a.said) / 16000)
    speech = np.zeros(len(record.a.said) // 160, bool)
    for iv in agent + user:
        speech[int(iv.start * 100) : int(iv.end * 100)] = True
    stops = [s for s in stop_times(agent, user) if s is not None]
    return {
        "gaps": [g.duration for g in tt.gaps if g.speaker == AGENT],
        "overlap_s": sum(o.duration for o in tt.overlaps),
        "speech_s": float(speech.sum()) / 100,
        "stops": stops,
    }


def summarise(latency: float, compensate: bool, measures: list[dict], answers: list[list[dict]]) -> dict:
    gaps = [g for m in measures for g in m["gaps"]]
    stops = [s for m in measures for s in m["stops"]]
    judged = [a for ans in answers for a in ans]
    speech = sum(m["speech_s"] for m in measures)
    return {
        "latency_ms": latency,
        "compensation": compensate,
        "median_gap_s": round(float(np.median(gaps)), 3) if gaps else None,
        "overlap_rate": round(sum(m["overlap_s"] for m in measures) / speech, 3) if speech else None,
        "task_success": round(float(np.mean([a["correct"] for a in judged])), 3) if judged else None,
        "median_stop_s": round(float(np.median(stops)), 3) if stops else None,
        "answers": len(judged),
    }


def write_dialogue(folder: Path, record: DialogueRecord, answers: list[dict]) -> None:
    write_wav(folder / f"dialogue_{record.index:03d}_a.wav", record.a.stereo(), 16000)
    write_wav(folder / f"dialogue_{record.index:03d}_b.wav", record.b.stereo(), 16000)
    info = {
        "a": {"events": record.a.events, "stream": record.a.stream, "link_in": record.a.link_in},
        "b": {"events": record.b.events, "stream": record.b.stream, "link_in": record.b.link_in},
        "answers": answers,
    }
    if isinstance(record.a.state, ScriptedUserState):
        info["user_turns"] = [asdict(s) for s in record.a.state.answers]
    tmp = folder / f".dialogue_{record.index:03d}.json.tmp"
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, folder / f"dialogue_{record.index:03d}.json")


def table(rows: list[dict]) -> str:
    head = "| one-way latency (ms) | compensation | median gap (s) | overlap rate | task success | median stop (s) |\n"
    head += "|---:|:---:|---:|---:|---:|---:|\n"
    fmt = lambda v: "-" if v is None else f"{v}"
    return head + "".join(
        f"| {r['latency_ms']:g} | {'on' if r['compensation'] else 'off'} | {fmt(r['median_gap_s'])} | "
        f"{fmt(r['overlap_rate'])} | {fmt(r['task_success'])} | {fmt(r['median_stop_s'])} |\n"
        for r in rows
    )


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [("median_gap_s", "median gap (s)"), ("overlap_rate", "overlap rate"), ("task_success", "task success")]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    for ax, (key, label) in zip(axes, keys):
        for comp in sorted({r["compensation"] for r in rows}):
            pts = [(r["latency_ms"], r[key]) for r in rows if r["compensation"] == comp and r[key] is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=f"compensation {'on' if comp else 'off'}")
        ax.set_xlabel("one-way latency (ms)")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="agent-vs-agent dialogues across a simulated network, swept over latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--a", default="user", help="side A: 'user' (scripted user), 'baseline' or a checkpoint (default user)")
    p.add_argument("--b", default="baseline", help="side B, the agent under test (default baseline)")
    p.add_argument("--dialogues", type=int, default=4, help="dialogues per condition, batched in one engine (default 4)")
    p.add_argument("--seconds", type=float, default=40.0, help="length of each dialogue (default 40)")
    p.add_argument("--latency", default="0,80,160,240", help="one-way latencies in ms, comma-separated")
    p.add_argument("--jitter", type=float, default=0.0, help="jitter (sd of the delay) in ms")
    p.add_argument("--loss", type=float, default=0.0, help="frame loss probability")
    p.add_argument("--reorder", action="store_true", help="let jitter reorder frames (default FIFO)")
    p.add_argument("--compensation", choices=["on", "off", "both"], default="both")
    p.add_argument("--compute-latency", type=float, metavar="MS",
                   help="fixed compute latency for the baseline's ASR/TTS (default: measured; set it for byte-identical reruns)")
    p.add_argument("--no-score", action="store_true", help="skip judging the answers with Whisper")
    p.add_argument("--wall", metavar="URL",
                   help="run on the wall clock against a running `duplex serve` at URL (ws://127.0.0.1:8765/v1/duplex): "
                        "every side that is not 'user' is a live session of that server")
    p.add_argument("--token", help="the server's token (with --wall; default $DUPLEX_TOKEN)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder (created)")
    p.set_defaults(func=_run)


def share_threads(models: list[str]) -> None:
    """Give each learned side (a checkpoint) an equal share of torch's threads before it is built: the
    simulator steps both sides at once, and two learned agents of two threads each ran slower on 2 cores
    than of one thread each (docs/benchmarks.md)."""
    learned = sum(model not in ("user", "baseline") for model in models)
    if learned > 1:
        import torch

        torch.set_num_threads(max(1, torch.get_num_threads() // learned))


def run_virtual(args: argparse.Namespace, net: NetworkConfig) -> list[DialogueRecord]:
    side_a = make_side(args.a, args.dialogues, args.seed, args.compute_latency)
    side_b = make_side(args.b, args.dialogues, args.seed, args.compute_latency)
    try:
        return simulate(side_a, side_b, args.dialogues, args.seconds, net, seed=args.seed)
    finally:
        side_a.close(), side_b.close()


def run_wall(args: argparse.Namespace, net: NetworkConfig) -> list[DialogueRecord]:
    """The dialogues run concurrently, each with its own sessions on the server."""
    import asyncio

    from duplex.wall_simulate import simulate_wall

    token = args.token or os.environ.get("DUPLEX_TOKEN")

    async def one(i: int) -> DialogueRecord:
        local = {name: ScriptedUser(domain_scripts(1, args.seed + i)) for name in "ab" if getattr(args, name) == "user"}
        record = await simulate_wall(args.wall, local, args.seconds, net, seed=args.seed + i, token=token)
        record.index = i
        return record

    async def all_dialogues() -> list[DialogueRecord]:
        return list(await asyncio.gather(*(one(i) for i in range(args.dialogues))))

    return asyncio.run(all_dialogues())


def _run(args: argparse.Namespace) -> int:
    try:
        latencies = [float(x) for x in args.latency.split(",")]
    except ValueError:
        raise SimulationError(f"--latency must be comma-separated numbers, got {args.latency!r}") from None
    if args.dialogues < 1 or args.seconds <= 0 or any(x < 0 for x in latencies):
        raise SimulationError("--dialogues must be >= 1, --seconds > 0 and latencies >= 0")
    comps = {"on": [True], "off": [False], "both": [False, True]}[args.compensation]
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SimulationError(f"cannot create {out}: {exc.strerror}") from None
    rows = []
    conditions = [(lat, comp) for lat in latencies for comp in comps]
    if not args.wall:
        share_threads([args.a, args.b])
    for lat, comp in tqdm(conditions, desc="conditions", unit="cond"):
        net = NetworkConfig(delay_ms=lat, jitter_ms=args.jitter, loss=args.loss, reorder=args.reorder, compensate=comp)
        records = run_wall(args, net) if args.wall else run_virtual(args, net)
        folder = out / f"latency_{lat:g}ms_comp_{'on' if comp else 'off'}"
        folder.mkdir(exist_ok=True)
        scripted = args.a == "user"
        answers = [score_answers(r) if scripted and not args.no_score else [] for r in records]
        for r, a in zip(records, answers):
            write_dialogue(folder, r, a)
        measures = [user_side_measures(r) for r in records] if scripted else []
        rows.append(summarise(lat, comp, measures, answers))
    (out / "summary.json").write_text(json.dumps(rows, indent=1))
    (out / "summary.md").write_text(table(rows))
    plot(rows, out / "sweep.png")
    print(table(rows))
    print(f"wrote {out}/ (per-condition folders, summary.md, summary.json, sweep.png)")
    return 0
