"""A native forward pass for Llama-architecture folders (SmolLM2, TinyLlama, Llama-2 style), loaded without
transformers: config.json read as JSON, model.safetensors read straight into the modules, tokenizer.json run by
`tokenizers`.

Why: importing transformers and building its model was most of the time to load a small model (about 4 of the 4.4 s
to load SmolLM2-135M, benchmarks/results/hf_profile.md); this path loads it in a few tenths of a second. It offers
the parts of transformers' interface that `HFBackend` and `train.loop.finetune_hf` use — the base model's forward
with a KV cache, input and output embeddings, a `config`, a tokenizer called like a transformers one — so the
backend keeps one code path, and `load` returns None for anything it does not reproduce exactly (another
architecture, rope scaling, sharded or pickled weights, a tokenizer whose settings transformers would change), which
then loads through transformers as before. Module and weight names are transformers' (`model.layers.0.self_attn.
q_proj`), so a checkpoint's keys load as they are; tests check the logits against transformers' LlamaForCausalLM.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn

WEIGHTS = "model.safetensors"
TOKENIZER = "tokenizer.json"


@dataclass(frozen=True)
class LlamaConfig:
    """The config.json fields the forward pass reads (transformers' names and meanings)."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    max_position_embeddings: int
    tie_word_embeddings: bool
    attention_bias: bool = False
    mlp_bias: bool = False

    @classmethod
    def parse(cls, cfg: dict[str, Any]) -> LlamaConfig | None:
        """The config of a transformers Llama config.json, or None when it asks for anything this forward does not
        do the same way (rope scaling, another activation, tensor-parallel slicing, another architecture)."""
        if cfg.get("model_type") != "llama" or cfg.get("hidden_act", "silu") != "silu":
            return None
        if (cfg.get("pretraining_tp") or 1) != 1:
            return None
        if any(a != "LlamaForCausalLM" for a in cfg.get("architectures") or ()):
            return None
        rope = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
        if rope.get("rope_type", rope.get("type", "default")) != "default":
            return None
        heads = int(cfg["num_attention_heads"])
        return cls(vocab_size=int(cfg["vocab_size"]), hidden_size=int(cfg["hidden_size"]),
                   intermediate_size=int(cfg["intermediate_size"]), num_hidden_layers=int(cfg["num_hidden_layers"]),
                   num_attention_heads=heads, num_key_value_heads=int(cfg.get("num_key_value_heads") or heads),
                   head_dim=int(cfg.get("head_dim") or int(cfg["hidden_size"]) // heads),
                   rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-6)),
                   rope_theta=float(rope.get("rope_theta", cfg.get("rope_theta", 10000.0))),
                   max_position_embeddings=int(cfg.get("max_position_embeddings", 2048)),
                   tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
                   attention_bias=bool(cfg.get("attention_bias", False)), mlp_bias=bool(cfg.get("mlp_bias", False)))


class KVCache:
    """Keys and values per layer, (batch, kv heads, positions, head_dim), grown by `update`."""

    def __init__(self) -> None:
        self.kv: list[tuple[torch.Tensor, torch.Tensor]] = []

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if layer == len(self.kv):
            self.kv.append((k, v))
        else:
            pk, pv = self.kv[layer]
            self.kv[layer] = (torch.cat([pk, k], dim=2), torch.cat([pv, v], dim=2))
        return self.kv[layer]

    def get_seq_length(self) -> int:
        return self.kv[0][0].shape[2] if self.kv else 0

    def batch_repeat_interleave(self, n: int) -> None:
        """Each row repeated `n` times (a shared prefix run once for a batch of `n`)."""
        self.kv = [(k.repeat_interleave(n, 0), v.repeat_interleave(n, 0)) for k, v in self.kv]

    def batch_select_indices(self, idx: torch.Tensor) -> None:
        """Only the rows `idx` kept (rows that finished generating leave)."""
        self.kv = [(k[idx], v[idx]) for k, v in self.kv]


@dataclass
class BaseOutput:
    last_hidden_state: torch.Tensor
    cache: KVCache | None


@dataclass
class CausalLMOutput:
    logits: torch.Tensor


