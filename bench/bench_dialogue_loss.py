"""Teacher-forced losses of a speech LM on the dialogue stage's windows: where a dialogue run stands.

    python bench/bench_dialogue_loss.py --model CHECKPOINT [--model ...] --data DATA [--batches 2] [--split test]

Windows of the dataset's train split (or --split) as the dialogue stage cuts them, on the
agent's side (no role swap, no late hearing): the cross-entropy of the text
stream, and of codebook 0 on frames where the agent sounds and on its
silence frame, once listening to the user as trained and once deaf (the
listen encoder's features of silence in place of the user's). A model of
the lsm stages learned to fall silent when the user speaks, which a
dialogue keeps doing; the deaf column shows how far the user's voice alone
puts it off. For a model with the heard-text head (models/lm.py), the
cross-entropy of the user's words as heard: how much of what is said the
model takes in (deaf, it can only guess from its own side). The text and heard
losses are over every position, <pad> included; the "word tokens" columns
over the positions that hold a word's token alone, with the heard head's top-1
accuracy there: on the test split (held-out voices and phrasings), how much
of a new voice's words the model recognises. Also printed: how many of the agent channel's silent ticks the
codec's encoding in context gives the silence frame, before and after the
stage's `settled_silence` (training/dialogue_stage.py).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import torch.nn.functional as F

from audio.frames import TICK_SAMPLES
from models.text_tokenizer import PAD
from training.dialogue_stage import AGENT, DialogueStage, DialogueStageConfig, _dialogue, silent_ticks
from training.speech_lm_stage import IGNORE, checkpoint_settings, listen_features, stream_losses

BATCH = 8


def window_losses(stage: DialogueStage, model: torch.nn.Module, step: int, deaf: bool) -> dict[str, float]:
    batch = stage.batch(1000 + step, BATCH, 0, 1)
    features = listen_features(batch, None)
    if deaf:
        features = stage.batches._silence_features.expand(len(features), -1, -1)
    logits = model(batch.audio_in, batch.text_in, features, batch.role, batch.phonemes, partner=False)
    text, _ = stream_losses(logits.text, logits.audio, batch)
    cb0 = F.cross_entropy(logits.audio[:, 0].flatten(0, 1), batch.audio_target[:, 0].flatten(), reduction="none")
    silent = (batch.audio_target[:, 0] == stage.batches.silence_frame[0]).flatten()
    losses = {"text": text.item(), "text_words": word_tokens(logits.text, batch.text_target)[0],
              "sounding": cb0[~silent].mean().item(), "silent": cb0[silent].mean().item(),
              "heard": float("nan"), "heard_words": float("nan"), "heard_top1": float("nan")}
    if logits.heard is not None:
        losses["heard"] = F.cross_entropy(logits.heard.flatten(0, 1), batch.heard_text_target.flatten()).item()
        losses["heard_words"], losses["heard_top1"] = word_tokens(logits.heard, batch.heard_text_target)
    return losses


def word_tokens(logits: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """(cross-entropy, top-1 accuracy) of (B, T, V) logits on the positions whose target is a word's token."""
    words = (target != PAD) & (target != IGNORE)
    chosen, wanted = logits[words], target[words]
    return F.cross_entropy(chosen, wanted).item(), (chosen.argmax(-1) == wanted).float().mean().item()


def silence_frames(stage: DialogueStage, dialogues: int) -> tuple[float, float]:
    """Share of the agent channel's digitally silent ticks whose frame is the codec's silence frame, as
    encoded in context and as the stage gives it."""
    raw, settled = [], []
    frame = stage.batches.silence_frame
    for path in stage.dialogues[:dialogues]:
        audio = _dialogue(str(path))[0]
        codes = stage._channel_codes(path, audio, AGENT)
        encoded = stage._codes[(path, AGENT)].long()
        ticks = min(codes.shape[1], len(audio) // TICK_SAMPLES)
        quiet = silent_ticks(audio[:, AGENT])[:ticks]
        raw.append((encoded[:, :ticks][:, quiet] == frame[:, None]).all(0).float().mean().item())
        settled.append((codes[:, :ticks][:, quiet] == frame[:, None]).all(0).float().mean().item())
    return float(np.mean(raw)), float(np.mean(settled))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, action="append", help="a learned agent's checkpoint folder")
    parser.add_argument("--data", required=True, help="a dataset folder made by `duplex data generate`")
    parser.add_argument("--batches", type=int, default=2, help=f"batches of {BATCH} windows")
    parser.add_argument("--split", default="train", choices=("train", "valid", "test"),
                        help="the dataset's split to cut windows from (test: held-out voices and phrasings)")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"teacher-forced cross-entropy on {args.batches} batches of {BATCH} dialogue windows of the "
          f"{args.split} split (agent side)")
    print("| model | hearing | text | text, word tokens | codebook 0, sounding frames | codebook 0, silence frame "
          "| heard | heard, word tokens | heard word tokens, top-1 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for folder in args.model:
        stage = DialogueStage(DialogueStageConfig(**checkpoint_settings(folder), data=args.data, split=args.split,
                                                  user_role_prob=0.0, max_listen_delay=0, corrupt_audio=0.0))
        model = stage.build_model().eval()
        for deaf in (False, True):
            with torch.no_grad():
                rows = [window_losses(stage, model, step, deaf) for step in range(args.batches)]
            mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
            print(f"| {folder} | {'deaf' if deaf else 'listening'} | {mean['text']:.3f} | {mean['text_words']:.3f} "
                  f"| {mean['sounding']:.3f} | {mean['silent']:.3f} | {mean['heard']:.3f} "
                  f"| {mean['heard_words']:.3f} | {mean['heard_top1']:.3f} |", flush=True)
    raw, settled = silence_frames(stage, dialogues=8)
    print(f"silent agent ticks with the codec's silence frame: {raw:.1%} as encoded in context, "
          f"{settled:.1%} as the stage gives them")


if __name__ == "__main__":
    main()
