"""Training for grokking (Power et al. 2022) on a ∘ b mod p, in the set-up of Nanda et al. 2023, full-batch on a CPU.

Each example is the three tokens ``a b =`` (ids a, b and p) and the label is ``a ∘ b mod p``, predicted at the
``=`` position. The whole table of pairs is split once by the seed; every step is one AdamW step on the whole
training split. At the steps of `GrokConfig.logged_steps` the run logs train/val loss (nats) and accuracy, the L2
norm of all weights, and the Fourier sparsity of the token embedding (Nanda et al.'s "key frequencies"), and returns
them as a history; locating the memorisation point and the jump is `emergentlab.analysis.dynamics`'s job.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd
import torch
import torch.nn.functional as F

from emergentlab.models.tiny import GPT, GPTConfig
from emergentlab.train.loop import cpu_has_bf16, log_steps

Op = Literal["+", "-", "*", "/"]
OPS: dict[str, str] = {"+": "add", "-": "sub", "*": "mul", "/": "div"}

# Called at every logged step with (step, total_steps, row); row holds the logged metrics of that step.
GrokProgress = Callable[[int, int, dict[str, float]], None]


@dataclass
class GrokConfig:
    """One grokking run. Defaults: Nanda et al. 2023's model, AdamW with their betas and weight decay 1, at p = 97
    with 30 % of pairs for training; lr 3e-3 (Nanda et al. use 1e-3) so the jump comes within a few thousand steps,
    minutes on one CPU core (benchmarks/results/grokking.md)."""

    p: int = 97  # the modulus (a prime, so every b ≠ 0 has an inverse for "/")
    op: Op = "+"
    train_frac: float = 0.3  # share of the (a, b) table used for training
    steps: int = 6000  # full-batch AdamW steps
    lr: float = 3e-3
    weight_decay: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.98
    warmup_steps: int = 10  # linear lr warm-up, as Nanda et al.
    n_layer: int = 1
    n_head: int = 4
    n_embd: int = 128
    d_mlp: int = 512
    seed: int = 0  # draws the train/validation split and the initial weights
    bf16: bool | None = None  # autocast the forward pass to bf16; None: only where the CPU has native bf16 kernels
    log_points: int = 100  # log-spaced logged steps ...
    log_every: int = 100  # ... plus every this many steps, so late jumps are resolved too
    stop_val_acc: float | None = None  # stop at the first logged step whose val accuracy reaches this
    top_k_freqs: int = 5  # embedding Fourier sparsity = share of its squared norm in its top-k frequencies

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"op must be one of {', '.join(OPS)}, got {self.op!r}")
        if self.p < 3 or any(self.p % d == 0 for d in range(2, math.isqrt(self.p) + 1)):
            raise ValueError(f"p must be a prime ≥ 3, got {self.p}")
        if not 0 < self.train_frac < 1:
            raise ValueError(f"train_frac must be in (0, 1), got {self.train_frac}")
        if self.steps < 1:
            raise ValueError(f"steps must be positive, got {self.steps}")

    @property
    def run_name(self) -> str:
        """A readable key for the run (its values are stored as typed config beside it, never parsed from this)."""
        return f"p{self.p}-{OPS[self.op]}-wd{self.weight_decay:g}-frac{self.train_frac:g}-seed{self.seed}"

    def model_config(self) -> GPTConfig:
        """Nanda et al.'s shape: no LayerNorm, untied unembedding, their initialisation; vocabulary 0 … p − 1 and
        ``=``. (The MLP uses GELU, not ReLU.)"""
        return GPTConfig(vocab_size=self.p + 1, block_size=3, n_layer=self.n_layer, n_head=self.n_head,
                         n_embd=self.n_embd, d_mlp=self.d_mlp, layernorm=False, tie_weights=False, init="nanda")

    def logged_steps(self) -> list[int]:
        return log_steps(self.steps, self.log_points, self.log_every)


@dataclass
class GrokTraining:
    """A finished run: `history` has one row per logged step."""

    history: pd.DataFrame  # step, train_loss, train_acc, val_loss, val_acc, weight_norm, fourier_sparsity, wall_s
    key_frequencies: list[int]  # the top-k frequencies of the final embedding (1 … (p − 1)/2)
    wall_s: float
    model: GPT = field(repr=False)


def modular_dataset(p: int, op: Op) -> tuple[torch.Tensor, torch.Tensor]:
    """The complete table: inputs (N, 3) rows ``a b =`` (``=`` is token p) and labels (N,) = a ∘ b mod p.

    N = p² for +, −, ×; for ÷ the divisor runs over 1 … p − 1 (N = p(p − 1)), with a ÷ b = a · b^(p−2) mod p.
    """
    if op not in OPS:
        raise ValueError(f"op must be one of {', '.join(OPS)}, got {op!r}")
    a = torch.arange(p).repeat_interleave(p)
    b = torch.arange(p).repeat(p)
    if op == "/":
        a, b = a[b != 0], b[b != 0]
    if op == "+":
        y = (a + b) % p
    elif op == "-":
        y = (a - b) % p
    elif op == "*":
        y = (a * b) % p
    else:
        inv = torch.tensor([pow(int(v), p - 2, p) for v in range(p)])
        y = (a * inv[b]) % p
    x = torch.stack([a, b, torch.full_like(a, p)], 1)
    return x, y


def split_indices(n: int, train_frac: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Disjoint train / validation indices covering 0 … n − 1: a seeded permutation cut at round(n · train_frac)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    k = round(n * train_frac)
    return perm[:k].sort().values, perm[k:].sort().values


def fourier_norms(embed: torch.Tensor, p: int) -> torch.Tensor:
    """Squared norm of the (p, d) token embedding in each frequency k = 1 … (p − 1)/2 of the Fourier basis of Z_p.

    The basis vectors are cos(2πkx/p) and sin(2πkx/p) over x = 0 … p − 1, normalised; frequency k's norm is the sum
    over both. The constant component (k = 0) is left out: it carries no information about x.
    """
    x = torch.arange(p, dtype=torch.float64)
    k = torch.arange(1, (p - 1) // 2 + 1, dtype=torch.float64)
    ang = 2 * math.pi * k[:, None] * x[None, :] / p
    basis = torch.cat([ang.cos(), ang.sin()]) * math.sqrt(2 / p)  # orthonormal rows
    coef = basis @ embed.detach().double()  # (2K, d)
    sq = (coef**2).sum(1)
    return (sq[: len(k)] + sq[len(k):]).float()


def fourier_sparsity(embed: torch.Tensor, p: int, top_k: int) -> tuple[float, list[int]]:
    """Share (0–1) of the embedding's non-constant squared norm in its `top_k` strongest frequencies, and those."""
    norms = fourier_norms(embed, p)
    top = norms.topk(min(top_k, len(norms)))
    return float(top.values.sum() / norms.sum().clamp(min=1e-30)), sorted(int(i) + 1 for i in top.indices)


