"""The listen-while-speaking training stage on tiny parts: examples, alignment, a few steps, an agent folder."""

import numpy as np
import pytest
import torch

from audio.frames import TICK_SAMPLES
from audio.tts import Voice, speak_words
from duplex.agents import load_agent
from models.text_tokenizer import PAD
from tests.conftest import TINY_LM
from training.lsm_stage import LSMStage, LSMStageConfig
from training.trainer import TrainConfig, Trainer


@pytest.fixture
def parts(tiny_parts):
    return tiny_parts


def stage(parts, **kw):
    return LSMStage(LSMStageConfig(lm=kw.pop("lm", TINY_LM), codec=str(parts / "codec"), listen=str(parts / "listen"), ticks=40,
                                   vocab_size=300, **kw))


def voiced_frames(s, e):
    """Frames of an example's agent tokens that are not the codec's steady silence."""
    return np.flatnonzero((e.agent_codes != s._silence[:, None]).any(dim=0).numpy())


def test_examples_are_deterministic_and_text_leads_the_speech(parts):
    s = stage(parts)
    a, b = s.example(3), s.example(3)
    assert torch.equal(a.agent_codes, b.agent_codes) and a.words == b.words
    ta, _ = s.batches.text_stream(a.words)
    first_token = int(np.flatnonzero(ta != PAD)[0])
    first_voice = int(voiced_frames(s, a)[0])
    # tokens start text_lead + 1 + d ticks before the audio they announce (within a tick of rounding)
    assert first_voice - first_token == pytest.approx(2 + 1 + 1, abs=1)
    assert not a.user.any()


def test_a_later_process_sees_the_same_sentence_pool(parts):
    """libespeak-ng renders a sentence a little differently after other sentences; the pool is kept on disk,
    so a resumed run (a new stage, the library having said other things since) reads what was rendered."""
    first = stage(parts).example(5)
    speak_words("Something else entirely, to move the library's state on.", Voice("en-us", "m3", 180, 60))
    again = stage(parts).example(5)
    assert torch.equal(first.agent_codes, again.agent_codes) and first.words == again.words


def test_the_encoded_pool_kept_in_a_file_gives_the_same_examples(parts, tmp_path, monkeypatch):
    """A run with worker processes encodes the whole pool once and keeps it; a later stage reads it back."""
    from training import token_cache

    monkeypatch.setattr(token_cache, "CACHE_ROOT", tmp_path)
    monkeypatch.setattr(token_cache, "ENCODE_SAMPLES", 100_000)  # batches of two or three sentences
    first = stage(parts, sentence_pool=5)
    first.prepare(workers=0)
    assert not first.pool_file().exists()  # in-process batches encode what they use, when they use it
    first.prepare(workers=2, progress=False)
    assert first.pool_file().is_file() and sorted(first._utterances) == list(range(5))
    for i, utterance in first._utterances.items():  # each sentence's tokens and words are its own
        assert [w for w, _ in utterance.words] == first._pool_text(i).split()
        assert utterance.codes.shape[1] == pytest.approx(utterance.speech_ticks + 4, abs=1)
    again = stage(parts, sentence_pool=5)
    again.prepare(workers=0)
    assert sorted(again._utterances) == list(range(5))
    for i in range(8):
        a, b = first.example(i), again.example(i)
        assert torch.equal(a.agent_codes, b.agent_codes) and a.words == b.words
    assert stage(parts, sentence_pool=6).pool_file() != first.pool_file()


def test_a_pool_killed_while_made_goes_on_from_its_partial_file(parts, tmp_path, monkeypatch):
    """What was made before the kill is read back, not made again; the partial file goes once all is made."""
    from training import token_cache
    from training.lsm_stage import read_pool, write_pool

    monkeypatch.setattr(token_cache, "CACHE_ROOT", tmp_path)
    s = stage(parts, sentence_pool=4)
    done = s._utterance(1)
    marked = type(done)(torch.zeros_like(done.codes), done.words, done.speech_ticks, done.level)
    partial = token_cache.partial_file(s.pool_file())
    write_pool(partial, {1: marked})
    fresh = stage(parts, sentence_pool=4)
    fresh.prepare(workers=2, progress=False)
    assert sorted(fresh._utterances) == [0, 1, 2, 3] and not fresh._utterances[1].codes.any()
    assert not partial.exists() and not read_pool(fresh.pool_file())[1].codes.any()


