"""A learned agent's checkpoint folder, in the Hugging Face layout:

    FOLDER/config.json          the speech LM's config (model_type "duplex-sync-lm")
    FOLDER/model.safetensors    its weights
    FOLDER/tokenizer.json       its text stream's tokenizer
    FOLDER/codec/               the codec it speaks (config.json + model.safetensors)
    FOLDER/listen/              the listen encoder it hears through

Self-contained, so that `--model FOLDER` is all a user passes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from models.checkpoint import CheckpointError, load_model, save_model
from models.codec import Codec, load_codec, save_codec
from models.listen_encoder import (
    ListenEncoder,
    load_listen_encoder,
    save_listen_encoder,
)
from models.lm import MODEL_TYPE, SyncLM, SyncLMConfig
from models.text_tokenizer import TOKENIZER_NAME, TextTokenizer


COMPANIONS = (TOKENIZER_NAME, "codec", "listen")
"""What an agent folder holds besides the speech LM's config and weights."""


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
    models = AgentModels(lm, load_codec(folder / "codec"), load_listen_encoder(folder / "listen"),
                         TextTokenizer.load(folder))
    models.check(str(folder))
    return models