def weight_norm(model: torch.nn.Module) -> float:
    """L2 norm of all parameters together (what weight decay shrinks)."""
    return float(torch.sqrt(torch.stack([(q.detach().float() ** 2).sum() for q in model.parameters()]).sum()))


def train_grokking(cfg: GrokConfig, progress: GrokProgress | None = None) -> GrokTraining:
    """Train one grokking run from the weights `cfg.seed` draws; the history is returned, not stored."""
    t0 = time.perf_counter()
    x, y = modular_dataset(cfg.p, cfg.op)
    tr, va = split_indices(len(x), cfg.train_frac, cfg.seed)
    x_tr, y_tr, x_va, y_va = x[tr], y[tr], x[va], y[va]
    model = GPT(cfg.model_config(), torch.Generator().manual_seed(cfg.seed)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            betas=(cfg.beta1, cfg.beta2), fused=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup_steps)))
    use_bf16 = cpu_has_bf16() if cfg.bf16 is None else cfg.bf16
    to_log = set(cfg.logged_steps())
    rows: list[dict[str, float]] = []
    for step in range(1, cfg.steps + 1):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            logits = model.last_logits(x_tr)
        loss = F.cross_entropy(logits.float(), y_tr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step not in to_log:
            continue
        # train metrics are those of the batch this step trained on (weights before the update), like any loop
        row = {"step": float(step), "train_loss": float(loss.detach()),
               "train_acc": float((logits.argmax(-1) == y_tr).float().mean())}
        with torch.no_grad():
            vl = model.last_logits(x_va).float()
        sparsity, _ = fourier_sparsity(model.wte.weight[: cfg.p], cfg.p, cfg.top_k_freqs)
        row |= {"val_loss": float(F.cross_entropy(vl, y_va)), "val_acc": float((vl.argmax(-1) == y_va).float().mean()),
                "weight_norm": weight_norm(model), "fourier_sparsity": sparsity,
                "wall_s": time.perf_counter() - t0}
        rows.append(row)
        if progress is not None:
            progress(step, cfg.steps, row)
        if cfg.stop_val_acc is not None and row["val_acc"] >= cfg.stop_val_acc:
            break
    _, key = fourier_sparsity(model.wte.weight[: cfg.p], cfg.p, cfg.top_k_freqs)
    return GrokTraining(history=pd.DataFrame(rows), key_frequencies=key, wall_s=time.perf_counter() - t0,
                        model=model.eval())
