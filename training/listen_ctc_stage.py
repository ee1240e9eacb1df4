"""Training stage that teaches the listen encoder to hear words: `duplex train listen-ctc`.

Why: the dialogue model hears the templates of the questions it was trained
on but not the numbers and names that decide the answer, in new voices and
in trained ones alike (bench/bench_hearing.py, docs/benchmarks.md session
16), and the self-supervised encoder's features carry little more of what is
said than log-mel does (the linear CTC probe, training/ctc_probe.py). Speech
with its transcript costs nothing here: espeak-ng says any text in any
voice. So this stage fine-tunes the self-supervised encoder, whole, under a
linear CTC head over characters (the probe's alphabet), on sentences of the
procedural corpus and of the dialogue domains' train phrasings (their
numbers, countries and words to repeat), in training voices, mixed at times
with noise or a second talker as in the `listen` stage.

The encoder stays causal and streaming (only its weights change). Each
checkpoint holds, beside the run's weights, an `encoder` folder that is a
listen-encoder checkpoint like checkpoints/listen, for the stages after it
(`--listen RUN/checkpoints/latest/encoder`), and `heldout.json`: greedy
character error rate on held-out sentences in held-out voices and on the
domains' test phrasings in test voices, printed to the run's log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from audio.frames import SAMPLE_RATE, TICK_SAMPLES
from audio.tts import synthesize
from duplex.domains import sample_exchange, sample_user_voice
from models.checkpoint import config_to_dict
from models.listen_encoder import ListenEncoder, load_listen_encoder, save_listen_encoder
from training.ctc_probe import ALPHABET, BLANK, characters, greedy_decode, labels
from training.speech_source import at_snr, coloured_noise, random_voice, rms
from training.speech_text import held_out_sentence, training_sentence
from training.trainer import TrainConfig

DOMAINS = ("arithmetic", "capitals", "repeat", "smalltalk", "counting")
"""The dialogue domains whose sentences it hears: those of short questions and answers."""
CTC_MODEL_TYPE = "duplex-listen-ctc"
"""The run's own checkpoints (encoder and head); the `encoder` folder beside them is a plain listen encoder."""
HELDOUT = 32
"""Utterances of each held-out set scored at every checkpoint."""


@dataclass(frozen=True)
class ListenCTCStageConfig:
    init: str = "checkpoints/listen"
    """The self-supervised listen encoder to fine-tune."""
    seconds: float = 6.4
    domain_prob: float = 0.5
    """Share of the sentences from the dialogue domains (the rest from the procedural corpus)."""
    noise_prob: float = 0.25
    talker_prob: float = 0.25
    snr_db: tuple[float, float] = (5.0, 25.0)
    level_dbfs: tuple[float, float] = (-32.0, -16.0)
    timbre_prob: float = 0.5
    seed: int = 3


@dataclass
class CTCBatch:
    audio: torch.Tensor  # (B, samples)
    labels: torch.Tensor  # (sum of lengths,) characters, 1..len(ALPHABET)
    lengths: torch.Tensor  # (B,)


