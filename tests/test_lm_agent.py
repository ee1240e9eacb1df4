"""The learned agent's plumbing, on tiny untrained models assembled in the test."""

import dataclasses
import itertools

import numpy as np
import pytest

from duplex.agents import load_agent
from duplex.respond import respond_audio
from models.agent_checkpoint import AgentModels, load_agent_models, save_agent
from models.checkpoint import CheckpointError
from models.codec import Codec, CodecConfig, save_codec
from models.listen_encoder import ListenConfig, ListenEncoder
from models.lm import SyncLM, SyncLMConfig
from models.text_tokenizer import TextTokenizer

CORPUS = ["seven plus five is twelve", "the capital of france is paris", "hello there, how are you"] * 5


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    tokenizer = TextTokenizer.train(CORPUS, vocab_size=280)
    listen = ListenEncoder(ListenConfig(d_model=16, layers=1, heads=2, window=8))
    codec = Codec(CodecConfig(n_filters=4, dimension=16, n_q=2, codebook_size=16, lstm_layers=0))
    last = [m for m in codec.decoder.modules() if isinstance(m, torch.nn.Conv1d)][-1]
    torch.nn.init.zeros_(last.weight_g), torch.nn.init.zeros_(last.bias)  # a decoder that is always silent
    lm = SyncLM(SyncLMConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                             intermediate_size=48, n_codebooks=2, codebook_size=16, listen_dim=32,
                             text_vocab_size=tokenizer.vocab_size, sliding_window=16))
    folder = tmp_path_factory.mktemp("agent")
    save_agent(AgentModels(lm, codec, listen, tokenizer), folder)
    return folder


def test_respond_runs_a_checkpoint_folder_and_is_seeded(tiny_folder):
    user = np.random.default_rng(0).normal(0, 0.05, 16000 * 2).astype(np.float32)
    a = respond_audio(load_agent(str(tiny_folder), virtual_clock=True), user, seed=3).agent_audio
    b = respond_audio(load_agent(str(tiny_folder), virtual_clock=True), user, seed=3).agent_audio
    assert a.shape == user.shape and np.array_equal(a, b)
    tokens = lambda seed: [e for e in respond_audio(load_agent(str(tiny_folder), virtual_clock=True), user,
                                                    seed=seed, say="hello there").events]
    assert tokens(3) == tokens(3)


def test_sessions_in_one_batch_match_sessions_run_alone(tiny_folder):
    """In 32 bits: the 8-bit step quantises its activations per batch (dynamic quantisation), so there a
    session's logits move by about 1e-3 with the sessions beside it, enough to flip a close draw."""
    from duplex.engine import Engine
    from duplex.lm_agent import SpeechLMAgent

    agent = SpeechLMAgent.from_checkpoint(str(tiny_folder), int8=False)
    user = np.random.default_rng(1).normal(0, 0.05, (2, 12, 1280)).astype(np.float32)

    def run(seeds):
        engine = Engine(agent)
        sessions = [engine.open_session(seed=s) for s in seeds]
        outs = {s.id: [] for s in sessions}
        tokens = {s.id: [] for s in sessions}  # the tiny decoder is silent: the sampled tokens say more
        for t in range(12):
            for i, s in enumerate(sessions):
                s.push_input(user[i, t])
            for sid, out in engine.step().items():
                outs[sid].append(out)
            for s in sessions:
                tokens[s.id].append(s.state.columns[-1].tolist())
        return [(np.concatenate(outs[s.id]), tokens[s.id]) for s in sessions]

    together = run([5, 6])
    alone = run([5])[0]
    np.testing.assert_allclose(together[0][0], alone[0], atol=1e-5)
    assert together[0][1] == alone[1] and together[0][1] != together[1][1]


