"""The streaming listen encoder: tick alignment, streaming == offline, state reset, checkpoints, ONNX, training."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from audio.frames import TICK_SAMPLES
from models.checkpoint import CheckpointError, read_pretrained
from models.listen_encoder import (
    ListenConfig,
    ListenEncoder,
    ListenInputError,
    load_listen_encoder,
    save_listen_encoder,
)
from models.onnx_export import OnnxStep, export_listen_step
from training.listen_stage import TINY, ListenStage, cpc_losses
from training.trainer import TrainConfig, Trainer

TINY_ENCODER = TINY.encoder  # window of 10 frames: the tests run past it


@pytest.fixture(scope="module")
def encoder() -> ListenEncoder:
    torch.manual_seed(0)
    return ListenEncoder(TINY_ENCODER).eval()


def signal(ticks: int, batch: int = 2) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(batch, ticks * TICK_SAMPLES) * 0.1


def stream(encoder: ListenEncoder, wav: torch.Tensor) -> torch.Tensor:
    state = encoder.new_state(wav.shape[0])
    out = []
    for t in range(wav.shape[1] // TICK_SAMPLES):
        features, state = encoder.step(wav[:, t * TICK_SAMPLES : (t + 1) * TICK_SAMPLES], state)
        out.append(features)
    return torch.cat(out, dim=1)


def test_features_come_at_a_multiple_of_the_tick_rate(encoder):
    config = ListenConfig()
    assert config.frame_rate == 25.0 and config.frame_dim == 4 * 80
    features = encoder.encode(signal(3))
    assert features.shape == (2, 3 * TINY_ENCODER.frames_per_tick, TINY_ENCODER.d_model)
    assert encoder.log_mel(signal(3)).shape == (2, 6, TINY_ENCODER.frame_dim)


@torch.no_grad()
def test_streaming_equals_offline_beyond_the_attention_window(encoder):
    wav = signal(12)  # 24 frames, window 10
    assert torch.allclose(stream(encoder, wav), encoder.encode(wav), atol=1e-5)


@torch.no_grad()
def test_features_are_causal(encoder):
    wav = signal(6)
    changed = wav.clone()
    changed[:, 4 * TICK_SAMPLES :] += 0.5
    a, b = encoder.encode(wav), encoder.encode(changed)
    per_tick = TINY_ENCODER.frames_per_tick
    assert torch.equal(a[:, : 4 * per_tick], b[:, : 4 * per_tick])
    assert not torch.allclose(a[:, 4 * per_tick :], b[:, 4 * per_tick :])


@torch.no_grad()
def test_reset_starts_one_session_afresh(encoder):
    wav = signal(4)
    state = encoder.new_state(2)
    for t in range(3):
        _, state = encoder.step(wav[:, t * TICK_SAMPLES : (t + 1) * TICK_SAMPLES], state)
    state.reset([1])
    features, _ = encoder.step(wav[:, 3 * TICK_SAMPLES :], state)
    assert torch.allclose(features[0], encoder.encode(wav[:1])[0, -TINY_ENCODER.frames_per_tick :], atol=1e-5)
    assert torch.allclose(features[1], encoder.encode(wav[1:, 3 * TICK_SAMPLES :])[0], atol=1e-5)


def test_onnx_step_equals_torch(encoder, tmp_path):
    export_listen_step(encoder, tmp_path / "listen.onnx")
    onnx_step = OnnxStep(tmp_path / "listen.onnx")
    wav = signal(12, batch=3)
    state = [t.numpy() for t in encoder.new_state(3).tensors()]
    out = []
    for t in range(12):
        features, state = onnx_step(wav[:, t * TICK_SAMPLES : (t + 1) * TICK_SAMPLES].numpy(), state)
        out.append(features)
    with torch.no_grad():
        expected = encoder.encode(wav).numpy()
    assert np.abs(np.concatenate(out, axis=1) - expected).max() < 1e-4


def test_checkpoint_round_trip_and_wrong_kind(encoder, tmp_path):
    save_listen_encoder(encoder, tmp_path / "listen")
    loaded = load_listen_encoder(tmp_path / "listen")
    wav = signal(2)
    with torch.no_grad():
        assert torch.equal(loaded.encode(wav), encoder.encode(wav))
    config, _ = read_pretrained(tmp_path / "listen")
    assert config["model_type"] == "duplex-listen-encoder"
    from models.codec import load_codec

    with pytest.raises(CheckpointError, match="expected 'duplex-codec'"):
        load_codec(tmp_path / "listen")


def test_bad_input_is_refused(encoder):
    with pytest.raises(ListenInputError, match=str(TICK_SAMPLES)):
        encoder.step(torch.zeros(1, 160), encoder.new_state(1))
    with pytest.raises(ListenInputError):
        encoder.encode(torch.zeros(1, TICK_SAMPLES + 1))


@pytest.mark.parametrize("objective", ["apc", "cpc"])
def test_pretraining_reduces_the_loss(tmp_path, objective):
    """A few steps of either objective on one repeated batch must lower its loss."""
    tiny = dataclasses.replace(TINY, encoder=dataclasses.replace(TINY_ENCODER, objective=objective))
    stage = ListenStage(tiny)
    config = TrainConfig(steps=30, batch_size=2, lr=3e-3, lr_warmup_steps=1, log_every=1, checkpoint_minutes=60)
    trainer = Trainer(stage, config, tmp_path, progress=False)
    fixed = stage.batch(0, 2, 0, 1)
    stage.batch = lambda step, batch_size, rank, world_size: fixed
    trainer.run()
    losses = [row["loss"] for row in trainer.folder.read_log()]
    assert losses[-1] < 0.85 * losses[0]
    assert load_listen_encoder(trainer.folder.latest()).config == tiny.encoder


def test_cpc_scores_the_true_future_frame_against_its_own_utterance():
    """A prediction that equals the target `shift` frames on is chosen every time; one that ignores
    the target is at chance; a frame of another utterance is never a candidate."""
    target = torch.randn(2, 40, 16)
    exact = torch.stack([target.roll(-1, dims=1), target.roll(-2, dims=1)], dim=2)
    losses, accuracy = cpc_losses(exact, target, (1, 2), temperature=0.05)
    assert accuracy.tolist() == [1.0, 1.0] and float(losses.max()) < 0.05
    constant = torch.ones(2, 40, 2, 16)
    losses, _ = cpc_losses(constant, target, (1, 2), temperature=0.05)
    assert float(losses[0]) > 0.5 * math.log(39)
    swapped = exact.flip(0)  # each row predicts the other utterance's frames
    _, accuracy = cpc_losses(swapped, target, (1, 2), temperature=0.05)
    assert float(accuracy.max()) < 0.2


@torch.no_grad()
def test_twin_examples_make_another_voice_the_target(encoder):
    """With twins the objective predicts the other voice's frames: the loss is the one against that target."""
    stage = ListenStage(dataclasses.replace(TINY, twin_prob=1.0, noise_prob=0.0, talker_prob=0.0))
    batch = stage.batch(0, 2, 0, 1)
    assert not torch.equal(batch.target, batch.clean) and torch.equal(batch.mixed, batch.clean)
    loss, _ = stage.loss(encoder, batch, 0)
    own = dataclasses.replace(batch, target=batch.clean)
    assert torch.isfinite(loss) and float(loss) != pytest.approx(float(stage.loss(encoder, own, 0)[0]))


@torch.no_grad()
def test_a_step_retried_from_the_same_state_gives_the_same_features(encoder):
    """The ring-buffer cache is written in place; a retried step (the engine retries a failed batch) must
    write the same values and see the same features."""
    wav = signal(14)
    state = encoder.new_state(2)
    for t in range(13):  # past the tiny window: the ring has wrapped
        _, state = encoder.step(wav[:, t * TICK_SAMPLES : (t + 1) * TICK_SAMPLES], state)
    last = wav[:, 13 * TICK_SAMPLES :]
    first, _ = encoder.step(last, state)
    again, _ = encoder.step(last, state)
    assert torch.equal(first, again)
    assert torch.allclose(first, encoder.encode(wav)[:, -TINY_ENCODER.frames_per_tick :], atol=1e-5)
