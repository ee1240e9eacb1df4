"""What 8-bit weights cost a trained speech LM: teacher-forced loss, tick by tick, fp32 against int8.

    python bench/bench_int8.py --model CHECKPOINT [--batches 2]

Teacher-forced batches of sentences the model never trained on (the stage's
pool drawn with seed 1, as bench/bench_memorization.py draws them) are
stepped tick by tick through the LM's onnxruntime step graph, once with its
fp32 weights and once with its matrix weights in 8 bits (what
`SpeechLMAgent(int8=True)` runs). For each: the cross-entropy of the text
stream, of codebook 0 and the mean over codebooks against the targets; and
how often the two graphs rank the same audio token first. Sampling noise
does not enter, so the figure holds whether or not the model speaks well
yet: if int8 costs a fraction of what separates two checkpoints, it costs
nothing that listening can tell.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

from models.onnx_export import OnnxLMStep
from training.lsm_stage import stage_for_checkpoint
from training.speech_lm_stage import LMBatch, listen_features, stream_losses


def stepped_logits(step: OnnxLMStep, lm, batch: LMBatch, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(text (B, T, V), audio (B, Q, T, K)) logits of the batch, one tick at a time through `step`."""
    B, T = batch.text_in.shape
    cache = lm.new_cache(B)
    texts, audios = [], []
    for t in range(T):
        phonemes = None if batch.phonemes is None else batch.phonemes[:, t]
        text, audio, _ = step(batch.audio_in[:, :, t], batch.text_in[:, t], features[:, t], batch.role, cache,
                              torch.full((B,), t), phonemes)
        texts.append(text)
        audios.append(audio)
    return torch.stack(texts, 1), torch.stack(audios, 2)


def losses(text: torch.Tensor, audio: torch.Tensor, batch: LMBatch) -> dict[str, float]:
    text_loss, per_codebook = stream_losses(text, audio, batch)
    return {"text": text_loss.item(), "audio": per_codebook.mean().item(), "cb0": per_codebook[0].item()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a learned agent's checkpoint folder")
    parser.add_argument("--batches", type=int, default=2, help="batches of 8 examples of 100 ticks")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    stage = stage_for_checkpoint(args.model, seed=1)
    lm = stage.build_model().eval()
    runtimes = {"fp32": OnnxLMStep(lm), "int8": OnnxLMStep(lm, int8=True)}
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in runtimes}
    agreement = []
    with torch.no_grad():
        for b in range(args.batches):
            batch = stage.batch(2000 + b, 8, 0, 1)
            features = listen_features(batch, stage.batches.listen)
            logits = {name: stepped_logits(step, lm, batch, features) for name, step in runtimes.items()}
            for name, (text, audio) in logits.items():
                rows[name].append(losses(text, audio, batch))
            agreement.append((logits["fp32"][1].argmax(-1) == logits["int8"][1].argmax(-1)).float().mean().item())
    print(f"{args.model}: teacher-forced cross-entropy on new sentences, {args.batches} batches of 8 x 100 ticks, "
          "stepped through onnxruntime")
    print("| LM weights | text | audio (mean of codebooks) | codebook 0 |")
    print("|---|---:|---:|---:|")
    for name, results in rows.items():
        mean = {k: float(np.mean([r[k] for r in results])) for k in ("text", "audio", "cb0")}
        print(f"| {name} | {mean['text']:.3f} | {mean['audio']:.3f} | {mean['cb0']:.3f} |")
    print(f"same most likely audio token, fp32 and int8: {np.mean(agreement):.1%} of positions")


if __name__ == "__main__":
    main()
