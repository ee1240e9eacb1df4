"""What every stage that trains the speech LM shares: its batches, its loss, its checkpoints.

A stage (listen-while-speaking, full-duplex dialogue) produces `Example`s:
the agent's channel (what the model must say), the user's channel (what it
hears) and the agent's words with the tick each starts at. `BatchMaker` turns
them into token tensors aligned as the model reads them at run time
(duplex/lm_agent.py states the contract):

- codec tokens: the column at position t holds codebook 0 of frame t and
  codebooks 1.. of frame t - d, where frame f is the agent's audio of tick
  f + 1 + d (d = the acoustic delay); the model reads last position's column;
- text stream: each word's tokens start `text_lead` ticks before its audio,
  one token per tick, <pad> elsewhere (Moshi's inner monologue); for a model
  with phoneme input, the word's phonemes come with its first token,
  (second stream) while it is voiced and (third) those sounding in each
  frame (models/phonemes.py), in stages where the words are given to the
  model;
- listen features: the frozen listen encoder on the user's channel (on a
  GPU the loss computes them there from the batch's audio: on one core of a
  batch worker they cost more than the rest of the batch).

`SpeechLMStage` is the rest of what such a stage gives the training loop:
the tokenizer (trained on a fixed corpus, so a resumed run rebuilds the same
one), the LM config that fits the frozen parts, the model (optionally
started from another checkpoint), the loss, and the checkpoint hook that
makes every checkpoint a complete agent folder (models/agent_checkpoint.py).
A stage subclasses it and says what its examples are.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from audio.frames import TICK_SAMPLES
from models.agent_checkpoint import FROZEN_PARTS, part_folder
from models.checkpoint import config_from_dict, config_to_dict, load_weights, read_pretrained
from models.codec import Codec, load_codec
from models.listen_encoder import ListenEncoder, load_listen_encoder
from models.lm import MODEL_TYPE, SyncLM, SyncLMConfig
from models.phonemes import mnemonic_ids, phoneme_ids, voiced_word
from models.text_tokenizer import PAD, TextTokenizer
from training.speech_text import reading_sentence, training_sentence

TOKENIZER_SENTENCES = 4000


@dataclass
class Example:
    agent: np.ndarray | None
    """The channel the model speaks, (ticks + 2 + d) ticks of 16 kHz audio (None when agent_codes holds it)."""
    user: np.ndarray
    """The channel it hears, same length."""
    words: list[tuple[str, float]]
    """The agent's words and the tick (fractional) at which each starts."""
    role: int = 0
    kind: str = ""
    agent_codes: torch.Tensor | None = None
    """The agent's channel already as codec tokens (Q, ticks + 2 + d), for stages that reuse encodings."""
    stop_tick: int | None = None
    """Where the agent's speech was cut because the user interrupted (listen-while-speaking examples)."""
    partner_target: torch.Tensor | None = None
    """(Q, ticks) the codec frame of the heard channel's next tick after each position (IGNORE where
    unknown): the partner-prediction target, for stages that have the heard channel's tokens."""
    voicing: tuple[int, list[str]] | None = None
    """The tick of the agent's channel where its speech starts, and the phonemes sounding in each tick from
    there (models/phonemes.py `tick_phonemes`): the third phoneme stream, for stages whose speech has them."""
    heard_words: list[tuple[str, int]] | None = None
    """The partner's words in the heard channel and the position from which each has been heard (its last
    tick + 1): the heard-text target, for stages whose heard channel has words (models/lm.py `heard_text_head`)."""


@dataclass
class LMBatch:
    audio_in: torch.Tensor  # (B, Q, T) the previous position's column
    audio_target: torch.Tensor  # (B, Q, T)
    text_in: torch.Tensor  # (B, T)
    text_target: torch.Tensor  # (B, T)
    listen: torch.Tensor | None  # (B, T, listen_dim); None when `heard` is given instead
    role: torch.Tensor  # (B,)
    partner_target: torch.Tensor | None = None  # (B, Q, T), IGNORE where unknown
    phonemes: torch.Tensor | None = None  # (B, T, phoneme_width) as read with text_in; None when none are given
    heard: torch.Tensor | None = None  # (B, T * TICK_SAMPLES) the user's audio, whose features the loss computes
    heard_text_target: torch.Tensor | None = None  # (B, T) the partner's words as heard; None when not taught

    def to(self, device: torch.device) -> LMBatch:
        """The batch on `device` (where the model is)."""
        return LMBatch(**{f.name: None if (v := getattr(self, f.name)) is None else v.to(device)
                          for f in dataclasses.fields(self)})


