"""The synchronous speech LM: a Llama-style decoder that speaks codec tokens tick by tick
while listening through middle fusion.

One position = one tick (80 ms). At tick t the model reads what it said at
tick t-1 (one token per codec codebook, plus one text token of its inner
monologue) and what it heard during tick t (listen features from the
streaming listen encoder), and predicts its text token and codec tokens for
tick t+1:

    audio tokens(t-1) ─┐  sum of per-codebook embeddings
    text token(t-1)  ──┤  (+ that word's phonemes, when it starts one: models/phonemes.py)
                       ├─► + role embedding ─► [block 0 ... block L-1] ─► RMSNorm ─► text head
                       │         ▲ listen(t) projected and added at the input of every block  └► codebook heads
                       ┘            (LSLM's middle fusion)

Design choices, measured in DESIGN.md's notes on this machine: a
hand-written Llama (RMSNorm, RoPE, SwiGLU, grouped-query attention) whose
parameter names match Hugging Face's `LlamaForCausalLM` backbone, so a Llama
checkpoint in a local folder can initialise it; parallel codebook heads with
Moshi's acoustic delay (codebook 0 for the current frame, codebooks 1.. for
the previous frame) rather than a depth transformer; and a sliding-window KV
cache held in a ring buffer, so a session of hours runs in constant memory.

Training runs whole sequences (`forward`); inference runs `step` once per
tick for a batch of sessions. Both compute the same function: with the same
inputs, streaming logits equal teacher-forced logits (tested), including
beyond the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from models.phonemes import ALPHABET_SIZE

MODEL_TYPE = "duplex-sync-lm"


@dataclass(frozen=True)
class SyncLMConfig:
    # backbone, with Hugging Face LlamaConfig's names
    hidden_size: int = 256
    num_hidden_layers: int = 6
    num_attention_heads: int = 8
    num_key_value_heads: int = 2
    intermediate_size: int = 704
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10_000.0
    # the streams
    n_codebooks: int = 8
    codebook_size: int = 1024
    text_vocab_size: int = 256
    listen_dim: int = 256
    n_roles: int = 2
    sliding_window: int = 375
    """Ticks of context the model attends to (375 x 80 ms = 30 s)."""
    acoustic_delay: int = 1
    """Codebooks 1.. are predicted this many ticks after codebook 0 (Moshi's delay pattern)."""
    partner_heads: bool = True
    """Also predict the codec frame the partner will say next tick (SyncLLM's latency compensation: when
    the partner's slice arrives late over a network, the prediction stands in for it)."""
    heard_text_head: bool = False
    """Also predict the partner's words as text, each word's tokens from the tick after it has been heard:
    an auxiliary target of the dialogue stage that teaches the model to listen to what is said (its
    answers depend on it), not only to when; not computed at run time."""
    tick_ms: int = 80
    phoneme_slots: int = 0
    """Phoneme characters read beside a word's first text token (models/phonemes.py); 0: no phoneme input."""
    phoneme_streams: int = 1
    """1: the announced word's phonemes; 2: also, every tick, those of the word being voiced; 3: also, every
    tick, those sounding in the frame being said (espeak-ng's timing; models/phonemes.py)."""

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def phoneme_width(self) -> int:
        """Phoneme ids per position: the streams' slots side by side (announced first)."""
        return self.phoneme_slots * self.phoneme_streams

    @property
    def audio_bos(self) -> int:
        """Input id of a codebook with nothing to show yet (before the first frame, in the delay)."""
        return self.codebook_size

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads or self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("hidden_size must divide into heads, and heads into key/value heads")


class LMLogits(NamedTuple):
    """What a teacher-forced forward pass predicts at every position."""

    text: torch.Tensor  # (B, T, V) the model's own next text token
    audio: torch.Tensor  # (B, Q, T, codebook_size) its own next codec tokens
    partner: torch.Tensor | None  # (B, Q, T, codebook_size) the partner's next frame (partner heads)
    heard: torch.Tensor | None  # (B, T, V) the partner's words as heard (heard_text_head)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rope_angles(positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin for absolute positions (any shape) -> (*shape, head_dim), as Llama lays them out."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=positions.device) / head_dim))
    freqs = positions.to(torch.float32)[..., None] * inv_freq
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class KVCache:
    """Sliding-window key/value cache of one layer for a batch of sessions: a ring of `window` slots.

    Keys are stored already rotated (RoPE at their absolute position), so the
    order of slots in the ring does not matter to attention. Sessions that
    share a batch are stacked along dim 0 (`stack`) and split again (`row`).
    """

    def __init__(self, k: torch.Tensor, v: torch.Tensor):
        self.k, self.v = k, v  # (B, n_kv, window, head_dim)
        self.window = k.shape[2]

    @staticmethod
    def empty(batch: int, n_kv: int, window: int, head_dim: int) -> KVCache:
        return KVCache(torch.zeros(batch, n_kv, window, head_dim), torch.zeros(batch, n_kv, window, head_dim))

    @staticmethod
    def stack(caches: list[KVCache]) -> KVCache:
        return KVCache(torch.cat([c.k for c in caches]), torch.cat([c.v for c in caches]))

    def row(self, b: int) -> KVCache:
        return KVCache(self.k[b : b + 1], self.v[b : b + 1])

    def write(self, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor) -> None:
        """Store each session's new key and value (B, n_kv, 1, head_dim) in its slot, in place.

        Indexed by flat 1-d (session, head, slot) indices: the form of in-place write that ONNX export
        supports (models/onnx_export.py)."""
        B, H = k.shape[0], k.shape[1]
        session = torch.arange(B)[:, None].expand(B, H).reshape(-1)
        head = torch.arange(H)[None, :].expand(B, H).reshape(-1)
        slot = (positions % self.window)[:, None].expand(B, H).reshape(-1)
        self.k[session, head, slot] = k[:, :, 0].reshape(B * H, -1)
        self.v[session, head, slot] = v[:, :, 0].reshape(B * H, -1)


class Attention(nn.Module):
    def __init__(self, c: SyncLMConfig):
        super().__init__()
        self.c = c
        d, hd = c.hidden_size, c.head_dim
        self.q_proj = nn.Linear(d, c.num_attention_heads * hd, bias=False)
        self.k_proj = nn.Linear(d, c.num_key_value_heads * hd, bias=False)
        self.v_proj = nn.Linear(d, c.num_key_value_heads * hd, bias=False)
        self.o_proj = nn.Linear(c.num_attention_heads * hd, d, bias=False)

    def _heads(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        B, T, _ = x.shape
        hd = self.c.head_dim
        q = self.q_proj(x).view(B, T, -1, hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, -1, hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, -1, hd).transpose(1, 2)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Whole sequences: x (B, T, d); cos/sin (T, hd); mask (T, T) bool or None for plain causal."""
        q, k, v = self._heads(x, cos, sin)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None, enable_gqa=True)
        return self.o_proj(out.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))

    def step(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: KVCache, positions: torch.Tensor,
             valid: torch.Tensor) -> torch.Tensor:
        """One tick: x (B, 1, d); cos/sin (B, 1, 1, hd) at each session's position; valid (B, window) the
        cache slots that hold keys. Attention is written out with the query heads grouped under their
        key/value head (GQA without copying the cache), which exports to ONNX as plain matmuls."""
        q, k, v = self._heads(x, cos, sin)
        cache.write(k, v, positions)
        B, H, _, hd = q.shape
        grouped = q.reshape(B, cache.k.shape[1], H // cache.k.shape[1], hd)  # (B, n_kv, heads per kv, hd)
        scores = grouped @ cache.k.transpose(-1, -2) * hd**-0.5
        weights = scores.masked_fill(~valid[:, None, None, :], float("-inf")).softmax(-1)
        return self.o_proj((weights @ cache.v).reshape(B, 1, H * hd))


class MLP(nn.Module):
    def __init__(self, c: SyncLMConfig):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, c: SyncLMConfig):
        super().__init__()
        self.self_attn = Attention(c)
        self.mlp = MLP(c)
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)

    def forward(self, x, cos, sin, mask=None, cache: KVCache | None = None, positions=None):
        """Whole sequences (mask: (T, T) or None), or one tick with a cache (mask: (B, window) valid slots)."""
        h = self.input_layernorm(x)
        if cache is None:
            x = x + self.self_attn(h, cos, sin, mask)
        else:
            x = x + self.self_attn.step(h, cos, sin, cache, positions, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Backbone(nn.Module):
    """The Llama decoder stack (named as in transformers' LlamaModel, without its token embedding)."""

    def __init__(self, c: SyncLMConfig):
        super().__init__()
        self.layers = nn.ModuleList(Block(c) for _ in range(c.num_hidden_layers))
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)


class SyncLM(nn.Module):
    def __init__(self, config: SyncLMConfig = SyncLMConfig()):
        super().__init__()
        c = self.config = config
        self.audio_embed = nn.ModuleList(nn.Embedding(c.codebook_size + 1, c.hidden_size) for _ in range(c.n_codebooks))
        self.text_embed = nn.Embedding(c.text_vocab_size, c.hidden_size)
        self.role_embed = nn.Embedding(c.n_roles, c.hidden_size)
        self.listen_fusion = nn.ModuleList(nn.Linear(c.listen_dim, c.hidden_size) for _ in range(c.num_hidden_layers))
        self.model = Backbone(c)
        self.text_head = nn.Linear(c.hidden_size, c.text_vocab_size, bias=False)
        self.audio_heads = nn.ModuleList(nn.Linear(c.hidden_size, c.codebook_size, bias=False) for _ in range(c.n_codebooks))
        self.partner_heads = nn.ModuleList(
            nn.Linear(c.hidden_size, c.codebook_size, bias=False) for _ in range(c.n_codebooks if c.partner_heads else 0)
        )
        self.heard_text_head = nn.Linear(c.hidden_size, c.text_vocab_size, bias=False) if c.heard_text_head else None
        self.phoneme_embed = nn.Embedding(c.phoneme_width * ALPHABET_SIZE, c.hidden_size) if c.phoneme_slots else None
        self.apply(self._init)
        if self.phoneme_embed is not None:
            # zero: a model started from one without phonemes computes what it did, and learns to use them
            nn.init.zeros_(self.phoneme_embed.weight)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def _embed(self, audio_in: torch.Tensor, text_in: torch.Tensor, role: torch.Tensor,
               phonemes: torch.Tensor | None) -> torch.Tensor:
        """audio_in (B, Q, T), text_in (B, T), role (B,), phonemes (B, T, phoneme_width) or None -> (B, T, d)."""
        x = self.text_embed(text_in) + self.role_embed(role)[:, None, :]
        for q, emb in enumerate(self.audio_embed):
            x = x + emb(audio_in[:, q])
        if self.phoneme_embed is not None and phonemes is not None:
            slot = torch.arange(phonemes.shape[-1], device=phonemes.device) * ALPHABET_SIZE
            x = x + (self.phoneme_embed(phonemes + slot) * (phonemes > 0)[..., None]).sum(-2)
        return x

    def _heads(self, h: torch.Tensor, partner: bool = True, heard: bool = False) -> LMLogits:
        h = self.model.norm(h)
        partner_logits = None
        if partner and self.partner_heads:
            partner_logits = torch.stack([head(h) for head in self.partner_heads], dim=1)
        heard_logits = self.heard_text_head(h) if heard and self.heard_text_head is not None else None
        return LMLogits(self.text_head(h), torch.stack([head(h) for head in self.audio_heads], dim=1), partner_logits,
                        heard_logits)

    def forward(self, audio_in: torch.Tensor, text_in: torch.Tensor, listen: torch.Tensor, role: torch.Tensor,
                phonemes: torch.Tensor | None = None, partner: bool = True, heard: bool = True) -> LMLogits:
        """Teacher-forced whole sequences.

        audio_in (B, Q, T) long, text_in (B, T) long, listen (B, T, listen_dim), role (B,) long,
        phonemes (B, T, phoneme_width) long or None (none given).
        The partner's and the heard-text logits are None without their heads or with `partner` / `heard`
        False (a stage with nothing to teach them: the partner heads are a sixth of a step's arithmetic).
        """
        c = self.config
        T = text_in.shape[1]
        cos, sin = rope_angles(torch.arange(T, device=text_in.device), c.head_dim, c.rope_theta)
        mask = None
        if T > c.sliding_window:
            i = torch.arange(T, device=text_in.device)
            mask = (i[None, :] <= i[:, None]) & (i[:, None] - i[None, :] < c.sliding_window)
        x = self._embed(audio_in, text_in, role, phonemes)
        for fuse, block in zip(self.listen_fusion, self.model.layers):
            x = block(x + fuse(listen), cos, sin, mask)
        return self._heads(x, partner, heard)

    def new_cache(self, batch: int) -> list[KVCache]:
        c = self.config
        return [KVCache.empty(batch, c.num_key_value_heads, c.sliding_window, c.head_dim) for _ in range(c.num_hidden_layers)]

    def step(self, audio_in, text_in, listen, role, cache: list[KVCache], positions: torch.Tensor,
             phonemes: torch.Tensor | None = None):
        """One tick for a batch: audio_in (B, Q), text_in (B,), listen (B, listen_dim), role (B,),
        positions (B,) each session's tick index, phonemes (B, phoneme_width) or None.
        Returns text logits (B, V), audio logits (B, Q, K) and
        partner logits (B, Q, K) (None without partner heads)."""
        c = self.config
        cos, sin = rope_angles(positions, c.head_dim, c.rope_theta)
        cos, sin = cos[:, None, None, :], sin[:, None, None, :]
        slots = torch.arange(c.sliding_window)
        valid = (slots[None, :] <= positions[:, None]) | (positions[:, None] >= c.sliding_window)
        x = self._embed(audio_in[:, :, None], text_in[:, None], role, None if phonemes is None else phonemes[:, None])
        for fuse, block, layer_cache in zip(self.listen_fusion, self.model.layers, cache):
            x = block(x + fuse(listen)[:, None, :], cos, sin, valid, layer_cache, positions)
        text_logits, audio_logits, partner_logits, _ = self._heads(x)
        return text_logits[:, 0], audio_logits[:, :, 0], None if partner_logits is None else partner_logits[:, :, 0]


def delay_codes(codes: torch.Tensor, delay: int, bos: int) -> torch.Tensor:
    """Shift codebooks 1.. right by `delay` frames (filled with bos): frame-aligned -> model-aligned."""
    out = codes.clone()
    if delay:
        out[:, 1:, delay:] = codes[:, 1:, :-delay]
        out[:, 1:, :delay] = bos
    return out


def undelay_codes(delayed: torch.Tensor, delay: int) -> torch.Tensor:
    """Inverse of delay_codes (drops the last `delay` frames of codebook 0 that have no partners)."""
    if not delay:
        return delayed
    return torch.cat([delayed[:, :1, :-delay], delayed[:, 1:, delay:]], dim=1)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def init_backbone_from_llama(model: SyncLM, folder: str) -> list[str]:
    """Load the decoder stack of a Hugging Face Llama checkpoint (config.json + model.safetensors)
    from a local folder into `model`. The shapes must match; embeddings and heads stay ours.
    Returns the names of the tensors loaded."""
    from models.checkpoint import CheckpointError, read_json, read_tensors

    cfg = read_json(f"{folder}/config.json")
    c = model.config
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size"):
        if cfg.get(key) != getattr(c, key):
            raise CheckpointError(f"{folder}: Llama {key}={cfg.get(key)} does not match this model's {getattr(c, key)}")
    tensors = read_tensors(f"{folder}/model.safetensors")
    ours = model.state_dict()
    loaded = []
    for name, tensor in tensors.items():
        if name.startswith("model.layers.") or name == "model.norm.weight":
            if name not in ours or ours[name].shape != tensor.shape:
                raise CheckpointError(f"{folder}: tensor {name} does not fit this model")
            ours[name] = tensor
            loaded.append(name)
    model.load_state_dict(ours)
    return loaded

