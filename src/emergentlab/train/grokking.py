"""Grokking (Power et al. 2022) on a ∘ b mod p, in the set-up of Nanda et al. 2023, trained full-batch on a CPU.

Each example is the three tokens ``a b =`` (ids a, b and p) and the label is ``a ∘ b mod p``, predicted at the
``=`` position. The whole table of pairs is split once by the seed; every step is one AdamW step on the whole
training split. On a log-step schedule the run logs train/val loss (nats) and accuracy, the L2 norm of all weights,
and the Fourier sparsity of the token embedding (Nanda et al.'s "key frequencies"), then locates the memorisation
point and the generalisation jump with `emergentlab.analysis.dynamics` (definitions there).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from emergentlab.analysis.dynamics import Jump, first_step_at, locate_jump
from emergentlab.models.tiny import GPT, Block, GPTConfig
from emergentlab.store import Store
from emergentlab.train.loop import cpu_has_bf16, torch_threads

Op = Literal["+", "-", "*", "/"]
OPS: dict[str, str] = {"+": "add", "-": "sub", "*": "mul", "/": "div"}
MEMORISED_ACC = 0.99  # train accuracy that marks the memorisation point

# Called at every logged step with (step, total_steps, row); row holds the logged metrics of that step.
GrokProgress = Callable[[int, int, dict[str, float]], None]


@dataclass
class GrokConfig:
    """One grokking run. Defaults: Nanda et al. 2023's model, AdamW with their betas and weight decay 1, at p = 97
    with 30 % of pairs for training; lr 3e-3 (Nanda et al. use 1e-3) so the jump comes within ~4 000 steps, a few
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
    seed: int = 0
    bf16: bool | None = None  # autocast the forward pass to bf16; None: only where the CPU has native bf16 kernels
    threads: int = 1  # torch intra-op threads (0 keeps torch's default); one is fastest for models this small
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
        return f"p{self.p}-{OPS[self.op]}-wd{self.weight_decay:g}-frac{self.train_frac:g}-seed{self.seed}"


@dataclass
class GrokResult:
    """A finished run: `history` has one row per logged step (columns below), plus the located events."""

    config: GrokConfig
    history: pd.DataFrame  # step, train_loss, train_acc, val_loss, val_acc, weight_norm, fourier_sparsity, wall_s
    memorisation_step: float | None  # first logged step with train accuracy ≥ MEMORISED_ACC
    jump: Jump | None  # generalisation jump of val accuracy (None if it rose < 0.5)
    key_frequencies: list[int]  # the top-k frequencies of the final embedding (1 … (p − 1)/2)
    wall_s: float
    model: GPT = field(repr=False)

    @property
    def final(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.history.iloc[-1].items()}


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


def build_model(cfg: GrokConfig) -> GPT:
    """Nanda et al.'s shape and initialisation: no LayerNorm, untied unembedding, every weight N(0, 1/d_model)
    except the unembedding's N(0, 1/vocab); vocabulary is 0 … p − 1 plus ``=``. (The MLP uses GELU, not ReLU.)

    The scale matters: from the GPT-2 init (std 0.02) the model generalises slowly alongside memorising, with no
    grokking delay; from this one it memorises within a few hundred steps and generalises much later.
    """
    torch.manual_seed(cfg.seed)
    model = GPT(GPTConfig(vocab_size=cfg.p + 1, block_size=3, n_layer=cfg.n_layer, n_head=cfg.n_head,
                          n_embd=cfg.n_embd, d_mlp=cfg.d_mlp, layernorm=False, tie_weights=False))
    with torch.no_grad():
        for name, w in model.named_parameters():
            w.normal_(0.0, 1 / math.sqrt(cfg.p + 1 if name == "lm_head.weight" else cfg.n_embd))
    return model


def logged_steps(cfg: GrokConfig) -> list[int]:
    """Log-spaced steps (cfg.log_points of them) plus every cfg.log_every steps, and the last step."""
    logs = {max(1, round(cfg.steps ** (i / max(1, cfg.log_points - 1)))) for i in range(cfg.log_points)}
    lin = set(range(cfg.log_every, cfg.steps + 1, cfg.log_every)) if cfg.log_every > 0 else set()
    return sorted(logs | lin | {cfg.steps})


