"""The full-duplex dialogue stage on tiny parts and a dialogue made by the data generator."""

from pathlib import Path

import numpy as np
import pytest
import torch

from audio.frames import TICK_SAMPLES
from tests.conftest import TINY_LM
from training.dataset import DataError
from training.dialogue_stage import SETTLE_TICKS, DialogueStage, DialogueStageConfig, settled_silence
from training.generate import generate
from training.render import RenderConfig
from training.trainer import TrainConfig, Trainer


@pytest.fixture(scope="module")
def setup(tiny_parts, tmp_path_factory):
    """The tiny parts beside a dataset of two short dialogues made by the data generator."""
    root = tmp_path_factory.mktemp("dialogue")
    for part in ("codec", "listen"):
        (root / part).symlink_to(tiny_parts / part)
    generate(root / "data", hours=40 / 3600, config=RenderConfig(seed=1, dialogue_s=20.0, split_fractions=(1.0, 0.0, 0.0)),
             workers=1, progress=False)
    return root


def stage(root, **kw):
    kw = {"lm": TINY_LM, **kw}
    return DialogueStage(DialogueStageConfig(codec=str(root / "codec"), listen=str(root / "listen"),
                                             data=str(root / "data"), ticks=60, vocab_size=300, **kw))


def test_windows_carry_the_speakers_words_and_roles_swap_channels(setup):
    s = stage(setup, user_role_prob=0.5, max_listen_delay=0)
    roles = {}
    for i in range(20):
        e = s.example(i)
        roles.setdefault(e.role, e)
        assert len(e.agent) == len(e.user) == s.batches.samples
    assert set(roles) == {0, 1}
    for e in roles.values():
        # the words given for the spoken channel sound on it: each word's first tick is louder than the
        # channel's quietest ticks (noise floor)
        level = np.sqrt(np.mean(e.agent.reshape(-1, TICK_SAMPLES) ** 2, axis=1))
        floor = np.percentile(level, 10)
        ticks = [int(t) for _, t in e.words if 0 <= t < len(level) - 1]
        assert ticks, "the window holds words of the side it speaks"
        assert np.mean([max(level[t], level[t + 1]) > 3 * floor + 1e-4 for t in ticks]) > 0.9


def test_the_spoken_side_reads_its_sounds_but_no_announced_words(setup):
    """The second and third phoneme streams come from the dataset's phonemes of the side the model says; the
    first (a word's phonemes beside its first token) stays empty: the agent writes those words itself."""
    from dataclasses import replace

    s = stage(setup, lm=replace(TINY_LM, phoneme_slots=6, phoneme_streams=3), user_role_prob=0.5, max_listen_delay=0)
    d = s.lm_config.acoustic_delay
    for role in (0, 1):
        e = next(e for e in map(s.example, range(40)) if e.role == role and len(e.words) >= 3)
        b = s.batches.encode([e])
        assert not b.phonemes[0, :, :6].any() and b.phonemes[0, :, 6:12].any()
        sounding = b.phonemes[0, :, 12:].any(-1).numpy()  # (T,) positions whose target frame has a sound
        level = np.sqrt(np.mean(e.agent.reshape(-1, TICK_SAMPLES) ** 2, axis=1))
        frame_level = level[np.arange(s.config.ticks) + 1 + d]  # the tick each position's codebook-0 target holds
        assert sounding.sum() >= 5
        assert np.median(frame_level[sounding]) > 5 * np.median(frame_level[~sounding]) + 1e-4


def test_a_dataset_without_phonemes_is_a_clear_error(setup, tmp_path):
    import json
    import shutil

    from training.dialogue_stage import _dialogue

    old = tmp_path / "old.json"
    meta = json.loads(Path(s := stage(setup).dialogues[0]).with_suffix(".json").read_text())
    del meta["phonemes"]
    old.write_text(json.dumps(meta))
    shutil.copy(Path(s).with_suffix(".wav"), old.with_suffix(".wav"))
    with pytest.raises(DataError, match="duplex data generate"):
        _dialogue(str(old))


def test_late_hearing_delays_the_heard_channel(setup):
    s = stage(setup, user_role_prob=0.0, max_listen_delay=3)
    delays = {int(s.example(i).kind.split("delay")[1]) for i in range(30)}
    assert delays == {0, 1, 2, 3}


