"""The cascaded baseline on test-split questions: how many it answers correctly.

Test-split questions (held-out phrasings, held-out user voices) of the checkable
domains are spoken one after another on a user channel, with room after each
for the answer. The baseline (`duplex respond`'s respond_audio, virtual clock)
answers; Whisper transcribes each answer window and duplex/domains.py's
checker judges it against the expected answer. This validates domains,
rendering, responder and checker together.

Prints one line per figure: overall accuracy, per-domain accuracy, and where
the errors come from (the baseline's own hearing of the question vs. the
judge's hearing of the answer).

The judge is Whisper base by default, as in `duplex eval` (the packaged small
model misses 15-25% of espeak-ng's words, base about 10%); --judge small
gives the stricter figure.

Usage: python bench/bench_baseline_domains.py [--questions 60] [--seed 0] [--judge base|small]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

from audio.asr import MODELS, transcribe
from audio.frames import SAMPLE_RATE
from audio.tts import speak_words
from duplex.agents import load_agent
from duplex.domains import (
    AGENT_VOICES,
    check_answer,
    sample_exchange,
    sample_user_voice,
    understand,
)
from duplex.respond import respond_audio

CHECKABLE = ("arithmetic", "counting", "repeat", "capitals", "smalltalk", "about")
ROOM_AFTER_ANSWER_S = 3.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--judge", choices=MODELS, default="base", help="Whisper model that hears the answers")
    parser.add_argument("--failures", action="store_true", help="print each wrong answer: asked, heard, judged")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)

    pieces, windows, exchanges = [np.zeros(SAMPLE_RATE, np.float32)], [], []
    t = 1.0
    for i in range(args.questions):
        ex = sample_exchange(rng, CHECKABLE[i % len(CHECKABLE)], "test")
        question = speak_words(ex.question_text, sample_user_voice(rng, "test")).audio
        answer_s = speak_words(ex.answer_text, AGENT_VOICES[0]).duration
        room = np.zeros(int((1.3 * answer_s + ROOM_AFTER_ANSWER_S) * SAMPLE_RATE), np.float32)
        pieces += [question, room]
        q_end = t + len(question) / SAMPLE_RATE
        t = q_end + len(room) / SAMPLE_RATE
        windows.append((q_end, t))
        exchanges.append(ex)
    user = np.concatenate(pieces)

    response = respond_audio(load_agent("baseline", virtual_clock=True), user)
    heard = [e["text"] for e in response.events if e.get("type") == "user.transcript"]

    verdicts, judged = [], []
    for ex, (start, end) in zip(exchanges, windows):
        said, _ = transcribe(response.agent_audio[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)], model=args.judge)
        verdicts.append(check_answer(ex.expected, said).correct)
        judged.append(said)
    by_domain = defaultdict(list)
    for ex, ok in zip(exchanges, verdicts):
        by_domain[ex.domain].append(ok)

    print(f"baseline, test split, {len(verdicts)} questions: {100 * np.mean(verdicts):.0f}% answered correctly "
          f"(checker on the Whisper {args.judge} transcript of its answer)")
    print("per domain: " + ", ".join(f"{d} {100 * np.mean(v):.0f}% ({len(v)})" for d, v in by_domain.items()))
    if args.failures:
        aligned = heard if len(heard) == len(exchanges) else ["?"] * len(exchanges)
        for ex, ok, h, said in zip(exchanges, verdicts, aligned, judged):
            if not ok:
                print(f"  [{ex.domain}] asked {ex.question_text!r} | heard {h!r} | judged {said!r}")
    if len(heard) != len(exchanges):
        print(f"the baseline took {len(heard)} turns for {len(exchanges)} questions (end-pointing split or merged some)")
        return
    understood = [(r := understand(h)) is not None and r.expected == ex.expected for h, ex in zip(heard, exchanges)]
    judged_when_understood = [ok for ok, u in zip(verdicts, understood) if u]
    print(f"questions the baseline's ASR heard well enough to understand: {100 * np.mean(understood):.0f}%; "
          f"of those, judged correct: {100 * np.mean(judged_when_understood or [0]):.0f}%")


if __name__ == "__main__":
    main()
