"""SAE model diffing on the shipped demo ladder (add3) and SAE training throughput against a plain PyTorch loop in
the same run → benchmarks/results/sae.md.

    PYTHONPATH=src python benchmarks/sae_bench.py
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from _machine import write_result

from emergentlab.analysis.sae import train_sae
from emergentlab.experiments import sae
from emergentlab.experiments.base import torch_threads

PAIRS = (("L3-d128-t4M", "L3-d128-t4M"), ("L1-d32-t4M", "L3-d128-t4M"), ("L2-d64-t4M", "L3-d128-t4M"),
         ("L2-d96-t4M", "L3-d128-t4M"))


def plain_loop(x: torch.Tensor, n_features: int, k: int, steps: int, batch: int, g: torch.Generator) -> None:
    """The baseline: a bare TopK autoencoder step (encode, top-k, decode, MSE, Adam), no decoder renorm."""
    w_enc = torch.randn(x.shape[1], n_features, generator=g).requires_grad_()
    w_dec = torch.randn(n_features, x.shape[1], generator=g).requires_grad_()
    opt = torch.optim.Adam([w_enc, w_dec], lr=3e-3)
    for _ in range(steps):
        xb = x[torch.randint(0, x.shape[0], (batch,), generator=g)]
        pre = torch.relu(xb @ w_enc)
        top = pre.topk(k, dim=-1)
        z = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
        loss = ((z @ w_dec - xb) ** 2).sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def main() -> None:
    cfg = sae.Config()
    rows, records = [], []
    with torch_threads(1):
        t0 = time.perf_counter()
        for small, large in PAIRS:
            r = sae.run(sae.Config(small=small, large=large))
            records.append(r)
            q = {s["role"]: s for s in r["stats"]}
            rows.append(f"| {small} → {large} | {r['alive_large']} / {r['weak_large']} | {r['unmatched']} | "
                        f"{r['noise_floor']} | "
                        f"{q['smaller']['fvu']:.4f} / {q['larger']['fvu']:.4f} | "
                        f"{q['smaller']['dead_share']:.2f} / {q['larger']['dead_share']:.2f} |")
        wall = time.perf_counter() - t0
        acts = sae.residuals(Path(cfg.ladder) / cfg.large, sae.texts(cfg))
        f, steps, batch = cfg.expansion * acts.shape[1], 500, 256
        speed = {}
        for name in ("plain", "train_sae", "plain ", "train_sae "):  # interleaved twice, best of two
            g = torch.Generator().manual_seed(0)
            t = time.perf_counter()
            if name.strip() == "plain":
                plain_loop(acts, f, cfg.k, steps, batch, g)
            else:
                train_sae(acts, f, cfg.k, g, steps=steps, batch=batch)
            rate = steps / (time.perf_counter() - t)
            speed[name.strip()] = max(speed.get(name.strip(), 0.0), rate)
    ratio = speed["train_sae"] / speed["plain"]
    feats = records[2]["features"]
    ex = "\n".join(f"| {x['feature']} | {x['frequency']:.3f} | {x['best_corr']:.2f} | {x['again_corr']:.2f} | "
                   + " · ".join(f"`{e['text']}` {e['activation']:.1f}" for e in x["examples"]) + " |" for x in feats)
    body = f"""
Command: `PYTHONPATH=src python benchmarks/sae_bench.py` (one torch thread; diffing wall time {wall:.0f} s).

TopK SAEs ({cfg.expansion}× d_model features, k = {cfg.k}, {cfg.steps} Adam steps, batch 256) on the residual stream
after each rung's last block, over {cfg.n} add3 test items written out in full ({records[0]['tokens']:,} tokens).
A larger-rung feature is *unmatched* when no smaller-rung feature's activations correlate ≥ {cfg.threshold} with
it on the same tokens, and it is listed only if a second SAE on the larger rung (other random draws) finds it
again (correlation ≥ {cfg.threshold}); *weak* = live features active on fewer than {cfg.min_active} tokens: their
correlations rest on too few tokens to call them matched or not, so they are counted and never listed; *noise
floor* = live, not weak features that the second SAE does not find; *dead* = share of features active on no token.

## Diffing across the demo ladder (add3 exact match: d32 0.004, d64 0.008, d96 0.10, d128 0.43)

| pair | live / weak (larger) | unmatched, found again | noise floor | FVU smaller / larger | dead smaller / larger |
|---|---|---|---|---|---|
{chr(10).join(rows)}

## Unmatched features of L3-d128 against L2-d64 (the jump), most frequent first

| feature | frequency | best corr (d64) | found again | top tokens (bracketed) with activation |
|---|---|---|---|---|
{ex}

## SAE training throughput (same run, d_model {acts.shape[1]}, {f} features, batch {batch}, best of 2 × {steps} steps)

| loop | steps/s | × plain |
|---|---|---|
| plain PyTorch TopK loop | {speed['plain']:,.0f} | 1.00 |
| `analysis.sae.train_sae` (+ biases, decoder renorm) | {speed['train_sae']:,.0f} | {ratio:.2f} |
"""
    print(write_result("sae", body))


if __name__ == "__main__":
    main()
