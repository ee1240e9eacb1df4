"""Training the listen-while-speaking model (LSLM, Ma et al. 2024) on the synchronous speech LM.

Two stages share this module:

- **tts** (stage 1): the agent speaks a sentence given as its text stream.
  The user channel is silent. The model learns to turn text tokens into codec
  tokens with natural timing, and to emit silence when there is nothing to say.
- **listen** (stage 2): the same, while the user channel carries something
  at a random moment of the agent's speech: a command interruption ("stop",
  "wait", "hold on"), a voice interruption (any sentence in another voice),
  a backchannel ("mm-hmm", "yeah") or noise. After an interruption the
  target falls silent `stop_ticks` after the onset (LSLM stops within a few
  ticks); after a backchannel or noise it goes on unchanged.

Every example is a function of (seed, example index): one of a pool of
sentences (grammar sentences, sentences of dictionary words so that the
model learns how spelling sounds, and the dialogue domains' answers; see
READING_POOL), rendered once with espeak-ng word timings and encoded once by
the frozen codec (with silence around it), is placed as tokens on a canvas
of steady-silence tokens at a random tick, and cut to silence tokens at an
interruption (encoding every example's audio anew cost three times the
training step itself); a run with batch-making worker processes makes the
whole pool first and keeps it in one file (training/token_cache.py). The
user's channel is encoded by the frozen listen encoder. Token timing
follows the contract in duplex/lm_agent.py: the column at position t holds
codebook 0 of frame t and codebooks 1.. of frame t - d, where frame f is
the agent's audio of tick f + 1 + d; each word's text tokens start
`text_lead` ticks before its audio.

Each checkpoint folder is a complete agent (tokenizer and the frozen codec
and listen encoder copied in), so `duplex respond --model FOLDER` runs it.
"""

from __future__ import annotations

import bisect
import multiprocessing
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from audio.frames import SAMPLE_RATE, TICK_SAMPLES
from audio.speech_cache import cached_speak_words
from audio.tts import Speech, TimedPhoneme, Voice, speak_words, synthesize
from duplex.domains import AGENT_VOICES, BACKCHANNELS, DOMAINS, SPLITS, sample_exchange
from models.phonemes import tick_phonemes
from training import token_cache
from training.speech_lm_stage import (
    WITH_PHONEMES,
    Example,
    SpeechLMStage,
    SpeechLMStageConfig,
    checkpoint_settings,
)
from training.speech_source import coloured_noise, random_voice, rms
from training.speech_text import reading_sentence, training_sentence
from training.trainer import TrainConfig

COMMANDS = ("stop", "wait", "hold on", "stop please", "wait a second", "sorry, hold on")


@dataclass(frozen=True)
class LSMStageConfig(SpeechLMStageConfig):
    listening: bool = False
    """False: stage 1 (tts); True: stage 2 (listen while speaking; --init with a stage 1 checkpoint)."""
    interrupt_prob: float = 0.5
    backchannel_prob: float = 0.2
    noise_prob: float = 0.15
    stop_ticks: tuple[int, int] = (1, 3)
    snr_db: tuple[float, float] = (5.0, 20.0)
    timbre_prob: float = 0.5
    """Chance that the user's voice is a generated timbre (audio/timbres.py) rather than a shipped variant."""
    sentence_pool: int = 4000
    """Sentences the agent speaks, each rendered and encoded once per run and then placed, cut and
    mixed anew in every example: encoding is what makes a batch expensive."""
    reading_share: float = 0.0
    """Share of the pool that is dictionary words (training/speech_text.py `reading_sentence`): how the
    model learns to say words it never heard in a sentence. 0 in runs made before the field existed."""
    domain_share: float = 0.0
    """Share of the pool that is the dialogue domains' answers (train split): what the agent will say."""
    user_pool: int = 0
    """User events said once and reused, each in its own random voice (a quarter of them backchannels,
    the rest interruptions); 0: every example says its own, as runs before session 8 did. Saying one
    costs an espeak-ng process (~40 ms), which left a GPU run's batch workers behind its steps."""


@dataclass
class _Utterance:
    """One pooled sentence in the agent's voice: its tokens (one silent tick before the speech, a few
    after), its words with the tick each starts at (from the speech's start), its length and level."""

    codes: torch.Tensor
    words: list[tuple[str, float]]
    speech_ticks: float
    level: float


