"""Training for induction heads and the in-context-learning phase change (Olsson et al. 2022), small enough for a CPU.

Models train on random token sequences in which about half the segments (4 … 16 tokens) copy an earlier span of the
same row, from random places at random offsets, so no fixed positional offset predicts a copy: only an induction
circuit does (`segment_batch`). At log-spaced steps every head gets

* ``prefix_matching``: on rows ``r r`` (r = `rep_len` distinct random tokens), the mean attention from a query in
  the second copy to the key just after the query token's earlier occurrence (position t − rep_len + 1); 0–1.
* ``copying``: Elhage et al.'s OV-circuit eigenvalue score Σ Re λ / Σ |λ| of W_E W_V W_O W_U (LayerNorm ignored);
  −1–1, positive when attending to a token raises that token's logit.
* ``previous_token``: mean attention to position t − 1 on the same rows (the first half of the circuit).

and the model gets the **ICL score**: loss (nats) at a late position minus loss at an early one, on held-out rows
of the training distribution. Olsson et al. use tokens 500 and 50 of a 512-token context; here the same fractions
of `seq_len` (`icl_positions`), i.e. positions 6 and 62 for a 64-token context.

A head's scores are logged as ``{head_name(layer, head)}.{score}``, e.g. ``blocks.1.attn.head3.prefix_matching``
(`emergentlab.models.tiny.head_name`). The history is returned; locating the phase change is
`emergentlab.analysis.dynamics`'s job.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pandas as pd
import torch
import torch.nn.functional as F

from emergentlab.models.tiny import GPT, Block, GPTConfig, act_name, head_name, parse_head_name, save_checkpoint
from emergentlab.train.loop import cpu_has_bf16, log_steps

# Called at every logged step with (step, total_steps, row) where row holds that step's logged metrics.
InductionProgress = Callable[[int, int, dict[str, float]], None]


@dataclass
class InductionConfig:
    """One training run. Defaults: a 2-layer attention-only model whose induction heads form a few hundred steps in
    (minutes on one shared CPU core; benchmarks/results/grokking.md)."""

    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    attn_only: bool = True
    vocab_size: int = 64
    seq_len: int = 64  # context length in tokens
    batch_size: int = 32
    steps: int = 1500
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0  # draws the initial weights (seed), training batches (seed), held-out rows (seed + 1), r r rows (+ 2)
    bf16: bool | None = None  # autocast to bf16; None: only where the CPU has native bf16 kernels
    checkpoints: int = 40  # log-spaced steps at which every score is measured
    eval_rows: int = 256  # held-out rows for the ICL score and validation loss
    rep_len: int = 0  # length of r in the ``r r`` scoring rows; 0 means seq_len // 2

    def __post_init__(self) -> None:
        for name in ("n_layer", "n_head", "n_embd", "vocab_size", "batch_size", "steps", "checkpoints", "eval_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.seq_len < 16:
            raise ValueError(f"seq_len must be ≥ 16, got {self.seq_len}")
        if self.rep_len == 0:
            self.rep_len = self.seq_len // 2
        if not 2 <= self.rep_len <= min(self.seq_len // 2, self.vocab_size):
            raise ValueError(f"rep_len must be in 2 … min(seq_len/2, vocab_size), got {self.rep_len}")

    @property
    def run_name(self) -> str:
        kind = "attn-only" if self.attn_only else "full"
        return f"L{self.n_layer}-{kind}-seed{self.seed}"

    def model_config(self) -> GPTConfig:
        # untied: with tied weights the direct path W_E W_Eᵀ of an attention-only model predicts the current token
        return GPTConfig(vocab_size=self.vocab_size, block_size=self.seq_len, n_layer=self.n_layer,
                         n_head=self.n_head, n_embd=self.n_embd, attn_only=self.attn_only, tie_weights=False)


@dataclass
class InductionTraining:
    """`history`: one row per checkpoint step with step, train_loss, val_loss (nats), icl_score (nats),
    induction_score (0–1), every head score as ``blocks.{i}.attn.head{h}.{score}``, and wall_s."""

    history: pd.DataFrame
    wall_s: float
    model: GPT = field(repr=False)


def icl_positions(seq_len: int) -> tuple[int, int]:
    """(early, late) token positions for the ICL score: Olsson et al.'s 50 and 500 of 512, scaled to seq_len."""
    return max(1, round(seq_len * 50 / 512)), min(seq_len - 1, round(seq_len * 500 / 512))


