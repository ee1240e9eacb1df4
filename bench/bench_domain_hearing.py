"""How well Whisper hears the dialogue domains: the baseline's ears and the judge's, apart.

1. Ears: test-split questions (held-out phrasings) in test-split user voices
   are transcribed by each candidate recogniser (Whisper small / base, with
   and without the domains' `recognition_prompt()`), and the share the
   responder then understands correctly is printed with the seconds per
   question (last, small then base: base hears again what small's transcripts
   left not understood). This is what chose the baseline's ASR_MODEL and its prompt.
2. Judge: correct answers (the responder's own) are spoken directly in each
   candidate agent voice and judged as the benches judge them (Whisper small
   and base, unprimed, duplex/domains.py's checker); the share passed is the
   judge's ceiling for an agent speaking in that voice.

Usage: python bench/bench_domain_hearing.py [--questions 72] [--answers 36]   (--questions 0: judge only;
--answers 0: ears only)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch
from tqdm import tqdm

from audio.asr import transcribe
from audio.tts import Voice, synthesize
from duplex.baseline import hear_and_respond
from duplex.domains import (
    AGENT_VOICES,
    NATURAL_AGENT_VOICE,
    DomainResponder,
    Exchange,
    Reply,
    check_answer,
    recognition_prompt,
    sample_exchange,
    sample_user_voice,
    understand,
)

CHECKABLE = ("arithmetic", "counting", "repeat", "capitals", "smalltalk", "about")
RECOGNISERS = ((("small",), False, False), (("small",), True, False), (("small",), True, True),
               (("base",), False, False), (("base",), True, False), (("small", "base"), True, True))
"""(models tried in order while the responder understands nothing, primed with the domains' vocabulary,
runners-up of each model's beam tried when its best is not understood)"""
AGENT_VOICE_CANDIDATES = {
    "agent persona (en-us, 150 wpm, pitch 45)": AGENT_VOICES[0],
    "natural persona (Piper joe)": NATURAL_AGENT_VOICE,
    "en-us, 165 wpm, pitch 45 (the persona before session 3)": Voice("en-us", None, 165, 45),
    "en-gb-x-rp, 150 wpm, pitch 45": Voice("en-gb-x-rp", None, 150, 45),
    "en-us+m3, 175 wpm (the baseline's voice before session 2)": Voice("en-us", "m3", 175),
}


def recogniser(models: tuple[str, ...], prompt: str | None, n_best: bool) -> Callable[[np.ndarray], Reply | None]:
    """Ears that try each model in turn (its best transcript, then its beam's runners-up when n_best) until
    the domains understand one; the baseline's own are the first model with n-best (duplex/baseline.py)."""

    def hear(audio: np.ndarray) -> Reply | None:
        for model in models:
            reply = (hear_and_respond(audio, model, prompt, understand)[1] if n_best
                     else understand(transcribe(audio, model=model, prompt=prompt)[0]))
            if reply is not None:
                return reply
        return None

    return hear


def score_ears(name: str, hear: Callable[[np.ndarray], Reply | None], asked: list[tuple[Exchange, np.ndarray]]) -> None:
    """Print the share of questions `hear` understands correctly, and its seconds per question."""
    started = time.perf_counter()
    understood = [(reply := hear(audio)) is not None and reply.expected == exchange.expected
                  for exchange, audio in tqdm(asked, desc=name, leave=False)]
    seconds = (time.perf_counter() - started) / len(asked)
    print(f"  {name}: {100 * np.mean(understood):.0f}% ({seconds:.2f} s per question, one thread)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=72)
    parser.add_argument("--answers", type=int, default=36)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)

    rng = np.random.default_rng(args.seed)
    asked = []
    for i in range(args.questions):
        exchange = sample_exchange(rng, CHECKABLE[i % len(CHECKABLE)], "test")
        asked.append((exchange, synthesize(exchange.question_text, sample_user_voice(rng, "test"))))
    prompt = recognition_prompt()
    if asked:
        print(f"ears: {args.questions} test-split questions in test voices, share understood correctly")
        for models, primed, n_best in RECOGNISERS:
            name = (f"Whisper {', then '.join(models)} {'primed' if primed else 'unprimed'}"
                    f"{', n-best fallback' if n_best else ''}")
            score_ears(name, recogniser(models, prompt if primed else None, n_best), asked)

    if not args.answers:
        return
    rng = np.random.default_rng(args.seed + 1)
    responder = DomainResponder()
    exchanges = [sample_exchange(rng, CHECKABLE[i % len(CHECKABLE)], "test") for i in range(args.answers)]
    print(f"judge: {args.answers} correct answers spoken directly, share the judge passes")
    for name, voice in AGENT_VOICE_CANDIDATES.items():
        spoken = [synthesize(responder.respond(ex.question_text), voice) for ex in exchanges]
        for judge in ("small", "base"):
            passed = [check_answer(ex.expected, transcribe(audio, model=judge)[0]).correct
                      for ex, audio in tqdm(list(zip(exchanges, spoken)), desc="judge", leave=False)]
            print(f"  {name}, judged by Whisper {judge}: {100 * np.mean(passed):.0f}%")


if __name__ == "__main__":
    main()
