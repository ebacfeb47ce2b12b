"""Fine-tuning speed against a plain PyTorch loop, and the scientific result of the default `emergentlab finetune`.

1. Steps per second of `train.loop._steps` (`optimize` as `finetune` and `finetune_hf` run it: warmup + cosine learning
   rate, gradient clipping, fused AdamW, the loss read every step) against a plain loop (AdamW at a constant learning
   rate, nothing else) on the same model, the same batches, in the same process, alternating the two so that both see
   the same machine load; fp32, one torch thread (the experiment's setting). Models: two tiny GPTs of the default
   ladder's shapes and a 2-layer Llama built in-process (the hf path).
2. The default run (`pipeline.finetune` with no options: the built-in mixture ladder trained first, then fine-tuning,
   evaluation, the emergence law and its backtest), with its wall time, CPU time and the machine's load average.

Writes benchmarks/results/finetune.md.

    PYTHONPATH=src python benchmarks/finetune_bench.py [--out runs/finetune-bench] [--skip-run]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from _machine import write_result  # noqa: E402

from emergentlab.models.tiny import GPT, CharTokenizer, GPTConfig  # noqa: E402
from emergentlab.tasks import make_task  # noqa: E402
from emergentlab.train.loop import TrainConfig, _batches, _steps  # noqa: E402

Forward = Callable[[torch.Tensor], torch.Tensor]


def _plain(model: torch.nn.Module, forward: Forward, batches: list[torch.Tensor], lr: float) -> float:
    """The loop a tutorial writes: forward, cross-entropy, backward, AdamW step. Returns seconds."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    t = time.perf_counter()
    for rows in batches:
        x, y = rows[:, :-1].clamp(min=0), rows[:, 1:]
        logits = forward(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=-1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t


def _ours(model: torch.nn.Module, forward: Forward, batches: list[torch.Tensor], cfg: TrainConfig) -> float:
    t = time.perf_counter()
    _steps(model, replace(cfg, bf16=False), iter(batches), forward, None)
    return time.perf_counter() - t


def _llama() -> tuple[torch.nn.Module, Forward, int]:
    """A 2-layer Llama built in-process (transformers config, no hub): the hf path's loop on an hf model."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = LlamaForCausalLM(cfg)
    return model, lambda x: model(input_ids=x).logits, sum(p.numel() for p in model.parameters())


def speed(steps: int, repeats: int) -> str:
    task = make_task("add2", n=10, seed=0, shots_pool=512)
    tok = CharTokenizer()
    ids = [tok.encode(task.format(ex) + ex.target) for ex in task.shots_pool]
    cfg = TrainConfig(tokens=steps * 16 * 64, batch_size=16, block_size=64, lr=1e-3, warmup_steps=10, bf16=False)
    batches_gen = _batches(ids, cfg, random.Random(0))
    batches = [next(batches_gen) for _ in range(steps)]
    models: list[tuple[str, Callable[[], tuple[torch.nn.Module, Forward, int]]]] = []
    for layers, width in ((1, 32), (2, 64)):
        def tiny(layers: int = layers, width: int = width) -> tuple[torch.nn.Module, Forward, int]:
            m = GPT(GPTConfig(n_layer=layers, n_embd=width, n_head=4, block_size=64), torch.Generator().manual_seed(0))
            return m, m, m.num_params()
        models.append((f"tiny GPT L{layers}-d{width}", tiny))
    models.append(("Llama (hf) 2 layers, d64", _llama))
    rows = ["| model | params | plain loop steps/s | ours steps/s | ours / plain |", "|---|---|---|---|---|"]
    for name, make in models:
        best = {"plain": float("inf"), "ours": float("inf")}
        for _ in range(repeats):
            for kind in ("plain", "ours"):
                model, fwd, n = make()
                secs = _plain(model, fwd, batches, cfg.lr) if kind == "plain" else _ours(model, fwd, batches, cfg)
                best[kind] = min(best[kind], secs)
        rows.append(f"| {name} | {n:,} | {steps / best['plain']:.1f} | {steps / best['ours']:.1f} | "
                    f"**{best['plain'] / best['ours']:.2f}×** |")
    return "\n".join(rows)


def default_run(out: Path) -> str:
    from emergentlab import pipeline
    from emergentlab.experiments import finetune as ft
    from emergentlab.store import Store

    trained = not (out / "ladder").is_dir()
    load0 = os.getloadavg()
    t0, c0 = time.perf_counter(), os.times()
    d = pipeline.finetune({}, out)
    wall, c1 = time.perf_counter() - t0, os.times()
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    load1 = os.getloadavg()
    with Store(out / "records.sqlite") as store:
        (fitted,) = ft.fit(store, ft.NAME)
        (sec,) = ft.sections(store, ft.NAME)
    cfg = fitted.config
    tables = "\n\n".join(f"{t.caption}\n\n{t.frame.round(4).to_markdown(index=False)}" for t in sec.tables)
    how = "ladder trained in this run" if trained else "ladder already trained: pre-training not timed"
    return (f"Command: `emergentlab finetune` with every default ({how}); task {cfg['task']}, ks {cfg['ks']}, "
            f"{cfg['steps']} "
            f"fine-tuning steps at lr {cfg['lr']}, holdout {cfg['holdout']}, n {cfg['n']}, axis {cfg['axis']}.\n\n"
            f"- wall time: {wall:.0f} s (fine-tuning and its evaluation: {cfg['finetune_s']:.0f} s of it); CPU time "
            f"(user + system): {cpu:.0f} s\n- load average (1 min) before / after: {load0[0]:.1f} / {load1[0]:.1f} on "
            f"{os.cpu_count()} cores (the machine is shared with other jobs: the CPU time is the better guide)\n\n"
            f"**{ft.prediction_text(fitted)}**\n\n{'; '.join(sec.paragraphs[:2])}\n\n{tables}\n\n"
            f"Report: `{d.report.path}`.")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("runs/finetune-bench"))
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-run", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()
    body = (f"torch {torch.__version__}, 1 torch thread, fp32. Load average at the start: {load[0]:.1f} (1 min), "
            f"{load[1]:.1f} (5 min) on {os.cpu_count()} cores.\n\n## Fine-tuning speed: `_steps` vs a plain "
            f"PyTorch loop\n\n{a.steps} steps of 16 rows × 64 tokens (add2 lines, the same batches for both), best "
            f"of {a.repeats} alternating runs per loop; a fresh model each run.\n\n{speed(a.steps, a.repeats)}\n")
    if not a.skip_run:
        body += f"\n## The default run\n\n{default_run(a.out)}\n"
    print(write_result("finetune", body))


if __name__ == "__main__":
    main()