WITH_PHONEMES = SyncLMConfig(phoneme_slots=24, phoneme_streams=3)
"""The recipe's LM: given words come with their phonemes, announced, while voiced (session 7) and frame by
frame (session 9; models/phonemes.py); 24 characters hold all but the longest words' mnemonics. Every
stage's preset uses it, since a stage starts from the weights of the one before."""

IGNORE = -100
"""Target id that the cross-entropy skips."""
PARTNER_WEIGHT = 0.5
"""Weight of the partner-prediction loss: an auxiliary target, below the model's own speech."""
HEARD_TEXT_WEIGHT = 0.5
"""Weight of the heard-text loss (the partner's words), likewise auxiliary."""


def tokenizer_corpus(seed: int, reading: bool = False) -> list[str]:
    """Text the tokenizer learns its merges from: the sentence stream and the dialogue domains, and
    with `reading` as many sentences of dictionary words (for stages that speak them)."""
    from duplex.domains import DOMAINS, SPLITS, sample_exchange

    rng = np.random.default_rng(seed)
    texts = [training_sentence(seed, i) for i in range(TOKENIZER_SENTENCES)]
    if reading:
        texts += [reading_sentence(seed, i) for i in range(TOKENIZER_SENTENCES)]
    for domain in DOMAINS:
        for _ in range(200):
            ex = sample_exchange(rng, domain, SPLITS[0])
            texts += [ex.question_text, ex.answer_text]
    return texts


def fitted_lm_config(base: SyncLMConfig, codec: Codec, listen: ListenEncoder, tokenizer: TextTokenizer) -> SyncLMConfig:
    """The LM config with the sizes the frozen parts dictate."""
    lc = listen.config
    return dataclasses.replace(
        base,
        listen_dim=lc.d_model * lc.frames_per_tick,
        n_codebooks=codec.tokens_per_tick,
        codebook_size=codec.config.codebook_size,
        text_vocab_size=tokenizer.vocab_size,
    )


