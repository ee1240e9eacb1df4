"""Tokens made once and kept: the bounded producer and the file format."""

import multiprocessing

import torch

from training import token_cache


def _square(x: int) -> int:
    return x * x


def test_production_runs_a_bounded_window_ahead_and_keeps_the_order():
    with multiprocessing.get_context("fork").Pool(2) as pool:
        assert list(token_cache._bounded(pool, _square, list(range(37)), ahead=8)) == [x * x for x in range(37)]


def test_a_token_file_gives_back_what_was_written(tmp_path):
    sequences = [torch.randint(0, 1024, (4, n)) for n in (3, 1, 7)]
    token_cache.write_token_file(tmp_path / "t.safetensors", sequences, {"extra": torch.arange(3)}, {"words": ["a"]})
    back, tensors, metadata = token_cache.read_token_file(tmp_path / "t.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(sequences, back)) and len(back) == 3
    assert torch.equal(tensors["extra"], torch.arange(3)) and metadata == {"words": ["a"]}
