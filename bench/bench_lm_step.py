"""The speech LM's step alone, eager torch vs onnxruntime, at the default sizes (random weights).

    python bench/bench_lm_step.py [--threads 1] [--batches 1,2,16] [--int8]

One line per runtime and batch: median and p99 milliseconds per tick, the
cache carried from tick to tick as the agent carries it. `--int8` adds
onnxruntime with the matrix weights quantised to 8 bits (not the agent's
default: its logits differ from torch's).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
from step_timing import time_steps

from models.lm import SyncLM, SyncLMConfig
from models.onnx_export import OnnxLMStep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads")
    parser.add_argument("--batches", default="1,2,16")
    parser.add_argument("--int8", action="store_true", help="also onnxruntime with 8-bit weights")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lm = SyncLM(SyncLMConfig(text_vocab_size=1024)).eval()
    runtimes = {"torch": lm.step, "onnxruntime": OnnxLMStep(lm, args.threads)}
    if args.int8:
        runtimes["onnxruntime int8"] = OnnxLMStep(lm, args.threads, int8=True)
    for batch in (int(b) for b in args.batches.split(",")):
        for name, step in runtimes.items():
            cache, tick = lm.new_cache(batch), [0]
            inputs = (torch.zeros(batch, lm.config.n_codebooks, dtype=torch.long), torch.zeros(batch, dtype=torch.long),
                      torch.randn(batch, lm.config.listen_dim), torch.zeros(batch, dtype=torch.long))

            @torch.no_grad()
            def one_tick(step=step, cache=cache, inputs=inputs, tick=tick, batch=batch) -> None:
                step(*inputs, cache, torch.full((batch,), tick[0]))
                tick[0] += 1

            median, p99 = time_steps(one_tick)
            print(f"LM step, {name}, {args.threads} thread, batch {batch}: median {median:.2f} ms, p99 {p99:.2f} ms")


if __name__ == "__main__":
    main()