def grok_logits(model: GPT, x: torch.Tensor) -> torch.Tensor:
    """Logits (N, p + 1) at the ``=`` position of rows ``a b =``; equal to ``model(x)[:, -1]``, computed cheaply.

    In a one-layer model the residual stream entering the attention at positions 0 and 1 depends only on (token,
    position), and the query at position 2 is the same for every row (it is always ``=``). So keys, values and
    attention scores are computed once per vocabulary entry and gathered per row, and the MLP and unembedding run on
    the ``=`` position only: about a third of the full forward's work, with the same gradients. Deeper models take
    the full forward.
    """
    if model.cfg.n_layer != 1:
        return model.lm_head(model.hidden(x)[:, -1])
    blk, C = cast(Block, model.blocks[0]), model.cfg.n_embd
    H = model.cfg.n_head
    D = C // H
    pos = model.wpe.weight
    eq = x[0, 2]
    r0, r1, r2 = model.wte.weight + pos[0], model.wte.weight + pos[1], model.wte.weight[eq] + pos[2]
    qkv0, qkv1 = blk.attn.qkv(blk.ln_1(r0)), blk.attn.qkv(blk.ln_1(r1))
    qkv2 = blk.attn.qkv(blk.ln_1(r2[None]))[0]
    q = qkv2[:C].view(H, D) / math.sqrt(D)
    k0, v0 = qkv0[:, C : 2 * C].view(-1, H, D), qkv0[:, 2 * C :].view(-1, H, D)
    k1, v1 = qkv1[:, C : 2 * C].view(-1, H, D), qkv1[:, 2 * C :].view(-1, H, D)
    k2, v2 = qkv2[C : 2 * C].view(H, D), qkv2[2 * C :].view(H, D)
    a, b = x[:, 0], x[:, 1]
    s0, s1, s2 = (k0 * q).sum(-1), (k1 * q).sum(-1), (k2 * q).sum(-1)  # (V, H), (V, H), (H,)
    w = torch.stack([s0[a], s1[b], s2.expand(len(x), H)], -1).softmax(-1)  # (N, H, 3)
    out = w[..., 0, None] * v0[a] + w[..., 1, None] * v1[b] + w[..., 2, None] * v2
    h = r2 + blk.attn.proj(out.reshape(len(x), C))
    if blk.mlp is not None:
        h = h + blk.mlp(blk.ln_2(h))
    return model.lm_head(model.ln_f(h))


def run_grokking(cfg: GrokConfig | None = None, store: Store | None = None, study: str = "dynamics",
                 progress: GrokProgress | None = None, run: str | None = None) -> GrokResult:
    """Train one grokking run; if `store` is given, every logged metric goes to its series table.

    Series rows are (study, "grokking", run, step, metric, value) with `run` defaulting to `cfg.run_name`
    (e.g. "p97-add-wd1-frac0.3-seed0") and metrics train_loss, val_loss (nats), train_acc, val_acc (0–1),
    weight_norm, fourier_sparsity, wall_s.
    """
    cfg = cfg or GrokConfig()
    with torch_threads(cfg.threads):
        result = _run(cfg, progress)
    if store is not None:
        put_history(store, study, "grokking", run or cfg.run_name, result.history)
    return result


def put_history(store: Store, study: str, experiment: str, run: str, history: pd.DataFrame) -> None:
    """Every non-step column of `history` as series rows (study, experiment, run, step, metric, value)."""
    long = history.melt(id_vars="step", var_name="metric", value_name="value").dropna()
    store.put_series((study, experiment, run, float(s), str(m), float(v))
                     for s, m, v in long[["step", "metric", "value"]].itertuples(index=False))


