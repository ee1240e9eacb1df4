"""`duplex eval`: agents side by side, on held-out phrasings, sentences and voices.

    duplex eval --models baseline,baseline-smart-turn,RUNS/dialogue/checkpoints/latest --cases 10
    duplex eval lsm --models baseline,RUNS/lsm-listen/checkpoints/latest --sentences 20

`duplex eval` (the dialogue suite):
For each agent, runs every case through `duplex respond` (virtual clock, the
latency a live user would meet) and measures pause handling, smooth
turn-taking, backchannels, interruptions, answer accuracy (Whisper + the
domain checker; and the checker on the agent's own text, what it meant to
say: right words whatever the voice) and intelligibility (Whisper's WER on
what the agent meant to say, beside the same judge's WER on those words
rendered by espeak-ng in the agent's voice); then replays `--dialogues`
dialogues of the dataset's split with the agent in the agent's place and
correlates their IPU, pause and gap durations with the recorded ones
(SyncLLM's realism, training/eval_realism.py). Writes one table (markdown
and JSON) and plots to the output folder (default docs/eval).

`duplex eval lsm` (the listen-while-speaking suite, training/eval_lsm.py):
intelligibility against the espeak-ng floor, interruption F1 clean and with
noise, stop latency, false stops on backchannels and noise, and whether
agent.say.done's spoken_text matches what was said. Writes lsm.md and
lsm.json.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from duplex.agents import load_agent
from models.checkpoint import write_json
from training.eval_cases import make_cases
from training.eval_realism import dialogue_paths, realism
from training.evaluate import run_cases, summarise

COLUMNS = [
    ("pause_takeover_rate", "pause TOR ↓"),
    ("turn_takeover_rate", "turn TOR ↑"),
    ("turn_latency_median_s", "response latency (s) ↓"),
    ("backchannels_per_min", "backchannels / min"),
    ("backchannel_takeover_rate", "backchannel TOR ↓"),
    ("stop_latency_median_s", "stop latency (s) ↓"),
    ("interruption_responded_rate", "answers the interruption ↑"),
    ("answer_accuracy", "answers correct ↑"),
    ("meant_answer_accuracy", "answers correct in its text ↑"),
    ("wer", "WER ↓"),
    ("wer_floor_espeak", "WER of espeak-ng itself (floor)"),
    ("realism_ipu_r", "IPU r ↑"),
    ("realism_pause_r", "pause r ↑"),
    ("realism_gap_r", "gap r ↑"),
]


class EvalError(Exception):
    """Bad evaluation arguments."""


LSM_COLUMNS = [
    ("wer", "WER ↓"),
    ("wer_floor_espeak", "WER of espeak-ng itself (floor)"),
    ("f1_clean", "interruption F1 ↑"),
    ("f1_noisy", "F1 at 10 dB SNR ↑"),
    ("stop_latency_median_s", "stop latency (s) ↓"),
    ("false_stops_backchannel", "false stops, backchannel ↓"),
    ("false_stops_noise", "false stops, noise ↓"),
    ("stops_silent_user", "stops, silent user ↓"),
    ("spoken_text_wer", "spoken_text vs heard (WER) ↓"),
]


def table(rows: dict[str, dict], columns: list[tuple[str, str]] = COLUMNS) -> str:
    head = "| model | " + " | ".join(label for _, label in columns) + " |\n"
    head += "|---|" + "---:|" * len(columns) + "\n"
    fmt = lambda v: "-" if v is None else f"{v}"
    return head + "".join(f"| {m} | " + " | ".join(fmt(r[k]) for k, _ in columns) + " |\n" for m, r in rows.items())


def plot(rows: dict[str, dict], latencies: dict[str, list[float]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    rates = [k for k, _ in COLUMNS if k.endswith("_rate") or k == "answer_accuracy"]
    width = 0.8 / max(1, len(rows))
    for i, (model, row) in enumerate(rows.items()):
        axes[0].bar([j + i * width for j in range(len(rates))], [row[k] or 0 for k in rates], width, label=model)
        if latencies[model]:
            axes[1].hist(latencies[model], bins=20, range=(0, 4), alpha=0.5, label=model)
    axes[0].set_xticks([j + 0.4 - width / 2 for j in range(len(rates))])
    axes[0].set_xticklabels([dict(COLUMNS)[k] for k in rates], rotation=30, ha="right", fontsize=8)
    axes[0].set_ylim(0, 1)
    axes[0].legend(fontsize=8)
    axes[0].set_title("rates per category")
    axes[1].set_xlabel("response latency after the user's end of turn (s)")
    axes[1].legend(fontsize=8)
    axes[1].set_title("response latency")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="agents side by side on Full-Duplex-Bench-style cases",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suite", nargs="?", default="dialogue", choices=["dialogue", "lsm"],
                   help="dialogue (default): turn-taking cases; lsm: listen-while-speaking measures")
    p.add_argument("--sentences", type=int, default=20, help="held-out sentences (lsm suite; default 20)")
    p.add_argument("--models", default="baseline,baseline-smart-turn",
                   help="comma-separated agents: baseline, baseline-smart-turn, or checkpoint folders")
    p.add_argument("--cases", type=int, default=10, help="cases per category (default 10)")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"],
                   help="the phrasings and voices of the cases, and the dataset split replayed (default test)")
    p.add_argument("--data", type=Path, default=Path("~/.cache/duplex/data/default"),
                   help="the dataset whose dialogues are replayed for realism (default ~/.cache/duplex/data/default)")
    p.add_argument("--dialogues", type=int, default=10,
                   help="dialogues replayed for realism (default 10; 0 skips the measure)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--judge", default="base", choices=["small", "base"],
                   help="the Whisper model that hears the agents (default base, the more accurate)")
    p.add_argument("--out", type=Path, default=Path("docs/eval"), help="output folder (default docs/eval)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.cases < 1 or args.dialogues < 0:
        raise EvalError("--cases must be at least 1 and --dialogues at least 0")
    models = [m for m in args.models.split(",") if m]
    agents = {m: load_agent(m, virtual_clock=True) for m in models}  # fail early on a bad --models
    args.out.mkdir(parents=True, exist_ok=True)
    if args.suite == "lsm":
        return _run_lsm(args, agents)
    dialogues = dialogue_paths(args.data, args.split, args.dialogues) if args.dialogues else []  # fail early too
    cases = make_cases(args.cases, args.seed, args.split)
    rows, latencies, details = {}, {}, {}
    for model, agent in agents.items():
        results = []
        for case in tqdm(cases, desc=model, unit="case"):
            results += run_cases(agent, [case], args.seed, args.judge)
        replayed, replays = realism(agent, tqdm(dialogues, desc=f"{model} realism", unit="dialogue"), args.seed)
        agent.close()
        rows[model] = {**summarise(results), **replayed}
        latencies[model] = [r.measures["latency_s"] for r in results
                            if r.category == "turn" and r.measures.get("latency_s") is not None]
        details[model] = {"cases": [asdict(r) for r in results], "realism": replays}
    write_json(args.out / "eval.json", {"cases_per_category": args.cases, "split": args.split, "seed": args.seed,
                                        "judge": args.judge, "data": str(args.data), "dialogues": len(dialogues),
                                        "summary": rows, "details": details})
    (args.out / "eval.md").write_text(table(rows))
    plot(rows, latencies, args.out / "eval.png")
    print(table(rows))
    print(f"wrote {args.out}/eval.md, eval.json, eval.png")
    return 0


def _run_lsm(args: argparse.Namespace, agents: dict) -> int:
    from training.eval_lsm import evaluate_agent

    if args.sentences < 1:
        raise EvalError("--sentences must be at least 1")
    rows = {}
    for model, agent in agents.items():
        if not agent.can_say:
            raise EvalError(f"{model} cannot speak given text; the lsm suite needs agent.say")
        rows[model] = evaluate_agent(agent, args.sentences, args.seed, args.judge)
        agent.close()
    write_json(args.out / "lsm.json", {"sentences": args.sentences, "seed": args.seed, "judge": args.judge,
                                       "summary": rows})
    (args.out / "lsm.md").write_text(table(rows, LSM_COLUMNS))
    print(table(rows, LSM_COLUMNS))
    print(f"wrote {args.out}/lsm.md, lsm.json")
    return 0
