"""Training tokens/s of `emergentlab.train.train` vs a plain nanoGPT-style loop, and FLOP/s vs a matmul peak.

Baseline: fp32, eager, manual (masked softmax) attention, non-fused AdamW, same model shape, batch and data,
measured in the same process, so the ratio holds on a shared, noisy machine. Also measures what torch.compile
costs (compile seconds) and gives (steady tokens/s). Writes benchmarks/results/train_throughput.md.

    python benchmarks/train_throughput.py [--steps 60]
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _machine import cpu_model
from torch import nn

from emergentlab.models.tiny import GPT, GPTConfig
from emergentlab.tasks import train_lines
from emergentlab.train import TrainConfig, cpu_has_bf16, train
from emergentlab.train.loop import _batches, pack_rows

SHAPES = [GPTConfig(block_size=64, n_layer=3, n_head=4, n_embd=128),
          GPTConfig(block_size=128, n_layer=4, n_head=4, n_embd=256)]


class NanoAttention(nn.Module):
    def __init__(self, c: GPTConfig) -> None:
        super().__init__()
        self.c_attn, self.c_proj = nn.Linear(c.n_embd, 3 * c.n_embd), nn.Linear(c.n_embd, c.n_embd)
        self.n_head = c.n_head
        self.register_buffer("bias", torch.tril(torch.ones(c.block_size, c.block_size)).view(1, 1, c.block_size, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = F.softmax(att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf")), dim=-1)
        return self.c_proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))


class NanoBlock(nn.Module):
    def __init__(self, c: GPTConfig) -> None:
        super().__init__()
        self.ln_1, self.attn, self.ln_2 = nn.LayerNorm(c.n_embd), NanoAttention(c), nn.LayerNorm(c.n_embd)
        self.mlp = nn.Sequential(nn.Linear(c.n_embd, c.d_mlp), nn.GELU(), nn.Linear(c.d_mlp, c.n_embd))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class NanoGPT(nn.Module):
    def __init__(self, c: GPTConfig) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(c.vocab_size, c.n_embd), nn.Embedding(c.block_size, c.n_embd)
        self.h, self.ln_f = nn.ModuleList(NanoBlock(c) for _ in range(c.n_layer)), nn.LayerNorm(c.n_embd)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for b in self.h:
            x = b(x)
        return self.lm_head(self.ln_f(x))


def baseline_tokens_per_s(c: GPTConfig, tcfg: TrainConfig, lines: list[str], warm: int) -> float:
    torch.manual_seed(0)
    model = NanoGPT(c)
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, betas=(0.9, 0.99), weight_decay=0.1)
    import random

    batches = _batches([[ord(ch) for ch in s] for s in lines], tcfg, random.Random(0))
    t0 = 0.0
    for step in range(tcfg.steps):
        if step == warm:
            t0 = time.perf_counter()
        rows = next(batches)
        x, y = rows[:, :-1].clamp(min=0), rows[:, 1:]
        loss = F.cross_entropy(model(x).reshape(-1, c.vocab_size), y.reshape(-1), ignore_index=-1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return (tcfg.steps - warm) * tcfg.batch_size * tcfg.block_size / (time.perf_counter() - t0)


def ours_tokens_per_s(c: GPTConfig, tcfg: TrainConfig, lines: list[str], warm: int) -> float:
    stamps: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as d:
        train(c, tcfg, lines, Path(d), progress=lambda s, t, i: stamps.__setitem__(s, time.perf_counter()))
    # the last step also measures validation loss and saves, so it is left out of the timing
    timed = tcfg.steps - 1 - warm
    return timed * tcfg.batch_size * tcfg.block_size / (stamps[tcfg.steps - 1] - stamps[warm])


def compiled_tokens_per_s(c: GPTConfig, tcfg: TrainConfig, lines: list[str], warm: int, bf16: bool
                          ) -> tuple[float, float]:
    """(compile seconds, steady tokens/s) of our model under torch.compile, bf16 autocast as in `train`."""
    import random

    torch.manual_seed(0)
    model = GPT(c)
    step_model = torch.compile(model)
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, fused=True)
    rows = pack_rows([[ord(ch) for ch in s] for s in lines[:2000]], tcfg.block_size)
    rng = random.Random(0)
    t_start = time.perf_counter()
    t0 = compile_s = 0.0
    for step in range(tcfg.steps):
        if step == 1:
            compile_s = time.perf_counter() - t_start
        if step == warm:
            t0 = time.perf_counter()
        b = rows[rng.sample(range(len(rows)), tcfg.batch_size)]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = step_model(b[:, :-1].clamp(min=0))
        loss = F.cross_entropy(logits.float().reshape(-1, c.vocab_size), b[:, 1:].reshape(-1), ignore_index=-1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return compile_s, (tcfg.steps - warm) * tcfg.batch_size * tcfg.block_size / (time.perf_counter() - t0)


def matmul_peak(dtype: torch.dtype, n: int = 1024, reps: int = 30) -> float:
    """FLOP/s of an n×n×n matmul, best of `reps` (what this machine's BLAS / oneDNN can do right now)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    best = math.inf
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def flops_per_token(c: GPTConfig, block: int) -> float:
    """Training FLOPs per token: 6·N (N all parameters) + attention scores and mixing, 6·2·L·T·d (PaLM, App. B)."""
    return 6 * GPT(c).num_params() + 12 * c.n_layer * block * c.n_embd


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warm", type=int, default=10)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "train_throughput.md")
    args = ap.parse_args()
    lines = train_lines(["add3"], 20000, seed=0)
    bf16 = cpu_has_bf16()
    peak32, peak16 = matmul_peak(torch.float32), matmul_peak(torch.bfloat16)
    rows = []
    for c in SHAPES:
        tcfg = TrainConfig(tokens=args.steps * 32 * c.block_size, batch_size=32, block_size=c.block_size)
        base = baseline_tokens_per_s(c, tcfg, lines, args.warm)
        ours = ours_tokens_per_s(c, tcfg, lines, args.warm)
        ours32 = ours_tokens_per_s(c, TrainConfig(**{**tcfg.__dict__, "bf16": False}), lines, args.warm)
        comp_s, comp = compiled_tokens_per_s(c, tcfg, lines, args.warm, bf16)
        fpt = flops_per_token(c, c.block_size)
        rows.append((c, base, ours32, ours, comp_s, comp, fpt))
        print(c, f"base {base:.0f} ours-fp32 {ours32:.0f} ours {ours:.0f} compiled {comp:.0f} (+{comp_s:.0f}s)")
    n_threads = torch.get_num_threads()
    md = [
        "# Training throughput", "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {cpu_model()}, {n_threads} torch threads, torch {torch.__version__}, native bf16: {bf16}",
        f"- matmul peak (1024³, best of 30): fp32 {peak32 / 1e9:.1f} GFLOP/s, bf16 {peak16 / 1e9:.1f} GFLOP/s",
        f"- {args.steps} steps of batch 32, the first {args.warm} not timed; data: add3 lines. "
        "All numbers from one run of `python benchmarks/train_throughput.py`; the machine is shared, "
        "so read the ratios, not the absolutes.",
        "",
        "| model (L, d, T) | params | nanoGPT fp32 eager tok/s | ours fp32 tok/s | ours (bf16 autocast) tok/s | "
        "ours / nanoGPT | ours GFLOP/s | % of bf16 peak | % of fp32 peak | torch.compile tok/s (compile s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c, base, ours32, ours, comp_s, comp, fpt in rows:
        fl = ours * fpt
        md.append(f"| {c.n_layer}, {c.n_embd}, {c.block_size} | {GPT(c).num_params():,} | {base:,.0f} | "
                  f"{ours32:,.0f} | {ours:,.0f} | **{ours / base:.2f}×** | {fl / 1e9:.1f} | "
                  f"{100 * fl / peak16:.0f} % | "
                  f"{100 * fl / peak32:.0f} % | {comp:,.0f} ({comp_s:.0f} s) |")
    md += ["", "FLOPs per token = 6·N + 12·L·T·d (N all parameters; attention scores and mixing, PaLM App. B)."]
    args.out.write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