def test_say_reports_what_was_said(tiny_folder):
    agent = load_agent(str(tiny_folder), virtual_clock=True)
    r = respond_audio(agent, np.zeros(16000 * 3, np.float32), say="hello there")
    done = [e for e in r.events if e["type"] == "agent.say.done"]
    # an untrained model emits a text token nearly every tick and this codec is silent:
    # the utterance runs out of tokens, stays silent and is done, uninterrupted
    assert done == [{"type": "agent.say.done", "id": "say-0", "interrupted": False, "spoken_text": "hello there"}]


@pytest.mark.parametrize("given", [True, False])
def test_text_comes_as_often_as_the_model_gives_some_token_at_any_temperature(tiny_folder, given):
    """The model decides when its next token comes (a given text's or its own), with its probability of
    writing any token: spread over many tokens, that probability must not be sharpened away by a low
    temperature; which token comes is sharpened."""
    import torch

    from duplex.lm_agent import SpeechLMAgent
    from models.text_tokenizer import PAD

    agent = SpeechLMAgent(load_agent_models(tiny_folder), temperature=0.01, onnx=False)
    vocab = agent.m.lm.config.text_vocab_size
    logits = torch.zeros(vocab)
    logits[PAD] = float(np.log(0.3 / 0.7 * (vocab - 2)))  # <pad> the likeliest token (0.3), some token 0.7
    logits[5] = 0.1  # of which token 5 the likeliest
    state = agent.new_state()
    if given:
        agent.say(state, " ".join(["hello"] * 40), "s")
        state.user_recent = 3
    tokens = [agent._text_token(state, logits) for _ in range(40)]
    assert 18 <= sum(t != PAD for t in tokens) <= 38  # about 0.7 of the ticks (seeded); at 0.01, <pad> always
    if not given:
        assert set(tokens) == {PAD, 5}  # at 0.01, the likeliest word token
    logits[PAD] = 50.0  # the model is sure that nothing comes now
    assert all(agent._text_token(state, logits) == PAD for _ in range(30))


def test_say_accepts_any_characters(tiny_folder):
    agent = load_agent(str(tiny_folder), virtual_clock=True)
    r = respond_audio(agent, np.zeros(16000 * 4, np.float32), say="ünïcode ✓ 42")
    assert [e["spoken_text"] for e in r.events if e["type"] == "agent.say.done"] == ["ünïcode ✓ 42"]


def test_a_checkpoint_of_the_wrong_kind_is_a_clear_error(tiny_folder, tmp_path):
    save_codec(Codec(CodecConfig(n_filters=4, dimension=16, n_q=2, codebook_size=16, lstm_layers=0)), tmp_path / "c")
    with pytest.raises(CheckpointError, match="duplex-codec"):
        load_agent(str(tmp_path / "c"), virtual_clock=True)
    models = load_agent_models(tiny_folder)
    assert models.lm.config.n_codebooks == models.codec.config.n_q


def test_the_text_stream_is_sent_as_transcript_deltas(tiny_folder):
    agent = load_agent(str(tiny_folder), virtual_clock=True)
    r = respond_audio(agent, np.zeros(16000 * 3, np.float32), say="hello there ünï")
    deltas = [e["text"] for e in r.events if e["type"] == "agent.transcript.delta"]
    # an untrained model also emits text of its own before the utterance starts
    assert "hello there ünï" in "".join(deltas)


def test_onnxruntime_steps_equal_the_torch_steps_with_state_carried():
    import torch

    from models.onnx_export import OnnxCodecDecoder, OnnxListenStep

    torch.manual_seed(1)
    codec = Codec(CodecConfig(n_filters=4, dimension=16, n_q=2, codebook_size=16, lstm_layers=1)).eval()
    listen = ListenEncoder(ListenConfig(d_model=16, layers=1, heads=2, window=8)).eval()
    decode, hear = OnnxCodecDecoder(codec), OnnxListenStep(listen)
    codes = torch.randint(0, 16, (2, 2, 12))
    audio = torch.randn(2, 12, 1280) * 0.1
    torch_decode, onnx_decode = codec.new_decode_state(2), codec.new_decode_state(2)
    torch_listen, onnx_listen = listen.new_state(2), listen.new_state(2)
    with torch.no_grad():
        for t in range(12):
            expected, torch_decode = codec.decode_step(codes[:, :, t], torch_decode)
            got, onnx_decode = decode(codes[:, :, t], onnx_decode)
            assert got.abs().max() > 0 and torch.allclose(got, expected, atol=1e-4)
            expected, torch_listen = listen.step(audio[:, t], torch_listen)
            got, onnx_listen = hear(audio[:, t], onnx_listen)
            assert torch.allclose(got, expected, atol=1e-4)


