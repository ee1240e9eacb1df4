"""How fast each speech engine speaks: x real time, one thread.

    python bench/bench_tts.py [--sentences 20]

espeak-ng through its program (`synthesize`) and its library with word
timings (`speak_words`), and Piper's joe voice (`speak_words`, the natural
persona) on the same held-out sentences; one warm-up sentence each first.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

from audio.frames import SAMPLE_RATE
from audio.tts import Voice, speak_words, synthesize
from duplex.domains import AGENT_VOICES, NATURAL_AGENT_VOICE
from training.speech_text import held_out_sentence


def real_time_factor(say: Callable[[str], int], sentences: int) -> float:
    """Seconds of speech per second of compute over the sentences."""
    say(held_out_sentence(10_000))
    start, samples = time.perf_counter(), 0
    for i in range(sentences):
        samples += say(held_out_sentence(i))
    return samples / SAMPLE_RATE / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    espeak: Voice = AGENT_VOICES[0]
    engines = {
        "espeak-ng program (synthesize)": lambda text: len(synthesize(text, espeak)),
        "libespeak-ng with word times (speak_words)": lambda text: len(speak_words(text, espeak).audio),
        "Piper joe with word times (speak_words)": lambda text: len(speak_words(text, NATURAL_AGENT_VOICE).audio),
    }
    for name, say in engines.items():
        print(f"{name}: {real_time_factor(say, args.sentences):.0f}x real time, 1 thread, {args.sentences} sentences")


if __name__ == "__main__":
    main()