def test_the_channels_encoded_ahead_and_kept_give_the_same_examples(setup, tmp_path, monkeypatch):
    """With batch workers the stage encodes every dialogue's channels first, in a pool of processes, and keeps
    them in one file; a later stage reads it; the tokens are those encoded one dialogue at a time."""
    from training import token_cache

    monkeypatch.setattr(token_cache, "CACHE_ROOT", tmp_path)
    monkeypatch.setattr(token_cache, "ENCODE_SAMPLES", 500_000)  # a dialogue's two channels at a time
    ahead = stage(setup)
    ahead.prepare(workers=2, progress=False)
    assert ahead.tokens_file().is_file() and len(ahead._codes) == 2 * len(ahead.dialogues)
    again = stage(setup)
    again.prepare(workers=0)
    lazily = stage(setup)
    for i in range(6):
        a, b, c = ahead.example(i), again.example(i), lazily.example(i)
        assert torch.equal(a.agent_codes, b.agent_codes) and torch.equal(a.partner_target, b.partner_target)
        assert torch.equal(a.agent_codes, c.agent_codes)


def test_encoding_killed_midway_goes_on_from_its_partial_file(setup, tmp_path, monkeypatch):
    from training import token_cache
    from training.dialogue_stage import write_channels

    monkeypatch.setattr(token_cache, "CACHE_ROOT", tmp_path)
    s = stage(setup)
    first = s.dialogues[0]
    q = s.lm_config.n_codebooks
    marked = {(first, channel): torch.zeros(q, 3, dtype=torch.int16) for channel in (0, 1)}
    write_channels(token_cache.partial_file(s.tokens_file()), marked)
    s.prepare(workers=2, progress=False)
    assert len(s._codes) == 2 * len(s.dialogues) and s._codes[(first, 0)].shape == (q, 3)  # kept, not made again
    assert not token_cache.partial_file(s.tokens_file()).exists()


def test_a_few_steps_lower_the_loss(setup, tmp_path):
    trainer = Trainer(stage(setup), TrainConfig(steps=10, batch_size=2, lr=3e-3, lr_warmup_steps=1, log_every=1),
                      tmp_path / "run", progress=False)
    trainer.run()
    log = trainer.folder.read_log()
    assert np.mean([r["loss"] for r in log[-3:]]) < np.mean([r["loss"] for r in log[:3]])


def test_missing_data_is_a_clear_error(setup, tmp_path):
    with pytest.raises(DataError, match="duplex data generate"):
        DialogueStage(DialogueStageConfig(lm=TINY_LM, codec=str(setup / "codec"), listen=str(setup / "listen"),
                                          data=str(tmp_path / "nothing")))


def test_a_split_without_dialogues_is_a_clear_error(setup):
    """The benches cut windows of the held-out splits; this dataset's are empty."""
    assert stage(setup).dialogues  # train, the default
    with pytest.raises(DataError, match="valid.jsonl"):
        stage(setup, split="valid")


def test_window_tokens_are_the_dialogues_tokens_in_context(setup):
    s = stage(setup, user_role_prob=0.0)
    codec = s.batches.codec
    # the window with the most agent speech (in silence every shift of the tokens agrees), and
    # codebooks drawn from its encoder latents (as k-means initialisation does), so that an untrained
    # codec's tokens vary with the audio
    index = max(range(15), key=lambda i: float((np.abs(s.example(i).agent) > 0.01).mean()))
    speech = torch.from_numpy(s.example(index).agent[None])
    with torch.no_grad():
        latents = codec.encoder(speech[:, None])[0].T  # (frames, dimension)
        residual = latents
        for layer in codec.quantizer.layers:
            layer.embed.copy_(residual[torch.randperm(len(residual))[: layer.embed.shape[0]]])
            residual = residual - layer.embed[((residual[:, None] - layer.embed[None]) ** 2).sum(-1).argmin(1)]
    s._codes.clear()  # the dialogues were encoded with the old codebooks
    s.batches.__dict__.pop("silence_frame", None)  # and so was the silence frame
    e = s.example(index)
    direct = s.batches.codec.encode(torch.from_numpy(e.agent[None]))[0]
    # where the channel has long been silent the tokens are the codec's silence frame
    quiet = torch.from_numpy(settled_silence(e.agent)[: e.agent_codes.shape[1]])
    assert quiet.any() and (e.agent_codes[:, quiet] == s.batches.silence_frame[:, None]).all()
    # elsewhere a window encoded on its own starts from a cold codec; after its first second it agrees
    # with the tokens cut from the whole dialogue's encoding on most frames
    def agree(shift):
        n = direct.shape[1] - 5
        sounding = ~quiet[15 + shift : n + shift]
        return (direct[:, 15:n] == e.agent_codes[:, 15 + shift : n + shift])[:, sounding].float().mean()

    assert e.agent_codes.shape[1] == s.batches.samples // 1280
    assert agree(0) > 0.5 and agree(0) > agree(3) + 0.1  # aligned, not one tick off


def test_settled_silence_waits_a_few_ticks_after_sound():
    channel = np.zeros(12 * TICK_SAMPLES, np.float32)
    channel[3 * TICK_SAMPLES + 5] = 0.5  # a click in tick 3
    assert settled_silence(channel).tolist() == [True] * 3 + [False] * (1 + SETTLE_TICKS) + [True] * 5