def test_the_agent_says_the_same_with_and_without_onnxruntime(tiny_folder):
    from duplex.lm_agent import SpeechLMAgent

    models = load_agent_models(tiny_folder)
    user = np.random.default_rng(2).normal(0, 0.05, 16000 * 2).astype(np.float32)
    events = [respond_audio(SpeechLMAgent(models, onnx=onnx, int8=False), user, seed=4, say="hello there").events
              for onnx in (True, False)]
    assert events[0] == events[1]


def test_the_agent_runs_its_speech_lm_in_8_bits_unless_told_otherwise(tiny_folder):
    """int8 is the default (measured on trained weights: bench/bench_int8.py); int8=False gives torch's logits."""
    import torch

    from duplex.lm_agent import SpeechLMAgent

    models = load_agent_models(tiny_folder)
    lm = models.lm
    torch.manual_seed(3)
    args = (torch.randint(0, 16, (1, 2)), torch.randint(0, 200, (1,)), torch.randn(1, 32),
            torch.zeros(1, dtype=torch.long))
    with torch.no_grad():
        expected = lm.step(*args, lm.new_cache(1), torch.zeros(1, dtype=torch.long))[1]
    for agent, exact in ((SpeechLMAgent(models), False), (SpeechLMAgent(models, int8=False), True)):
        got = agent._lm_step(*args, lm.new_cache(1), torch.zeros(1, dtype=torch.long))[1]
        assert torch.allclose(got, expected, atol=1e-4) == exact
        assert torch.allclose(got, expected, atol=0.1 * expected.abs().max().item())  # close either way
        agent.close()


def with_phonemes(tiny_folder, streams: int) -> AgentModels:
    """The tiny agent's parts with an LM that reads `streams` phoneme streams of 8 slots (random weights)."""
    import torch

    models = load_agent_models(tiny_folder)
    lm = SyncLM(dataclasses.replace(models.lm.config, phoneme_slots=8, phoneme_streams=streams))
    torch.nn.init.normal_(lm.phoneme_embed.weight, std=0.5)
    return AgentModels(lm.eval(), models.codec, models.listen, models.tokenizer)


def test_words_to_say_come_with_their_phonemes_alike_in_onnxruntime_and_torch(tiny_folder, tmp_path):
    """A model with phoneme input reads each word's phonemes beside its first token (models/phonemes.py)."""
    import torch

    from duplex.lm_agent import SpeechLMAgent
    from models.phonemes import phoneme_ids

    models = with_phonemes(tiny_folder, streams=2)
    agent = SpeechLMAgent(models, onnx=False)
    state = agent.new_state()
    agent.say(state, "hello there, francesca", "s")
    pending = list(state.say_queue[0].pending)
    assert [t for t, _, _ in pending] == models.tokenizer.encode("hello there, francesca")
    starts = [p for _, p, _ in pending if p is not None]
    assert [k for _, _, k in pending if k is not None] == [0, 1, 2]
    assert len(starts) == 3 and torch.equal(starts[0], torch.from_numpy(phoneme_ids("hello", 8)))
    state.user_recent = 3  # the user has been silent: the utterance starts at the first text token
    agent.step([state], np.zeros((1, 1280), np.float32))
    assert state.prev_phonemes is not None  # this untrained model writes text on its first tick (seeded)
    read = agent._phonemes([state])[0]
    assert torch.equal(read[:8], starts[0]) and not read[8:].any()  # announced, not voiced yet
    state.tick += 1  # one position later (agent.text_lead 2) the same word is voiced
    state.prev_phonemes = None
    assert torch.equal(agent._phonemes([state])[0][8:], starts[0])
    user = np.random.default_rng(2).normal(0, 0.05, 16000 * 2).astype(np.float32)
    events = [respond_audio(SpeechLMAgent(models, onnx=onnx, int8=False), user, seed=4, say="hello there").events
              for onnx in (True, False)]
    assert events[0] == events[1]