def domain_answer(seed: int, index: int) -> str:
    """The index-th answer of a seeded stream of the dialogue domains' train-split exchanges."""
    rng = np.random.default_rng([seed, index, 6])
    names = list(DOMAINS)
    return sample_exchange(rng, names[int(rng.integers(len(names)))], SPLITS[0]).answer_text


class LSMStage(SpeechLMStage):
    def __init__(self, config: LSMStageConfig):
        super().__init__(config)
        self.name = "lsm-listen" if config.listening else "lsm-tts"
        self._utterances: dict[int, _Utterance] = {}
        self._voicings: dict[int, list[str]] = {}
        self._user_clips: dict[int, np.ndarray] = {}

    def example(self, index: int) -> Example:
        """The index-th example: pure function of (seed, index)."""
        c = self.config
        rng = np.random.default_rng([c.seed, index, 7])
        sentence = int(rng.integers(c.sentence_pool))
        utterance = self._utterance(sentence)
        n_frames = self.batches.samples // TICK_SAMPLES
        start_tick = int(rng.integers(1, 8))
        codes = self._silence[:, None].repeat(1, n_frames)
        placed = utterance.codes[:, : n_frames - start_tick + 1]
        codes[:, start_tick - 1 : start_tick - 1 + placed.shape[1]] = placed  # its speech starts at its frame 1
        words = [(w, start_tick + t) for w, t in utterance.words]
        voicing = None
        if self.lm_config.phoneme_streams > 2:
            # the whole schedule, also past a cut: the agent gives it until it sees that the model stopped
            voicing = (start_tick, self._voicing(sentence, utterance))
        user = np.zeros(self.batches.samples, np.float32)
        kind = "tts"
        if c.listening:
            speech_end = min(start_tick + utterance.speech_ticks, c.ticks)  # a long answer runs past the window
            kind, cut_tick = self._user_event(rng, user, start_tick, speech_end, utterance.level)
            if cut_tick is not None:
                codes[:, cut_tick:] = self._silence[:, None]
                words = [(w, t) for w, t in words if t < cut_tick]
        return Example(None, user, words, kind=kind, agent_codes=codes, stop_tick=cut_tick if c.listening else None,
                       voicing=voicing)

    @property
    def _silence(self) -> torch.Tensor:
        """The codec's tokens for steady silence, one frame (Q,)."""
        return self.batches.silence_frame

    def _utterance(self, sentence: int) -> _Utterance:
        """Sentence `sentence` of the pool, spoken by the agent and encoded once (the expensive part)."""
        if sentence not in self._utterances:
            # kept on disk whatever the voice: libespeak-ng renders a sentence slightly differently after other
            # sentences, so a resumed run must read the pool the first process rendered, not render it anew
            speech = cached_speak_words(self._pool_text(sentence), AGENT_VOICES[0], keep=True)
            codes = token_cache.encode_together(self.batches.codec, self._padded(speech))[0]
            self._utterances[sentence] = self._pooled(speech, codes)
        return self._utterances[sentence]

    def _voicing(self, sentence: int, utterance: _Utterance) -> list[str]:
        """The phonemes sounding in each tick of pooled sentence `sentence` (models/phonemes.py). The pool
        keeps no phoneme timing, and libespeak-ng times a sentence a little differently after others
        (tens of ms per word), so a new rendering's phonemes are moved word by word onto the pool's words."""
        if sentence not in self._voicings:
            fresh = speak_words(self._pool_text(sentence), AGENT_VOICES[0])
            self._voicings[sentence] = tick_phonemes(_moved_onto(fresh, [t * TICK_SAMPLES / SAMPLE_RATE
                                                                        for _, t in utterance.words]))
        return self._voicings[sentence]

    def _padded(self, speech: Speech) -> list[np.ndarray]:
        """The speech as pooled: one silent tick before, enough after for the acoustic delay."""
        after = (self.lm_config.acoustic_delay + 2) * TICK_SAMPLES
        return [np.concatenate([np.zeros(TICK_SAMPLES, np.float32), speech.audio, np.zeros(after, np.float32)])]

    @staticmethod
    def _pooled(speech: Speech, codes: torch.Tensor) -> _Utterance:
        return _Utterance(codes, [(w.text, w.start * SAMPLE_RATE / TICK_SAMPLES) for w in speech.words],
                          len(speech.audio) / TICK_SAMPLES, rms(speech.audio))

    def prepare(self, workers: int, progress: bool = True, device: torch.device | None = None) -> None:
        """Read the whole encoded pool from its file if an earlier run kept it; else, when worker processes
        will make the batches, make it all now and keep it (training/token_cache.py), so that they share
        one copy (a GPU machine's cores and codec make a pool of 100,000 sentences in minutes)."""
        super().prepare(workers, progress, device)
        missing = [j for j in range(self.config.user_pool) if j not in self._user_clips]
        if missing and workers > 0:  # the batch workers share them rather than each say its own
            with multiprocessing.get_context("fork").Pool(workers, token_cache.one_torch_thread) as pool:
                said = pool.imap(_say, [self._user_clip_line(j) for j in missing], chunksize=16)
                self._user_clips.update(zip(missing, tqdm(said, total=len(missing), desc="saying the user pool",
                                                          disable=not progress)))
        self._utterances = token_cache.keep(self.pool_file(), workers, self._utterances,
                                            lambda have: self._make_pool(have, workers, progress, device),
                                            read_pool, write_pool)

    def _make_pool(self, have: dict[int, _Utterance], workers: int, progress: bool,
                   device: torch.device | None) -> Iterator[tuple[int, _Utterance]]:
        """The pooled sentences `have` lacks: `workers` processes render, the codec encodes on `device`."""
        texts = {i: self._pool_text(i) for i in range(self.config.sentence_pool) if i not in have}
        missing = sorted(texts, key=lambda i: len(texts[i]))  # batches of alike length: little padding
        made = token_cache.encode_all(self.batches.codec, device or torch.device("cpu"), workers, _render,
                                      [texts[i] for i in missing], self._padded, "making the sentence pool", progress)
        for sentence, (speech, codes) in zip(missing, made):
            yield sentence, self._pooled(speech, codes[0])

    def pool_file(self) -> Path:
        """Where the encoded pool is kept: named by all that decides it (codec weights, texts, voice)."""
        c = self.config
        return token_cache.cache_file("lsm-pool", c.codec, c.seed, c.sentence_pool, c.reading_share, c.domain_share,
                          asdict(AGENT_VOICES[0]), self.lm_config.acoustic_delay)

    @property
    def speaks_reading(self) -> bool:
        return self.config.reading_share > 0

    def _pool_text(self, sentence: int) -> str:
        """Text of pooled sentence `sentence`: dictionary words, a domain answer or a grammar sentence,
        in the configured shares (a pure function of seed and index)."""
        c = self.config
        draw = np.random.default_rng([c.seed, sentence, 5]).random()
        if draw < c.reading_share:
            return reading_sentence(c.seed, sentence)
        if draw < c.reading_share + c.domain_share:
            return domain_answer(c.seed, sentence)
        return training_sentence(c.seed, sentence)

    def _user_event(self, rng, user, speech_start, speech_end, level: float) -> tuple[str, int | None]:
        """Write a user event into `user`; returns (kind, tick where the agent's speech is cut, or None)."""
        c = self.config
        if speech_end - speech_start < 6:
            return "clean", None
        onset = int(rng.integers(int(speech_start) + 3, int(speech_end) - 1))
        draw = rng.random()
        if draw < c.interrupt_prob:
            self._place(user, self._user_speech("interruption", rng), onset, level, rng)
            return "interruption", onset + int(rng.integers(c.stop_ticks[0], c.stop_ticks[1] + 1))
        if draw < c.interrupt_prob + c.backchannel_prob:
            self._place(user, self._user_speech("backchannel", rng), onset, level, rng)
            return "backchannel", None
        if draw < c.interrupt_prob + c.backchannel_prob + c.noise_prob:
            noise = coloured_noise(rng, len(user))
            user += noise * level / 10 ** (rng.uniform(*c.snr_db) / 20)
            return "noise", None
        return "clean", None

    def _user_speech(self, kind: str, rng: np.random.Generator) -> np.ndarray:
        """What the user says in an event of `kind` ("interruption" or "backchannel"): one of the pooled
        clips when the stage has a user pool, else said anew (an espeak-ng process, ~40 ms)."""
        c = self.config
        if c.user_pool:
            clips = self._user_clip_indices[kind]
            return self._user_clip(clips[int(rng.integers(len(clips)))])
        return synthesize(*_user_line(kind, rng, c.seed, c.timbre_prob))

    @cached_property
    def _user_clip_indices(self) -> dict[str, list[int]]:
        return {kind: [j for j in range(self.config.user_pool) if _clip_kind(j) == kind]
                for kind in ("interruption", "backchannel")}

    def _user_clip(self, clip: int) -> np.ndarray:
        """Clip `clip` of the user pool, said once (the espeak-ng program is deterministic, so a clip
        said here equals one said by `prepare`'s processes)."""
        if clip not in self._user_clips:
            self._user_clips[clip] = synthesize(*self._user_clip_line(clip))
        return self._user_clips[clip]

    def _user_clip_line(self, clip: int) -> tuple[str, Voice]:
        return _user_line(_clip_kind(clip), np.random.default_rng([self.config.seed, clip, 9]), self.config.seed,
                          self.config.timbre_prob)

    def _place(self, user: np.ndarray, audio: np.ndarray, tick: int, level: float, rng) -> None:
        loud = np.flatnonzero(np.abs(audio) > 0.01)
        audio = audio[loud[0] :] if len(loud) else audio
        start = tick * TICK_SAMPLES
        part = audio[: len(user) - start]
        gain = level * 10 ** (rng.uniform(-6, 6) / 20) / rms(part)
        user[start : start + len(part)] += part * gain


