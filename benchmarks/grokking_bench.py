"""Grokking and induction heads on this CPU: how fast the loop is, and whether the goals of issue 7 are met.

1. Steps/s of one full-batch grokking step (p = 97, +, 30 % train, Nanda et al.'s model) in four variants,
   interleaved over rounds in this one process so the ratios hold on a shared machine: the baseline is a plain
   PyTorch loop (full forward `model(x)[:, -1]`, fp32, default AdamW); ours is `GPT.last_logits` (keys, values and
   scores per vocabulary entry, MLP only at the ``=`` position) with fused AdamW, in fp32 and bf16 autocast; at 1
   and 2 torch threads.
2. The default `emergentlab grok` run until validation accuracy > 95 %: wall time, memorisation step, the jump.
3. Induction heads: 1- and 2-layer attention-only models with the default `InductionConfig`: the phase change
   (induction-score jump), the ICL-score drop and the validation-loss drop, in steps and seconds.

Writes benchmarks/results/grokking.md.    python benchmarks/grokking_bench.py [--rounds 3] [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from _machine import write_result  # noqa: E402

from emergentlab.experiments import grokking, induction  # noqa: E402
from emergentlab.models.tiny import GPT  # noqa: E402
from emergentlab.train.grokking import GrokConfig, modular_dataset, split_indices  # noqa: E402
from emergentlab.train.induction import InductionConfig  # noqa: E402
from emergentlab.train.loop import cpu_has_bf16  # noqa: E402

VARIANTS = {  # name → (fast logits, bf16 autocast, fused AdamW)
    "plain loop, fp32 (baseline)": (False, False, False),
    "plain loop, bf16": (False, True, False),
    "ours (last_logits, fused AdamW), fp32": (True, False, True),
    "ours (last_logits, fused AdamW), bf16": (True, True, True),
}


def step_fn(cfg: GrokConfig, fast: bool, bf16: bool, fused: bool) -> Callable[[], None]:
    x, y = modular_dataset(cfg.p, cfg.op)
    tr, _ = split_indices(len(x), cfg.train_frac, cfg.seed)
    xt, yt = x[tr], y[tr]
    model = GPT(cfg.model_config(), torch.Generator().manual_seed(cfg.seed)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            betas=(cfg.beta1, cfg.beta2), fused=fused)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model.last_logits(xt) if fast else model(xt)[:, -1]
        loss = F.cross_entropy(logits.float(), yt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def throughput(rounds: int, steps: int) -> pd.DataFrame:
    cfg = GrokConfig()
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        fns = {name: step_fn(cfg, *flags) for name, flags in VARIANTS.items()}
        for fn in fns.values():
            fn()  # warm-up: allocator, oneDNN kernels
        times: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(rounds):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                for _ in range(steps):
                    fn()
                times[name].append((time.perf_counter() - t0) / steps)
        base = statistics.median(times["plain loop, fp32 (baseline)"])
        for name, ts in times.items():
            med = statistics.median(ts)
            rows.append({"threads": threads, "variant": name, "ms/step (median)": 1e3 * med,
                         "steps/s": 1 / med, "× baseline": base / med})
    torch.set_num_threads(1)
    return pd.DataFrame(rows)


def grok_to_95() -> tuple[pd.DataFrame, str]:
    cfg = GrokConfig(stop_val_acc=0.95)
    torch.set_num_threads(grokking.THREADS)
    res = grokking.run(cfg)
    h, j = res.history, res.jump
    steps = int(h["step"].iloc[-1])
    table = pd.DataFrame([{
        "run": cfg.run_name, "bf16": cpu_has_bf16() if cfg.bf16 is None else cfg.bf16, "threads": grokking.THREADS,
        "steps to > 95 % val": f"{steps:,}", "wall to > 95 % val (s)": f"{res.wall_s:.0f}",
        "steps/s incl. logging": f"{steps / res.wall_s:.1f}", "memorised (step)": _steps(res.memorisation_step),
        "jump t₀.₅ (step)": _steps(j.step if j else None),
        "jump t₀.₁–t₀.₉ (steps)": f"{j.start:,.0f}–{j.end:,.0f}" if j else "—",
        "sharpness (t₀.₅ / width)": f"{j.sharpness:.2f}" if j else "—",
        "final val acc": f"{res.final['val_acc']:.1%}", "final train acc": f"{res.final['train_acc']:.1%}",
        "key frequencies": ", ".join(map(str, res.key_frequencies)),
        "Fourier sparsity at memorisation → end": _at(h, res.memorisation_step, "fourier_sparsity"),
        "weight norm at memorisation → end": _at(h, res.memorisation_step, "weight_norm"),
    }])
    every = h[(h["step"] % 250 == 0) | (h["step"] == steps)][
        ["step", "train_acc", "val_acc", "val_loss", "weight_norm", "fourier_sparsity", "wall_s"]]
    return table, every.to_markdown(index=False, floatfmt=(".0f", ".3f", ".3f", ".3g", ".3g", ".3f", ".0f"))


def _steps(x: float | None) -> str:
    return "—" if x is None else f"{x:,.0f}"


def _at(h: pd.DataFrame, step: float | None, col: str) -> str:
    start = h[col].iloc[0] if step is None else h.loc[h["step"] >= step, col].iloc[0]
    return f"{start:.3g} → {h[col].iloc[-1]:.3g}"


def wall_at(res: induction.InductionResult, step: float) -> float:
    """Seconds into the run at `step`, interpolated between logged checkpoints."""
    return float(np.interp(step, res.history["step"], res.history["wall_s"]))


def induction_runs() -> pd.DataFrame:
    rows = []
    torch.set_num_threads(induction.THREADS)
    for n_layer in (1, 2):
        res = induction.run(InductionConfig(n_layer=n_layer))
        last = res.history.iloc[-1]
        pm = {k.removesuffix(".prefix_matching"): float(v) for k, v in last.items()
              if str(k).endswith(".prefix_matching")}
        top = max(pm, key=pm.__getitem__)
        pc, icl, loss = res.phase_change, res.icl_drop, res.loss_drop
        rows.append({
            "model": res.config.run_name, "steps": res.config.steps, "wall (s)": f"{res.wall_s:.0f}",
            "phase change t₀.₅ (step)": _steps(pc.step if pc else None),
            "phase change t₀.₁–t₀.₉ (steps)": f"{pc.start:,.0f}–{pc.end:,.0f}" if pc else "—",
            "phase change done (t₀.₉) at (s)": f"{wall_at(res, pc.end):.0f}" if pc else "—",
            "ICL-score drop t₀.₅ (step)": _steps(icl.step if icl else None),
            "val-loss drop t₀.₅ (step)": _steps(loss.step if loss else None),
            "top head (final prefix matching)": f"{top} {pm[top]:.2f}",
            "its copying score": f"{float(last[f'{top}.copying']):+.2f}",
            "final induction score": f"{float(last['induction_score']):.2f}",
            "final ICL score (nats)": f"{float(last['icl_score']):+.3f}",
            "final val loss (nats)": f"{float(last['val_loss']):.3f}",
        })
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    t0 = time.perf_counter()
    thr = throughput(args.rounds, args.steps)
    print(thr.to_string(), flush=True)
    grok, grok_curve = grok_to_95()
    print(grok.T.to_string(), flush=True)
    ind = induction_runs()
    print(ind.T.to_string(), flush=True)
    path = write_result("grokking", f"""