def test_words_to_say_come_when_training_placed_them_once_the_model_has_begun(tiny_folder):
    """With the frame schedule, the model chooses when to begin; then each word's first token comes
    int(its start tick) after the first word's, as training laid the words out, and the rest of its
    tokens on the following ticks."""
    from audio.tts import speak_words
    from duplex.domains import AGENT_VOICES
    from duplex.lm_agent import SpeechLMAgent
    from models.phonemes import TICK_SECONDS

    text = "please tell the driver that a yellow bicycle is at the beach."
    word_ticks = [int(w.start / TICK_SECONDS) for w in speak_words(text, AGENT_VOICES[0]).words]
    agent = SpeechLMAgent(with_phonemes(tiny_folder, streams=3), onnx=False)
    state = agent.new_state(seed=1)
    agent.say(state, text, "s")
    utterance = state.say_queue[0]
    state.user_recent = 10  # a silent user
    for _ in range(80):
        agent.step([state], np.zeros((1, 1280), np.float32))
    said = [tick for tick, _ in utterance.said]
    tokens = [agent.m.tokenizer.encode(word) for word in text.split()]
    expected, position = [], said[0]
    for k, word in enumerate(tokens):
        position = max(position, said[0] + word_ticks[k] - word_ticks[0])
        expected += range(position, position + len(word))
        position += len(word)
    assert said == expected


def test_words_to_say_are_voiced_on_the_schedule_of_their_phonemes(tiny_folder):
    """A model with the third phoneme stream reads, from the tick its first word is voiced, the phonemes
    sounding in each tick of the text as training's voice says it (models/phonemes.py)."""
    import torch

    from audio.tts import speak_words
    from duplex.domains import AGENT_VOICES
    from duplex.lm_agent import SpeechLMAgent
    from models.phonemes import mnemonic_ids, tick_phonemes

    models = with_phonemes(tiny_folder, streams=3)
    agent = SpeechLMAgent(models, onnx=False)
    state = agent.new_state()
    agent.say(state, "hello there", "s")
    ticks = tick_phonemes(speak_words("hello there", AGENT_VOICES[0]).phonemes)
    voicing = state.say_queue[0].voicing.result().frames
    assert voicing.shape == (len(ticks), 8) and torch.equal(voicing[1], torch.from_numpy(mnemonic_ids(ticks[1], 8)))
    state.user_recent = 3
    agent.step([state], np.zeros((1, 1280), np.float32))
    u = state.utterance
    assert u.voice_from == state.tick - 1 + agent.text_lead  # announced at the next position, voiced one later
    assert not agent._phonemes([state])[0][16:].any()  # the word is announced, not voiced yet
    state.tick = u.voice_from + 2
    assert torch.equal(agent._phonemes([state])[0][16:], voicing[2])
    state.tick = u.voice_from + len(ticks)
    assert not agent._phonemes([state])[0][16:].any()  # the schedule has run out
    user = np.random.default_rng(2).normal(0, 0.05, 16000 * 2).astype(np.float32)
    events = [respond_audio(SpeechLMAgent(models, onnx=onnx, int8=False), user, seed=4, say="hello there").events
              for onnx in (True, False)]
    assert events[0] == events[1]