def _user_line(kind: str, rng: np.random.Generator, seed: int, timbre_prob: float) -> tuple[str, Voice]:
    """Text and voice of a user event: a command or any sentence to interrupt, or a backchannel."""
    if kind == "interruption":
        text = COMMANDS[int(rng.integers(len(COMMANDS)))] if rng.random() < 0.5 else training_sentence(
            seed + 1, int(rng.integers(1 << 30)))
    else:
        text = BACKCHANNELS[int(rng.integers(len(BACKCHANNELS)))]
    return text, random_voice(rng, False, timbre_prob)


def _clip_kind(clip: int) -> str:
    """The user pool: one clip in four a backchannel, the others interruptions."""
    return "backchannel" if clip % 4 == 0 else "interruption"


def _say(line: tuple[str, Voice]) -> np.ndarray:
    """A user-pool process's job: one clip."""
    return synthesize(*line)


def write_pool(path: Path, utterances: dict[int, _Utterance]) -> None:
    """The pool's tokens, lengths and levels, its words (with start ticks) as metadata."""
    order = sorted(utterances)
    items = [utterances[i] for i in order]
    token_cache.write_token_file(path, [u.codes for u in items],
                     {"sentences": torch.tensor(order),
                      "speech_ticks": torch.tensor([u.speech_ticks for u in items], dtype=torch.float64),
                      "level": torch.tensor([u.level for u in items], dtype=torch.float64)},
                     [u.words for u in items])