class BatchMaker:
    def __init__(self, codec: Codec, listen: ListenEncoder, tokenizer: TextTokenizer, lm_config: SyncLMConfig,
                 ticks: int, text_lead: int, announce: bool = True):
        """`announce`: whether a word's phonemes are read beside its first text token (the first phoneme
        stream): yes where the words are given to say; no where the model writes its own text, since the
        agent knows such a word only once its last token is out. The other streams come either way."""
        self.codec, self.listen, self.tokenizer = codec, listen, tokenizer
        self.lm_config, self.ticks, self.text_lead = lm_config, ticks, text_lead
        self.give_phonemes = lm_config.phoneme_slots > 0
        self.announce = announce
        self.listen_later = False
        """Whether the batches carry the user's audio for the loss to encode (`SpeechLMStage.prepare`)."""

    @property
    def samples(self) -> int:
        """Length every Example's channels must have."""
        return (self.ticks + 2 + self.lm_config.acoustic_delay) * TICK_SAMPLES

    def text_stream(self, words: list[tuple[str, float]]) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """Target text token per position: each word's tokens from `text_lead` ticks before its audio;
        and each word in the window with the position of its first token."""
        d = self.lm_config.acoustic_delay
        return self.place_words([(word, int(tick) - self.text_lead - 1 - d) for word, tick in words])

    def place_words(self, words: list[tuple[str, int]]) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """A text stream of `words` given with the position of their first token: one token per position,
        from there or as soon as the word before is out (from 0 for a word under way at the window's
        start), <pad> elsewhere; and each word in the window with the position of its first token."""
        stream = np.full(self.ticks, PAD, dtype=np.int64)
        starts = []
        position = 0
        for (word, first), tokens in zip(words, self.tokenizer.encode_words([w for w, _ in words])):
            position = max(position, first)
            if position < self.ticks:
                starts.append((position, word))
            for token in tokens:
                if position >= self.ticks:
                    return stream, starts
                stream[position] = token
                position += 1
        return stream, starts

    def phoneme_input(self, starts: list[tuple[int, str]], voicing: tuple[int, list[str]] | None = None) -> np.ndarray:
        """(T, phoneme_width) phoneme ids as the model reads them (models/phonemes.py): each word's beside
        its first token (a position after that token's target), with two streams every position's voiced
        word's in the second, and with three the phonemes of its codebook-0 target frame in the third."""
        c = self.lm_config
        slots = c.phoneme_slots
        out = np.zeros((self.ticks, c.phoneme_width), dtype=np.int64)
        ids = [phoneme_ids(word, slots) for _, word in starts]
        announced = [position + 1 for position, _ in starts]
        for position, word_ids in zip(announced, ids):
            if position < self.ticks and self.announce:
                out[position, :slots] = word_ids
        if c.phoneme_streams > 1:
            for position in range(self.ticks):
                k = voiced_word(announced, position, self.text_lead)
                if k is not None:
                    out[position, slots : 2 * slots] = ids[k]
        if c.phoneme_streams > 2 and voicing is not None:
            first, ticks = voicing
            for position in range(self.ticks):
                j = position + 1 + c.acoustic_delay - first  # the frame codebook 0's target holds
                if 0 <= j < len(ticks):
                    out[position, 2 * slots :] = mnemonic_ids(ticks[j], slots)
        return out

    @cached_property
    @torch.no_grad()
    def silence_frame(self) -> torch.Tensor:
        """(Q,) the codec's tokens for steady silence, one frame: what a stage's agent says when it is quiet."""
        return self.codec.encode_ticks(torch.zeros(1, 8 * TICK_SAMPLES))[0, :, -1]

    @cached_property
    @torch.no_grad()
    def _silence_features(self) -> torch.Tensor:
        """(1, ticks, listen_dim) the listen encoder's features of a silent window."""
        return self.listen.encode(torch.zeros(1, self.ticks * TICK_SAMPLES)).reshape(1, self.ticks, -1)

    @torch.no_grad()
    def encode(self, examples: list[Example]) -> LMBatch:
        T, d = self.ticks, self.lm_config.acoustic_delay
        if all(e.agent_codes is not None for e in examples):
            codes = torch.stack([e.agent_codes for e in examples])
        else:
            codes = self.codec.encode_ticks(torch.from_numpy(np.stack([e.agent for e in examples])))  # (B, Q, T+2+d)
        target = torch.cat([codes[:, :1, 1 + d : T + 1 + d], codes[:, 1:, 1 : T + 1]], dim=1)
        audio_in = torch.full_like(target, self.lm_config.audio_bos)
        audio_in[:, :, 1:] = target[:, :, :-1]
        streams = [self.text_stream(e.words) for e in examples]
        text_target = torch.from_numpy(np.stack([text for text, _ in streams]))
        text_in = torch.zeros_like(text_target)
        text_in[:, 1:] = text_target[:, :-1]
        phonemes = None
        if self.give_phonemes:
            phonemes = torch.from_numpy(np.stack([self.phoneme_input(starts, e.voicing)
                                                  for (_, starts), e in zip(streams, examples)]))
        user = torch.from_numpy(np.stack([e.user[: T * TICK_SAMPLES] for e in examples]))
        heard = None
        if self.listen_later:
            listen, heard = None, user
        elif user.any():
            listen = self.listen.encode(user).reshape(len(examples), T, -1)
        else:  # stage 1 hears nothing: what the encoder makes of silence, computed once
            listen = self._silence_features.expand(len(examples), -1, -1)
        role = torch.tensor([e.role for e in examples], dtype=torch.long)
        partner = None
        if self.lm_config.partner_heads and all(e.partner_target is not None for e in examples):
            partner = torch.stack([e.partner_target for e in examples])
        heard_text = None
        if self.lm_config.heard_text_head and all(e.heard_words is not None for e in examples):
            heard_text = torch.from_numpy(np.stack([self.place_words(e.heard_words)[0] for e in examples]))
        return LMBatch(audio_in, target, text_in, text_target, listen, role, partner, phonemes, heard, heard_text)


