"""ONNX export of the per-tick steps: the codec's streaming decoder, the listen encoder and the speech LM.

Each exported graph is one tick with the streaming state as plain inputs and
outputs (`state_i` in, `new_state_i` out), so any ONNX runtime can run it
and the caller carries the state exactly as with the torch modules. The
batch axis is dynamic. Weight normalisation is folded into the weights
first. `OnnxStep` wraps an onnxruntime session in the same call shape as
the torch step, for the runtime to use whichever is faster (see
docs/benchmarks.md).
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from torch import nn

from models.codec import Codec, CodecStreamState
from models.listen_encoder import ListenEncoder, ListenState
from models.lm import KVCache, SyncLM

OPSET = 17


class CodecDecodeStep(nn.Module):
    """tokens (B, tokens_per_tick), *state -> audio (B, tick samples), *new_state."""

    def __init__(self, codec: Codec):
        super().__init__()
        self.codec = codec

    def forward(self, codes: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        latent = self.codec.quantizer.decode(self.codec.frames(codes[:, :, None]))
        audio, new_state = self.codec.streaming_decoder(latent, list(state))
        return (audio[:, 0], *new_state)


class ListenStep(nn.Module):
    """audio (B, tick), *state -> features (B, frames_per_tick, d), *new_state."""

    def __init__(self, encoder: ListenEncoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, audio: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # step writes its cache in place; the graph's inputs stay untouched
        features, new_state = self.encoder.step(audio, ListenState(*(t.clone() for t in state)))
        return (features, *new_state.tensors())


class LMStep(nn.Module):
    """audio_in (B, Q), text_in (B,), listen (B, listen_dim), role (B,), positions (B,),
    [phonemes (B, phoneme_width), for a model with phoneme input,] *cache
    -> text logits, audio logits, [partner logits,] *new cache (each layer's keys, then its values)."""

    def __init__(self, lm: SyncLM):
        super().__init__()
        self.lm = lm

    def forward(self, audio_in, text_in, listen, role, positions, *rest: torch.Tensor) -> tuple[torch.Tensor, ...]:
        phonemes, cache = (rest[0], rest[1:]) if self.lm.config.phoneme_slots else (None, rest)
        # step writes the cache in place; the graph's inputs stay untouched
        layers = [KVCache(k.clone(), v.clone()) for k, v in zip(cache[0::2], cache[1::2])]
        logits = [x for x in self.lm.step(audio_in, text_in, listen, role, layers, positions, phonemes) if x is not None]
        return (*logits, *(t for layer in layers for t in (layer.k, layer.v)))


def _without_weight_norm(codec: Codec) -> Codec:
    """A copy of the codec with weight normalisation folded into plain weights."""
    folded = Codec(codec.config)  # deepcopy cannot copy weight_norm's computed weights
    folded.load_state_dict(codec.state_dict())
    for module in folded.modules():
        if hasattr(module, "weight_g"):
            torch.nn.utils.remove_weight_norm(module)
    return folded.eval()


def _export(module: nn.Module, inputs: tuple[torch.Tensor, ...], first_names: list[str], out_names: list[str],
            path: Path) -> None:
    """Export a step whose inputs are `first_names` then its state, and whose outputs are `out_names`
    then its new state."""
    n_state = len(inputs) - len(first_names)
    input_names = first_names + [f"state_{i}" for i in range(n_state)]
    output_names = out_names + [f"new_state_{i}" for i in range(n_state)]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            inputs,
            str(tmp),
            input_names=input_names,
            output_names=output_names,
            dynamic_axes={name: {0: "batch"} for name in input_names + output_names},
            opset_version=OPSET,
            dynamo=False,
        )
    os.replace(tmp, path)


def export_codec_decoder(codec: Codec, path: str | os.PathLike) -> None:
    folded = _without_weight_norm(codec)
    state = folded.new_decode_state(2).tensors
    codes = torch.zeros(2, folded.tokens_per_tick, dtype=torch.long)
    _export(CodecDecodeStep(folded), (codes, *state), ["codes"], ["audio"], Path(path))


def export_listen_step(encoder: ListenEncoder, path: str | os.PathLike) -> None:
    encoder = copy.deepcopy(encoder).eval()
    state = encoder.new_state(2).tensors()
    audio = torch.zeros(2, encoder.config.tick_samples)
    _export(ListenStep(encoder), (audio, *state), ["audio"], ["features"], Path(path))


def export_lm_step(lm: SyncLM, path: str | os.PathLike) -> None:
    lm = copy.deepcopy(lm).eval()
    c = lm.config
    inputs = (torch.zeros(2, c.n_codebooks, dtype=torch.long), torch.zeros(2, dtype=torch.long),
              torch.zeros(2, c.listen_dim), torch.zeros(2, dtype=torch.long), torch.tensor([0, 1]))
    names = ["audio_in", "text_in", "listen", "role", "positions"]
    if c.phoneme_slots:
        inputs += (torch.ones(2, c.phoneme_width, dtype=torch.long),)
        names.append("phonemes")
    cache = [t for layer in lm.new_cache(2) for t in (layer.k, layer.v)]
    outputs = ["text_logits", "audio_logits"] + (["partner_logits"] if c.partner_heads else [])
    _export(LMStep(lm), (*inputs, *cache), names, outputs, Path(path))