def read_pool(path: Path) -> dict[int, _Utterance]:
    codes, t, words = token_cache.read_token_file(path)
    return {int(sentence): _Utterance(codes[k], [tuple(w) for w in words[k]], float(t["speech_ticks"][k]),
                                      float(t["level"][k]))
            for k, sentence in enumerate(t["sentences"].tolist())}


def _render(text: str) -> Speech:
    """A pool-making process's job: one sentence in the agent's voice (the pool file keeps it, not the
    speech cache)."""
    return speak_words(text, AGENT_VOICES[0])


def _moved_onto(speech: Speech, word_starts: list[float]) -> list[TimedPhoneme]:
    """The speech's phonemes, each moved by as much as its word's start differs in `word_starts` (seconds;
    another rendering of the same words); unmoved if the two renderings' words differ in number."""
    if len(word_starts) != len(speech.words):
        return list(speech.phonemes)
    starts = [w.start for w in speech.words]
    moved = []
    for p in speech.phonemes:
        k = max(0, bisect.bisect_right(starts, p.start + 1e-6) - 1)
        shift = word_starts[k] - starts[k]
        moved.append(TimedPhoneme(p.name, max(0.0, p.start + shift), max(0.0, p.end + shift)))
    return moved


READING_POOL = {"sentence_pool": 8000, "reading_share": 0.4, "domain_share": 0.2}
"""The pool of session 6 on: a grammar of 210 words taught the first stage-1 run to say those words and
babble on held-out ones, so two fifths of the pool are dictionary words and one fifth the domains' answers."""