def test_interruptions_silence_the_target_and_backchannels_do_not(parts):
    s = stage(parts, listening=True, interrupt_prob=0.5, backchannel_prob=0.5, noise_prob=0.0)
    kinds = {}
    for i in range(40):
        e = s.example(i)
        kinds.setdefault(e.kind, e)
    cut = kinds["interruption"]
    onset = int(np.flatnonzero(np.abs(cut.user) > 0.01)[0]) // TICK_SAMPLES
    assert 1 <= cut.stop_tick - onset <= 3  # the agent's tokens fall silent 1-3 ticks after the onset
    assert (cut.agent_codes[:, cut.stop_tick :] == s._silence[:, None]).all()
    assert cut.words and all(t < cut.stop_tick for _, t in cut.words)
    bc = kinds["backchannel"]
    assert bc.user.any() and bc.stop_tick is None
    assert stage(parts).example(0).kind == "tts"


def test_batches_align_tokens_as_the_agent_reads_them(parts):
    s = stage(parts)
    b = s.batch(0, 2, 0, 1)
    Q, T = s.lm_config.n_codebooks, 40
    assert b.audio_target.shape == (2, Q, T) and b.listen.shape == (2, T, s.lm_config.listen_dim)
    assert torch.equal(b.audio_in[:, :, 1:], b.audio_target[:, :, :-1])
    assert (b.audio_in[:, :, 0] == s.lm_config.audio_bos).all()
    assert torch.equal(b.text_in[:, 1:], b.text_target[:, :-1])


def test_a_silent_batch_hears_what_the_encoder_makes_of_silence(parts):
    """Stage 1's user channel is silent; its features are computed once, not per batch."""
    s = stage(parts)
    b = s.batch(0, 3, 0, 1)
    direct = s.batches.listen.encode(torch.zeros(3, 40 * TICK_SAMPLES)).reshape(3, 40, -1)
    assert torch.allclose(b.listen, direct, atol=1e-5)


def test_a_user_pool_said_ahead_equals_one_said_as_met(parts, tmp_path, monkeypatch):
    """User events come from a pool said once (by prepare's processes, or each when first met): the same
    clips either way, each kind from its own part of the pool."""
    from training import token_cache

    monkeypatch.setattr(token_cache, "CACHE_ROOT", tmp_path)
    settings = dict(listening=True, user_pool=8, sentence_pool=5, interrupt_prob=0.5, backchannel_prob=0.5,
                    noise_prob=0.0)
    ahead, lazy = stage(parts, **settings), stage(parts, **settings)
    ahead.prepare(workers=2, progress=False)
    assert sorted(ahead._user_clips) == list(range(8))
    for clip in range(8):
        np.testing.assert_array_equal(ahead._user_clips[clip], lazy._user_clip(clip))
    kinds = [ahead.example(i).kind for i in range(30)]
    assert {"interruption", "backchannel"} <= set(kinds)
    assert len(ahead._user_clips) == 8  # the examples drew from the pool, said nothing new


def test_stage_2_trains_with_batch_workers_and_pools_made_ahead(parts, tmp_path, monkeypatch):
    """The GPU presets' path on the CPU: pools made by prepare's processes, batches by a DataLoader's."""
    from training import token_cache

    monkeypatch.setattr(token_cache, "CACHE_ROOT", tmp_path)
    s = stage(parts, listening=True, user_pool=4, sentence_pool=4)
    trainer = Trainer(s, TrainConfig(steps=3, batch_size=2, lr_warmup_steps=1, log_every=1, data_workers=2),
                      tmp_path / "run", progress=False)
    trainer.run()
    assert trainer.step == 3 and len(trainer.folder.read_log()) == 3
    assert s.pool_file().is_file() and sorted(s._user_clips) == [0, 1, 2, 3]


def test_without_partner_targets_the_partner_heads_are_not_run_yet_get_a_zero_gradient(parts):
    """The lsm stage teaches no partner frames: its loss skips the heads' arithmetic, but every parameter
    still gets a gradient (zero), as DistributedDataParallel requires."""
    from training.speech_lm_stage import lm_loss

    s = stage(parts)
    model = s.build_model()
    assert model.config.partner_heads
    batch = s.batch(0, 2, 0, 1)
    assert batch.partner_target is None
    loss, metrics = lm_loss(model, batch)
    loss.backward()
    assert "partner" not in metrics
    assert torch.allclose(loss, torch.tensor(metrics["text"]) + torch.tensor(metrics["audio"]))
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert ("partner_heads" in name) == (not p.grad.any()), name