torch {torch.__version__}, native bf16 kernels: {cpu_has_bf16()}; the machine was shared with other jobs (load
average {os.getloadavg()[0]:.1f} at the end), so absolute times are pessimistic; ratios are measured in one
process, interleaved over {args.rounds} rounds of {args.steps} steps. Whole script: {time.perf_counter() - t0:.0f} s.

## 1. Grokking step throughput (p = 97, +, 30 % train = 2 823 rows, full batch, 1 layer, d_model 128, d_mlp 512)

{thr.to_markdown(index=False, floatfmt=".3g")}

## 2. Default `emergentlab grok` run until validation accuracy > 95 % (goal: ≤ 10 min on 2 cores)

{grok.T.to_markdown(headers=["", "value"])}

Logged every 250 steps and at the stop:

{grok_curve}

## 3. Induction heads: 1- vs 2-layer attention-only (goal: phase change visible in ≤ 5 min)

Default `InductionConfig` (d_model 64, 4 heads, vocabulary 64, 64-token context, batch 32, lr 1e-3), one thread.

{ind.set_index("model").T.to_markdown(headers=["", *ind["model"]])}

Unigram loss is ln 64 = 4.159 nats; ICL score = loss at token 62 minus loss at token 6 (Olsson et al.'s 500 and 50
of 512, scaled to the context). The phase change is the jump of the best prefix-matching score of a layer-≥1 head
(layer 0 in the 1-layer model), located like the grokking jump (`emergentlab.analysis.dynamics`).
""")
    print(path)


if __name__ == "__main__":
    main()
