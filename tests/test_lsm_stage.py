"""The listen-while-speaking training stage on tiny parts: examples, alignment, a few steps, an agent folder."""

import numpy as np
import pytest
import torch

from audio.frames import TICK_SAMPLES
from duplex.agents import load_agent
from models.text_tokenizer import PAD
from training.lsm_stage import LSMStage, LSMStageConfig
from training.trainer import TrainConfig, Trainer
from tests.conftest import TINY_LM

@pytest.fixture
def parts(tiny_parts):
    return tiny_parts


def stage(parts, **kw):
    return LSMStage(LSMStageConfig(lm=TINY_LM, codec=str(parts / "codec"), listen=str(parts / "listen"), ticks=40,
                                   vocab_size=300, **kw))


def test_examples_are_deterministic_and_text_leads_the_speech(parts):
    s = stage(parts)
    a, b = s.example(3), s.example(3)
    # in-process espeak-ng carries a little state between calls (its output shifts by a few samples and
    # word edges by up to a tick), so compare the tokens said and the speech's level tick by tick
    level = lambda x: np.sqrt(np.mean(x.reshape(-1, TICK_SAMPLES) ** 2, axis=1))  # noqa: E731
    ta, tb = s.batches.text_stream(a.words), s.batches.text_stream(b.words)
    assert np.array_equal(ta[ta != PAD], tb[tb != PAD])
    assert np.abs(level(a.agent) - level(b.agent)).mean() < 0.01
    first_token = int(np.flatnonzero(ta != PAD)[0])
    first_voice = int(np.flatnonzero(np.abs(a.agent) > 0.01)[0]) // TICK_SAMPLES
    # tokens start text_lead + 1 + d ticks before the audio they announce (within a tick of rounding)
    assert first_voice - first_token == pytest.approx(2 + 1 + 1, abs=1)
    assert not a.user.any()


def test_interruptions_silence_the_target_and_backchannels_do_not(parts):
    s = stage(parts, listening=True, interrupt_prob=0.5, backchannel_prob=0.5, noise_prob=0.0)
    kinds = {}
    for i in range(40):
        e = s.example(i)
        kinds.setdefault(e.kind, e)
    cut = kinds["interruption"]
    onset = int(np.flatnonzero(np.abs(cut.user) > 0.01)[0]) // TICK_SAMPLES
    last_voice = int(np.flatnonzero(np.abs(cut.agent) > 0.01)[-1]) // TICK_SAMPLES
    assert 1 <= last_voice - onset <= 3  # the voice ends (10 ms fade) 1-3 ticks after the onset
    bc = kinds["backchannel"]
    plain = LSMStage.example(stage(parts), 0)  # same sentence stream, stage 1
    assert bc.user.any() and np.abs(bc.agent).max() > 0.1
    assert plain.kind == "tts"


def test_batches_align_tokens_as_the_agent_reads_them(parts):
    s = stage(parts)
    b = s.batch(0, 2, 0, 1)
    Q, T = s.lm_config.n_codebooks, 40
    assert b.audio_target.shape == (2, Q, T) and b.listen.shape == (2, T, s.lm_config.listen_dim)
    assert torch.equal(b.audio_in[:, :, 1:], b.audio_target[:, :, :-1])
    assert (b.audio_in[:, :, 0] == s.lm_config.audio_bos).all()
    assert torch.equal(b.text_in[:, 1:], b.text_target[:, :-1])


def test_a_few_steps_lower_the_loss_and_checkpoints_are_agents(parts, tmp_path):
    s = stage(parts)
    trainer = Trainer(s, TrainConfig(steps=12, batch_size=2, lr=3e-3, lr_warmup_steps=1, log_every=1,
                                     checkpoint_every=12), tmp_path / "run", progress=False)
    trainer.run()
    log = trainer.folder.read_log()
    assert np.mean([r["loss"] for r in log[-3:]]) < np.mean([r["loss"] for r in log[:3]])
    agent = load_agent(str(trainer.folder.latest()), virtual_clock=True)
    from duplex.respond import respond_audio

    out = respond_audio(agent, np.zeros(16000, np.float32)).agent_audio
    assert out.shape == (16000,)
