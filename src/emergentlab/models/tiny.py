"""A nanoGPT-size decoder, its tokenizers (characters, numbers as k-digit chunks, or a BPE learned on the training
text), and the `tiny` backend that scores and generates with it; a checkpoint records its tokenizer, so it always
loads with its own.

One GPT for every experiment: the ladder's rungs, the grokking model (no LayerNorm, untied, Nanda et al.'s
initialisation) and the induction-head models (attention-only) are `GPTConfig`s of it, not forks of its forward pass.
Activations and heads are named like TransformerLens: `run_with_cache` returns ``blocks.{i}.attn.hook_pattern``
(batch, head, query, key) and ``blocks.{i}.hook_resid_post``, named by `act_name`; a head is
``blocks.{i}.attn.head{h}``, named by `head_name` and read back by its inverse `parse_head_name`.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from emergentlab.errors import UserError
from emergentlab.models.base import Generation, TokenScores, cut_at_stop, pack_batches, pick_tokens, row_uniforms
from emergentlab.records import ScaleFacts

PAD = 0  # NUL never appears in task text, so it doubles as padding and beginning-of-sequence
INITS = ("gpt2", "nanda")


def act_name(layer: int, hook: str) -> str:
    """The cache key of an activation, e.g. ``act_name(1, "attn.hook_pattern")`` → ``blocks.1.attn.hook_pattern``."""
    return f"blocks.{layer}.{hook}"


def head_name(layer: int, head: int) -> str:
    """``blocks.{layer}.attn.head{head}``: how a head is named everywhere (series metrics, tables, figures)."""
    return act_name(layer, f"attn.head{head}")


def parse_head_name(name: str) -> tuple[int, int] | None:
    """(layer, head) of a name made by `head_name`; None for any other string."""
    parts = name.split(".")
    if len(parts) != 4 or parts[0] != "blocks" or parts[2] != "attn" or not parts[3].startswith("head"):
        return None
    layer, head = parts[1], parts[3].removeprefix("head")
    if not (layer.isdigit() and head.isdigit()):
        return None
    return int(layer), int(head)


class Tokenizer(Protocol):
    """What the tiny model reads and writes text with. Every tokenizer here keeps ids 0–127 for the single ASCII
    characters, so PAD (NUL, 0) and the line break ("\\n", 10) that `train.loop` frames rows with mean the same
    under all of them; `spec()` is what a checkpoint's config.json stores under "tokenizer" (`make_tokenizer` is its
    inverse)."""

    vocab_size: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def spec(self) -> dict[str, Any]: ...


class CharTokenizer:
    """One token per ASCII character (ids 0..127); anything else becomes '?'."""

    vocab_size = 128

    def encode(self, text: str) -> list[int]:
        return [o if (o := ord(c)) < 128 else 63 for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(i) for i in ids)

    def spec(self) -> dict[str, Any]:
        return {"kind": "char"}


class ChunkTokenizer(CharTokenizer):
    """Numbers as k-digit chunk tokens, every other character a character token.

    A run of digits is cut into chunks of `k` from the left, as GPT-3.5/4's tokenizer cuts numbers into 1–3-digit
    tokens ("12345" → "123", "45" for k = 3), so the same digit lands in different tokens depending on the number's
    length, the tokenization hurdle for arithmetic (seed 000). A one-digit chunk is the digit's character token;
    chunks of 2 … k digits get ids from 128 up, all 10² + … + 10^k of them, so vocab_size = 128 + that. Decoding
    any id sequence gives text back, so `decode(encode(s)) == s` for every ASCII `s`."""

    MAX_K = 4  # 10⁴ chunk tokens: beyond that the embedding, not the model, is the ladder

    def __init__(self, k: int = 3) -> None:
        if not 2 <= k <= self.MAX_K:
            raise ValueError(f"k: must be from 2 to {self.MAX_K} digits, got {k}")
        self.k = k
        self.pieces = [f"{i:0{n}d}" for n in range(2, k + 1) for i in range(10**n)]
        self.ids = {c: 128 + i for i, c in enumerate(self.pieces)}
        self.vocab_size = 128 + len(self.pieces)

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        for m in _DIGITS_OR_NOT.finditer(text):
            run = m.group()
            if not run[0].isdigit():
                out += super().encode(run)
                continue
            for i in range(0, len(run), self.k):
                c = run[i:i + self.k]
                out.append(self.ids[c] if len(c) > 1 else ord(c))
        return out

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(i) if i < 128 else self.pieces[i - 128] for i in ids)

    def spec(self) -> dict[str, Any]:
        return {"kind": "chunk", "k": self.k}


_DIGITS_OR_NOT = re.compile(r"[0-9]+|[^0-9]+")  # ASCII digits only: str.isdigit would take "²" into a chunk
_WORDS = re.compile(r"[0-9]+|[A-Za-z]+|[^0-9A-Za-z]")  # BPE's pre-tokens: digit runs, letter runs, any other char


class BPETokenizer(CharTokenizer):
    """Byte-pair encoding (Sennrich et al. 2016) learned on training text: `merges` in the order learned, each
    joining two adjacent tokens into a new one (ids from 128 up, in merge order).

    Merges stay inside a pre-token, a run of digits or of letters (every other character is one alone), as GPT-2's
    pre-tokenizer keeps numbers and words apart: a token never spans the "=" after which an answer starts, so a
    prompt is tokenized the same whether or not its answer follows. On arithmetic text the frequent digit pairs and
    triples become tokens and the rest do not, so how a number is cut depends on its digits (the hurdle of
    frequency-based number tokens)."""

    MAX_MERGES = 10_000

    def __init__(self, merges: Sequence[tuple[str, str]]) -> None:
        self.merges = [(str(a), str(b)) for a, b in merges]
        self.pieces = [a + b for a, b in self.merges]
        self.ranks = {m: i for i, m in enumerate(self.merges)}
        self.ids: dict[str, int] = {}
        for i, piece in enumerate(self.pieces):
            self.ids.setdefault(piece, 128 + i)
        self.vocab_size = 128 + len(self.pieces)
        self._words: dict[str, list[int]] = {}  # pre-token → ids (arithmetic text repeats few distinct numbers)

    @classmethod
    def learn(cls, lines: Sequence[str], n_merges: int) -> BPETokenizer:
        """Up to `n_merges` merges, each of the most frequent adjacent pair over `lines`' pre-tokens (ties broken
        by the pair itself, so the same text always gives the same merges); fewer when no pair is left."""
        counts = Counter(w for line in lines for w in _WORDS.findall(line))
        words = {w: [c if ord(c) < 128 else "?" for c in w] for w in counts}
        pairs: Counter[tuple[str, str]] = Counter()
        where: dict[tuple[str, str], set[str]] = {}  # pair → the words it occurs in, so a merge revisits only those
        for w, toks in words.items():
            for pair in zip(toks, toks[1:], strict=False):
                pairs[pair] += counts[w]
                where.setdefault(pair, set()).add(w)
        merges: list[tuple[str, str]] = []
        while len(merges) < n_merges and (live := [p for p, c in pairs.items() if c > 0]):
            best = max(live, key=lambda p: (pairs[p], p))
            merges.append(best)
            for w in sorted(where.pop(best, ())):
                old, new = words[w], _merge(words[w], best)
                for pair in zip(old, old[1:], strict=False):
                    pairs[pair] -= counts[w]
                for pair in zip(new, new[1:], strict=False):
                    pairs[pair] += counts[w]
                    where.setdefault(pair, set()).add(w)
                words[w] = new
            pairs.pop(best, None)
        return cls(merges)

    def _word(self, word: str) -> list[int]:
        if (ids := self._words.get(word)) is None:
            toks = [c if ord(c) < 128 else "?" for c in word]
            while len(toks) > 1:
                best = min(zip(toks, toks[1:], strict=False), key=lambda p: self.ranks.get(p, math.inf))
                if best not in self.ranks:
                    break
                toks = _merge(toks, best)
            ids = self._words[word] = [ord(t) if len(t) == 1 else self.ids[t] for t in toks]
        return ids

    def encode(self, text: str) -> list[int]:
        return [i for w in _WORDS.findall(text) for i in self._word(w)]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(i) if i < 128 else self.pieces[i - 128] for i in ids)

    def spec(self) -> dict[str, Any]:
        return {"kind": "bpe", "merges": [list(m) for m in self.merges]}


def _merge(toks: list[str], pair: tuple[str, str]) -> list[str]:
    """`toks` with every non-overlapping occurrence of `pair`, left to right, joined into one token."""
    out, i = [], 0
    while i < len(toks):
        if i + 1 < len(toks) and (toks[i], toks[i + 1]) == pair:
            out.append(toks[i] + toks[i + 1])
            i += 2
        else:
            out.append(toks[i])
            i += 1
    return out


TOKENIZERS = ("char", "chunk", "bpe")


def make_tokenizer(spec: dict[str, Any] | None, text: Sequence[str] | None = None) -> Tokenizer:
    """The tokenizer a spec names (`Tokenizer.spec`'s inverse); None or {} is the character tokenizer, which is
    what a checkpoint written before tokenizers were recorded was trained with. A BPE spec whose `merges` is a
    count ({"kind": "bpe", "merges": 256}) is learned on `text` (a ladder's corpus). ValueError naming the field."""
    spec = dict(spec or {"kind": "char"})
    kind = spec.pop("kind", None)
    if kind == "char" and not spec:
        return CharTokenizer()
    if kind == "chunk" and set(spec) <= {"k"}:
        k = spec.get("k", 3)
        if not isinstance(k, int) or isinstance(k, bool):
            raise ValueError(f"k: expected an integer number of digits, got {k!r}")
        return ChunkTokenizer(k)
    if kind == "bpe" and set(spec) == {"merges"}:
        merges = spec["merges"]
        if isinstance(merges, list) and all(isinstance(m, list | tuple) and len(m) == 2 and all(
                isinstance(x, str) and x for x in m) for m in merges):
            return BPETokenizer([(a, b) for a, b in merges])
        n = _merge_count(merges)
        if text is None:
            raise ValueError(f"merges: a BPE of {n} merges is learned on training text, and none was given")
        return BPETokenizer.learn(text, n)
    if kind not in TOKENIZERS:
        raise ValueError(f"kind: unknown tokenizer {kind!r} (known: {', '.join(TOKENIZERS)})")
    raise ValueError(f"{sorted(spec)[0] if spec else 'merges'}: not a field of the {kind} tokenizer"
                     + (" (bpe needs merges)" if kind == "bpe" and not spec else ""))


def _merge_count(merges: object) -> int:
    if not isinstance(merges, int) or isinstance(merges, bool) or not 1 <= merges <= BPETokenizer.MAX_MERGES:
        raise ValueError(f"merges: expected a count from 1 to {BPETokenizer.MAX_MERGES} to learn, or the learned "
                         f"[left, right] pairs, got {merges!r}")
    return merges


def tokenizer_vocab(spec: dict[str, Any] | None) -> int:
    """The vocabulary size of the tokenizer `spec` names, validating it (ValueError as `make_tokenizer`); for a BPE
    still to be learned, 128 + its merge count (an upper bound: text may run out of pairs sooner)."""
    s = spec or {}
    if s.get("kind") == "bpe" and set(s) == {"kind", "merges"} and not isinstance(s["merges"], list):
        return 128 + _merge_count(s["merges"])
    return make_tokenizer(spec).vocab_size


@dataclass
class GPTConfig:
    """The shape of a GPT. `init` chooses how `GPT.init_weights` draws the weights (see there)."""

    vocab_size: int = 128
    block_size: int = 256  # context length in tokens
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 128
    d_mlp: int = 0  # 0 means 4 * n_embd
    attn_only: bool = False  # no MLPs (Olsson et al.'s attention-only models)
    layernorm: bool = True  # False: no LayerNorm anywhere (Nanda et al.'s grokking model)
    tie_weights: bool = True  # the unembedding is the token embedding (transposed)
    init: Literal["gpt2", "nanda"] = "gpt2"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, got {self.init!r}")
        if self.d_mlp == 0:
            self.d_mlp = 4 * self.n_embd

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GPTConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown model config field(s): {', '.join(sorted(unknown))}")
        return cls(**d)


def _norm(cfg: GPTConfig) -> nn.Module:
    return nn.LayerNorm(cfg.n_embd, bias=False) if cfg.layernorm else nn.Identity()


class Attention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=False)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, cache: dict[str, torch.Tensor] | None,
                layer: int) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None)
        else:  # explicit softmax so the pattern can be kept
            att = (q @ k.transpose(-2, -1)) / math.sqrt(k.shape[-1])
            allowed = mask if mask is not None else torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            att = att.masked_fill(~allowed, float("-inf")).softmax(-1)
            cache[act_name(layer, "attn.hook_pattern")] = att.detach()
            y = att @ v
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln_1, self.attn = _norm(cfg), Attention(cfg)
        self.mlp: nn.Module | None = None
        if not cfg.attn_only:
            self.ln_2 = _norm(cfg)
            self.mlp = nn.Sequential(nn.Linear(cfg.n_embd, cfg.d_mlp, bias=False), nn.GELU(),
                                     nn.Linear(cfg.d_mlp, cfg.n_embd, bias=False))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, cache: dict[str, torch.Tensor] | None,
                layer: int) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), mask, cache, layer)
        if self.mlp is not None:
            x = x + self.mlp(self.ln_2(x))
        if cache is not None:
            cache[act_name(layer, "hook_resid_post")] = x.detach()
        return x


