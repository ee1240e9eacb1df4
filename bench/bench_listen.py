"""Listen encoder figures: per-tick step cost (torch vs ONNX) and the linear CTC probe.

    python bench/bench_listen.py [--checkpoint checkpoints/listen] [--train 300] [--test 100]

One result line per figure. The probe (training/ctc_probe.py) is trained on
training sentences in training voices and scored (character error rate) on
held-out sentences in held-out voices, on the frozen encoder features and on
the log-mel frames they start from; clean, with a second talker at 10 dB SNR,
and with noise at 10 dB SNR. It needs a trained checkpoint (--test 0 skips it).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
from step_timing import time_steps

from models.listen_encoder import ListenEncoder, load_listen_encoder
from models.onnx_export import OnnxStep, export_listen_step
from training.ctc_probe import CONDITIONS, compare

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "listen"


def listen_steps(encoder: ListenEncoder, onnx_step: OnnxStep, batch: int) -> dict[str, Callable[[], None]]:
    """One listen tick in torch and in onnxruntime, each carrying its own state."""
    audio = torch.randn(batch, encoder.config.tick_samples) * 0.1
    torch_state = encoder.new_state(batch)
    onnx_state = [t.numpy() for t in torch_state.tensors()]

    @torch.no_grad()
    def torch_step() -> None:
        nonlocal torch_state
        _, torch_state = encoder.step(audio, torch_state)

    def ort_step() -> None:
        nonlocal onnx_state
        _, onnx_state = onnx_step(audio.numpy(), onnx_state)

    return {"torch": torch_step, "onnxruntime": ort_step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--train", type=int, default=300, help="probe training utterances")
    parser.add_argument("--test", type=int, default=100, help="held-out probe utterances (0: skip the probe)")
    parser.add_argument("--conditions", default=",".join(CONDITIONS))
    args = parser.parse_args()
    torch.set_num_threads(1)

    trained = (args.checkpoint / "model.safetensors").exists()
    encoder = load_listen_encoder(args.checkpoint) if trained else ListenEncoder().eval()
    cfg = encoder.config
    print(f"listen encoder: {args.checkpoint if trained else 'untrained default config'}")
    print(f"features: {cfg.frames_per_tick} x {cfg.d_model} per tick ({cfg.frame_rate:g} Hz)")

    with tempfile.TemporaryDirectory() as tmp:
        export_listen_step(encoder, Path(tmp) / "listen.onnx")
        onnx_step = OnnxStep(Path(tmp) / "listen.onnx")
        for batch in (1, 16):
            for name, step in listen_steps(encoder, onnx_step, batch).items():
                median, p99 = time_steps(step)
                print(f"listen step, {name}, batch {batch}: median {median:.2f} ms, p99 {p99:.2f} ms per tick")

    if not (trained and args.test):
        return

    @torch.no_grad()
    def features(audio: np.ndarray) -> torch.Tensor:
        return encoder.encode(torch.from_numpy(audio)[None])[0]

    @torch.no_grad()
    def log_mel(audio: np.ndarray) -> torch.Tensor:
        return encoder.log_mel(torch.from_numpy(audio)[None])[0]

    for condition in args.conditions.split(","):
        cer = compare({"log-mel": log_mel, "encoder": features}, condition, args.train, args.test)
        gain = 1 - cer["encoder"] / cer["log-mel"]
        print(f"CTC probe CER, {condition}{'' if condition == 'clean' else ' at 10 dB SNR'}: "
              f"log-mel {100 * cer['log-mel']:.1f}%, encoder {100 * cer['encoder']:.1f}% ({100 * gain:.0f}% lower)")


if __name__ == "__main__":
    main()