def test_the_loss_may_hear_the_users_audio_itself(parts):
    """On a GPU the batches carry the user's audio and the loss runs the listen encoder; same loss."""
    from training.speech_lm_stage import lm_loss

    s = stage(parts, listening=True, interrupt_prob=1.0)
    s.prepare(workers=0, device=torch.device("cpu"))
    assert not s.batches.listen_later  # on the CPU the batch maker hears, beside the training step
    elsewhere = stage(parts)
    elsewhere.prepare(workers=0, device=torch.device("meta"))  # any other device: the loss hears, there
    assert elsewhere.batches.listen_later and next(elsewhere.batches.listen.parameters()).is_meta
    model = s.build_model().eval()
    here = s.batch(0, 2, 0, 1)
    s.batches.listen_later = True
    later = s.batch(0, 2, 0, 1)
    assert later.listen is None and later.heard.shape == (2, 40 * TICK_SAMPLES) and later.heard.any()
    with torch.no_grad():
        assert torch.allclose(lm_loss(model, here)[0], lm_loss(model, later, listen=s.batches.listen)[0], atol=1e-5)


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
    # released, it is still a complete agent (tokenizer, codec and listen encoder beside the weights)
    import dataclasses

    from models.checkpoint import write_json
    from training.release_cli import release

    write_json(trainer.folder.root / "run.json", {"stage": "lsm", "preset": "default",
                                                  "stage_config": dataclasses.asdict(s.config),
                                                  "train": dataclasses.asdict(trainer.config)})
    release(trainer.folder.latest(), tmp_path / "shipped", fp16=True, status="tiny")
    shipped = load_agent(str(tmp_path / "shipped"), virtual_clock=True)
    assert respond_audio(shipped, np.zeros(16000, np.float32)).agent_audio.shape == (16000,)
    # released beside the very parts it was trained with (checkpoints/codec, checkpoints/listen), it names
    # them in parts.json instead of keeping a second copy, and refuses a part replaced since
    import shutil

    from models.checkpoint import CheckpointError

    for part in ("codec", "listen"):
        shutil.copytree(parts / part, tmp_path / "repo" / part)
    release(trainer.folder.latest(), tmp_path / "repo" / "lm", fp16=True)
    assert not (tmp_path / "repo" / "lm" / "codec").exists() and (tmp_path / "repo" / "lm" / "parts.json").is_file()
    named = load_agent(str(tmp_path / "repo" / "lm"), virtual_clock=True)
    from training.lsm_stage import stage_for_checkpoint

    repo = tmp_path / "repo"
    assert stage_for_checkpoint(str(repo / "lm")).config.codec == str((repo / "codec").resolve())
    assert np.array_equal(respond_audio(named, np.zeros(16000, np.float32)).agent_audio,
                          respond_audio(shipped, np.zeros(16000, np.float32)).agent_audio)
    (tmp_path / "repo" / "codec" / "model.safetensors").write_bytes(
        (tmp_path / "repo" / "codec" / "model.safetensors").read_bytes()[:-1] + b" ")
    with pytest.raises(CheckpointError, match="not the one this agent was trained with"):
        load_agent(str(tmp_path / "repo" / "lm"), virtual_clock=True)


def test_the_pool_mixes_grammar_reading_and_domain_sentences(parts):
    """Shares as configured; reading sentences never use a held-out word; the default is the grammar alone
    (what runs made before the shares existed did)."""
    from training.speech_text import (
        _held_out_vocabulary,
        reading_sentence,
        training_sentence,
    )

    s = stage(parts, reading_share=0.5, domain_share=0.3)
    texts = [s._pool_text(i) for i in range(300)]
    grammar = sum(t == training_sentence(0, i) for i, t in enumerate(texts))
    assert 0.12 < grammar / 300 < 0.28
    reading = [t for i, t in enumerate(texts) if t == reading_sentence(0, i)]
    assert 0.4 < len(reading) / 300 < 0.6
    assert not {w.strip(".").lower() for t in reading for w in t.split()} & _held_out_vocabulary()
    assert any("capital" in t.lower() or t.rstrip(".") in ("Jakarta", "Madrid") for t in texts)  # domain answers
    plain = stage(parts)
    assert all(plain._pool_text(i) == training_sentence(0, i) for i in range(50))


def test_a_stage_started_from_another_keeps_its_tokenizer(parts, tmp_path):
    """Token ids must mean in stage 2 what they meant in stage 1, whatever stage 2's own text settings."""
    first = stage(parts, reading_share=0.5)
    trainer = Trainer(first, TrainConfig(steps=1, batch_size=1, lr_warmup_steps=1, checkpoint_every=1),
                      tmp_path / "run", progress=False)
    trainer.run()
    second = stage(parts, listening=True, init=str(trainer.folder.latest()))
    text = "Thematically saccharin predicates parabolic."
    assert second.tokenizer.encode(text) == first.tokenizer.encode(text)
    assert stage(parts).tokenizer.encode(text) != first.tokenizer.encode(text)  # trained anew: other merges