class GPT(nn.Module):
    """`GPT(cfg, generator)`: weights drawn from `generator` (a fresh one seeded 0 when None), never from torch's
    global random state."""

    def __init__(self, cfg: GPTConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        with torch.device("meta"):  # skip torch's default init: every weight is drawn once, in init_weights
            self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
            self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
            self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
            self.ln_f = _norm(cfg)
            self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.to_empty(device="cpu")
        if cfg.tie_weights:  # after to_empty, which gives each module its own tensor
            self.lm_head.weight = self.wte.weight
        self.init_weights(generator if generator is not None else torch.Generator().manual_seed(0))

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator) -> None:
        """Draw every weight from `generator`, by `cfg.init`.

        "gpt2": N(0, 0.02), with the residual projections (attention output, MLP output) N(0, 0.02/√(2·n_layer))
        (GPT-2). "nanda": N(0, 1/√n_embd), the unembedding N(0, 1/√vocab_size) (Nanda et al. 2023: from the
        GPT-2 scale the grokking model generalises alongside memorising, with no delay). LayerNorm gains are 1.
        """
        cfg = self.cfg
        for name, p in self.named_parameters():  # a tied weight is listed once
            if p.dim() == 1:  # the model has no biases: 1-d parameters are LayerNorm gains
                p.fill_(1.0)
                continue
            if cfg.init == "nanda":
                std = 1 / math.sqrt(cfg.vocab_size if name == "lm_head.weight" else cfg.n_embd)
            elif name.endswith(("attn.proj.weight", "mlp.2.weight")):
                std = 0.02 / math.sqrt(2 * cfg.n_layer)
            else:
                std = 0.02
            p.normal_(0.0, std, generator=generator)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameter count; non-embedding excludes token and position embeddings (Kaplan et al. 2020)."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.wte.weight.numel() + self.wpe.weight.numel()
        return n

    def hidden(self, idx: torch.Tensor, pad_mask: torch.Tensor | None = None,
               cache: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Final residual stream (after ln_f). `pad_mask` (B, T) marks real tokens of left-padded rows."""
        B, T = idx.shape
        if idx.shape[1] > self.cfg.block_size:
            raise ValueError(f"sequence of {T} tokens exceeds block_size {self.cfg.block_size}")
        if pad_mask is None:
            pos = torch.arange(T, device=idx.device).expand(B, T)
            mask = None
        else:
            pos = (pad_mask.long().cumsum(1) - 1).clamp(min=0)
            causal = torch.ones(T, T, dtype=torch.bool, device=idx.device).tril()
            # a pad query attends to itself only, so no row of the softmax is empty
            mask = (causal & pad_mask[:, None, :]) | torch.eye(T, dtype=torch.bool, device=idx.device)
            mask = mask[:, None]
        x = self.wte(idx) + self.wpe(pos)
        for i, block in enumerate(self.blocks):
            x = block(x, mask, cache, i)
        return self.ln_f(x)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, vocab) for an unpadded batch."""
        return self.lm_head(self.hidden(idx))

    def last_logits(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits (B, vocab) at the last position of an unpadded batch: equal to ``self(idx)[:, -1]``.

        In a one-layer model the residual stream entering attention at position t depends only on (token, t), so
        queries, keys and values are computed once per (position, vocabulary entry), the attention scores once per
        (position, last token, token), and gathered per row; the MLP and unembedding run on the last position only.
        With at least vocab_size × T rows (grokking's full batch of ``a b =`` rows) that is about a third of the full
        forward's work, with the same gradients. Other batches and deeper models take the full forward.
        """
        B, T = idx.shape
        C, H, V = self.cfg.n_embd, self.cfg.n_head, self.cfg.vocab_size
        if self.cfg.n_layer != 1 or B < V * T:
            return self.lm_head(self.hidden(idx)[:, -1])
        blk = self.blocks[0]
        assert isinstance(blk, Block)
        D = C // H
        resid = self.wte.weight[None] + self.wpe.weight[:T, None]  # (T, V, C): token v at position t
        q, k, v = blk.attn.qkv(blk.ln_1(resid)).view(T, V, 3, H, D).unbind(2)  # each (T, V, H, D)
        scores = torch.einsum("qhd,tkhd->tqkh", q[-1], k) / math.sqrt(D)  # (T, V last token, V token at t, H)
        # gathers go through F.embedding on flattened tables: its backward is a dense index-add, faster than indexing's
        t = torch.arange(T, device=idx.device) * V
        att = F.embedding((t + idx[:, -1:]) * V + idx, scores.reshape(-1, H)).softmax(1)  # (B, T, H)
        vals = F.embedding(t + idx, v.reshape(T * V, C)).view(B, T, H, D)
        out = (att[..., None] * vals).sum(1)  # (B, H, D)
        h = F.embedding(idx[:, -1] + (T - 1) * V, resid.reshape(T * V, C)) + blk.attn.proj(out.reshape(B, C))
        if blk.mlp is not None:
            h = h + blk.mlp(blk.ln_2(h))
        return self.lm_head(self.ln_f(h))

    def run_with_cache(self, idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits plus activations named by `act_name`: ``blocks.0.attn.hook_pattern``, ``blocks.0.hook_resid_post``."""
        cache: dict[str, torch.Tensor] = {}
        return self.lm_head(self.hidden(idx, cache=cache)), cache


def save_checkpoint(model: GPT, path: Path, meta: dict[str, Any]) -> None:
    """Weights as safetensors, config and training facts as JSON, written so a crash leaves no half file."""
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"
             or not model.cfg.tie_weights}
    save_file(state, str(path / "model.safetensors.tmp"))
    (path / "model.safetensors.tmp").replace(path / "model.safetensors")
    (path / "config.json.tmp").write_text(json.dumps({"model": asdict(model.cfg), **meta}, indent=2))
    (path / "config.json.tmp").replace(path / "config.json")


def read_config(path: Path) -> tuple[GPTConfig, dict[str, Any]]:
    """The model config and training facts of a checkpoint folder; a missing, malformed or mistyped config.json is
    a UserError naming the file and the field."""
    cfg_file, weights = path / "config.json", path / "model.safetensors"
    if not cfg_file.is_file() or not weights.is_file():
        raise UserError("not a tiny checkpoint (needs config.json and model.safetensors)", source=str(path))
    try:
        meta = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"not valid JSON ({e})", source=str(cfg_file)) from None
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), dict):
        raise UserError("needs a `model` object of GPTConfig fields", source=str(cfg_file), field="model")
    known = {f.name: f for f in fields(GPTConfig)}
    for k, v in meta["model"].items():
        if k not in known:
            raise UserError(f"unknown field (known: {', '.join(known)})", source=str(cfg_file), field=f"model.{k}")
        want = type(known[k].default)
        if type(v) is not want:
            raise UserError(f"expected {want.__name__}, got {v!r}", source=str(cfg_file), field=f"model.{k}")
    try:
        cfg = GPTConfig.from_dict(meta.pop("model"))
    except ValueError as e:
        raise UserError(str(e), source=str(cfg_file), field=f"model.{str(e).split()[0]}") from None
    if not isinstance(meta.get("tokenizer", {}), dict):
        raise UserError("needs a `tokenizer` object (kind and its fields)", source=str(cfg_file), field="tokenizer")
    try:
        tok = make_tokenizer(meta.get("tokenizer"))
    except ValueError as e:
        raise UserError(str(e), source=str(cfg_file), field=f"tokenizer.{str(e).split(':')[0]}") from None
    if tok.vocab_size > cfg.vocab_size:
        raise UserError(f"the tokenizer's {tok.vocab_size} ids exceed the model's vocab_size {cfg.vocab_size}",
                        source=str(cfg_file), field="tokenizer")
    return cfg, meta


