"""What a dialogue model hears of a lone question, by phrasing split and voice split.

    python bench/bench_hearing.py --model CHECKPOINT [--model ...] --data DATA [--questions 24]

A dialogue model with the heard-text head (models/lm.py `heard_text_head`)
writes the user's words as it hears them. Here it hears one question of the
evaluation's domains (training/eval_cases.py), its own channel silent, and
its greedy transcript (the head's top token at every position, <pad>s
dropped) is scored against the question's text as word error rate. The
questions are phrased with the train or the test split's templates and
spoken in train or test split voices (duplex/domains.py), so the four rows
say whether new phrasings or new voices are what it fails to hear; a model
cannot answer a question it did not hear (bench_dialogue_loss.py measures
the same head teacher-forced on whole dialogue windows).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

from audio.frames import SAMPLE_RATE
from audio.tts import synthesize
from duplex.domains import sample_exchange, sample_user_voice
from training.dialogue_stage import AGENT, DialogueStage, DialogueStageConfig
from training.eval_cases import QUESTION_DOMAINS
from training.eval_lsm import wer
from training.speech_lm_stage import Example, checkpoint_settings

ONSET_S = 0.5
"""Where the question starts in the window, as in the evaluation's cases."""
SPLITS = (("train", "train"), ("train", "test"), ("test", "train"), ("test", "test"))
"""(phrasing split, voice split) of each row."""


def question(index: int, phrasing: str, voice: str) -> tuple[str, np.ndarray]:
    """The index-th question's text and audio: its domain in turn, its phrasing and voice from the splits."""
    rng = np.random.default_rng([index, 23])
    exchange = sample_exchange(rng, QUESTION_DOMAINS[index % len(QUESTION_DOMAINS)], phrasing)
    return exchange.question_text, synthesize(exchange.question_text, sample_user_voice(rng, voice))


@torch.no_grad()
def heard_transcripts(stage: DialogueStage, model: torch.nn.Module, audios: list[np.ndarray]) -> list[str]:
    """The model's greedy heard-text transcript of each audio, heard from ONSET_S with its own side silent."""
    n = stage.batches.samples
    examples = []
    for audio in audios:
        user = np.zeros(n, np.float32)
        start = int(ONSET_S * SAMPLE_RATE)
        user[start : start + len(audio)] = audio[: n - start]
        examples.append(Example(np.zeros(n, np.float32), user, [], role=AGENT, heard_words=[]))
    batch = stage.batches.encode(examples)
    logits = model(batch.audio_in, batch.text_in, batch.listen, batch.role, batch.phonemes, partner=False)
    return [stage.tokenizer.decode(row.tolist()) for row in logits.heard.argmax(-1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, action="append", help="a dialogue model's checkpoint folder")
    parser.add_argument("--data", required=True, help="a dataset folder made by `duplex data generate`")
    parser.add_argument("--questions", type=int, default=24, help="questions per row")
    parser.add_argument("--show", type=int, default=2, help="transcripts printed per row")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    for folder in args.model:
        stage = DialogueStage(DialogueStageConfig(**checkpoint_settings(folder), data=args.data))
        model = stage.build_model().eval()
        if model.heard_text_head is None:
            parser.error(f"{folder}: this model has no heard-text head")
        for phrasing, voice in SPLITS:
            texts, audios = zip(*(question(i, phrasing, voice) for i in range(args.questions)))
            heard = heard_transcripts(stage, model, list(audios))
            for text, transcript in list(zip(texts, heard))[: args.show]:
                print(f"  [{phrasing} phrasing, {voice} voice] said {text!r}, heard {transcript.strip()!r}")
            rows.append((folder, phrasing, voice, float(np.mean([wer(t, h) for t, h in zip(texts, heard)]))))
    print(f"\nheard-text WER of {args.questions} lone questions per row (greedy, the agent silent)")
    print("| model | phrasing | voice | WER |")
    print("|---|---|---|---:|")
    for folder, phrasing, voice, error in rows:
        print(f"| {folder} | {phrasing} | {voice} | {error:.3f} |")


if __name__ == "__main__":
    main()