class CTCListener(nn.Module):
    """The listen encoder and a linear layer from its features to characters (and the CTC blank)."""

    def __init__(self, encoder: ListenEncoder):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.d_model, len(ALPHABET) + 1)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Character logits (B, frames, len(ALPHABET) + 1) of wav (B, samples)."""
        return self.head(self.encoder.encode(wav))


def _fit(speech: np.ndarray, samples: int, rng: np.random.Generator) -> np.ndarray:
    """The utterance at a random place in `samples` of silence (it must fit)."""
    out = np.zeros(samples, np.float32)
    start = int(rng.integers(0, samples - len(speech) + 1))
    out[start : start + len(speech)] = speech
    return out


class ListenCTCStage:
    name = "listen-ctc"

    def __init__(self, config: ListenCTCStageConfig):
        self.config = config
        self.samples = int(round(config.seconds * SAMPLE_RATE)) // TICK_SAMPLES * TICK_SAMPLES
        self._heldout: list[tuple[str, list[tuple[str, np.ndarray]]]] | None = None

    def build_model(self) -> nn.Module:
        return CTCListener(load_listen_encoder(self.config.init).train())

    def model_config(self) -> dict[str, Any]:
        return config_to_dict(load_listen_encoder(self.config.init).config, CTC_MODEL_TYPE) | {"ctc_alphabet": ALPHABET}

    def _sentence(self, rng: np.random.Generator, index: int, split: str) -> str:
        """A domain question or answer of the split's phrasings, or a sentence of the split's corpus."""
        if rng.random() < self.config.domain_prob:
            exchange = sample_exchange(rng, DOMAINS[int(rng.integers(len(DOMAINS)))], split)
            return exchange.question_text if rng.random() < 0.6 else exchange.answer_text
        return training_sentence(self.config.seed, index) if split == "train" else held_out_sentence(index)

    def _utterance(self, rng: np.random.Generator, index: int, split: str) -> tuple[str, np.ndarray]:
        """(text, speech that fits the window): a sentence too long for it is replaced by a short question."""
        held_out = split != "train"
        voice = sample_user_voice(rng, split) if held_out else random_voice(rng, False, self.config.timbre_prob)
        text = self._sentence(rng, index, split)
        speech = synthesize(text, voice)
        while len(speech) > self.samples:
            text = sample_exchange(rng, "arithmetic", split).question_text
            speech = synthesize(text, voice)
        return text, speech

    def example(self, index: int) -> tuple[np.ndarray, str]:
        """(audio, its text) of training example `index`: a pure function of (seed, index)."""
        c = self.config
        rng = np.random.default_rng([c.seed, index, 31])
        text, speech = self._utterance(rng, index, "train")
        audio = _fit(speech, self.samples, rng)
        audio *= 10 ** (rng.uniform(*c.level_dbfs) / 20) / rms(audio)
        for prob, interference in ((c.talker_prob, self._talker), (c.noise_prob, coloured_noise)):
            if rng.random() < prob:
                audio = audio + at_snr(audio, interference(rng, self.samples), rng.uniform(*c.snr_db))
        return (audio * min(1.0, 0.99 / (np.abs(audio).max() + 1e-9))).astype(np.float32), text

    def _talker(self, rng: np.random.Generator, samples: int) -> np.ndarray:
        """A second training voice saying another corpus sentence, cropped or placed to `samples`."""
        speech = synthesize(training_sentence(self.config.seed + 1, int(rng.integers(1 << 30))),
                            random_voice(rng, False, self.config.timbre_prob))
        if len(speech) > samples:
            start = int(rng.integers(0, len(speech) - samples + 1))
            return speech[start : start + samples]
        return _fit(speech, samples, rng)

    def batch(self, step: int, batch_size: int, rank: int, world_size: int) -> CTCBatch:
        first = (step * world_size + rank) * batch_size
        audios, texts = zip(*(self.example(first + i) for i in range(batch_size)))
        targets = [labels(t) for t in texts]
        return CTCBatch(torch.from_numpy(np.stack(audios)), torch.cat(targets),
                        torch.tensor([len(t) for t in targets]))

    def prepare(self, workers: int, progress: bool, device: torch.device) -> None:
        pass

    def before_step(self, model: nn.Module, step: int, batch_size: int, rank: int, world_size: int) -> None:
        """Nothing to prepare: the objective is the same at every step."""

    def loss(self, model: nn.Module, batch: CTCBatch, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        device = next(model.parameters()).device
        log_probs = model(batch.audio.to(device)).log_softmax(-1)  # through DDP: gradients synchronised
        frames = torch.full((len(batch.lengths),), log_probs.shape[1], dtype=torch.long)
        loss = F.ctc_loss(log_probs.transpose(0, 1), batch.labels.to(device), frames, batch.lengths.to(device),
                          blank=BLANK, zero_infinity=True)
        return loss, {"ctc": float(loss.detach())}

    def heldout_sets(self) -> list[tuple[str, list[tuple[str, np.ndarray]]]]:
        """(name, [(text, audio)]) of each held-out set: the corpus's held-out sentences in held-out voices,
        the domains' test phrasings in test voices; made once, the same at every checkpoint."""
        if self._heldout is None:
            self._heldout = []
            for name, split in (("held-out sentences", "valid"), ("domain test phrasings", "test")):
                rng = np.random.default_rng([self.config.seed, 41, len(self._heldout)])
                pairs = []
                for i in range(HELDOUT):
                    text, speech = self._utterance(rng, 10_000 + i, split)
                    pairs.append((text, _fit(speech, self.samples, rng)))
                self._heldout.append((name, pairs))
        return self._heldout

    @torch.no_grad()
    def heldout_cer(self, model: CTCListener) -> dict[str, float]:
        """Greedy character error rate of each held-out set."""
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        scores = {}
        for name, pairs in self.heldout_sets():
            logits = model(torch.from_numpy(np.stack([audio for _, audio in pairs])).to(device)).cpu()
            hypotheses = [greedy_decode(row) for row in logits]
            scores[name] = float(jiwer.cer([characters(t) for t, _ in pairs], hypotheses))
        model.train(was_training)
        return scores

    def on_checkpoint(self, model: nn.Module, folder: Path, step: int) -> None:
        """Write the encoder as a listen-encoder checkpoint and score the held-out sets."""
        model = getattr(model, "module", model)  # under DDP
        save_listen_encoder(model.encoder, folder / "encoder")
        scores = self.heldout_cer(model)
        (folder / "heldout.json").write_text(json.dumps({"step": step, "cer": scores}, indent=1))
        print(f"step {step}: held-out CER " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()), flush=True)


DEFAULT_TRAIN = TrainConfig(steps=4000, batch_size=16, lr=3e-4, lr_warmup_steps=200, betas=(0.9, 0.98),
                            weight_decay=0.01, grad_clip=1.0, log_every=10, checkpoint_minutes=10)
PRESETS: dict[str, tuple[ListenCTCStageConfig, TrainConfig]] = {
    "default": (ListenCTCStageConfig(), DEFAULT_TRAIN),
    "tiny": (ListenCTCStageConfig(seconds=2.56), TrainConfig(steps=4, batch_size=2, lr_warmup_steps=1, log_every=1)),
}
"""Named (stage, optimisation) settings; `tiny` is for tests and smoke runs (with --init of a tiny encoder)."""
CONFIG_CLASS = ListenCTCStageConfig


def build_stage(config: ListenCTCStageConfig) -> ListenCTCStage:
    return ListenCTCStage(config)