class Linear(nn.Linear):
    """`nn.Linear` left uninitialised: `load` assigns every weight from the checkpoint, and initialising 135 M
    parameters only to overwrite them took a second."""

    def reset_parameters(self) -> None:
        pass


class Embedding(nn.Embedding):
    """`nn.Embedding` left uninitialised, as `Linear`."""

    def reset_parameters(self) -> None:
        pass


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in fp32 and cast back before the weight, as transformers does: bf16 results then agree too
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin


class Attention(nn.Module):
    def __init__(self, cfg: LlamaConfig, layer: int) -> None:
        super().__init__()
        self.layer, self.h, self.kvh, self.hd = layer, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        d, b = cfg.hidden_size, cfg.attention_bias
        self.q_proj = Linear(d, self.h * self.hd, bias=b)
        self.k_proj = Linear(d, self.kvh * self.hd, bias=b)
        self.v_proj = Linear(d, self.kvh * self.hd, bias=b)
        self.o_proj = Linear(self.h * self.hd, d, bias=b)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None,
                cache: KVCache | None) -> torch.Tensor:
        B, T, _ = x.shape
        q = _rotate(self.q_proj(x).view(B, T, self.h, self.hd).transpose(1, 2), cos, sin)
        k = _rotate(self.k_proj(x).view(B, T, self.kvh, self.hd).transpose(1, 2), cos, sin)
        v = self.v_proj(x).view(B, T, self.kvh, self.hd).transpose(1, 2)
        if cache is not None:
            k, v = cache.update(self.layer, k, v)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None and T > 1,
                                           enable_gqa=self.kvh != self.h)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.h * self.hd))


class MLP(nn.Module):
    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        d, i, b = cfg.hidden_size, cfg.intermediate_size, cfg.mlp_bias
        self.gate_proj, self.up_proj, self.down_proj = Linear(d, i, bias=b), Linear(d, i, bias=b), Linear(i, d, bias=b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: LlamaConfig, layer: int) -> None:
        super().__init__()
        self.self_attn, self.mlp = Attention(cfg, layer), MLP(cfg)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None,
                cache: KVCache | None) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    """The decoder without its output head; `forward` takes transformers' keyword arguments."""

    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg, i) for i in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, cache: KVCache | None = None,
                use_cache: bool = False) -> BaseOutput:
        """Hidden states (B, T, d) after the final norm. `attention_mask` (B, past + T) marks real tokens with 1
        (padding 0); `position_ids` (B, T) default to past … past + T − 1; `cache` holds the past and is extended
        (a new one is made when `use_cache` and none is given)."""
        B, T = input_ids.shape
        if cache is None and use_cache:
            cache = KVCache()
        past = cache.get_seq_length() if cache is not None else 0
        if position_ids is None:
            position_ids = torch.arange(past, past + T)[None].expand(B, T)
        hd = self.cfg.head_dim
        inv_freq = 1.0 / self.cfg.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd)
        freqs = position_ids[..., None].float() * inv_freq
        emb = torch.cat([freqs, freqs], dim=-1)[:, None]  # (B, 1, T, hd), broadcast over heads
        x = self.embed_tokens(input_ids)
        cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
        mask = _mask(attention_mask, B, T, past)
        for block in self.layers:
            x = block(x, cos, sin, mask, cache)
        return BaseOutput(self.norm(x), cache)


def _mask(attention_mask: torch.Tensor | None, B: int, T: int, past: int) -> torch.Tensor | None:
    """Boolean (B, 1, T, past + T) mask: causal, minus padded keys; None when plain causal attention does."""
    if attention_mask is None and past == 0:
        return None
    S = past + T
    allowed = torch.ones(T, S, dtype=torch.bool).tril(diagonal=past)[None, None]
    if attention_mask is not None:
        allowed = allowed & attention_mask[:, None, None, :S].bool()
        # a padding query would see no key at all and turn to NaN, which would then leak through its (masked)
        # key and value: let every query see its own position, which a real token's query does anyway
        allowed = allowed | (torch.arange(S)[None, :] == torch.arange(past, S)[:, None])[None, None]
    return allowed.expand(B, 1, T, S) if allowed.shape[0] == 1 else allowed


