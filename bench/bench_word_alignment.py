"""Word alignments of audio.tts.speak_words: speed, and agreement with an independent aligner (Whisper).

espeak-ng's word events are exact where espeak-ng gives them; the words it
joins to their neighbour are estimated. Whisper's word timestamps (faster-whisper,
cross-attention alignment) are an independent, if itself approximate, reference:
the figures say how often the two agree within 50 and 100 ms, on word starts
and ends, for the agent persona's voice on the domains' answers and narratives.

Prints one line per figure. Usage: python bench/bench_word_alignment.py [--utterances 40]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

from audio.asr import transcribe
from audio.tts import speak_words, synthesize
from duplex.domains import AGENT_VOICES, DOMAINS, normalize, sample_exchange

PAD_S = 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    texts = [sample_exchange(rng, list(DOMAINS)[i % len(DOMAINS)], "train") for i in range(args.utterances)]
    texts = [ex.answer_text if ex.domain != "narrative" else ex.question_text for ex in texts]
    voice = AGENT_VOICES[0]

    start = time.perf_counter()
    speeches = [speak_words(t, voice) for t in texts]
    spoken = sum(s.duration for s in speeches)
    print(f"speak_words (libespeak-ng in-process, word times): {spoken / (time.perf_counter() - start):.0f}x real time")
    start = time.perf_counter()
    program_s = sum(len(synthesize(t, voice)) / 16000 for t in texts)
    print(f"synthesize (espeak-ng program, no times): {program_s / (time.perf_counter() - start):.0f}x real time")

    start_err, end_err = [], []
    for speech in speeches:
        audio = np.concatenate([np.zeros(int(PAD_S * 16000), np.float32), speech.audio, np.zeros(8000, np.float32)])
        _, heard = transcribe(audio, words=True)
        ours = [(normalize(w.text), w.start, w.end) for w in speech.words]
        theirs = [(normalize(w.text), w.start - PAD_S, w.end - PAD_S) for w in heard]
        for (a_words, a_start, a_end), (b_words, b_start, b_end) in _pairs(ours, theirs):
            start_err.append(b_start - a_start)
            end_err.append(b_end - a_end)
    bias_start, bias_end = float(np.median(start_err)), float(np.median(end_err))
    print(f"Whisper minus ours, median: starts {1000 * bias_start:+.0f} ms, ends {1000 * bias_end:+.0f} ms")
    starts = np.abs(np.array(start_err) - bias_start)
    ends = np.abs(np.array(end_err) - bias_end)
    print(f"word starts vs Whisper, its constant bias removed ({len(starts)} words both found): median {1000 * np.median(starts):.0f} ms, "
          f"{100 * np.mean(starts <= 0.05):.0f}% within 50 ms, {100 * np.mean(starts <= 0.1):.0f}% within 100 ms")
    print(f"word ends vs Whisper, its constant bias removed: median {1000 * np.median(ends):.0f} ms, "
          f"{100 * np.mean(ends <= 0.05):.0f}% within 50 ms, {100 * np.mean(ends <= 0.1):.0f}% within 100 ms")


def _pairs(ours, theirs):
    """Words the two sides agree on (same normalised text), matched in order."""
    j = 0
    for word in ours:
        for k in range(j, min(j + 3, len(theirs))):
            if word[0] and word[0] == theirs[k][0] and re.fullmatch(r"[a-z0-9 ]+", " ".join(word[0])):
                yield word, theirs[k]
                j = k + 1
                break


if __name__ == "__main__":
    main()
