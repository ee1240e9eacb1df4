"""The streaming codec: frame alignment to ticks, streaming == offline, checkpoints, bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from audio.frames import SAMPLE_RATE, TICK_SAMPLES
from models.checkpoint import CheckpointError, save_pretrained
from models.codec import (
    Codec,
    CodecConfig,
    CodecInputError,
    check_sample_rate,
    load_codec,
    save_codec,
)
from models.onnx_export import OnnxStep, export_codec_decoder
from training.codec_stage import TINY

TINY_CODEC = TINY.codec


TINY_VOCOS = dataclasses.replace(TINY_CODEC, decoder="vocos", vocos_dim=16, vocos_layers=2)
TINY_CONFIGS = {
    "seanet": TINY_CODEC,
    "vocos": TINY_VOCOS,
    "vocos-25hz": dataclasses.replace(TINY_VOCOS, ratios=(8, 5, 4, 4)),  # two frames per tick
}


@pytest.fixture(scope="module", params=list(TINY_CONFIGS))
def codec(request) -> Codec:
    """A tiny codec (each decoder; 12.5 and 25 Hz) with random weights and codebooks k-means-initialised on noise."""
    torch.manual_seed(0)
    model = Codec(TINY_CONFIGS[request.param]).eval()
    with torch.no_grad():
        model.quantizer.init_from(model.encoder(torch.randn(2, 1, 8 * TICK_SAMPLES) * 0.1), iters=3, rows_per_step=16)
    return model


def signal(frames: int, batch: int = 2) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(batch, frames * TICK_SAMPLES) * 0.1


def test_unknown_decoder_is_refused():
    with pytest.raises(ValueError, match="unknown codec decoder"):
        Codec(dataclasses.replace(TINY_CODEC, decoder="wavenet"))


def test_a_frame_that_does_not_divide_the_tick_is_refused():
    with pytest.raises(ValueError, match="must divide"):
        Codec(dataclasses.replace(TINY_CODEC, ratios=(8, 8, 5, 3)))


def test_tick_and_frame_layouts_convert_both_ways(codec):
    codes = torch.arange(2 * TINY_CODEC.n_q * 6).reshape(2, TINY_CODEC.n_q, 6)
    tokens = codec.ticks(codes)
    k = codec.frames_per_tick
    assert tokens.shape == (2, codec.tokens_per_tick, 6 // k)
    assert torch.equal(tokens[:, :TINY_CODEC.n_q, 0], codes[:, :, 0])  # frame 0's codebooks come first
    assert torch.equal(codec.frames(tokens), codes)


def test_every_codec_preset_fits_the_token_budget():
    from training.codec_stage import PRESETS

    for name, (stage, _) in PRESETS.items():
        codec = Codec(stage.codec)
        assert stage.codec.bitrate <= 1500 and codec.tokens_per_tick <= 16, name


def test_default_codec_fits_the_token_budget():
    config = CodecConfig()
    assert config.hop == TICK_SAMPLES  # one codec frame per 80 ms tick
    assert config.n_q <= 16 and config.bitrate <= 1500
    assert config.frame_rate == 12.5


def test_shapes_are_aligned_to_ticks(codec):
    wav = signal(5)
    k = codec.frames_per_tick
    codes = codec.encode(wav)
    assert codes.shape == (2, TINY_CODEC.n_q, 5 * k) and codes.dtype == torch.long
    assert codec.decode(codes).shape == (2, 5 * TICK_SAMPLES)
    assert codec.encode_ticks(wav).shape == (2, codec.tokens_per_tick, 5)
    # a partial last tick is zero-padded to a whole tick
    part = wav[:, : 4 * TICK_SAMPLES + 1]
    assert torch.equal(codec.encode_ticks(part), codec.encode_ticks(torch.nn.functional.pad(part, (0, TICK_SAMPLES - 1))))


def test_streaming_decode_equals_offline(codec):
    tokens = codec.encode_ticks(signal(7))
    offline = codec.decode(codec.frames(tokens))
    state = codec.new_decode_state(2)
    ticks = []
    for t in range(tokens.shape[2]):
        audio, state = codec.decode_step(tokens[:, :, t], state)
        ticks.append(audio)
    assert torch.allclose(torch.cat(ticks, dim=1), offline, atol=1e-5)


def test_streaming_encode_equals_offline(codec):
    wav = signal(7)
    state = codec.new_encode_state(2)
    tokens = []
    for t in range(7):
        c, state = codec.encode_step(wav[:, t * TICK_SAMPLES : (t + 1) * TICK_SAMPLES], state)
        tokens.append(c)
    assert torch.equal(torch.stack(tokens, dim=2), codec.encode_ticks(wav))


def test_resetting_one_session_leaves_the_others(codec):
    tokens = codec.encode_ticks(signal(3))
    state = codec.new_decode_state(2)
    for t in range(2):
        _, state = codec.decode_step(tokens[:, :, t], state)
    state.reset([0])
    out, _ = codec.decode_step(tokens[:, :, 2], state)
    fresh, _ = codec.decode_step(tokens[:1, :, 2], codec.new_decode_state(1))
    carried = codec.decode(codec.frames(tokens[1:]))[:, 2 * TICK_SAMPLES :]
    assert torch.allclose(out[:1], fresh, atol=1e-6)
    assert torch.allclose(out[1:], carried, atol=1e-5)


def test_fewer_codebooks_decode(codec):
    codes = codec.encode(signal(2))
    assert codec.decode(codes[:, :1]).shape == (2, 2 * TICK_SAMPLES)


def test_checkpoint_round_trip(codec, tmp_path):
    save_codec(codec, tmp_path / "codec")
    loaded = load_codec(tmp_path / "codec")
    assert loaded.config == codec.config
    wav = signal(3)
    assert torch.equal(loaded.encode(wav), codec.encode(wav))
    assert torch.equal(loaded.decode(codec.encode(wav)), codec.decode(codec.encode(wav)))


def test_checkpoint_of_another_config_is_refused(codec, tmp_path):
    wrong = {"model_type": "duplex-codec", **codec.config.__dict__, "dimension": 8, "ratios": list(TINY_CODEC.ratios)}
    save_pretrained(tmp_path / "codec", wrong, codec)
    with pytest.raises(CheckpointError, match="do not match the config"):
        load_codec(tmp_path / "codec")


def test_bad_input_is_refused(codec):
    with pytest.raises(CodecInputError, match="batch, samples"):
        codec.encode(torch.zeros(TICK_SAMPLES))
    with pytest.raises(CodecInputError, match="whole number"):
        codec(torch.zeros(1, TICK_SAMPLES + 3))
    with pytest.raises(CodecInputError, match="codes must lie"):
        codec.decode(torch.full((1, TINY_CODEC.n_q, 2), TINY_CODEC.codebook_size))
    with pytest.raises(CodecInputError, match=str(TICK_SAMPLES)):
        codec.encode_step(torch.zeros(1, 100), codec.new_encode_state(1))
    with pytest.raises(CodecInputError, match="44100 Hz"):
        check_sample_rate(44100, TINY_CODEC)
    check_sample_rate(SAMPLE_RATE, TINY_CODEC)


def test_onnx_decode_step_equals_torch(codec, tmp_path):
    export_codec_decoder(codec, tmp_path / "decoder.onnx")
    onnx_step = OnnxStep(tmp_path / "decoder.onnx")
    tokens = codec.encode_ticks(signal(6, batch=3))
    state = [t.numpy() for t in codec.new_decode_state(3).tensors]
    ticks = []
    for t in range(tokens.shape[2]):
        audio, state = onnx_step(tokens[:, :, t].numpy(), state)
        ticks.append(audio)
    assert np.abs(np.concatenate(ticks, axis=1) - codec.decode(codec.frames(tokens)).numpy()).max() < 1e-4


def test_stoi_by_codebooks_matches_the_full_resynthesis(codec):
    from pystoi import stoi

    from training.codec_eval import held_out_speech, resynthesize, stoi_by_codebooks

    scores = stoi_by_codebooks(codec, 1, (1, TINY_CODEC.n_q))
    assert set(scores) == {"1", str(TINY_CODEC.n_q), "no quantiser"}
    _, audio = held_out_speech(0)
    audio = audio[: len(audio) // codec.hop * codec.hop]
    assert scores[str(TINY_CODEC.n_q)] == pytest.approx(stoi(audio, resynthesize(codec, audio), SAMPLE_RATE), abs=1e-6)


def test_stoi_by_voice_names_the_held_out_variants_and_the_training_voices(codec):
    from pystoi import stoi

    from training.codec_eval import (
        held_out_speech,
        held_out_voice,
        resynthesize,
        stoi_by_voice,
    )

    scores = stoi_by_voice(codec, 2)
    assert set(scores) == {held_out_voice(0).variant, held_out_voice(1).variant, "training voices"}
    if held_out_voice(0).variant != held_out_voice(1).variant:
        _, audio = held_out_speech(0)
        assert scores[held_out_voice(0).variant] == pytest.approx(stoi(audio, resynthesize(codec, audio), SAMPLE_RATE))