def test_words_the_model_writes_itself_are_voiced_by_their_phonemes_once_complete(tiny_folder):
    """Text the model writes (no `say`) gets what the dialogue stage gave the side it says: no phonemes
    beside a word's first token; the word voiced in the second stream, and its frame schedule played in
    the third, from text_lead positions after its first token, once the word is complete."""
    import torch

    from duplex.lm_agent import SpeechLMAgent, _voicing
    from models.phonemes import phoneme_ids
    from models.text_tokenizer import PAD

    agent = SpeechLMAgent(with_phonemes(tiny_folder, streams=3), onnx=False)
    state = agent.new_state()
    tokens = agent.m.tokenizer.encode("hello there, francesca")  # " hello", " there", ",", " franc", ...
    for token in [PAD, *tokens, PAD]:
        agent._follow_own_text(state, token)
        assert not state.prev_phonemes  # never beside a first token
        state.tick += 1
    words = ["hello", "there,", "francesca"]
    firsts = [1 + sum(len(agent.m.tokenizer.encode(w)) for w in words[:k]) for k in range(3)]
    assert [(p, ids.tolist()) for p, ids in state.announced] == [(f + 1, phoneme_ids(w, 8).tolist())
                                                                  for f, w in zip(firsts, words)]
    assert [p for p, _ in state.own_voicings] == [f + agent.text_lead for f in firsts]
    state.tick = firsts[0] + agent.text_lead + 1  # one position into "hello"'s voicing
    read = agent._phonemes([state])[0]
    assert not read[:8].any() and torch.equal(read[8:16], torch.from_numpy(phoneme_ids("hello", 8)))
    assert torch.equal(read[16:], _voicing("hello", 8).frames[1])


def test_a_new_session_steps_without_error_before_its_first_frame_is_complete(tiny_folder):
    # the first `acoustic_delay` ticks have no complete codec frame: silence, not an out-of-range code
    from duplex.lm_agent import SpeechLMAgent

    agent = SpeechLMAgent(load_agent_models(tiny_folder))
    old = agent.new_state(seed=0)
    listen = np.zeros((1, 1280), np.float32)
    for _ in range(3):
        agent.step([old], listen)
    new = agent.new_state(seed=1)  # joins a batch whose other session is already speaking
    out = agent.step([old, new], np.zeros((2, 1280), np.float32))
    assert out.shape == (2, 1280) and not out[1].any()


def test_the_agent_predicts_its_partner_and_compensates_late_slices_in_a_simulation(tiny_folder):
    import torch

    from duplex.lm_agent import SpeechLMAgent
    from duplex.simulate import NetworkConfig, simulate

    models = load_agent_models(tiny_folder)
    last = [m for m in models.codec.decoder.modules() if isinstance(m, torch.nn.Conv1d)][-1]
    with torch.no_grad():
        last.weight_g.fill_(1.0)  # this test's decoder makes sound (the folder's is silent)
    agent = SpeechLMAgent(models)
    assert agent.can_predict_partner
    state = agent.new_state(seed=0)
    assert not agent.predict_partner([state]).any()  # nothing predicted before the first step
    agent.step([state], np.zeros((1, 1280), np.float32))
    predicted = agent.predict_partner([state])
    # the most likely frame of the partner heads, through a decoder of its own
    frame = state.partner_logits.argmax(-1)[None]
    expected, _ = models.codec.decode_step(frame, models.codec.new_decode_state(1))
    assert predicted.shape == (1, 1280)
    assert np.abs(predicted).max() > 0
    np.testing.assert_allclose(predicted, expected.numpy(), atol=1e-4)
    rec = simulate(SpeechLMAgent(models), SpeechLMAgent(models), 1, 2.0, NetworkConfig(delay_ms=200, compensate=True))[0]
    assert rec.a.stream["predicted"] > 10 and rec.a.stream["replaced"] > 10