def hide_spelling(batch: LMBatch, share: float, rng: np.random.Generator, slots: int,
                  announced_share: float = 0.0) -> None:
    """Turn the input text tokens of a share of the words that come with phonemes into <pad>, in place;
    of those words, hide `announced_share` of the phonemes read beside them too.

    Why: a model that has learned a word's tokens has no reason to read its phonemes, and then says
    words it never heard as badly as before (its codebook-0 loss was 1% lower with phonemes than
    without, 1259 steps after they were added: docs/benchmarks.md). Words seen only as phonemes teach
    it to read them. Likewise a model that reads the announced phonemes ignored the streams added
    after them (the voiced word's, each frame's: bench/bench_phoneme_reliance.py, session 9); a word
    known only from those streams teaches it to read them. The targets keep every token, so the text
    head still learns when words come."""
    if batch.phonemes is None or share <= 0:
        return
    starts = batch.phonemes[..., :slots].any(-1).numpy()  # (B, T) positions that announce a word
    hidden = starts & (rng.random(starts.shape) < share)
    text = batch.text_in.numpy().copy()
    for b, t0 in zip(*np.nonzero(hidden)):
        t = t0
        while t < text.shape[1] and text[b, t] != PAD and (t == t0 or not starts[b, t]):  # the word's tokens
            text[b, t] = PAD
            t += 1
    batch.text_in = torch.from_numpy(text)
    if announced_share > 0:
        unannounced = torch.from_numpy(hidden & (rng.random(starts.shape) < announced_share))
        batch.phonemes[..., :slots][unannounced] = 0


def corrupt_audio(batch: LMBatch, share: float, rng: np.random.Generator) -> None:
    """Replace a share of the positions' input token columns (the frame the model said last) by the
    batch's frames at other, random places, in place; the targets stay.

    Why: the stage-1 model of session 8 predicted its training sentences' tokens almost exactly when
    given the true previous frame (teacher forcing: Whisper WER 0.14 on their decoding), but said the
    same sentences at WER 1.0 when it read its own (even with the text streams given as in training,
    and sampling greedily): it had learned to continue the last frame, and one wrong frame led it off.
    A model that cannot always trust the last frame must read what is to be said (text, phonemes).
    Real frames from elsewhere look like the model's own mistakes: plausible sounds, the wrong ones."""
    if share <= 0:
        return
    B, Q, T = batch.audio_in.shape
    hit = rng.random((B, T)) < share
    hit[:, 0] = False  # the start token stays
    b, t = np.nonzero(hit)
    frames = batch.audio_target.permute(0, 2, 1).reshape(B * T, Q)
    audio_in = batch.audio_in.clone()
    audio_in[b, :, t] = frames[rng.integers(0, B * T, len(b))]
    batch.audio_in = audio_in


def listen_features(batch: LMBatch, listen: ListenEncoder | None) -> torch.Tensor:
    """(B, T, listen_dim) what the LM hears: the batch's features, or, when the user's audio came instead,
    the frozen encoder's features of it, computed here (by the model, on its device)."""
    if batch.listen is not None:
        return batch.listen
    with torch.no_grad():
        return listen.encode(batch.heard).reshape(*batch.text_in.shape, -1)