def check_checkpoint(path: Path) -> GPTConfig:
    """Validate a checkpoint without loading its tensors: config.json, and the safetensors header against the
    shapes the config implies. Raises UserError naming the file and the tensor or field."""
    cfg, _ = read_config(path)
    weights = path / "model.safetensors"
    with torch.device("meta"):
        want = {k: tuple(v.shape) for k, v in GPT(cfg).state_dict().items()
                if k != "lm_head.weight" or not cfg.tie_weights}
    try:
        with safe_open(str(weights), "pt") as f:
            got = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 -- not a dict
    except Exception as e:  # safetensors raises its own SafetensorError (and OSError) for a bad or short file
        raise UserError(f"unreadable safetensors file ({str(e).splitlines()[0] if str(e) else type(e).__name__})",
                        source=str(weights)) from None
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing or extra:
        raise UserError(f"tensors do not match config.json (missing {missing[:3]}, unexpected {extra[:3]})",
                        source=str(weights), field=(missing or extra)[0])
    for k, shape in want.items():
        if got[k] != shape:
            raise UserError(f"shape {list(got[k])} where config.json implies {list(shape)}", source=str(weights),
                            field=k)
    return cfg


def load_checkpoint(path: Path) -> tuple[GPT, dict[str, Any]]:
    """Model and its metadata from a folder written by `save_checkpoint`; a bad folder is a UserError naming the
    file and the field or tensor."""
    cfg = check_checkpoint(path)
    _, meta = read_config(path)
    model = GPT(cfg)
    try:
        state = load_file(str(path / "model.safetensors"))
    except Exception as e:  # a file cut short after a valid header
        raise UserError(f"unreadable safetensors file ({str(e).splitlines()[0] if str(e) else type(e).__name__})",
                        source=str(path / "model.safetensors")) from None
    if cfg.tie_weights:
        state["lm_head.weight"] = state["wte.weight"]
    model.load_state_dict(state)
    return model.eval(), meta


