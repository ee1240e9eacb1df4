"""How the speech LM's sampling temperature changes how well it can be understood.

    python bench/bench_lsm_sampling.py --model FOLDER [--temperatures 0.2,0.4,0.6,0.8] [--sentences 12] [--fp32]

The model says held-out sentences (agent.say, silent user) at each
temperature (top-k 50, the agent's default), and Whisper base judges, beside
its WER on the same sentences rendered directly by espeak-ng in the agent's
voice (the judge's floor, `duplex eval lsm`'s reference). Also given: the
same for training-pool sentences, whose words the model has heard, which
tells unseen words apart from a model that cannot speak at all. The LM step
runs as the agent runs it, its matrix weights in 8 bits (onnxruntime);
`--fp32` adds a row per temperature with full-precision weights: what the
8 bits cost in intelligibility.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

from duplex.lm_agent import SpeechLMAgent
from training.eval_lsm import floor_wer, said_quietly
from training.speech_text import held_out_sentence, training_sentence


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a learned agent's checkpoint folder")
    parser.add_argument("--temperatures", default="0.2,0.4,0.6,0.8")
    parser.add_argument("--sentences", type=int, default=12)
    parser.add_argument("--judge", default="base", choices=["small", "base"])
    parser.add_argument("--fp32", action="store_true", help="also the LM step with full-precision weights")
    args = parser.parse_args()
    sets = {"held-out": [held_out_sentence(i) for i in range(args.sentences)],
            "training pool": [training_sentence(0, i) for i in range(args.sentences)]}
    print(f"{args.model}, {args.sentences} sentences per set, judge Whisper {args.judge}")
    print("| temperature | LM weights | " + " | ".join(f"WER {name}" for name in sets) + " |")
    print("|---|---|" + "---:|" * len(sets))
    floors = {name: np.mean([floor_wer(t, args.judge) for t in texts]) for name, texts in sets.items()}
    print("| espeak-ng itself (floor) | | " + " | ".join(f"{floors[n]:.3f}" for n in sets) + " |")
    for temperature in (float(t) for t in args.temperatures.split(",")):
        for int8 in (True, False) if args.fp32 else (True,):
            agent = SpeechLMAgent.from_checkpoint(args.model, temperature=temperature, int8=int8)
            wers = {name: np.mean([said_quietly(agent, t, i, args.judge)[1] for i, t in enumerate(texts)])
                    for name, texts in sets.items()}
            print(f"| {temperature} | {'int8' if int8 else 'fp32'} | " + " | ".join(f"{wers[n]:.3f}" for n in sets)
                  + " |", flush=True)
            agent.close()


if __name__ == "__main__":
    main()
