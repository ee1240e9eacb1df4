"""Whether a speech LM speaks from what it reads or from the frame it said last (exposure bias).

    python bench/bench_exposure.py --model CHECKPOINT [--model CHECKPOINT ...] [--sentences 8] [--temperature 0] [--seed 0]

Stage-1 examples from the training pool (grammar sentences and domain answers
that fit the window; the dictionary-word sentences are left out, since Whisper
mishears word lists even when they are said perfectly), each said three ways
and judged by Whisper base; `--seed 1` draws them from a pool the model never
saw (drawn the same way, as bench_memorization.py's new sentences):

- **codec**: the example's own tokens, decoded: what the codec allows;
- **teacher-forced**: at every position the model's most likely tokens given
  the true tokens before them, as in training;
- **free-running**: the model reads its own tokens, position by position,
  with the text and phoneme streams given exactly as in training (sampling
  at `--temperature`, 0 for greedy). Only this is speech the agent can say.

A model that learned to continue its last frame is good teacher-forced and
bad free-running (session 9, docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

from audio.asr import transcribe
from training.eval_lsm import wer
from training.lsm_stage import LSMStage, stage_for_checkpoint
from training.speech_lm_stage import Example, LMBatch


def spoken_examples(stage: LSMStage, count: int) -> list[Example]:
    """The first `count` examples of the stage whose sentence is not dictionary words and fits the window."""
    c, found, index = stage.config, [], 0
    while len(found) < count:
        sentence = int(np.random.default_rng([c.seed, index, 7]).integers(c.sentence_pool))  # as `example` draws it
        example = stage.example(index)
        index += 1
        reading = np.random.default_rng([c.seed, sentence, 5]).random() < c.reading_share  # as `_pool_text` draws it
        if not reading and example.words[-1][1] + 10 <= c.ticks:
            found.append(example)
    return found


def with_predicted(example: Example, predicted: torch.Tensor, delay: int) -> torch.Tensor:
    """The example's token canvas with the positions' predicted columns (Q, T) put back in their frames."""
    codes = example.agent_codes.clone()
    T = predicted.shape[1]
    codes[0, 1 + delay : 1 + delay + T] = predicted[0]
    codes[1:, 1 : 1 + T] = predicted[1:]
    return codes


@torch.no_grad()
def free_running(model, batch: LMBatch, temperature: float, generator: torch.Generator) -> torch.Tensor:
    """(Q, T) tokens the model says reading its own, the batch's other inputs as given (one example)."""
    audio_in, out = batch.audio_in.clone(), torch.zeros_like(batch.audio_target[0])
    T = audio_in.shape[2]
    for t in range(T):
        phonemes = None if batch.phonemes is None else batch.phonemes[:, : t + 1]
        logits = model(audio_in[:, :, : t + 1], batch.text_in[:, : t + 1], batch.listen[:, : t + 1], batch.role,
                       phonemes)[1][0, :, t]
        if temperature <= 0:
            token = logits.argmax(-1)
        else:
            top, index = (logits / temperature).topk(50, -1)
            token = index.gather(-1, torch.multinomial(torch.softmax(top, -1), 1, generator=generator))[:, 0]
        out[:, t] = token
        if t + 1 < T:
            audio_in[0, :, t + 1] = token
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, action="append", help="a learned agent's checkpoint folder")
    parser.add_argument("--sentences", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=0.0, help="free-running sampling; 0: greedy")
    parser.add_argument("--seed", type=int, default=0, help="the pool's seed: 0 the training pool, 1 new sentences")
    args = parser.parse_args()
    pool = "training-pool" if args.seed == 0 else f"new (pool seed {args.seed})"
    print(f"{args.sentences} {pool} sentences, judge Whisper base, free-running temperature {args.temperature}")
    print("| model | WER codec | WER teacher-forced | WER free-running |")
    print("|---|---:|---:|---:|")
    for folder in args.model:
        torch.manual_seed(0)
        stage = stage_for_checkpoint(folder, seed=args.seed)
        model, codec = stage.build_model().eval(), stage.batches.codec
        delay = stage.lm_config.acoustic_delay
        generator = torch.Generator().manual_seed(0)
        wers = []
        for example in spoken_examples(stage, args.sentences):
            text = " ".join(word for word, _ in example.words)
            batch = stage.batches.encode([example])
            with torch.no_grad():
                forced = model(batch.audio_in, batch.text_in, batch.listen, batch.role, batch.phonemes)[1][0].argmax(-1)
            canvases = (example.agent_codes, with_predicted(example, forced, delay),
                        with_predicted(example, free_running(model, batch, args.temperature, generator), delay))
            heard = [transcribe(codec.decode(codec.frames(c[None]))[0].numpy(), model="base")[0] for c in canvases]
            wers.append([wer(text, h) for h in heard])
            print(f"<!-- {text} | free-running heard: {heard[2]} -->", flush=True)
        codec_wer, forced_wer, free_wer = np.mean(wers, axis=0)
        print(f"| {folder} | {codec_wer:.3f} | {forced_wer:.3f} | {free_wer:.3f} |", flush=True)


if __name__ == "__main__":
    main()
