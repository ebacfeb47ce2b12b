"""Weight decay and train fraction move the grokking jump or remove it (Power et al. 2022; Nanda et al. 2023).

A few runs of the default grokking config (p = 97, +, lr 3e-3) with a budget of `--steps`, each stopped once
validation accuracy passes 95 %: at weight decay 1, a larger train split groks sooner; less weight decay groks
later; none keeps memorising without generalising within the budget. One thread each, run one after another.

Writes benchmarks/results/grokking_sweep.md.    python benchmarks/grokking_sweep.py [--steps 4000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _machine import write_result  # noqa: E402

from emergentlab.experiments import grokking  # noqa: E402
from emergentlab.train.grokking import GrokConfig  # noqa: E402

# (weight decay, train fraction): the train fraction varies at weight decay 1, the weight decay at the larger split
GRID = [(1.0, 0.5), (1.0, 0.4), (1.0, 0.3), (0.3, 0.5), (0.0, 0.5)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=4000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    base = GrokConfig(steps=args.steps, stop_val_acc=0.95)
    torch.set_num_threads(grokking.THREADS)
    results = []
    for wd, frac in GRID:
        res = grokking.run(replace(base, weight_decay=wd, train_frac=frac))
        print(res.config.run_name, res.final, res.jump, flush=True)
        results.append(res)
    table = grokking.sweep_table(results).drop(columns=["run"])
    table["grokked (val > 95 %)"] = table["final_val_acc"] > 0.95
    wall, load = time.perf_counter() - t0, os.getloadavg()[0]
    path = write_result("grokking_sweep", f"""
torch {torch.__version__}; default `GrokConfig` (p = 97, +, Nanda et al.'s model, lr 3e-3, full batch) with the
weight decay and train fraction below; budget {args.steps} steps, each run stopped at the first logged step with
validation accuracy ≥ 95 % (so `steps` is the step it got there, or the budget). Steps are optimizer steps; the jump
is where validation accuracy is halfway up (t₀.₅, located in log-step by `emergentlab.analysis.dynamics`), width its
10 → 90 % span, sharpness t₀.₅ / width; NaN = validation accuracy never rose by 50 points: no jump. Shared machine
(load average {load:.1f} at the end): wall times are pessimistic. Whole script: {wall:.0f} s.

{table.to_markdown(index=False, floatfmt=("g", "g", ".0f", ".0f", ".0f", ".2f", ".3f", ".0f", ".0f", ""))}
""")
    print(path)


if __name__ == "__main__":
    main()
