"""Codec figures: token budget, real-time factor, per-tick decode cost (torch vs ONNX), quality.

    python bench/bench_codec.py [--checkpoint checkpoints/codec] [--sentences 100]

One result line per figure. Speed is measured on one thread. Quality (Whisper
WER of the resynthesis vs the original, STOI) needs a trained checkpoint and
is skipped with --sentences 0.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
from step_timing import time_steps

from audio.frames import TICK_MS
from duplex.domains import AGENT_VOICES, NATURAL_AGENT_VOICE
from models.codec import Codec, CodecConfig, load_codec
from models.onnx_export import OnnxStep, export_codec_decoder
from training.codec_eval import codec_quality, stoi_by_codebooks, stoi_by_voice

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "codec"


def decode_steps(codec: Codec, onnx_step: OnnxStep, batch: int) -> dict[str, Callable[[], None]]:
    """One streaming decode tick in torch and in onnxruntime, each carrying its own state."""
    codes = torch.randint(0, codec.config.codebook_size, (batch, codec.tokens_per_tick))
    torch_state = codec.new_decode_state(batch)
    onnx_state = [t.numpy() for t in torch_state.tensors]

    def torch_step() -> None:
        nonlocal torch_state
        _, torch_state = codec.decode_step(codes, torch_state)

    def ort_step() -> None:
        nonlocal onnx_state
        _, onnx_state = onnx_step(codes.numpy(), onnx_state)

    return {"torch": torch_step, "onnxruntime": ort_step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--sentences", type=int, default=100, help="held-out sentences for WER/STOI (0: skip)")
    parser.add_argument("--decoder", choices=("seanet", "vocos"), default="vocos",
                        help="decoder of the untrained default config, when --checkpoint holds no weights")
    args = parser.parse_args()
    torch.set_num_threads(1)

    trained = (args.checkpoint / "model.safetensors").exists()
    codec = load_codec(args.checkpoint) if trained else Codec(CodecConfig(decoder=args.decoder)).eval()
    label = str(args.checkpoint) if trained else f"untrained default config, {args.decoder} decoder"
    cfg = codec.config
    print(f"codec: {label}")
    print(f"bitrate: {cfg.bitrate:.0f} bps ({cfg.n_q} codebooks x {cfg.codebook_size} at {cfg.frame_rate:g} Hz)")
    print(f"tokens per {TICK_MS} ms tick: {codec.tokens_per_tick}")

    audio = torch.randn(1, 10 * cfg.sample_rate) * 0.1
    with torch.no_grad():
        codec.decode(codec.encode(audio))
        start = time.perf_counter()
        codec.decode(codec.encode(audio))
    print(f"encode+decode real-time factor, torch, 1 thread: {(time.perf_counter() - start) / 10:.4f}")

    with tempfile.TemporaryDirectory() as tmp:
        export_codec_decoder(codec, Path(tmp) / "decoder.onnx")
        onnx_step = OnnxStep(Path(tmp) / "decoder.onnx")
        for batch in (1, 16):
            for name, step in decode_steps(codec, onnx_step, batch).items():
                median, p99 = time_steps(step, n=200)
                print(f"streaming decode step, {name}, batch {batch}: median {median:.2f} ms, p99 {p99:.2f} ms per tick")

    if trained and args.sentences:
        personas = (("held-out voices", None), ("agent voice", AGENT_VOICES[0]),
                    ("natural agent voice (Piper joe)", NATURAL_AGENT_VOICE))
        for voices, voice in personas:
            q = codec_quality(codec, args.sentences, voice)
            print(f"WER (Whisper small), {q.sentences} held-out sentences, {voices}: original "
                  f"{100 * q.wer_original:.1f}%, resynthesis {100 * q.wer_resynthesis:.1f}%, gap {100 * q.wer_gap:+.1f} points")
            print(f"STOI of resynthesis, {voices}: {q.stoi:.3f}")
        counts = tuple(sorted({1, max(1, cfg.n_q // 2), cfg.n_q}))
        by_count = stoi_by_codebooks(codec, min(args.sentences, 20), counts)
        print("STOI by codebooks used, held-out voices (what the quantiser costs vs the autoencoder): "
              + ", ".join(f"{name}: {value:.3f}" for name, value in by_count.items()))
        by_voice = stoi_by_voice(codec, min(args.sentences, 60))
        print("STOI by voice, held-out sentences (held-out variants, and training voices for comparison): "
              + ", ".join(f"{name}: {value:.3f}" for name, value in by_voice.items()))


if __name__ == "__main__":
    main()
