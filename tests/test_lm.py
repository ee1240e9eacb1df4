import json
from dataclasses import replace

import pytest
import torch

from models.checkpoint import CheckpointError
from models.lm import (
    SyncLM,
    SyncLMConfig,
    delay_codes,
    init_backbone_from_llama,
    undelay_codes,
)
from models.phonemes import ALPHABET_SIZE

TINY = SyncLMConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                    intermediate_size=48, n_codebooks=3, codebook_size=16, text_vocab_size=10, listen_dim=12,
                    sliding_window=6)


def inputs(B, T, c=TINY, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randint(0, c.codebook_size + 1, (B, c.n_codebooks, T), generator=g),
        torch.randint(0, c.text_vocab_size, (B, T), generator=g),
        torch.randn(B, T, c.listen_dim, generator=g),
        torch.randint(0, c.n_roles, (B,), generator=g),
    )


@pytest.mark.parametrize("T", [5, 15])  # within the window, and 2.5 windows long
def test_streaming_equals_teacher_forced(T):
    torch.manual_seed(0)
    model = SyncLM(TINY).eval()
    audio, text, listen, role = inputs(2, T)
    with torch.no_grad():
        full_text, full_audio, full_partner, _ = model(audio, text, listen, role)
        cache = model.new_cache(2)
        for t in range(T):
            st, sa, sp = model.step(audio[:, :, t], text[:, t], listen[:, t], role, cache, torch.full((2,), t))
            torch.testing.assert_close(st, full_text[:, t], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(sa, full_audio[:, :, t], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(sp, full_partner[:, :, t], atol=1e-5, rtol=1e-4)


def test_sessions_at_different_positions_share_one_batch():
    torch.manual_seed(0)
    model = SyncLM(TINY).eval()
    audio, text, listen, role = inputs(2, 9)
    with torch.no_grad():
        full_text = model(audio, text, listen, role).text
        # session 1 joins 4 ticks late: run it alone first, then both in one batch
        cache = model.new_cache(2)
        for t in range(9):
            rows = [0] if t < 4 else [0, 1]
            pos = torch.tensor([t, t - 4])[rows]
            # a batch over the rows in play, each at its own position
            sub = model.new_cache(len(rows))
            for layer, s in zip(cache, sub):
                s.k, s.v = layer.k[rows], layer.v[rows]
            src = [(0, t), (1, t - 4)][: len(rows)]
            st, _, _ = model.step(
                torch.stack([audio[b, :, i] for b, i in src]),
                torch.stack([text[b, i] for b, i in src]),
                torch.stack([listen[b, i] for b, i in src]),
                role[rows], sub, pos,
            )
            for layer, s in zip(cache, sub):
                layer.k[rows], layer.v[rows] = s.k, s.v
            torch.testing.assert_close(st[0], full_text[0, t], atol=1e-5, rtol=1e-4)
        ref = model(audio[1:, :, :5], text[1:, :5], listen[1:, :5], role[1:]).text
        torch.testing.assert_close(st[1], ref[0, 4], atol=1e-5, rtol=1e-4)


def phonemes_at_some_positions(B, T, slots, seed=0):
    """(B, T, slots) phoneme ids where about a third of the positions start a word, empty elsewhere."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, ALPHABET_SIZE, (B, T, slots), generator=g)
    return ids * (torch.rand(B, T, 1, generator=g) < 0.3)


def with_trained_phonemes(config):
    """A model with phoneme input whose phoneme embeddings are not the zeros it starts from."""
    model = SyncLM(config).eval()
    torch.nn.init.normal_(model.phoneme_embed.weight, std=0.5)
    return model


def test_phonemes_change_the_logits_and_stream_as_the_whole_sequence():
    torch.manual_seed(0)
    model = with_trained_phonemes(replace(TINY, phoneme_slots=4))
    audio, text, listen, role = inputs(2, 9)
    phonemes = phonemes_at_some_positions(2, 9, 4)
    with torch.no_grad():
        full_text, full_audio, _, _ = model(audio, text, listen, role, phonemes)
        plain_text = model(audio, text, listen, role).text
        assert not torch.allclose(full_text, plain_text)
        cache = model.new_cache(2)
        for t in range(9):
            st, sa, _ = model.step(audio[:, :, t], text[:, t], listen[:, t], role, cache, torch.full((2,), t),
                                   phonemes[:, t])
            torch.testing.assert_close(st, full_text[:, t], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(sa, full_audio[:, :, t], atol=1e-5, rtol=1e-4)


def test_phoneme_input_added_to_a_trained_model_starts_by_changing_nothing():
    """Why the phoneme embeddings start at zero: a run can start from a checkpoint without them."""
    torch.manual_seed(0)
    before = SyncLM(TINY).eval()
    after = SyncLM(replace(TINY, phoneme_slots=4)).eval()
    after.load_state_dict({**before.state_dict(), "phoneme_embed.weight": after.phoneme_embed.weight})
    audio, text, listen, role = inputs(2, 6)
    with torch.no_grad():
        expected = before(audio, text, listen, role)[0]
        torch.testing.assert_close(after(audio, text, listen, role, phonemes_at_some_positions(2, 6, 4))[0], expected)


@pytest.mark.parametrize("partner_heads,phoneme_slots,phoneme_streams", [(True, 0, 1), (False, 0, 1), (True, 4, 2)])
def test_onnxruntime_step_equals_torch_beyond_the_window(partner_heads, phoneme_slots, phoneme_streams):
    from models.onnx_export import OnnxLMStep

    torch.manual_seed(0)
    config = replace(TINY, partner_heads=partner_heads, phoneme_slots=phoneme_slots, phoneme_streams=phoneme_streams)
    model = with_trained_phonemes(config) if phoneme_slots else SyncLM(config).eval()
    onnx_step = OnnxLMStep(model)
    for B in (1, 3):  # exported at batch 2
        audio, text, listen, role = inputs(B, 15, seed=B)
        phonemes = phonemes_at_some_positions(B, 15, config.phoneme_width, seed=B) if phoneme_slots else None
        torch_cache, onnx_cache = model.new_cache(B), model.new_cache(B)
        with torch.no_grad():
            for t in range(15):  # 2.5 windows
                args = (audio[:, :, t], text[:, t], listen[:, t], role)
                positions = torch.arange(B) + t  # each session at its own position
                given = None if phonemes is None or t % 4 == 3 else phonemes[:, t]  # sometimes none at all
                expected = model.step(*args, torch_cache, positions, given)
                got = onnx_step(*args, onnx_cache, positions, given)
                assert (got[2] is None) == (expected[2] is None) == (not partner_heads)
                for e, g in zip(expected, got):
                    if e is not None:
                        torch.testing.assert_close(g, e, atol=1e-4, rtol=1e-4)
        for t_layer, o_layer in zip(torch_cache, onnx_cache):
            torch.testing.assert_close(o_layer.k, t_layer.k, atol=1e-4, rtol=1e-4)


def test_an_int8_step_stays_close_to_torch():
    """The 8-bit option (bench_lm_step.py --int8) changes the logits a little, not what they favour."""
    from models.onnx_export import OnnxLMStep

    torch.manual_seed(0)
    model = SyncLM(TINY).eval()
    int8 = OnnxLMStep(model, int8=True)
    audio, text, listen, role = inputs(2, 6)
    torch_cache, int8_cache = model.new_cache(2), model.new_cache(2)
    agree = []
    with torch.no_grad():
        for t in range(6):
            args = (audio[:, :, t], text[:, t], listen[:, t], role)
            expected = model.step(*args, torch_cache, torch.full((2,), t))[1]
            got = int8(*args, int8_cache, torch.full((2,), t))[1]
            assert (got - expected).abs().max() < 0.05 * expected.abs().max()
            agree.append((got.argmax(-1) == expected.argmax(-1)).float().mean())
    assert torch.stack(agree).mean() > 0.9


def test_cache_memory_is_flat_over_10000_ticks():
    model = SyncLM(TINY).eval()
    cache = model.new_cache(1)
    sizes = {(l.k.shape, l.v.shape) for l in cache}
    a, x, lst, r = inputs(1, 1)
    with torch.no_grad():
        for t in range(10_000):
            model.step(a[:, :, 0], x[:, 0], lst[:, 0], r, cache, torch.tensor([t]))
    assert {(l.k.shape, l.v.shape) for l in cache} == sizes
    assert torch.isfinite(cache[0].k).all()


def test_delay_pattern_round_trip():
    codes = torch.arange(24).view(1, 3, 8)
    d = delay_codes(codes, 1, bos=99)
    assert d[0, 0].tolist() == codes[0, 0].tolist() and d[0, 1, 0] == 99 and d[0, 1, 1] == codes[0, 1, 0]
    assert torch.equal(undelay_codes(d, 1), codes[:, :, :-1])


def test_a_local_llama_checkpoint_initialises_the_backbone(tmp_path):
    from transformers import LlamaConfig, LlamaModel

    torch.manual_seed(0)
    hf_config = LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                            intermediate_size=48, vocab_size=50, rms_norm_eps=TINY.rms_norm_eps, rope_theta=TINY.rope_theta)
    llama = LlamaModel(hf_config).eval()
    # saved as transformers lays out a LlamaForCausalLM backbone: "model." prefix
    from safetensors.torch import save_file

    save_file({f"model.{k}": v.contiguous() for k, v in llama.state_dict().items()}, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(hf_config.to_dict()))
    model = SyncLM(TINY).eval()
    loaded = init_backbone_from_llama(model, str(tmp_path))
    assert len(loaded) == 2 * 9 + 1
    # with no audio/text/role/listen signal, our stack computes what Llama computes on the same embeddings
    x = torch.randn(1, 5, 32)
    with torch.no_grad():
        ref = llama(inputs_embeds=x).last_hidden_state
        from models.lm import rope_angles

        cos, sin = rope_angles(torch.arange(5), TINY.head_dim, TINY.rope_theta)
        h = x
        for block in model.model.layers:
            h = block(h, cos, sin)
        torch.testing.assert_close(model.model.norm(h), ref, atol=1e-5, rtol=1e-4)


def test_a_mismatched_llama_checkpoint_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 64, "num_hidden_layers": 2}))
    with pytest.raises(CheckpointError, match="hidden_size"):
        init_backbone_from_llama(SyncLM(TINY), str(tmp_path))


def test_the_heard_text_head_answers_when_asked():
    """Forward passes give the heard-text logits (the dialogue stage's auxiliary target) on request."""
    torch.manual_seed(0)
    config = replace(TINY, heard_text_head=True)
    model = SyncLM(config).eval()
    audio, text, listen, role = inputs(2, 5, config)
    with torch.no_grad():
        logits = model(audio, text, listen, role)
        assert logits.heard.shape == logits.text.shape
        assert model(audio, text, listen, role, heard=False).heard is None
        assert SyncLM(TINY)(audio, text, listen, role).heard is None
