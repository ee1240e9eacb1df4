"""The linear CTC probe that measures listen features: labels, decoding, and that it can learn."""

from __future__ import annotations

import torch

from training.ctc_probe import (
    ALPHABET,
    characters,
    fit_probe,
    greedy_decode,
    labels,
    probe_cer,
)


def test_text_becomes_probe_characters():
    assert characters("Count with me: ten, eleven!") == "count with me ten eleven"
    assert labels("ab c").tolist() == [2, 3, 1, 4]


def test_greedy_decoding_merges_repeats_and_drops_blanks():
    path = [0, 2, 2, 0, 2, 1, 1, 3, 0]  # a a - a _ b  (0 = blank, 1 = space)
    logits = torch.nn.functional.one_hot(torch.tensor(path), len(ALPHABET) + 1).float()
    assert greedy_decode(logits) == "aa b"


def test_probe_learns_features_that_carry_the_characters():
    """Noisy one-hot features of each character, one frame apart, must be transcribed almost perfectly."""
    torch.manual_seed(0)
    texts = ["the cat sat", "a dog ran", "hello there", "big red box", "one two", "sun and moon"] * 4
    features = []
    for text in texts:
        frames = []
        for c in labels(text).tolist():
            frames += [c, 0]  # the character, then a blank frame
        features.append(torch.nn.functional.one_hot(torch.tensor(frames), len(ALPHABET) + 1).float()
                        + 0.1 * torch.randn(len(frames), len(ALPHABET) + 1))
    probe = fit_probe(features, texts, steps=150, lr=5e-2)
    assert probe_cer(probe, features, texts) < 0.05