class TinyBackend:
    """Scores, generates and samples with a `GPT`; batches are left-padded, log-probs computed in fp32."""

    def __init__(self, model: GPT, name: str = "tiny", meta: dict[str, Any] | None = None,
                 batch_tokens: int = 16384, tokenizer: Tokenizer | None = None) -> None:
        """`tokenizer`: None reads it from `meta["tokenizer"]` (a checkpoint's own; characters when absent)."""
        self.model, self.name, self.meta = model.eval(), name, meta or {}
        self.tok = tokenizer if tokenizer is not None else make_tokenizer(self.meta.get("tokenizer"))
        self.batch_tokens = batch_tokens

    @classmethod
    def from_path(cls, path: str | Path, name: str | None = None) -> TinyBackend:
        model, meta = load_checkpoint(Path(path))
        return cls(model, name or Path(path).name, meta)

    def facts(self) -> ScaleFacts:
        m = self.meta
        return ScaleFacts(
            params=float(self.model.num_params()),
            non_embedding_params=float(self.model.num_params(non_embedding=True)),
            tokens=m.get("tokens"), flops=m.get("flops"), loss=m.get("val_loss"), step=m.get("step"),
        )

    def _batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices grouped by similar length so padding is small; each batch under `batch_tokens`."""
        return pack_batches(sorted(range(len(lengths)), key=lambda i: lengths[i]), lengths, self.batch_tokens)

    def _pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        T = max(len(s) for s in seqs)
        idx = torch.full((len(seqs), T), PAD, dtype=torch.long)
        real = torch.zeros((len(seqs), T), dtype=torch.bool)
        for r, s in enumerate(seqs):
            idx[r, T - len(s):] = torch.tensor(s)
            real[r, T - len(s):] = True
        return idx, real

    @property
    def context_length(self) -> int:
        """The most tokens the model sees at once (its block size)."""
        return self.model.cfg.block_size

    def dropped_tokens(self, prompt: str, keep: int) -> int:
        """How many of `prompt`'s tokens `_fit` drops so that it and `keep` more tokens fit the context."""
        return max(0, len(self.tok.encode(prompt)) + 1 - (self.model.cfg.block_size - keep))

    def _fit(self, ids: list[int], keep: int) -> list[int]:
        """Drop the oldest prompt tokens so prompt + `keep` tokens fit the context window."""
        room = self.model.cfg.block_size - keep
        return [PAD, *ids][-room:] if room > 0 else ids[-self.model.cfg.block_size:]

    @torch.inference_mode()
    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[TokenScores]:
        if len(prompts) != len(continuations):
            raise ValueError("prompts and continuations differ in length")
        conts = [self.tok.encode(c) for c in continuations]
        seqs = [self._fit(self.tok.encode(p), len(c)) + c for p, c in zip(prompts, conts, strict=True)]
        out: list[TokenScores | None] = [None] * len(seqs)
        for batch in self._batches([len(s) for s in seqs]):
            idx, real = self._pad([seqs[i] for i in batch])
            h = self.model.hidden(idx, real)
            T = idx.shape[1]
            for r, i in enumerate(batch):
                n = len(conts[i])
                if n == 0:
                    out[i] = TokenScores((), (), ())
                    continue
                # logits only where a continuation token is predicted: positions T-n-1 .. T-2
                logits = self.model.lm_head(h[r, T - n - 1 : T - 1]).float()
                logp = logits.log_softmax(-1)
                tgt = torch.tensor(conts[i])
                lp = logp.gather(1, tgt[:, None]).squeeze(1)
                out[i] = TokenScores(tuple(lp.tolist()), tuple((logits.argmax(-1) == tgt).tolist()),
                                     tuple(self.tok.decode([t]) for t in conts[i]))
        return [o for o in out if o is not None]

    @torch.inference_mode()
    def generate(self, prompts: Sequence[str], max_new_tokens: int,
                 stop: Sequence[str] = ()) -> list[Generation]:
        return self._decode(prompts, max_new_tokens, stop, 0.0, ())

    @torch.inference_mode()
    def sample(self, prompts: Sequence[str], max_new_tokens: int, stop: Sequence[str] = (),
               temperature: float = 1.0, seeds: Sequence[int] = ()) -> list[Generation]:
        """One draw per prompt at `temperature` (see `Sampler.sample`): row i's uniforms come from
        `row_uniforms(prompts[i], seeds[i])`, so neither the batch nor `batch_tokens` changes a draw (up to float
        noise in the logits of a differently padded batch, which moves a draw only when its uniform lies within
        about 1e-7 of a token's cumulative-probability boundary)."""
        if seeds and len(seeds) != len(prompts):
            raise ValueError("seeds and prompts differ in length")
        return self._decode(prompts, max_new_tokens, stop, temperature, seeds or [0] * len(prompts))

    def _decode(self, prompts: Sequence[str], max_new_tokens: int, stop: Sequence[str], temperature: float,
                seeds: Sequence[int]) -> list[Generation]:
        """Greedy (`seeds` empty) or sampled continuations, batched by length, each cut at its first stop string."""
        seqs = [self._fit(self.tok.encode(p), max_new_tokens) for p in prompts]
        texts: list[str] = [""] * len(prompts)
        pieces: list[tuple[str, ...]] = [()] * len(prompts)
        for batch in self._batches([len(s) + max_new_tokens for s in seqs]):
            idx, real = self._pad([seqs[i] for i in batch])
            u = (torch.from_numpy(np.stack([row_uniforms(prompts[i], seeds[i], max_new_tokens) for i in batch]))
                 if seeds else None)
            new = torch.empty((len(batch), 0), dtype=torch.long)
            done = torch.zeros(len(batch), dtype=torch.bool)
            for step in range(max_new_tokens):
                h = self.model.hidden(idx, real)
                logits = self.model.lm_head(h[:, -1])
                nxt = logits.argmax(-1) if u is None else pick_tokens(logits, temperature, u[:, step])
                new = torch.cat([new, nxt[:, None]], 1)
                idx = torch.cat([idx, nxt[:, None]], 1)
                real = torch.cat([real, torch.ones_like(nxt[:, None], dtype=torch.bool)], 1)
                if stop:
                    for r in range(len(batch)):
                        done[r] = done[r] or cut_at_stop(self.tok.decode(new[r].tolist()), stop)[1]
                    if bool(done.all()):
                        break
            for r, i in enumerate(batch):
                texts[i] = cut_at_stop(self.tok.decode(new[r].tolist()), stop)[0]
                pieces[i] = _covering([self.tok.decode([t]) for t in new[r].tolist()], len(texts[i]))
        return [Generation(t, p) for t, p in zip(texts, pieces, strict=True)]


def _covering(pieces: list[str], n: int) -> tuple[str, ...]:
    """The leading tokens whose text overlaps the first `n` characters (a generation cut at its stop string)."""
    out, length = [], 0
    for p in pieces:
        if length >= n:
            break
        out.append(p)
        length += len(p)
    return tuple(out)