class LlamaForCausalLM(nn.Module):
    """`model` (the decoder) and `lm_head`, as transformers names them; `config` is the parsed config.json."""

    def __init__(self, cfg: LlamaConfig, extra: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.model = LlamaModel(cfg)
        self.lm_head = Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.config = _Config(cfg, extra or {})

    @property
    def base_model(self) -> LlamaModel:
        return self.model

    @property
    def dtype(self) -> torch.dtype:
        return self.lm_head.weight.dtype

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def new_cache(self) -> KVCache:
        return KVCache()

    def forward(self, input_ids: torch.Tensor) -> CausalLMOutput:
        return CausalLMOutput(self.lm_head(self.model(input_ids).last_hidden_state))


class _Config:
    """config.json's values as attributes (what `HFBackend` reads with getattr: max_position_embeddings, the
    logit scalings, vocab_size, hidden_size…)."""

    def __init__(self, cfg: LlamaConfig, raw: dict[str, Any]) -> None:
        self.__dict__.update(raw)
        self.__dict__.update({f.name: getattr(cfg, f.name) for f in fields(cfg)})


class Tokenizer:
    """tokenizer.json run by `tokenizers`, called as a transformers tokenizer is: `tok(text)["input_ids"]`,
    `tok.decode(ids)` (special tokens kept, no clean-up), and the special tokens' ids."""

    def __init__(self, folder: Path, settings: dict[str, Any]) -> None:
        from tokenizers import Tokenizer as Backend

        self._tok = Backend.from_file(str(folder / TOKENIZER))

        def token_id(key: str) -> int | None:
            t = settings.get(key)
            t = t.get("content") if isinstance(t, dict) else t
            return self._tok.token_to_id(t) if isinstance(t, str) else None

        self.bos_token_id, self.eos_token_id = token_id("bos_token"), token_id("eos_token")
        self.pad_token_id = token_id("pad_token")

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": self._tok.encode(text, add_special_tokens=add_special_tokens).ids}

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._tok.decode(list(ids), skip_special_tokens=False))


# tokenizer_config.json keys under which transformers rewrites what tokenizer.json says (adds BOS/EOS, cleans up
# decoded text, runs a Python tokenizer class): with any of them set, the folder loads through transformers
_REWRITES = ("add_bos_token", "add_eos_token", "clean_up_tokenization_spaces", "add_prefix_space", "legacy")
_TOKENIZER_CLASSES = (None, "TokenizersBackend", "PreTrainedTokenizerFast")


def load(folder: Path, dtype: torch.dtype) -> tuple[Tokenizer, LlamaForCausalLM] | None:
    """The tokenizer and model of a local transformers folder holding a Llama (config.json, one model.safetensors,
    tokenizer.json), in `dtype` and eval mode; None when the folder is anything this module does not load exactly
    as transformers would."""
    try:
        raw = json.loads((folder / "config.json").read_text())
        settings = json.loads(p.read_text()) if (p := folder / "tokenizer_config.json").is_file() else {}
        if (s := folder / "special_tokens_map.json").is_file():
            settings = {**json.loads(s.read_text()), **settings}
    except (OSError, ValueError):
        return None
    cfg = LlamaConfig.parse(raw) if isinstance(raw, dict) else None
    if cfg is None or not (folder / WEIGHTS).is_file() or not (folder / TOKENIZER).is_file():
        return None
    if any(settings.get(k) for k in _REWRITES) or settings.get("tokenizer_class") not in _TOKENIZER_CLASSES:
        return None
    model = LlamaForCausalLM(cfg, raw)
    with safe_open(str(folder / WEIGHTS), framework="pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a mapping)
    if cfg.tie_word_embeddings:  # a tied checkpoint stores the shared matrix under either name
        shared = state.pop("lm_head.weight", None)
        state.setdefault("model.embed_tokens.weight", shared)  # type: ignore[arg-type]
    expected = set(model.state_dict()) - ({"lm_head.weight"} if cfg.tie_word_embeddings else set())
    if set(state) != expected or any(v is None for v in state.values()):
        return None
    model.load_state_dict(state, strict=False, assign=True)
    if cfg.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    return Tokenizer(folder, settings), model.to(dtype).eval()