def stream_losses(text_logits: torch.Tensor, audio_logits: torch.Tensor,
                  batch: LMBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """(the text stream's cross-entropy, each codebook's (Q,)) of logits against the batch's targets."""
    text_loss = F.cross_entropy(text_logits.flatten(0, 1), batch.text_target.flatten())
    per_codebook = F.cross_entropy(audio_logits.permute(0, 3, 1, 2), batch.audio_target, reduction="none").mean((0, 2))
    return text_loss, per_codebook


def lm_loss(model: nn.Module, batch: LMBatch, first_codebook_weight: float = 1.0,
            listen: ListenEncoder | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy of the text stream plus the audio tokens' averaged over codebooks, codebook 0
    weighted `first_codebook_weight` to the others' 1, plus (when the batch has the heard channel's
    tokens) PARTNER_WEIGHT x that of the partner's next frame and (when it has the heard words)
    HEARD_TEXT_WEIGHT x that of the heard text. Logged: "audio" is the plain mean over
    codebooks whatever the weight (comparable across runs), "cb0" codebook 0's. `listen`: the frozen
    encoder, for a batch that carries the user's audio (`heard`) rather than its features."""
    batch = batch.to(next(model.parameters()).device)
    features = listen_features(batch, listen)
    text_logits, audio_logits, partner_logits, heard_logits = model(
        batch.audio_in, batch.text_in, features, batch.role, batch.phonemes,
        partner=batch.partner_target is not None, heard=batch.heard_text_target is not None)
    text_loss, per_codebook = stream_losses(text_logits, audio_logits, batch)
    weights = torch.ones_like(per_codebook)
    weights[0] = first_codebook_weight
    audio_loss = (per_codebook * weights).sum() / weights.sum()
    loss = text_loss + audio_loss
    metrics = {"text": text_loss.item(), "audio": per_codebook.mean().item(), "cb0": per_codebook[0].item()}
    if partner_logits is not None:
        partner_loss = F.cross_entropy(partner_logits.flatten(0, 2), batch.partner_target.flatten(), ignore_index=IGNORE)
        loss = loss + PARTNER_WEIGHT * partner_loss
        metrics["partner"] = partner_loss.item()
    if heard_logits is not None:
        heard_loss = F.cross_entropy(heard_logits.flatten(0, 1), batch.heard_text_target.flatten())
        loss = loss + HEARD_TEXT_WEIGHT * heard_loss
        metrics["heard"] = heard_loss.item()
    # heads with no target in this batch are not run, but join the graph with zero gradient, as
    # DistributedDataParallel requires of every parameter
    idle = [head for head, logits in (("partner_heads", partner_logits), ("heard_text_head", heard_logits))
            if logits is None]
    loss = loss + sum(0.0 * p.sum() for name, p in model.named_parameters() if any(head in name for head in idle))
    return loss, metrics


def checkpoint_settings(folder: str) -> dict[str, Any]:
    """The stage config fields that read an agent checkpoint folder as it is, for benches that feed a trained
    model batches: its LM config, its weights as the start (`init`, which brings its tokenizer), and its
    codec and listen encoder (its own, or those named in parts.json)."""
    lm_config = config_from_dict(SyncLMConfig, read_pretrained(folder)[0], MODEL_TYPE, folder)
    return {"lm": lm_config, "init": folder, **{part: str(part_folder(Path(folder), part)) for part in FROZEN_PARTS}}


def complete_agent_folder(folder: Path, tokenizer: TextTokenizer, codec_path: str, listen_path: str) -> None:
    """Put the tokenizer and copies of the frozen parts beside a checkpoint's LM weights."""
    tokenizer.save(folder)
    for part, source in (("codec", codec_path), ("listen", listen_path)):
        if not (folder / part).exists():
            shutil.copytree(source, folder / part, ignore=shutil.ignore_patterns("README.md"))


@dataclass(frozen=True)
class SpeechLMStageConfig:
    """What every speech LM stage is configured with; stages add their own fields."""

    lm: SyncLMConfig = SyncLMConfig()
    """The LM; its listen_dim, codebooks and text vocabulary are set from the frozen parts."""
    codec: str = "checkpoints/codec"
    listen: str = "checkpoints/listen"
    init: str = ""
    """A checkpoint folder whose LM weights start this run (a later stage starts from an earlier one's)."""
    ticks: int = 100
    """Length of an example, in ticks."""
    text_lead: int = 2
    first_codebook_weight: float = 1.0
    """Weight of codebook 0 in the audio loss, the others' being 1: codebook 0 carries most of what is
    said (Moshi weights its semantic codebook 100x)."""
    hide_spelling: float = 0.0
    """Share of the words given with phonemes whose text tokens the model does not see (`hide_spelling`)."""
    hide_announced: float = 0.0
    """Share of those words whose phonemes read beside the first token are hidden too (`hide_spelling`)."""
    corrupt_audio: float = 0.0
    """Share of positions whose input frame (the model's last) is replaced by a frame from elsewhere in the
    batch (`corrupt_audio`)."""
    vocab_size: int = 1024
    """Byte-level BPE: 256 bytes + <pad> + merges; ~1000 makes most words one token, so text keeps pace."""
    seed: int = 0


class SpeechLMStage:
    """The training loop's interface for the speech LM; subclasses implement `example(index)`."""

    name = "speech-lm"

    def __init__(self, config: SpeechLMStageConfig):
        self.config = config
        codec, listen = load_codec(config.codec), load_listen_encoder(config.listen)
        # a stage that starts from another's weights keeps its tokenizer: token ids must mean what they meant
        self.tokenizer = (TextTokenizer.load(config.init) if config.init
                          else TextTokenizer.train(tokenizer_corpus(config.seed, self.speaks_reading), config.vocab_size))
        self.lm_config = fitted_lm_config(config.lm, codec, listen, self.tokenizer)
        self.batches = BatchMaker(codec, listen, self.tokenizer, self.lm_config, config.ticks, config.text_lead,
                                  self.gives_words)

    speaks_reading = False
    """Whether the stage's agent reads dictionary sentences (its tokenizer then learns merges from them too)."""
    gives_words = True
    """Whether the words to say are given, as in `agent.say` (their phonemes are then announced with their
    first token), or the model writes its own text (BatchMaker `announce`)."""

    def example(self, index: int) -> Example:
        """The index-th training example: a pure function of (seed, index)."""
        raise NotImplementedError

    def build_model(self) -> nn.Module:
        model = SyncLM(self.lm_config)
        if self.config.init:
            weights = read_pretrained(self.config.init)[1]
            if model.phoneme_embed is not None:
                # phoneme input (or its second stream) added to a model trained without it: the new
                # embeddings start at zero (models/lm.py)
                new = model.phoneme_embed.weight.detach().clone()
                old = weights.get("phoneme_embed.weight", new[:0])
                weights["phoneme_embed.weight"] = torch.cat([old, new[len(old) :]])
            if model.heard_text_head is not None and "heard_text_head.weight" not in weights:
                # the heard-text head added to a model trained without it starts as initialised
                weights["heard_text_head.weight"] = model.heard_text_head.weight.detach().clone()
            load_weights(model, weights, self.config.init)
        return model

    def model_config(self) -> dict[str, Any]:
        return config_to_dict(self.lm_config, MODEL_TYPE)

    def prepare(self, workers: int, progress: bool = True, device: torch.device | None = None) -> None:
        """Off the CPU, the frozen listen encoder runs where the model does, in the loss."""
        if device is not None and device.type != "cpu":
            self.batches.listen.to(device)
            self.batches.listen_later = True

    def before_step(self, model: nn.Module, step: int, batch_size: int, rank: int, world_size: int) -> None:
        pass

    def batch(self, step: int, batch_size: int, rank: int, world_size: int) -> LMBatch:
        first = (step * world_size + rank) * batch_size
        batch = self.batches.encode([self.example(first + i) for i in range(batch_size)])
        hide_spelling(batch, self.config.hide_spelling, np.random.default_rng([self.config.seed, step, rank, 8]),
                      self.lm_config.phoneme_slots, self.config.hide_announced)
        corrupt_audio(batch, self.config.corrupt_audio, np.random.default_rng([self.config.seed, step, rank, 9]))
        return batch

    def loss(self, model: nn.Module, batch: LMBatch, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        return lm_loss(model, batch, self.config.first_codebook_weight, self.batches.listen)

    def on_checkpoint(self, model: nn.Module, folder: Path, step: int) -> None:
        complete_agent_folder(folder, self.tokenizer, self.config.codec, self.config.listen)