READ_WHAT_IS_SAID = {"hide_spelling": 0.3, "hide_announced": 0.5, "corrupt_audio": 0.25}
"""What makes the model read what it is to say rather than guess it: 30% of the words without their text
tokens (session 7), half of those also without the phonemes read beside them, known only by the streams
of what is voiced, and a quarter of the frames it said last replaced by others (session 9;
training/speech_lm_stage.py `hide_spelling`, `corrupt_audio`)."""

LISTEN = LSMStageConfig(lm=WITH_PHONEMES, listening=True, **READ_WHAT_IS_SAID, **READING_POOL)
LISTEN_TRAIN = TrainConfig(steps=4000, batch_size=8, lr=3e-4, lr_warmup_steps=100, checkpoint_minutes=5)

PRESETS: dict[str, tuple[LSMStageConfig, TrainConfig]] = {
    "default": (LSMStageConfig(lm=WITH_PHONEMES, **READ_WHAT_IS_SAID, **READING_POOL),
                TrainConfig(steps=6000, batch_size=8, lr=6e-4, lr_warmup_steps=200, checkpoint_minutes=5)),
    "gpu": (LSMStageConfig(lm=WITH_PHONEMES, **READ_WHAT_IS_SAID, **{**READING_POOL, "sentence_pool": 100_000}),
            TrainConfig(steps=6000, batch_size=128, lr=1e-3, lr_warmup_steps=200, checkpoint_minutes=3,
                        data_workers=14)),
    "listen": (LISTEN, LISTEN_TRAIN),
    "gpu-listen": (replace(LISTEN, sentence_pool=100_000, user_pool=3000),
                   TrainConfig(steps=5000, batch_size=128, lr=5e-4, lr_warmup_steps=100, checkpoint_minutes=3,
                               data_workers=14)),
    "listen-cb0": (replace(LISTEN, first_codebook_weight=4.0), LISTEN_TRAIN),
    "wide-listen": (replace(LISTEN, sentence_pool=30_000, user_pool=3000),
                    TrainConfig(steps=6000, batch_size=8, lr=6e-4, lr_warmup_steps=100, checkpoint_minutes=5,
                                data_workers=2)),
}
"""Named settings:

- `default`: stage 1 (tts) from scratch;
- `gpu`: stage 1 for a GPU machine with 16 cores, in one ten-minute sitting on an H200 (about 3 minutes
  to make the pool, 6 for the steps): batch 128 over a pool of 100,000 sentences, because 7000 such
  steps over the default pool of 8000 learned it by heart (docs/training.md, session 8);
- `listen`: stage 2, which needs --init pointing at a stage 1 checkpoint folder;
- `gpu-listen`: stage 2 for the GPU machine (the `gpu` preset's pool, user events from a pool of 3000
  clips said once);
- `listen-cb0`: stage 2 with codebook 0 weighted 4x in the audio loss (session 7's experiment,
  docs/training.md);
- `wide-listen`: stage 2 on this CPU over a pool of 30,000 sentences, which 6000 steps of 8 see about
  1.6 times each (the default pool's 8000 were learned by heart: session 9), rendered by two processes
  and encoded by the main one before the first step (give it `--threads 2`: the codec is the slow part;
  resumable) and kept in one file."""
CONFIG_CLASS = LSMStageConfig


def build_stage(config: LSMStageConfig) -> LSMStage:
    return LSMStage(config)


def stage_for_checkpoint(folder: str, preset: str = "default", **changes) -> LSMStage:
    """The stage of `preset` as the agent checkpoint `folder` reads it (its LM config, tokenizer, codec and
    listen encoder), with `changes` to the stage config: for benches that feed a trained model batches.
    Its batches are what the model reads at run time: without the training's hidden words and replaced
    frames, unless `changes` asks for them."""
    as_run = {"hide_spelling": 0.0, "hide_announced": 0.0, "corrupt_audio": 0.0}
    return LSMStage(replace(PRESETS[preset][0], **checkpoint_settings(folder), **{**as_run, **changes}))
