"""PassUntil on the shipped demo ladder: the default `emergentlab passuntil` run (add3, 100 items, temperature 1,
1000 draws per item at most, seed 0), its wall time and result, and what batching the rounds buys.

The speed is a ratio measured in this script: the experiment's sampling loop (`sample_until`) on one rung with its
default batch (512 prompts per call: every unresolved item, several draws each when few are left) against one prompt
per call, on the same items, seed and budget; both give the same counts (draw k of an item is seeded alike whatever
the batch). Writes benchmarks/results/passuntil.md.

    PYTHONPATH=src python benchmarks/passuntil_bench.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _machine import write_result  # noqa: E402


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def batching_ratio(rung: str, n: int, budget: int) -> tuple[float, float, bool, int]:
    """Seconds of `sample_until` at the default batch and at batch 1 on one rung, whether the counts agree, draws."""
    from emergentlab.experiments import passuntil as pu
    from emergentlab.experiments.base import torch_threads
    from emergentlab.models.tiny import TinyBackend
    from emergentlab.runner import evaluate
    from emergentlab.tasks import make_task
    from emergentlab.train import DEMO_LADDER_DIR

    task = make_task("add3", n=n, seed=0)
    backend = TinyBackend.from_path(DEMO_LADDER_DIR / rung)
    records = evaluate(backend, task, task.examples, 0, "bench", rung, 0)
    times, results = [], []
    with torch_threads(pu.THREADS):
        for batch in (pu.PassUntilConfig.batch, 1):
            t = time.perf_counter()
            results.append(pu.sample_until(backend, records, task.max_new_tokens, task.stop, 1.0, budget, batch, 0))
            times.append(time.perf_counter() - t)
    return times[0], times[1], results[0].equals(results[1]), int(results[0]["draws"].sum())


def main() -> None:
    from emergentlab import pipeline
    from emergentlab.experiments import passuntil as pu
    from emergentlab.experiments.passuntil import THREADS
    from emergentlab.store import Store

    before = load()
    with tempfile.TemporaryDirectory() as tmp:
        t, cpu = time.perf_counter(), time.process_time()
        d = pipeline.passuntil({}, Path(tmp) / "run")
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        with Store(Path(tmp) / "run" / pipeline.STORE_NAME) as store:
            (sec,) = pu.sections(store, pu.NAME)
    law = sec.tables[1].frame.to_markdown(index=False, floatfmt=".4g") if len(sec.tables) > 1 else "(no law fit)"
    fast, slow, same, draws = batching_ratio("L1-d32-t4M", 20, 100)
    after = load()
    table = d.table.to_markdown(index=False, floatfmt=".4g")
    body = f"""
Load before: `{before}`; after: `{after}` (2 cores shared with other jobs: absolute times are loose, the ratio holds).
torch threads: the experiment's THREADS ({THREADS}); `os.cpu_count()` = {os.cpu_count()}.

## Default run: `emergentlab passuntil` (demo ladder, add3, n = 100, temperature 1, budget 1000, seed 0)

Wall time {wall:.0f} s end to end (sampling, greedy and teacher-forced records, report), {cpu:.0f} s of CPU time in
this process (what the run costs on an idle machine: one intra-op thread).

{table}

PU (sampled) is the task pass rate, the mean over items of the per-draw pass probability (beta-geometric maximum
likelihood, profile interval); per_draw is Σ passes / Σ draws, which weighs hard items more; the target-string
probability is teacher-forced; greedy exact_match the share of greedy answers that pass (fractions).

The task law PU(N) = exp(−c·N^−α) through the sampled rates and, for comparison, the teacher-forced ones:

{law}

## Batching the rounds (rung L1-d32-t4M, 20 items, budget 100, {draws} draws)

| sampling loop | seconds | ratio |
|---|---|---|
| batch 512 (default): all unresolved items per call | {fast:.2f} | {slow / fast:.1f}× |
| batch 1: one prompt per call | {slow:.2f} | 1.0× |

Same counts either way: {same}.
"""
    print(write_result("passuntil", body))


if __name__ == "__main__":
    main()
