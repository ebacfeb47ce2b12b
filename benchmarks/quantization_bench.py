"""Quantization sweep on the shipped demo ladder (add3, zero-shot): verdicts per weight format, the capability
survives table, and scoring speed of each format against fp32 in the same run → benchmarks/results/quantization.md.

    PYTHONPATH=src python benchmarks/quantization_bench.py [--n 200]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _machine import write_result

from emergentlab.experiments import quantization as q
from emergentlab.models.quant import parse_quant, quantize_module
from emergentlab.models.tiny import TinyBackend
from emergentlab.store import Store
from emergentlab.tasks import build_prompt, make_task

FORMATS = ("fp32", "bf16", "int8-g64", "int4-g128", "int4-g64", "int4-g32", "int2-g64", "int2-g32-asym")


def speed(cfg: q.Config, reps: int) -> list[tuple[str, float]]:
    """Median target tokens/s of scoring the largest rung at each format, formats interleaved rep by rep so that
    machine load falls on all of them alike."""
    rung = q.rung_dirs(Path(cfg.ladder))[-1]
    task = make_task(cfg.task, n=cfg.n, seed=cfg.seed)
    prompts = [build_prompt(task, ex, 0, cfg.seed) for ex in task.examples]
    targets = [ex.target for ex in task.examples]
    backends = {}
    for f in cfg.formats:
        b = TinyBackend.from_path(rung)
        quantize_module(b.model, parse_quant(f))
        backends[f] = b
    rates: dict[str, list[float]] = {f: [] for f in cfg.formats}
    for _ in range(reps):
        for f, b in backends.items():
            t0 = time.perf_counter()
            n = sum(len(s.logprobs) for s in b.score(prompts, targets))
            rates[f].append(n / (time.perf_counter() - t0))
    return [(f, statistics.median(r)) for f, r in rates.items()]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    cfg = q.Config(n=args.n, formats=FORMATS)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d, Store(Path(d) / "q.db") as store:
        q.run(cfg, store)
        [sweep] = q.fit(store, q.NAME, n_boot=1000)
        surv, ver = q.survives(sweep), q.verdicts(sweep)
    wall = time.perf_counter() - t0
    rates = speed(cfg, args.reps)
    base = dict(rates)["fp32"]
    speed_rows = "\n".join(f"| {f} | {parse_quant(f).bits_per_weight:g} | {r:,.0f} | {r / base:.2f} |"
                           for f, r in rates)
    body = f"""
Command: `PYTHONPATH=src python benchmarks/quantization_bench.py --n {args.n} --reps {args.reps}`
(sweep wall time {wall:.0f} s, every rung of src/emergentlab/data/demo_ladder at {len(FORMATS)} formats).

Round-to-nearest per group of consecutive input weights (group size in the name; a row shorter than the group is
one group — rows of the d8…d64 rungs are ≤ 64 wide, so g64 is per-row there), symmetric unless `-asym`, applied to
every Linear and Embedding weight; weights are dequantized back to fp32 for the forward pass (fake quantization).

## Capability survives (largest rung, add3 exact match, n = {args.n})

survives = the format's mean lies within fp32's 95 % bootstrap interval over examples.

{surv.round(3).to_markdown(index=False)}

## Verdict per format

change D: mean of the larger half of the ladder minus the smaller half (metric unit, 95 % interval).

{ver.round(3).to_markdown(index=False)}

## Scoring speed (largest rung, median of {args.reps} interleaved reps, same run)

| format | bits/weight | target tokens/s | × fp32 |
|---|---|---|---|
{speed_rows}

Fake quantization runs the same fp32 matmuls, so the ratio is ≈ 1 by construction (any spread is machine noise):
what the sweep measures is the capability lost to rounding, not an integer kernel's speed-up.
"""
    print(write_result("quantization", body))


if __name__ == "__main__":
    main()
