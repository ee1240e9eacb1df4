"""A learned agent's checkpoint folder, in the Hugging Face layout:

    FOLDER/config.json          the speech LM's config (model_type "duplex-sync-lm")
    FOLDER/model.safetensors    its weights
    FOLDER/tokenizer.json       its text stream's tokenizer
    FOLDER/codec/               the codec it speaks (config.json + model.safetensors)
    FOLDER/listen/              the listen encoder it hears through

Self-contained, so that `--model FOLDER` is all a user passes. A shipped folder may instead name its
codec and listen encoder in `parts.json` ({"codec": {"path": "../codec", "sha256": ...}}): paths relative
to the folder, each with the SHA-256 of the weights the LM was trained against, so that the repository
keeps one copy of the frozen parts (`duplex release` writes it) and a part replaced since is refused
rather than spoken through.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from models.checkpoint import (
    WEIGHTS_NAME,
    CheckpointError,
    load_model,
    read_json,
    save_model,
    weights_digest,
)
from models.codec import Codec, load_codec, save_codec
from models.listen_encoder import (
    ListenEncoder,
    load_listen_encoder,
    save_listen_encoder,
)
from models.lm import MODEL_TYPE, SyncLM, SyncLMConfig
from models.text_tokenizer import TOKENIZER_NAME, TextTokenizer


FROZEN_PARTS = ("codec", "listen")
"""The trained models an agent speaks and hears through, kept beside its LM (or named in parts.json)."""
COMPANIONS = (TOKENIZER_NAME, *FROZEN_PARTS)
"""What an agent folder holds besides the speech LM's config and weights."""
PARTS_NAME = "parts.json"


def part_folder(folder: Path, part: str) -> Path:
    """Where agent folder `folder` keeps frozen part `part`: its own subfolder, or the folder parts.json
    names, which must hold the very weights the LM was trained against."""
    if (folder / part).is_dir() or not (folder / PARTS_NAME).is_file():
        return folder / part
    entry = read_json(folder / PARTS_NAME).get(part)
    if not isinstance(entry, dict) or not {"path", "sha256"} <= entry.keys():
        raise CheckpointError(f"{folder}: {PARTS_NAME} does not name its {part} (path and sha256)")
    where = (folder / entry["path"]).resolve()
    if not (where / WEIGHTS_NAME).is_file():
        raise CheckpointError(f"{folder}: its {part} should be at {where}, which holds no {WEIGHTS_NAME}")
    if weights_digest(where) != entry["sha256"]:
        raise CheckpointError(f"{folder}: the {part} at {where} is not the one this agent was trained with "
                              f"(its weights changed since release)")
    return where


@dataclass
class AgentModels:
    lm: SyncLM
    codec: Codec
    listen: ListenEncoder
    tokenizer: TextTokenizer

    def check(self, where: str) -> None:
        """The parts must fit each other; a mismatch is a checkpoint error, not a crash later."""
        c = self.lm.config
        lc = self.listen.config
        if c.listen_dim != lc.d_model * lc.frames_per_tick:
            raise CheckpointError(f"{where}: the LM expects {c.listen_dim} listen features, the encoder gives "
                                  f"{lc.d_model * lc.frames_per_tick}")
        if (c.n_codebooks, c.codebook_size) != (self.codec.tokens_per_tick, self.codec.config.codebook_size):
            raise CheckpointError(f"{where}: the LM speaks {c.n_codebooks}x{c.codebook_size} tokens per tick, the "
                                  f"codec {self.codec.tokens_per_tick}x{self.codec.config.codebook_size}")
        if self.codec.hop * self.codec.frames_per_tick * 1000 != c.tick_ms * self.codec.config.sample_rate:
            raise CheckpointError(f"{where}: the codec's frames do not make one {c.tick_ms} ms tick")
        if c.text_vocab_size != self.tokenizer.vocab_size:
            raise CheckpointError(f"{where}: the LM has {c.text_vocab_size} text tokens, the tokenizer "
                                  f"{self.tokenizer.vocab_size}")


def save_agent(models: AgentModels, folder: str | os.PathLike) -> None:
    folder = Path(folder)
    save_model(models.lm, folder, MODEL_TYPE)
    models.tokenizer.save(folder)
    save_codec(models.codec, folder / "codec")
    save_listen_encoder(models.listen, folder / "listen")


def load_agent_models(folder: str | os.PathLike) -> AgentModels:
    folder = Path(folder)
    lm = load_model(folder, SyncLM, SyncLMConfig, MODEL_TYPE)
    models = AgentModels(lm, load_codec(part_folder(folder, "codec")),
                         load_listen_encoder(part_folder(folder, "listen")), TextTokenizer.load(folder))
    models.check(str(folder))
    return models