def _run(cfg: GrokConfig, progress: GrokProgress | None) -> GrokResult:
    t0 = time.perf_counter()
    x, y = modular_dataset(cfg.p, cfg.op)
    tr, va = split_indices(len(x), cfg.train_frac, cfg.seed)
    x_tr, y_tr, x_va, y_va = x[tr], y[tr], x[va], y[va]
    model = build_model(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            betas=(cfg.beta1, cfg.beta2), fused=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup_steps)))
    use_bf16 = cpu_has_bf16() if cfg.bf16 is None else cfg.bf16
    to_log = set(logged_steps(cfg))
    rows: list[dict[str, float]] = []
    for step in range(1, cfg.steps + 1):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            logits = grok_logits(model, x_tr)
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
            vl = grok_logits(model, x_va).float()
        sparsity, _ = fourier_sparsity(model.wte.weight[: cfg.p], cfg.p, cfg.top_k_freqs)
        row |= {"val_loss": float(F.cross_entropy(vl, y_va)), "val_acc": float((vl.argmax(-1) == y_va).float().mean()),
                "weight_norm": weight_norm(model), "fourier_sparsity": sparsity,
                "wall_s": time.perf_counter() - t0}
        rows.append(row)
        if progress is not None:
            progress(step, cfg.steps, row)
        if cfg.stop_val_acc is not None and row["val_acc"] >= cfg.stop_val_acc:
            break
    hist = pd.DataFrame(rows)
    _, key = fourier_sparsity(model.wte.weight[: cfg.p], cfg.p, cfg.top_k_freqs)
    return GrokResult(config=cfg, history=hist, **locate_grokking(hist), key_frequencies=key,
                      wall_s=time.perf_counter() - t0, model=model.eval())


def locate_grokking(history: pd.DataFrame) -> dict[str, Any]:
    """Memorisation point and generalisation jump of a history with step, train_acc and val_acc columns."""
    return {"memorisation_step": first_step_at(history["step"], history["train_acc"], MEMORISED_ACC),
            "jump": locate_jump(history["step"], history["val_acc"], min_rise=0.5)}


def sweep_configs(base: GrokConfig, weight_decays: tuple[float, ...], train_fracs: tuple[float, ...]
                  ) -> list[GrokConfig]:
    """`base` with every (weight decay, train fraction) pair, weight decay varying slowest."""
    return [replace(base, weight_decay=wd, train_frac=frac) for wd in weight_decays for frac in train_fracs]


def sweep_table(results: list[GrokResult]) -> pd.DataFrame:
    """One row per run with where the jump landed.

    Columns: run, weight_decay, train_frac, memorisation_step, jump_step, jump_width, jump_sharpness (NaN when
    val accuracy never rose by 0.5: the jump vanished within the budget), final_val_acc (0–1), steps, wall_s.
    """
    def row(res: GrokResult) -> dict[str, Any]:
        j, c = res.jump, res.config
        return {"run": c.run_name, "weight_decay": c.weight_decay, "train_frac": c.train_frac,
                "memorisation_step": res.memorisation_step if res.memorisation_step is not None else np.nan,
                "jump_step": j.step if j else np.nan, "jump_width": j.width if j else np.nan,
                "jump_sharpness": j.sharpness if j else np.nan, "final_val_acc": res.final["val_acc"],
                "steps": res.final["step"], "wall_s": res.wall_s}

    return pd.DataFrame([row(r) for r in results])


def sweep_grokking(base: GrokConfig | None = None, weight_decays: tuple[float, ...] = (0.0, 0.3, 1.0),
                   train_fracs: tuple[float, ...] = (0.3, 0.5), store: Store | None = None,
                   study: str = "dynamics", progress: Callable[[GrokConfig, GrokResult], None] | None = None
                   ) -> pd.DataFrame:
    """Run every config of `sweep_configs` (into `store` if given) and return their `sweep_table`."""
    results = []
    for cfg in sweep_configs(base or GrokConfig(), weight_decays, train_fracs):
        res = run_grokking(cfg, store=store, study=study)
        if progress is not None:
            progress(cfg, res)
        results.append(res)
    return sweep_table(results)