def segment_batch(batch: int, seq_len: int, vocab: int, gen: torch.Generator, copy_prob: float = 0.5) -> torch.Tensor:
    """(batch, seq_len + 1) random tokens laid out in segments of 4 … 16 tokens; after a fresh first segment, each
    segment is, with probability `copy_prob`, a copy of a random earlier span of the same row. Copies start at random
    places and offsets, so only an induction circuit (find the earlier occurrence, predict what followed it) can
    predict them; about `copy_prob` of the tokens are predictable that way and none otherwise."""
    n = seq_len + 1
    rows = torch.randint(vocab, (batch, n), generator=gen)
    # every random draw is made up front (one call each), so the Python loop only moves slices
    lens = torch.randint(4, 17, (batch, n // 4 + 1), generator=gen).tolist()
    copy = (torch.rand(batch, n // 4 + 1, generator=gen) < copy_prob).tolist()
    src = torch.rand(batch, n // 4 + 1, generator=gen).tolist()
    for r in range(batch):
        pos = lens[r][0]
        for seg, c, u in zip(lens[r][1:], copy[r][1:], src[r][1:], strict=True):
            if pos >= n:
                break
            seg = min(seg, n - pos, pos)
            if c:
                start = int(u * (pos - seg + 1))
                rows[r, pos : pos + seg] = rows[r, start : start + seg].clone()
            pos += seg
    return rows


def repeated_random_tokens(batch: int, rep_len: int, vocab: int, seed: int) -> torch.Tensor:
    """(batch, 2·rep_len) rows ``r r`` where r holds `rep_len` distinct random tokens (so every match is unique)."""
    gen = torch.Generator().manual_seed(seed)
    r = torch.rand(batch, vocab, generator=gen).argsort(1)[:, :rep_len]
    return torch.cat([r, r], 1)


@torch.no_grad()
def attention_patterns(model: GPT, tokens: torch.Tensor) -> list[torch.Tensor]:
    """Per layer, the (batch, head, query, key) attention probabilities on `tokens` (the cache's
    ``blocks.{i}.attn.hook_pattern``)."""
    _, cache = model.run_with_cache(tokens)
    return [cache[act_name(i, "attn.hook_pattern")] for i in range(model.cfg.n_layer)]


@torch.no_grad()
def head_scores(model: GPT, tokens: torch.Tensor, queries: torch.Tensor | None = None) -> dict[str, float]:
    """Every head's prefix-matching, previous-token and copying scores (see module docstring) on ``r r`` rows.

    `queries`: the positions of the second copy whose prefix matching is averaged (default: all but its last);
    e.g. only the tokens that end an item, when what follows an item's earlier occurrence is its label."""
    n = tokens.shape[1] // 2
    pats = attention_patterns(model, tokens)
    # the last query's "next" token would be the second copy's first token
    q = torch.arange(n, 2 * n - 1) if queries is None else queries
    if q.numel() == 0 or int(q.min()) < n or int(q.max()) > 2 * n - 2:
        raise ValueError(f"queries must lie in the second copy, {n} … {2 * n - 2}")
    out: dict[str, float] = {}
    W_U = model.lm_head.weight.T  # (C, vocab)
    for i, (blk, pat) in enumerate(zip(cast(list[Block], model.blocks), pats, strict=True)):  # pat: (B, H, T, T)
        prefix = pat[:, :, q, q - n + 1].mean((0, 2))
        prev = pat[:, :, torch.arange(1, 2 * n), torch.arange(0, 2 * n - 1)].mean((0, 2))
        C, H = model.cfg.n_embd, model.cfg.n_head
        D = C // H
        W_V = blk.attn.qkv.weight[2 * C :].T  # (C, C): residual → all heads' values
        W_O = blk.attn.proj.weight.T  # (C, C): all heads' values → residual
        for h in range(H):
            # nonzero eigenvalues of W_E W_V W_O W_U equal those of the (C, C) product W_V W_O W_U W_E
            ov = W_V[:, h * D : (h + 1) * D] @ W_O[h * D : (h + 1) * D] @ W_U @ model.wte.weight
            lam = torch.linalg.eigvals(ov.double())
            out[score_key(i, h, "prefix_matching")] = float(prefix[h])
            out[score_key(i, h, "previous_token")] = float(prev[h])
            out[score_key(i, h, "copying")] = float(lam.real.sum() / lam.abs().sum().clamp(min=1e-30))
    return out


def score_key(layer: int, head: int, score: str) -> str:
    """The history column (and series metric) of one head score, e.g. ``blocks.1.attn.head3.prefix_matching``."""
    return f"{head_name(layer, head)}.{score}"


def parse_score_key(key: str) -> tuple[int, int, str] | None:
    """(layer, head, score) of a key made by `score_key`; None for any other column."""
    head, _, score = key.rpartition(".")
    parsed = parse_head_name(head)
    return None if parsed is None else (*parsed, score)


@torch.no_grad()
def icl_score(model: GPT, rows: torch.Tensor) -> tuple[float, float]:
    """(ICL score, mean loss): loss at the late position minus at the early one, and over all positions (nats)."""
    logits = model(rows[:, :-1]).float()
    loss = F.cross_entropy(logits.transpose(1, 2), rows[:, 1:], reduction="none").mean(0)  # per position
    early, late = icl_positions(rows.shape[1] - 1)
    return float(loss[late] - loss[early]), float(loss.mean())


def train_induction(cfg: InductionConfig, progress: InductionProgress | None = None,
                    out_dir: Path | None = None) -> InductionTraining:
    """Train one model and score it at `cfg.checkpoints` log-spaced steps; the history is returned, not stored.

    With `out_dir`, each scored step is also saved as a checkpoint `out_dir/step-000123/` (safetensors +
    config.json), a "model × step" ladder.
    """
    t0 = time.perf_counter()
    model = GPT(cfg.model_config(), torch.Generator().manual_seed(cfg.seed)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    gen = torch.Generator().manual_seed(cfg.seed)
    held_out = segment_batch(cfg.eval_rows, cfg.seq_len, cfg.vocab_size, torch.Generator().manual_seed(cfg.seed + 1))
    rep = repeated_random_tokens(64, cfg.rep_len, cfg.vocab_size, cfg.seed + 2)
    to_log = set(log_steps(cfg.steps, cfg.checkpoints))
    use_bf16 = cpu_has_bf16() if cfg.bf16 is None else cfg.bf16
    rows: list[dict[str, float]] = []
    window: list[torch.Tensor] = []
    for step in range(1, cfg.steps + 1):
        batch = segment_batch(cfg.batch_size, cfg.seq_len, cfg.vocab_size, gen)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.float().transpose(1, 2), batch[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        window.append(loss.detach())
        if step not in to_log:
            continue
        model.eval()
        icl, val = icl_score(model, held_out)
        scores = head_scores(model, rep)
        model.train()
        # the training loss is averaged over the steps since the last checkpoint, so the curve is not one batch's noise
        row = {"step": float(step), "train_loss": float(torch.stack(window).mean()), "val_loss": val,
               "icl_score": icl, "induction_score": induction_score(scores, cfg.n_layer), **scores,
               "wall_s": time.perf_counter() - t0}
        window.clear()
        rows.append(row)
        if out_dir is not None:
            save_checkpoint(model, out_dir / f"step-{step:06d}",
                            {"step": step, "tokens": step * cfg.batch_size * cfg.seq_len, "val_loss": val,
                             "seed": cfg.seed})
        if progress is not None:
            progress(step, cfg.steps, row)
    return InductionTraining(history=pd.DataFrame(rows), wall_s=time.perf_counter() - t0, model=model.eval())


def induction_score(scores: dict[str, float], n_layer: int) -> float:
    """Best prefix-matching score of any head that could be an induction head (layer ≥ 1; layer 0 if only one)."""
    first = 1 if n_layer > 1 else 0
    return max(v for k, v in scores.items()
               if (p := parse_score_key(k)) is not None and p[2] == "prefix_matching" and p[0] >= first)
