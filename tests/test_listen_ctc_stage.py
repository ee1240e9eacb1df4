"""The listen-ctc stage: the listen encoder fine-tuned under a CTC head on transcribed espeak speech."""

import json

import numpy as np
import torch

from models.listen_encoder import load_listen_encoder
from training.ctc_probe import ALPHABET, characters
from training.listen_ctc_stage import CTCListener, ListenCTCStage, ListenCTCStageConfig
from training.trainer import TrainConfig, Trainer


def stage(tiny_parts, **kw) -> ListenCTCStage:
    return ListenCTCStage(ListenCTCStageConfig(init=str(tiny_parts / "listen"), seconds=2.56, **kw))


def test_examples_are_seeded_fit_the_window_and_carry_their_text(tiny_parts):
    s = stage(tiny_parts, noise_prob=1.0)
    (a, text), (b, again) = s.example(3), s.example(3)
    assert np.array_equal(a, b) and text == again and characters(text)
    assert a.shape == (s.samples,) and np.abs(a).max() <= 0.99 and np.abs(a).max() > 0.01
    batch = s.batch(0, 3, 0, 1)
    assert batch.audio.shape == (3, s.samples) and batch.labels.max() <= len(ALPHABET)
    assert batch.lengths.sum() == len(batch.labels)


def test_the_model_starts_from_the_given_encoder(tiny_parts):
    model = stage(tiny_parts).build_model()
    assert isinstance(model, CTCListener)
    reference = load_listen_encoder(tiny_parts / "listen")
    wav = torch.from_numpy(stage(tiny_parts).example(0)[0])[None]
    model.eval()
    torch.testing.assert_close(model.encoder.encode(wav), reference.encode(wav))


def test_steps_lower_the_loss_and_each_checkpoint_holds_a_listen_encoder(tiny_parts, tmp_path):
    s = stage(tiny_parts)
    trainer = Trainer(s, TrainConfig(steps=30, batch_size=4, lr=3e-3, lr_warmup_steps=1, log_every=1), tmp_path,
                      progress=False)
    trainer.run()
    losses = [row["loss"] for row in trainer.folder.read_log()]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    final = tmp_path / "checkpoints" / "latest"
    encoder = load_listen_encoder(final / "encoder")
    wav = torch.from_numpy(s.example(0)[0])[None]
    trainer.model.eval()
    torch.testing.assert_close(encoder.encode(wav), trainer.model.encoder.encode(wav))
    scores = json.loads((final / "heldout.json").read_text())
    assert scores["step"] == 30 and set(scores["cer"]) == {"held-out sentences", "domain test phrasings"}
    assert all(0.0 <= v for v in scores["cer"].values())
