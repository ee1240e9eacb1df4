"""Synthetic data: generation speed, and agreement of audio-measured timing with the annotations.

Prints one line per figure:
- generation speed on all cores (wall clock, `duplex data generate` as is), and the hours the default
  50-hour recipe would take at that speed;
- generation speed per CPU second (one process, CPU time), i.e. what an idle 2-core machine does
  with both cores, independent of whatever else shares the machine;
- share of annotated events the audio shows within one tick (VAD, duplex/metrics.py);
- median turn-transition gap measured from the audio against the recipe's parameter.

Usage: python bench/bench_data_generation.py [--hours 0.5] [--stats-dialogues 40]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from training.data_stats import dataset_stats, summarize
from training.dataset import write_dialogue
from training.generate import generate
from training.render import RenderConfig, render_dialogue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=0.5, help="hours to generate for the wall-clock figure")
    parser.add_argument("--cpu-dialogues", type=int, default=10, help="dialogues for the CPU-time figure")
    parser.add_argument("--stats-dialogues", type=int, default=40, help="dialogues measured for the stats figures")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = RenderConfig()
    cores = os.cpu_count() or 1

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "data"
        load = os.getloadavg()[0]
        report = generate(out, args.hours, config, progress=False)
        wall_speed = report.audio_s / report.wall_s
        print(f"generation, {cores} workers, wall clock: {wall_speed:.0f}x real time "
              f"({report.audio_s / 3600:.2f} h in {report.wall_s:.1f} s; load average before {load:.1f})")
        print(f"default recipe, 50 h, at that speed: {50 * 3600 / wall_speed / 60:.0f} min")

        cpu_out = Path(tmp) / "cpu"
        start, audio_s = time.process_time(), 0.0
        for index in range(args.cpu_dialogues):
            audio_s += write_dialogue(cpu_out, render_dialogue(index, config))
        per_cpu = audio_s / (time.process_time() - start)
        print(f"generation per CPU second: {per_cpu:.0f}x real time, i.e. {per_cpu * cores:.0f}x on {cores} idle cores")

        summary = summarize(dataset_stats(out, args.stats_dialogues), config.timeline.gap_median_s)
        recall = summary["event_recall_by_kind"]
        found, total = sum(k["found"] for k in recall.values()), sum(k["of"] for k in recall.values())
        print(f"annotated events found in the audio within 80 ms: {100 * summary['event_recall']:.1f}% "
              f"({found}/{total}, {summary['dialogues']} dialogues)")
        gap = summary["transition_gap"]
        print(f"turn-transition gap median: measured {1000 * gap['measured']['median_s']:.0f} ms, annotated "
              f"{1000 * gap['annotated']['median_s']:.0f} ms, parameter {1000 * gap['parameter_median_s']:.0f} ms "
              f"(n={gap['measured']['count']})")


if __name__ == "__main__":
    main()