class OnnxStep:
    """An exported step run by onnxruntime: __call__(first, state) -> (output, new_state), numpy arrays."""

    def __init__(self, path: str | os.PathLike, threads: int = 1):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle pool threads sleep rather than spin: the agent runs three graphs and torch side by side,
        # and spinning pools starved each other on 2 cores (a tick took twice as long; docs/benchmarks.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.n_outputs = sum(not o.name.startswith("new_state_") for o in self.session.get_outputs())

    def run(self, inputs: list[np.ndarray], state: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The step's outputs and its new state."""
        outputs = self.session.run(None, dict(zip(self.input_names, [*inputs, *state])))
        return outputs[: self.n_outputs], outputs[self.n_outputs :]

    def __call__(self, first: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        outputs, new_state = self.run([first], state)
        return outputs[0], new_state


class _DropMessage(logging.Filter):
    """Drops the log records whose message contains `text`."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def _session(export: Callable[[nn.Module, Path], None], model: nn.Module, threads: int,
             int8: bool = False) -> OnnxStep:
    """An onnxruntime session of a freshly exported step (the graph file is only needed while loading);
    with `int8`, its matrix weights quantised (onnxruntime's dynamic quantisation) to 7 bits of range:
    on CPUs without VNNI (AVX2 only, as this project's AMD machines) the 8-bit kernels' paired products
    saturate, and full-range weights put the logits off by more than 5% of their scale (tests/test_lm.py)."""
    with tempfile.TemporaryDirectory(prefix="duplex-onnx-") as folder:
        path = Path(folder) / "step.onnx"
        export(model, path)
        if int8:
            # quantize_dynamic advises on the root logger, every time, to pre-process the graph first: that
            # step is shape inference and graph optimisation, which onnxruntime does when it loads the graph
            advice = _DropMessage("pre-processing before quantization")
            logging.getLogger().addFilter(advice)
            try:
                quantize_dynamic(str(path), str(path.with_suffix(".int8.onnx")), weight_type=QuantType.QInt8,
                                 reduce_range=True)
            finally:
                logging.getLogger().removeFilter(advice)
            path = path.with_suffix(".int8.onnx")
        return OnnxStep(path, threads)


def _arrays(tensors) -> list[np.ndarray]:
    return [np.ascontiguousarray(t.numpy()) for t in tensors]


class OnnxCodecDecoder:
    """`Codec.decode_step` run by onnxruntime: the same call, state and output (within 1e-4). Faster
    than eager torch at every batch measured (docs/benchmarks.md), so the learned agent decodes with it."""

    def __init__(self, codec: Codec, threads: int = 1):
        self.step = _session(export_codec_decoder, codec, threads)

    def __call__(self, codes: torch.Tensor, state: CodecStreamState) -> tuple[torch.Tensor, CodecStreamState]:
        audio, new_state = self.step(codes.numpy(), _arrays(state.tensors))
        return torch.from_numpy(audio), CodecStreamState([torch.from_numpy(t) for t in new_state])


class OnnxListenStep:
    """`ListenEncoder.step` run by onnxruntime: the same call, state and output (within 1e-4). Faster than
    eager torch for one session, slower for many (docs/benchmarks.md); the agent picks by batch size."""

    def __init__(self, encoder: ListenEncoder, threads: int = 1):
        self.step = _session(export_listen_step, encoder, threads)

    def __call__(self, audio: torch.Tensor, state: ListenState) -> tuple[torch.Tensor, ListenState]:
        features, new_state = self.step(np.ascontiguousarray(audio.numpy()), _arrays(state.tensors()))
        return torch.from_numpy(features), ListenState(*(torch.from_numpy(t) for t in new_state))


class OnnxLMStep:
    """`SyncLM.step` run by onnxruntime: the same call and logits (within 1e-4), and, as there, the
    caches carry the tick's keys and values afterwards (each KVCache is given its new tensors). About
    half the cost of eager torch at batch 1 and less at batch 16 (bench/bench_lm_step.py): a step
    of this small model is mostly per-operator overhead, which onnxruntime has less of."""

    def __init__(self, lm: SyncLM, threads: int = 1, int8: bool = False):
        """`int8`: the matrix weights in 8 bits, faster but no longer torch's logits (the agent's default
        since trained weights were measured with it: bench/bench_int8.py)."""
        self.step = _session(export_lm_step, lm, threads, int8)
        self.partner_heads = lm.config.partner_heads
        self.phoneme_width = lm.config.phoneme_width

    def __call__(self, audio_in, text_in, listen, role, cache: list[KVCache], positions: torch.Tensor,
                 phonemes: torch.Tensor | None = None):
        inputs = [audio_in.numpy(), text_in.numpy(), np.ascontiguousarray(listen.numpy()), role.numpy(), positions.numpy()]
        if self.phoneme_width:  # the graph always takes them: none given = all slots empty
            none = torch.zeros(len(text_in), self.phoneme_width, dtype=torch.long)
            inputs.append((none if phonemes is None else phonemes).numpy())
        logits, new_cache = self.step.run(inputs, _arrays(t for layer in cache for t in (layer.k, layer.v)))
        for layer, k, v in zip(cache, new_cache[0::2], new_cache[1::2]):
            layer.k, layer.v = torch.from_numpy(k), torch.from_numpy(v)
        text, audio, *partner = (torch.from_numpy(x) for x in logits)
        return text, audio, partner[0] if self.partner_heads else None