def test_user_events_stay_inside_the_window_when_the_speech_runs_past_it(parts):
    """Long domain answers outlast an example; the user's event must still start inside it (a first
    version drew onsets past the window's end and failed to place them)."""
    s = stage(parts, listening=True, reading_share=0.2, domain_share=0.6, interrupt_prob=0.8)
    for index in range(40):
        e = s.example(index)
        assert e.stop_tick is None or e.stop_tick <= s.config.ticks + 3


def test_words_come_with_their_phonemes_beside_their_first_token(parts):
    from dataclasses import replace

    from models.phonemes import phoneme_ids
    from training.speech_lm_stage import BatchMaker

    s = stage(parts, lm=replace(TINY_LM, phoneme_slots=6, phoneme_streams=2))
    b = s.batch(0, 2, 0, 1)
    assert b.phonemes.shape == (2, 40, 12)
    starts = b.phonemes[..., :6].any(-1)  # (B, T) positions that announce a word
    assert starts.any() and (b.text_in[starts] != PAD).all()
    first_word = s.example(0).words[0][0]
    first = int(starts[0].nonzero()[0])
    assert torch.equal(b.phonemes[0, first, :6], torch.from_numpy(phoneme_ids(first_word, 6)))
    # the second stream: that word is voiced from the next position (text_lead 2), until the next word's turn
    assert not b.phonemes[0, first, 6:].any()
    assert torch.equal(b.phonemes[0, first + 1, 6:], b.phonemes[0, first, :6])
    # a stage where the model writes its own text gets no announced words, only the word being voiced
    m = s.batches
    own_text = BatchMaker(m.codec, m.listen, m.tokenizer, m.lm_config, m.ticks, m.text_lead, announce=False)
    own = own_text.encode([s.example(0)]).phonemes
    assert not own[..., :6].any() and torch.equal(own[..., 6:], b.phonemes[:1, :, 6:])


def test_the_third_stream_gives_each_position_the_phonemes_of_its_target_frame(parts):
    from dataclasses import replace

    from models.phonemes import mnemonic_ids

    lm = replace(TINY_LM, phoneme_slots=6, phoneme_streams=3)
    s = stage(parts, lm=lm)
    # an example whose speech starts late enough for its first word to be announced text_lead ticks ahead
    e = next(e for e in map(s.example, range(20)) if e.voicing[0] >= 5)
    first, ticks = e.voicing
    assert first == e.words[0][1] and ticks[0]  # from the tick where the placed speech starts, which sounds
    last_word_end = e.words[-1][1] + 2  # a word lasts more than one tick, and the sounds end with the words
    assert last_word_end - 1 <= first + len(ticks) <= last_word_end + 12
    b = s.batches.encode([e])
    third = b.phonemes[0, :, 12:]
    for position in range(40):  # codebook 0's target at position p is frame p + 1 + d
        j = position + 1 + lm.acoustic_delay - first
        want = mnemonic_ids(ticks[j], 6) if 0 <= j < len(ticks) else np.zeros(6, np.int64)
        assert np.array_equal(third[position].numpy(), want)
    assert third.any()
    # the first word's first frame is the first position of the second stream that voices it
    voiced = b.phonemes[0, :, 6:12].any(-1).nonzero()[0, 0]
    assert voiced + 1 + lm.acoustic_delay == first


def test_a_rendering_timed_otherwise_is_moved_onto_the_pool_words():
    from training.lsm_stage import _moved_onto

    speech = speak_words("hello there", Voice())
    later = [speech.words[0].start + 0.01, speech.words[1].start + 0.05]
    moved = _moved_onto(speech, later)
    d = [p.name for p in speech.phonemes].index("D")
    assert abs(moved[0].start - speech.phonemes[0].start - 0.01) < 1e-9
    assert abs(moved[d].start - speech.phonemes[d].start - 0.05) < 1e-9
    assert _moved_onto(speech, later[:1]) == list(speech.phonemes)  # other words: left as they are