def test_the_partner_target_is_the_heard_stream_one_tick_ahead(setup, monkeypatch):
    from training.speech_lm_stage import IGNORE

    s = stage(setup)
    ticks, length = s.config.ticks, 100  # a heard channel of 100 ticks whose token at tick t is t
    monkeypatch.setattr(s, "_channel_codes", lambda path, audio, channel: torch.arange(length).repeat(2, 1))
    for start, delay in [(0, 0), (0, 2), (30, 3), (90, 1)]:
        target = s._partner_target(Path("d"), None, 1, start, delay)
        for position in range(ticks):
            source = start + position + 1 - delay  # the heard slice after this position, in the dialogue's time
            expected = source if position + 1 >= delay and source < length else IGNORE
            assert (target[:, position] == expected).all(), (start, delay, position)


def test_the_loss_has_a_partner_term(setup, tmp_path):
    trainer = Trainer(stage(setup), TrainConfig(steps=2, batch_size=2, lr_warmup_steps=1, log_every=1),
                      tmp_path / "run", progress=False)
    trainer.run()
    assert all(row["partner"] > 0 for row in trainer.folder.read_log())


def heard_stage(root, **kw):
    from dataclasses import replace

    return stage(root, lm=replace(TINY_LM, heard_text_head=True), **kw)


def test_the_heard_words_are_written_after_they_were_heard(setup):
    """The heard-text target holds each of the heard side's words from the position after its last tick
    reached the model (late hearing included), one token per position."""
    s = heard_stage(setup, user_role_prob=0.0, max_listen_delay=3)
    checked = []
    for i in range(12):
        e = s.example(i)
        level = np.sqrt(np.mean(e.user.reshape(-1, TICK_SAMPLES) ** 2, axis=1))  # the channel as heard
        floor = np.percentile(level, 10)
        stream, _ = s.batches.place_words(e.heard_words)
        target = s.batches.encode([e]).heard_text_target[0].numpy()
        assert (target == stream).all()
        # the tick before a word's first position holds its end, the one before that its sound: one of them sounds
        checked += [max(level[p - 2 : p]) > 3 * floor + 1e-4 for _, p in e.heard_words if 2 <= p <= s.config.ticks]
    assert len(checked) >= 10 and np.mean(checked) > 0.9


def test_the_loss_has_a_heard_text_term_and_starts_from_a_model_without_the_head(setup, tmp_path):
    plain = Trainer(stage(setup), TrainConfig(steps=1, batch_size=2, lr_warmup_steps=1, log_every=1),
                    tmp_path / "plain", progress=False)
    plain.run()
    assert "heard" not in plain.folder.read_log()[0]
    trainer = Trainer(heard_stage(setup, init=str(plain.folder.latest())),
                      TrainConfig(steps=2, batch_size=2, lr_warmup_steps=1, log_every=1), tmp_path / "run", progress=False)
    trainer.run()
    assert all(row["heard"] > 0 for row in trainer.folder.read_log())


def test_a_heard_word_is_written_from_the_tick_after_its_last(setup, monkeypatch):
    import training.dialogue_stage as dialogue_stage
    from models.text_tokenizer import PAD

    s = heard_stage(setup, user_role_prob=0.0, max_listen_delay=3)
    audio = np.zeros((30 * TICK_SAMPLES, 2), np.float32)  # shorter than a window: every window starts at 0
    alignments = (("hello", (0.80, 1.16), "SPEAKER_OTHER"), ("there", (1.20, 1.50), "SPEAKER_OTHER"),
                  ("hi", (1.7, 1.9), "SPEAKER_MAIN"))
    monkeypatch.setattr(dialogue_stage, "_dialogue", lambda path: (audio, alignments, {0: [], 1: []}))
    monkeypatch.setattr(s, "_channel_codes", lambda path, audio, channel: torch.zeros(s.lm_config.n_codebooks, 30,
                                                                                     dtype=torch.long))
    for i in range(8):
        e = s.example(i)
        delay = int(e.kind.split("delay")[1])
        # "hello" ends in tick 14 (1.16 s / 80 ms = 14.5), "there" in tick 18; both reach the model `delay` late
        assert e.heard_words == [("hello", 15 + delay), ("there", 19 + delay)]
        target = s.batches.encode([e]).heard_text_target[0].numpy()
        hello, there = s.batches.tokenizer.encode_words(["hello", "there"])
        assert (target[: 15 + delay] == PAD).all() and list(target[15 + delay : 15 + delay + len(hello)]) == hello
        assert list(target[19 + delay : 19 + delay + len(there)]) == there
