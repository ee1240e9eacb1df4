"""Linear CTC probe: how much of what was said can be read off frozen features.

The measure of the listen encoder (issue "Done means"): a single linear layer
trained with CTC to emit characters from frozen features, on utterances in
training voices, then scored by character error rate on held-out sentences in
held-out voices. The same probe on the stacked log-mel frames (same 25 Hz
rate) is the baseline. Both are trained and tested under the same
condition: clean, a second espeak talker mixed in, or noise, at a given SNR.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jiwer
import numpy as np
import torch
import torch.nn.functional as F

from audio.frames import TICK_SAMPLES
from audio.tts import Voice, synthesize
from training.speech_source import at_snr, coloured_noise, random_voice
from training.speech_text import held_out_sentence, training_sentence

ALPHABET = " abcdefghijklmnopqrstuvwxyz'"
BLANK = 0  # CTC blank; characters are 1..len(ALPHABET)
CONDITIONS = ("clean", "talker", "noise")


def characters(text: str) -> str:
    """The probe's view of a sentence: lower-case letters, apostrophes and single spaces."""
    kept = "".join(c if c in ALPHABET else " " for c in text.lower())
    return " ".join(kept.split())


def labels(text: str) -> torch.Tensor:
    return torch.tensor([ALPHABET.index(c) + 1 for c in characters(text)], dtype=torch.long)


def greedy_decode(logits: torch.Tensor) -> str:
    """Best path: argmax per frame, merge repeats, drop blanks."""
    best = logits.argmax(-1).tolist()
    out, previous = [], BLANK
    for index in best:
        if index != previous and index != BLANK:
            out.append(ALPHABET[index - 1])
        previous = index
    return "".join(out)


@dataclass
class Utterance:
    text: str
    audio: np.ndarray  # 16 kHz, a whole number of ticks


def utterances(count: int, held_out: bool, condition: str, snr_db: float = 10.0, seed: int = 7) -> list[Utterance]:
    """Whole sentences in random voices at moderate speeds (so CTC has a frame per character)."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown probe condition {condition!r} (known: {', '.join(CONDITIONS)})")
    out = []
    for i in range(count):
        rng = np.random.default_rng([seed, i, int(held_out)])
        text = held_out_sentence(i) if held_out else training_sentence(seed, i)
        voice = random_voice(rng, held_out)
        speech = synthesize(text, Voice(voice.name, voice.variant, int(rng.integers(140, 191)), voice.pitch))
        speech = np.pad(speech, (0, (-len(speech)) % TICK_SAMPLES))
        if condition == "talker":
            other_voice = random_voice(rng, held_out)
            other = synthesize(held_out_sentence(i + 500) if held_out else training_sentence(seed + 1, i), other_voice)
            other = np.resize(other, len(speech)) if len(other) else np.zeros_like(speech)
            speech = speech + at_snr(speech, other, snr_db)
        elif condition == "noise":
            speech = speech + at_snr(speech, coloured_noise(rng, len(speech)), snr_db)
        speech = speech / max(1.0, float(np.abs(speech).max()) / 0.99)
        out.append(Utterance(text, speech.astype(np.float32)))
    return out


def fit_probe(features: list[torch.Tensor], texts: list[str], steps: int = 300, lr: float = 1e-2) -> torch.nn.Linear:
    """Train a linear layer with CTC on frozen features (each (T, D)), full batch, Adam; seeded."""
    torch.manual_seed(0)
    dim = features[0].shape[1]
    probe = torch.nn.Linear(dim, len(ALPHABET) + 1)
    padded = torch.nn.utils.rnn.pad_sequence([f.detach() for f in features], batch_first=True)
    mean, std = padded.flatten(0, 1).mean(0), padded.flatten(0, 1).std(0) + 1e-5
    probe.register_buffer("mean", mean)
    probe.register_buffer("std", std)
    inputs = (padded - mean) / std
    input_lengths = torch.tensor([len(f) for f in features])
    targets = [labels(t) for t in texts]
    target_lengths = torch.tensor([len(t) for t in targets])
    flat_targets = torch.cat(targets)
    optimizer = torch.optim.Adam(probe.parameters(), lr=lr)
    with torch.enable_grad():
        _train(probe, optimizer, inputs, flat_targets, input_lengths, target_lengths, steps)
    return probe


def _train(probe, optimizer, inputs, flat_targets, input_lengths, target_lengths, steps: int) -> None:
    for _ in range(steps):
        log_probs = F.log_softmax(probe(inputs), dim=-1).transpose(0, 1)
        loss = F.ctc_loss(log_probs, flat_targets, input_lengths, target_lengths, blank=BLANK, zero_infinity=True)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def probe_cer(probe: torch.nn.Linear, features: list[torch.Tensor], texts: list[str]) -> float:
    """Character error rate of the probe's greedy transcripts."""
    with torch.no_grad():
        hypotheses = [greedy_decode(probe((f - probe.mean) / probe.std)) for f in features]
    return float(jiwer.cer([characters(t) for t in texts], hypotheses))


def compare(
    featurizers: dict[str, Callable[[np.ndarray], torch.Tensor]],
    condition: str,
    n_train: int,
    n_test: int,
    snr_db: float = 10.0,
) -> dict[str, float]:
    """CER of the same probe on each featurizer (audio -> (T, D)), trained and tested under one condition."""
    train = utterances(n_train, held_out=False, condition=condition, snr_db=snr_db)
    test = utterances(n_test, held_out=True, condition=condition, snr_db=snr_db)
    results = {}
    for name, featurize in featurizers.items():
        probe = fit_probe([featurize(u.audio) for u in train], [u.text for u in train])
        results[name] = probe_cer(probe, [featurize(u.audio) for u in test], [u.text for u in test])
    return results