def test_a_late_real_slice_replaces_the_prediction_in_the_context(tiny_folder, monkeypatch):
    """SyncLLM's compensation: a session that heard predictions for ticks 3-5 and got the real slices
    at tick 6 is, after its next step, where a session that heard them in time is (its own tokens kept)."""
    import torch

    from duplex.lm_agent import SpeechLMAgent
    from models.text_tokenizer import PAD

    agent = SpeechLMAgent(load_agent_models(tiny_folder), onnx=False, int8=False)
    Q = agent.m.lm.config.n_codebooks
    monkeypatch.setattr(agent, "_text_token", lambda s, logits: PAD)
    real = np.random.default_rng(4).normal(0, 0.1, (9, 1280)).astype(np.float32)

    def run(late: set[int], arrive: int) -> tuple:
        """Steps 0..8 with scripted tokens; the slices of `late` ticks are predicted, their real ones come
        before tick `arrive`'s step. Returns (state after the steps, the caches after tick `arrive` - 1)."""
        script = iter(torch.full((1, Q), t % 5) for t in range(9))
        monkeypatch.setattr(agent, "_sample_audio", lambda logits, generators: next(script))
        state, before = agent.new_state(), None
        for t in range(9):
            if t == arrive:
                before = [c.k.clone() for c in state.cache]
                for tick in sorted(late):
                    agent.revise_partner(state, tick, real[tick])
            predicted = agent.predict_partner([state])[0]
            agent.step([state], (predicted if t in late else real[t])[None])
        return state, before

    on_time, on_time_before = run(set(), 6)
    late, late_before = run({3, 4, 5}, 6)
    assert not all(torch.allclose(a, b) for a, b in zip(on_time_before, late_before))  # the predictions differed
    for a, b in zip(on_time.cache, late.cache):
        torch.testing.assert_close(a.k, b.k), torch.testing.assert_close(a.v, b.v)
    for a, b in zip(on_time.listen.tensors(), late.listen.tensors()):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(on_time.partner_logits, late.partner_logits)
    too_late, _ = run({0}, 0 + 9)  # never revised: the context keeps the prediction
    assert not torch.allclose(too_late.cache[0].k, on_time.cache[0].k)


def test_a_codec_with_two_frames_per_tick_speaks_through_the_agent(tmp_path):
    """A 25 Hz codec: the LM speaks 2 x n_q tokens per tick, the agent decodes both frames each tick."""
    import torch

    torch.manual_seed(0)
    tokenizer = TextTokenizer.train(CORPUS, vocab_size=280)
    listen = ListenEncoder(ListenConfig(d_model=16, layers=1, heads=2, window=8))
    codec = Codec(CodecConfig(ratios=(8, 5, 4, 4), n_filters=4, dimension=16, n_q=2, codebook_size=16,
                              lstm_layers=0, decoder="vocos", vocos_dim=16, vocos_layers=1))
    assert codec.frames_per_tick == 2 and codec.tokens_per_tick == 4
    lm = SyncLM(SyncLMConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                             intermediate_size=48, n_codebooks=codec.tokens_per_tick, codebook_size=16,
                             listen_dim=32, text_vocab_size=tokenizer.vocab_size, sliding_window=16))
    save_agent(AgentModels(lm, codec, listen, tokenizer), tmp_path / "agent")
    user = np.random.default_rng(0).normal(0, 0.05, 16000).astype(np.float32)
    out = respond_audio(load_agent(str(tmp_path / "agent"), virtual_clock=True), user, seed=1).agent_audio
    assert out.shape == user.shape and np.abs(out).max() > 0

    wrong = SyncLM(dataclasses.replace(lm.config, n_codebooks=codec.config.n_q))
    save_agent(AgentModels(wrong, codec, listen, tokenizer), tmp_path / "wrong")
    with pytest.raises(CheckpointError, match="tokens per tick"):
        load_agent_models(tmp_path / "wrong")


