"""Training the full-duplex dialogue model on synthetic two-channel dialogues.

The model of the listen-while-speaking stages learns here to decide by
itself when to speak, what to say, when to backchannel and when to stop, as
SyncLLM and MiniCPM-duplex do: one slice per tick through one LM, the agent
channel as the target (codec tokens plus its text stream), the user channel
heard through the listen encoder with middle fusion.

Examples are windows of `ticks` ticks cut at random from the dialogues of a
dataset folder made by `duplex data generate` (moshi-finetune layout). Two
augmentations serve the runtime's other uses:

- **role**: with probability `user_role_prob` the channels are swapped and
  the role input says "user": the model then speaks the user's side (asks,
  narrates, barges in), so one model can play either side of an
  agent-vs-agent simulation;
- **latency**: the heard channel is delayed by 0..`max_listen_delay` ticks,
  so the model keeps its timing when the partner's audio arrives late over a
  network (SyncLLM trains the same way for its latency tolerance).

The spoken side's phonemes come from the dataset (its `phonemes`, format 2),
in the second and third phoneme streams as the listen-while-speaking stages
give them (models/phonemes.py), so the model says words by their sounds as
it learned to there; the first stream (phonemes beside a word's first text
token) stays empty, since the agent knows a word it writes itself only once
its last token is out.

The model's partner heads learn to predict the heard stream's next slice
(its codec frame one tick ahead), the prediction that stands in for a late
slice at run time (docs/speech_lm.md); its heard-text head learns to write
the heard side's words once they have been heard (models/lm.py
`heard_text_head`), an auxiliary target that teaches it what is said, which
its answers depend on, where its own text only teaches that something is.
"""

from __future__ import annotations

from collections.abc import Iterator
import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from audio.frames import TICK_SAMPLES
from audio.tts import TimedPhoneme
from models.phonemes import tick_phonemes
from training import token_cache
from training.dataset import DataError, read_dialogue, read_manifest
from training.speech_lm_stage import (
    IGNORE,
    WITH_PHONEMES,
    Example,
    SpeechLMStage,
    SpeechLMStageConfig,
)
from training.trainer import TrainConfig

AGENT, USER = 0, 1
SPEAKERS = {AGENT: "SPEAKER_MAIN", USER: "SPEAKER_OTHER"}


@dataclass(frozen=True)
class DialogueStageConfig(SpeechLMStageConfig):
    ticks: int = 150
    data: str = "~/.cache/duplex/data/default"
    """A dataset folder made by `duplex data generate`."""
    split: str = "train"
    """Its split whose dialogues are cut into windows: train to learn, test to measure (bench/)."""
    user_role_prob: float = 0.25
    max_listen_delay: int = 3


