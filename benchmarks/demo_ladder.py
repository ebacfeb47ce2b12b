"""Train (or reload) the demo ladder and measure the mirage pattern on its test task.

Trains every rung of `src/emergentlab/data/demo_ladder/ladder.toml` that is not there yet (use --out to train
a fresh copy elsewhere), then scores each rung on the task's held-out test split: exact match (discontinuous)
beside token accuracy, expected exact match and target log-prob (continuous). Writes `results.json` next to
the checkpoints (the numbers `tests/test_train.py` checks) and benchmarks/results/demo_ladder.md.

    python benchmarks/demo_ladder.py [--out DIR] [--task add3] [--n 500]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch
from _machine import cpu_model

from emergentlab import metrics
from emergentlab.models.tiny import TinyBackend
from emergentlab.runner import evaluate
from emergentlab.tasks import make_task
from emergentlab.train import DEMO_LADDER_DIR, cpu_has_bf16, demo_ladder_spec, train_ladder

CHECK_N = 32  # test items whose numbers the test suite re-derives from the shipped checkpoints
MEANS = ["exact_match", "token_accuracy", "expected_exact_match", "target_logprob", "token_edit_distance"]


def evaluate_rung(path: Path, task: str, n: int, seed: int) -> dict[str, float]:
    """Means over `n` zero-shot test items of `task`: the fractions, expected EM (probability), target log-prob
    (nats/token) and edit distance (tokens) — through the runner and metrics, as `emergentlab run` computes them."""
    t = make_task(task, n=n, seed=seed)
    recs = evaluate(TinyBackend.from_path(path), t, list(t.examples), 0, "demo-ladder", path.name, seed)
    vals = metrics.compute(pd.DataFrame([asdict(r) for r in recs]), MEANS)
    return {**vals.groupby("metric").value.mean().to_dict(), "n": float(len(recs))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=DEMO_LADDER_DIR)
    ap.add_argument("--task", default="add3")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--md", type=Path, default=Path(__file__).parent / "results" / "demo_ladder.md")
    args = ap.parse_args()
    spec = demo_ladder_spec()
    t0 = time.perf_counter()
    rungs = train_ladder(spec, args.out, progress=None)
    wall = time.perf_counter() - t0
    results = []
    for r in rungs:
        full = evaluate_rung(Path(r["path"]), args.task, n=args.n, seed=args.seed)
        check = evaluate_rung(Path(r["path"]), args.task, n=CHECK_N, seed=args.seed)
        results.append({"rung": r["name"], "params": r["params"], "tokens": r["tokens"], "flops": r["flops"],
                        "val_loss": r["val_loss"], "train_wall_s": r["wall_s"], "metrics": full, "check": check})
        print(r["name"], {k: round(v, 4) for k, v in full.items()}, flush=True)
    (args.out / "results.json").write_text(json.dumps(
        {"eval": {"task": args.task, "n": args.n, "seed": args.seed, "shots": 0, "check_n": CHECK_N},
         "rungs": results}, indent=2))
    total_train = sum(r["train_wall_s"] for r in results)
    weights = sum((args.out / r["rung"] / "model.safetensors").stat().st_size for r in results)
    md = [
        "# Demo ladder: exact match jumps, per-token metrics rise smoothly", "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {cpu_model()}, "
        f"{torch.get_num_threads()} torch threads (shared with other jobs), native bf16 autocast: {cpu_has_bf16()}",
        f"- spec: `src/emergentlab/data/demo_ladder/ladder.toml` (training tasks {spec.tasks}, {spec.lines:,} lines, "
        f"seed {spec.seed}); weights fp32 safetensors, {weights / 1e6:.1f} MB in all",
        f"- training wall time, all rungs: {total_train:.0f} s (this run: {wall:.0f} s incl. any skipped rungs)",
        f"- evaluation: `{args.task}` test split (never trained on), n = {args.n}, zero-shot prompt `a+b=`, greedy; "
        "exact match with a 95 % Wilson interval",
        "",
        "| rung | params | tokens | FLOPs | val loss (nats/tok) | exact match | token accuracy | expected EM "
        "| target log-prob (nats/tok) | token edit distance |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        m = r["metrics"]
        lo, hi = _wilson(m["exact_match"], int(m["n"]))
        md.append(f"| {r['rung']} | {r['params']:,} | {r['tokens']:.2g} | {r['flops']:.2g} | {r['val_loss']:.3f} | "
                  f"**{m['exact_match']:.3f}** [{lo:.3f}, {hi:.3f}] | {m['token_accuracy']:.3f} | "
                  f"{m['expected_exact_match']:.3f} | {m['target_logprob']:.3f} | {m['token_edit_distance']:.2f} |")
    args.md.write_text("\n".join(md) + "\n")
    print("\n".join(md))


def _wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5 / den
    return max(0.0, mid - half), min(1.0, mid + half)


if __name__ == "__main__":
    main()