def test_lanes_in_parallel_threads_say_what_one_batch_says(tiny_folder, caplog):
    from duplex.engine import Engine
    from duplex.lm_agent import SpeechLMAgent

    user = np.random.default_rng(2).normal(0, 0.05, (5, 10, 1280)).astype(np.float32)

    def run(lanes):
        agent = SpeechLMAgent.from_checkpoint(str(tiny_folder), lanes=lanes)
        engine = Engine(agent)
        sessions = [engine.open_session(seed=i) for i in range(5)]
        outs = []
        for t in range(10):
            for i, s in enumerate(sessions):
                s.push_input(user[i, t])
            step = engine.step()
            outs.append([step[s.id] for s in sessions])
        agent.close()
        return np.array(outs), [s.state.tick for s in sessions]

    (one, ticks_one), (three, ticks_three) = run(1), run(3)
    # every batched step ran as one (the engine's session-by-session retry would hide a failing lane)
    assert not [r for r in caplog.records if "batched agent step failed" in r.getMessage()]
    assert ticks_one == ticks_three == [10] * 5
    np.testing.assert_allclose(three, one, atol=1e-5)


@pytest.mark.parametrize("lanes", [1, 2])
def test_a_batch_that_fails_after_sampling_leaves_the_sessions_for_the_retry(tiny_folder, monkeypatch, lanes):
    """The engine retries a failed batch session by session; the failed attempt must not have advanced
    any session (its token columns, its text stream), or the retry would emit a second token in the tick.
    With lanes, a lane that succeeded must not have advanced its sessions either when another failed."""
    from duplex.engine import Engine
    from duplex.lm_agent import SpeechLMAgent

    agent = SpeechLMAgent.from_checkpoint(str(tiny_folder), lanes=lanes)
    decode = agent._decode
    calls = itertools.count(1)

    def flaky(frames, state):
        n = next(calls)
        if frames.shape[0] > 1 and n % 3 == 0:  # every third batched decode fails
            raise RuntimeError("injected")
        return decode(frames, state)

    monkeypatch.setattr(agent, "_decode", flaky)
    engine = Engine(agent)
    sessions = [engine.open_session(seed=i) for i in range(2 * lanes)]
    deltas = {s.id: [] for s in sessions}
    for _ in range(40):
        for s in sessions:
            s.push_input(np.zeros(1280, np.float32))
        engine.step()
        for s in sessions:
            deltas[s.id].append(sum(e["type"] == "agent.transcript.delta" for e in s.events))
            s.events.clear()
    assert next(calls) > 40 * lanes + 1  # failures happened and were retried
    for s in sessions:
        assert s.failed is None and s.state.tick == 40 and len(s.state.columns) == agent.delay + 1
        assert max(deltas[s.id]) == 1  # one text token per tick, never the failed attempt's as well


def test_audio_sampling_keeps_the_top_k_distribution_and_each_sessions_own_draws(tiny_folder):
    import torch

    agent = load_agent(str(tiny_folder), virtual_clock=True)
    agent.temperature, agent.top_k = 1.0, 2
    logits = torch.log(torch.tensor([[[0.5, 0.3, 0.15, 0.05], [0.05, 0.15, 0.3, 0.5]]])).expand(2, 2, 4)
    first, second = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    draws = torch.stack([agent._sample_audio(logits, [first, second]) for _ in range(4000)])  # (draws, B, Q)
    count = lambda b, q, token: int((draws[:, b, q] == token).sum())
    for b in range(2):  # top-2 of (0.5, 0.3): 0.625 and 0.375 of the draws, nothing else
        assert abs(count(b, 0, 0) - 2500) < 120 and count(b, 0, 0) + count(b, 0, 1) == 4000
        assert abs(count(b, 1, 3) - 2500) < 120 and count(b, 1, 3) + count(b, 1, 2) == 4000
    alone = torch.Generator().manual_seed(2)
    second_alone = torch.stack([agent._sample_audio(logits[1:], [alone])[0] for _ in range(4000)])
    assert torch.equal(second_alone, draws[:, 1])  # a session draws the same with or without a neighbour
