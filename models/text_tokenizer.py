"""The text stream's tokenizer: byte-level BPE (Hugging Face `tokenizers`), trained on our own text.

Byte-level means every string has an encoding — unknown characters become
their UTF-8 bytes — so text given to `agent.say` is never refused. The
vocabulary is small (a few hundred tokens, trained on the dialogue domains),
which keeps the text head cheap; words outside it simply take more tokens.
Token 0 is `<pad>`: "no new text this tick". The tokenizer is stored beside
a model as `tokenizer.json`, the Hugging Face layout.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

PAD = 0
TOKENIZER_NAME = "tokenizer.json"


def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-level alphabet, which `tokenizers`' ByteLevel uses: each byte is shown as a printable
    character (printable ASCII and Latin-1 as themselves, the rest shifted past 255)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


_UNICODE_TO_BYTE = _byte_level_alphabet()


class TextTokenizer:
    def __init__(self, tokenizer: Tokenizer):
        if tokenizer.token_to_id("<pad>") != PAD:
            raise ValueError("the tokenizer's <pad> must be token 0")
        self.tokenizer = tokenizer

    @staticmethod
    def train(texts: Iterable[str], vocab_size: int = 256) -> TextTokenizer:
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=["<pad>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        )
        tok.train_from_iterator(texts, trainer)
        return TextTokenizer(tok)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids

    def encode_words(self, words: list[str]) -> list[list[int]]:
        """Tokens of each word as it sounds inside the sentence (with its leading space)."""
        return [self.tokenizer.encode(w).ids for w in words]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of the tokens, as they sound: a word's leading space included (strip it where a sentence starts)."""
        return self.tokenizer.decode([i for i in ids if i != PAD])

    def token_bytes(self, token: int) -> bytes:
        """The UTF-8 bytes a token stands for (a byte-level token may hold part of a character)."""
        return bytes(_UNICODE_TO_BYTE[c] for c in self.tokenizer.id_to_token(token)) if token != PAD else b""

    def save(self, folder: str | os.PathLike) -> None:
        from models.checkpoint import atomic_path

        with atomic_path(os.path.join(folder, TOKENIZER_NAME)) as tmp:
            self.tokenizer.save(str(tmp))

    @staticmethod
    def load(folder: str | os.PathLike) -> TextTokenizer:
        from models.checkpoint import CheckpointError

        path = os.path.join(folder, TOKENIZER_NAME)
        if not os.path.isfile(path):
            raise CheckpointError(f"{folder}: no {TOKENIZER_NAME}")
        try:
            return TextTokenizer(Tokenizer.from_file(path))
        except Exception as exc:  # tokenizers raises its own Exception type for bad files
            raise CheckpointError(f"{path}: not a tokenizer ({str(exc).splitlines()[0]})") from None