class DialogueStage(SpeechLMStage):
    name = "dialogue"
    gives_words = False  # the model writes its own answers

    def __init__(self, config: DialogueStageConfig):
        data = Path(config.data).expanduser()
        manifest = data / f"{config.split}.jsonl"
        if not manifest.is_file():
            raise DataError(f"{data}: no {manifest.name}; make the data first with `duplex data generate --out {data}`")
        self.dialogues = [Path(entry["path"]) for entry in read_manifest(manifest)]
        if not self.dialogues:
            raise DataError(f"{manifest}: lists no dialogues")
        super().__init__(config)
        self._codes: dict[tuple[Path, int], torch.Tensor] = {}
        self._settled: dict[tuple[Path, int], torch.Tensor] = {}
        """Each channel's `settled_silence`, computed once."""

    def example(self, index: int) -> Example:
        """The index-th example: a window of a dialogue, possibly role-swapped and with late hearing."""
        c = self.config
        rng = np.random.default_rng([c.seed, index, 11])
        path = self.dialogues[int(rng.integers(len(self.dialogues)))]
        audio, alignments, sounds = _dialogue(str(path))
        n = self.batches.samples
        start_tick = int(rng.integers(0, max(1, len(audio) // TICK_SAMPLES - c.ticks)))
        window = np.zeros((n, 2), np.float32)
        part = audio[start_tick * TICK_SAMPLES : start_tick * TICK_SAMPLES + n]
        window[: len(part)] = part
        role = USER if rng.random() < c.user_role_prob else AGENT
        speaker, heard = (USER, AGENT) if role == USER else (AGENT, USER)
        delay = int(rng.integers(0, c.max_listen_delay + 1))
        listen = np.zeros(n, np.float32)
        listen[delay * TICK_SAMPLES :] = window[: n - delay * TICK_SAMPLES, heard]
        tick_s = TICK_SAMPLES / 16000
        words = [
            (word, t0 / tick_s - start_tick)
            for word, (t0, _), who in alignments
            if who == SPEAKERS[speaker] and t0 / tick_s >= start_tick - 1
        ]
        # the heard words, each from the position after its last tick reached the model (`delay` ticks late)
        heard_words = [
            (word, int(t1 / tick_s - start_tick + delay) + 1)
            for word, (t0, t1), who in alignments
            if who == SPEAKERS[heard] and t0 / tick_s - start_tick + delay >= -1
        ]
        codes = self._channel_codes(path, audio, speaker)[:, start_tick : start_tick + n // TICK_SAMPLES]
        if codes.shape[1] < n // TICK_SAMPLES:  # the window runs past the dialogue's end: the codec's silence
            silence = self.batches.silence_frame[:, None].repeat(1, n // TICK_SAMPLES - codes.shape[1])
            codes = torch.cat([codes, silence.to(codes.dtype)], dim=1)
        # the schedule of the whole dialogue, read from the window's start (speech_lm_stage `phoneme_input`)
        voicing = (-start_tick, sounds[speaker]) if self.lm_config.phoneme_streams > 2 else None
        return Example(window[:, speaker].copy(), listen, words, role=role, kind=f"role{role}-delay{delay}",
                       agent_codes=codes, partner_target=self._partner_target(path, audio, heard, start_tick, delay),
                       voicing=voicing, heard_words=heard_words)

    def prepare(self, workers: int, progress: bool = True, device: torch.device | None = None) -> None:
        """Read every train dialogue's channel tokens from their file if an earlier run kept it; else, when
        worker processes will make the batches, encode them all now and keep them (training/token_cache.py):
        each batch worker would otherwise encode the dialogues it meets anew, seconds per dialogue."""
        super().prepare(workers, progress, device)
        self._codes = token_cache.keep(self.tokens_file(), workers, self._codes,
                                       lambda have: self._encode_channels(have, workers, progress, device),
                                       read_channels, write_channels)

    def _encode_channels(self, have: dict[tuple[Path, int], torch.Tensor], workers: int, progress: bool,
                         device: torch.device | None) -> Iterator[tuple[tuple[Path, int], torch.Tensor]]:
        """The channel tokens `have` lacks: `workers` processes read, the codec encodes on `device`."""
        missing = [d for d in self.dialogues if (d, AGENT) not in have]
        made = token_cache.encode_all(self.batches.codec, device or torch.device("cpu"), workers, _dialogue_audio,
                                      [str(d) for d in missing], _channels, "encoding the dialogues", progress)
        for dialogue, (_, channels) in zip(missing, made):
            for channel, codes in enumerate(channels):
                yield (dialogue, channel), codes.to(torch.int16)

    def tokens_file(self) -> Path:
        """Where the dialogues' tokens are kept: named by the codec's weights and the split's manifest."""
        data = Path(self.config.data).expanduser().resolve()
        manifest = (data / f"{self.config.split}.jsonl").read_text()
        return token_cache.cache_file("dialogue-channels", self.config.codec, str(data), manifest)

    def _partner_target(self, path: Path, audio: np.ndarray, heard: int, start_tick: int, delay: int) -> torch.Tensor:
        """The heard stream's codec frame of the tick after each position: the heard channel's tokens
        `delay` ticks late, IGNORE where the stream holds the delay's silence or runs past the dialogue."""
        codes = self._channel_codes(path, audio, heard)
        after = np.arange(self.config.ticks) + 1  # the heard stream's tick after each position
        source = start_tick + after - delay  # that tick in the dialogue's own time
        known = (after >= delay) & (source < codes.shape[1])
        target = torch.full((codes.shape[0], self.config.ticks), IGNORE, dtype=torch.long)
        target[:, torch.from_numpy(known)] = codes[:, torch.from_numpy(source[known])]
        return target

    def _channel_codes(self, path: Path, audio: np.ndarray, channel: int) -> torch.Tensor:
        """Codec tokens of a whole dialogue channel, encoded once per run (the codec is causal, so a
        window's tokens cut from them are the tokens in context; 16-bit, ~15 kB a minute), with the
        codec's silence frame wherever the channel has been silent for a while (`settled_silence`)."""
        key = (path, channel)
        if key not in self._codes:
            wav = torch.from_numpy(np.ascontiguousarray(audio[:, channel]))[None]
            self._codes[key] = self.batches.codec.encode_ticks(wav)[0].to(torch.int16)
        if key not in self._settled:
            self._settled[key] = torch.from_numpy(settled_silence(audio[:, channel]))
        codes, quiet = self._codes[key].long(), self._settled[key]
        n = min(codes.shape[1], len(quiet))
        codes[:, :n] = torch.where(quiet[:n], self.batches.silence_frame[:, None], codes[:, :n])
        return codes


SETTLE_TICKS = 3
"""Ticks of silence after which the channel's tokens are the codec's silence frame."""


def settled_silence(channel: np.ndarray) -> np.ndarray:
    """(ticks,) bool: the ticks that, with the SETTLE_TICKS before them, are digital silence.

    Why: the codec's encoder carries state, and after speech it does not come back to the tokens of
    silence from a cold start for many seconds (0.5% of the default dataset's silent agent ticks had
    them: bench/bench_dialogue_loss.py), while the speech LM learned silence as that frame (the lsm stages
    place their utterances on it, SETTLE_TICKS encoded ticks after each) and the agent says it so."""
    silent = silent_ticks(channel)
    settled = silent.copy()
    for k in range(1, SETTLE_TICKS + 1):
        settled[k:] &= silent[:-k]
    settled[:SETTLE_TICKS] &= silent[:SETTLE_TICKS].all()
    return settled


def silent_ticks(channel: np.ndarray) -> np.ndarray:
    """(ticks,) bool: the ticks whose samples all stay below SILENT_LEVEL."""
    ticks = len(channel) // TICK_SAMPLES
    return np.abs(channel[: ticks * TICK_SAMPLES]).reshape(ticks, TICK_SAMPLES).max(1) < SILENT_LEVEL


SILENT_LEVEL = 1e-4
"""A tick whose samples all stay below this is digital silence (the agent's channel between its turns)."""


def write_channels(path: Path, codes: dict[tuple[Path, int], torch.Tensor]) -> None:
    """Every dialogue channel's tokens, keyed by (dialogue, channel) in the metadata."""
    keys = sorted(codes)
    token_cache.write_token_file(path, [codes[k] for k in keys], {}, [[str(d), channel] for d, channel in keys])


def read_channels(path: Path) -> dict[tuple[Path, int], torch.Tensor]:
    codes, _, keys = token_cache.read_token_file(path)
    return {(Path(d), channel): c.to(torch.int16) for (d, channel), c in zip(keys, codes)}


def _dialogue_audio(path: str) -> np.ndarray:
    """A token-making process's job: a dialogue's stereo audio."""
    return read_dialogue(Path(path).with_suffix(".json"))[0]


def _channels(audio: np.ndarray) -> list[np.ndarray]:
    return [np.ascontiguousarray(audio[:, channel]) for channel in range(audio.shape[1])]


@lru_cache(maxsize=64)
def _dialogue(json_path: str) -> tuple[np.ndarray, tuple, dict[int, list[str]]]:
    """A dialogue's stereo audio, its alignments, and each channel's phonemes sounding in each tick from the
    dialogue's start (models/phonemes.py `tick_phonemes`); cached: windows are cut from the same files often."""
    audio, meta = read_dialogue(Path(json_path).with_suffix(".json"))
    if "phonemes" not in meta:
        raise DataError(f"{json_path}: a dataset without phoneme timings (format 1); make it anew with "
                        "`duplex data generate` into an empty folder")
    sounds = {channel: tick_phonemes([TimedPhoneme(name, start, end) for name, (start, end), who in meta["phonemes"]
                                      if who == SPEAKERS[channel]])
              for channel in SPEAKERS}
    return audio, tuple((w, tuple(span), who) for w, span, who in meta["alignments"]), sounds


WITH_HEARD_TEXT = dataclasses.replace(WITH_PHONEMES, heard_text_head=True)
"""The recipe's LM with the heard-text head, which the dialogue stage adds (models/lm.py)."""

PRESETS: dict[str, tuple[DialogueStageConfig, TrainConfig]] = {
    "default": (
        DialogueStageConfig(lm=WITH_HEARD_TEXT, corrupt_audio=0.25),
        TrainConfig(steps=8000, batch_size=8, lr=3e-4, lr_warmup_steps=200, checkpoint_minutes=5),
    ),
    "gpu": (
        DialogueStageConfig(lm=WITH_HEARD_TEXT, corrupt_audio=0.25),
        TrainConfig(steps=5000, batch_size=64, lr=5e-4, lr_warmup_steps=200, checkpoint_minutes=3, data_workers=14),
    ),
}
"""`default` needs --init with the listen-while-speaking checkpoint and a dataset (see docs/training.md);
`gpu` is the same on a GPU machine with 16 cores (the channels encoded ahead there, the listen encoder in
the loss; not yet run). Both replace a quarter of the input frames, against the exposure bias that the
listen-while-speaking stage showed (training/speech_lm_stage.py `corrupt_audio`)."""
CONFIG_CLASS = DialogueStageConfig


def build_stage(config: DialogueStageConfig) -> DialogueStage:
    return DialogueStage(config)