def test_hidden_spelling_turns_whole_words_to_pad_and_keeps_the_targets():
    from training.speech_lm_stage import LMBatch, hide_spelling

    text_in = torch.tensor([[0, 5, 6, 7, 8, 0, 9, 0]])
    phonemes = torch.zeros(1, 8, 2, dtype=torch.long)
    phonemes[0, [1, 3, 6], 0] = 4  # words start at 1 (tokens 5, 6), 3 (7, 8) and 6 (9)
    batch = LMBatch(*[None] * 2, text_in, text_in.clone(), *[None] * 2, phonemes=phonemes)

    class HideAt:  # an rng whose draws hide the words starting at the given positions
        def __init__(self, positions):
            self.positions = positions

        def random(self, shape):
            draws = np.ones(shape)
            draws[0, self.positions] = 0.0
            return draws

    hide_spelling(batch, 0.5, HideAt([3]), slots=2)
    assert batch.text_in.tolist() == [[0, 5, 6, 0, 0, 0, 9, 0]]  # the second word only, up to the next start
    hide_spelling(batch, 0.5, HideAt([1, 6]), slots=2)
    assert batch.text_in.tolist() == [[0] * 8] and batch.text_target.tolist() == [[0, 5, 6, 7, 8, 0, 9, 0]]
    assert phonemes[0, [1, 3, 6], 0].tolist() == [4, 4, 4]  # the phonemes stay unless asked


def test_hidden_words_may_lose_their_announced_phonemes_too():
    from training.speech_lm_stage import LMBatch, hide_spelling

    text_in = torch.tensor([[0, 5, 6, 7, 8, 0, 9, 0]])
    phonemes = torch.zeros(1, 8, 4, dtype=torch.long)
    phonemes[0, [1, 3, 6], 0] = 4  # announced (first stream) at 1, 3 and 6
    phonemes[0, 2:8, 2] = 7  # the second stream: what is voiced
    batch = LMBatch(*[None] * 2, text_in, text_in.clone(), *[None] * 2, phonemes=phonemes)

    class Draws:  # the first draw hides the spelling of the words at 1 and 3, the second the phonemes at 3
        def __init__(self):
            self.calls = iter([[1, 3], [3, 6]])

        def random(self, shape):
            draws = np.ones(shape)
            draws[0, next(self.calls)] = 0.0
            return draws

    hide_spelling(batch, 0.5, Draws(), slots=2, announced_share=0.5)
    assert batch.text_in.tolist() == [[0, 0, 0, 0, 0, 0, 9, 0]]
    assert batch.phonemes[0, [1, 3, 6], 0].tolist() == [4, 0, 4]  # only a word whose spelling is hidden too
    assert (batch.phonemes[0, 2:8, 2] == 7).all()  # the other streams keep it


def test_the_first_codebook_can_weigh_more_in_the_audio_loss(parts):
    import torch.nn.functional as F

    from training.speech_lm_stage import lm_loss

    s = stage(parts)
    batch = s.batch(0, 2, 0, 1)
    model = s.build_model().eval()
    with torch.no_grad():
        plain, metrics = lm_loss(model, batch)
        weighted, same_metrics = lm_loss(model, batch, first_codebook_weight=3.0)
        audio = model(batch.audio_in, batch.text_in, batch.listen, batch.role, batch.phonemes)[1]
    per = [F.cross_entropy(audio[:, q].flatten(0, 1), batch.audio_target[:, q].flatten()).item() for q in range(2)]
    assert metrics["audio"] == pytest.approx(np.mean(per), rel=1e-5) and metrics["cb0"] == pytest.approx(per[0], rel=1e-5)
    assert metrics == same_metrics  # the logged figures do not depend on the weight
    assert (weighted - plain).item() == pytest.approx((3 * per[0] + per[1]) / 4 - np.mean(per), rel=1e-4, abs=1e-6)


def test_corrupted_input_frames_are_whole_frames_from_elsewhere_and_the_targets_stay():
    from training.speech_lm_stage import LMBatch, corrupt_audio

    target = torch.arange(2 * 3 * 50).reshape(2, 3, 50)  # every column a frame of its own
    audio_in = torch.full_like(target, 1000)
    audio_in[:, :, 1:] = target[:, :, :-1]
    batch = LMBatch(audio_in.clone(), target.clone(), *[torch.zeros(2, 50, dtype=torch.long)] * 2, None,
                    torch.zeros(2, dtype=torch.long))
    corrupt_audio(batch, 0.3, np.random.default_rng(0))
    changed = (batch.audio_in != audio_in).any(1)
    assert 0.15 < changed.float().mean() < 0.45 and not changed[:, 0].any()  # about the share; the start stays
    frames = {tuple(f) for f in target.permute(0, 2, 1).reshape(-1, 3).tolist()}
    assert all(tuple(batch.audio_in[b, :, t].tolist()) in frames for b, t in changed.nonzero().tolist())
    assert torch.equal(batch.audio_target, target)
    before = batch.audio_in.clone()
    corrupt_audio(batch, 0.0, np.random.default_rng(0))
    assert torch.equal(batch.audio_in, before)  # none asked: nothing changes
