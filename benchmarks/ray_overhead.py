"""What `run --executor ray` costs over the local executor, on the same study, in one script.

The study: rungs of the shipped demo ladder × add2 (generative) and add2 with 4 choices, 0-shot, `--n` examples
each, batch_size 8, every run on a fresh store. Measured, wall seconds:

- local: `run_study` with `LocalExecutor` (the baseline);
- `ray.init` of a local instance with `--cpus` CPUs;
- ray, cold: the first run with a `RayExecutor` (a task per shard; the workers import torch and emergentlab);
- ray, warm: the same executor again on a new store (each rung still loads once per worker process);
- the same with shards of 4 batches; and the design not taken, a pool of actors (one per CPU, each loading every
  rung once, shards dealt round-robin), cold and warm.

Overhead per shard (per Ray task) = (ray wall − warm local wall) / shards. Every Ray run's records are checked equal
(all fields) to the local run's. Writes benchmarks/results/ray.md.

    python benchmarks/ray_overhead.py [--n 96] [--cpus 2]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from collections.abc import Generator, Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from _machine import write_result

from emergentlab.records import Record, ScaleFacts
from emergentlab.runner import Cell, LocalExecutor, RayExecutor, Shard, run_study
from emergentlab.store import Store
from emergentlab.study import Rung, Study, load_study

RUNGS = ("L1-d16-t4M", "L2-d64-t4M", "L3-d128-t4M")
BATCH = 8


class ActorPool(RayExecutor):
    """The design not taken: one actor per free CPU for the whole run, each a `LocalExecutor` that loads every
    rung once; a cell's shards go to the actors in turn."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.actor = self.ray.remote(LocalExecutor)
        self.pool: list[Any] = []

    def close(self) -> None:
        for a in self.pool:
            self.ray.kill(a)
        self.pool = []
        super().close()

    def load(self, rung: Rung) -> ScaleFacts:
        if not self.pool:
            free = int(self.ray.available_resources().get("CPU", 1))
            self.pool = [self.actor.options(num_cpus=1).remote() for _ in range(max(1, free))]
        facts: list[ScaleFacts] = self._get([a.load.remote(rung) for a in self.pool])
        return facts[0]

    def cannot(self, cell: Cell) -> str | None:
        reason: str | None = self._get(self.pool[0].cannot.remote(cell))
        return reason

    def map(self, cell: Cell, shards: Sequence[Shard], study: Study) -> Generator[list[Record], None, None]:
        slim = self.ray.put(replace(cell, task=replace(cell.task, examples=(), shots_pool=()), prompts=(),
                                    hashes=()))
        refs = [self.pool[i % len(self.pool)].records.remote(slim, list(s), study.name, study.seed, study.batch_size)
                for i, s in enumerate(shards)]
        for ref in refs:
            yield from self._get(ref)


def study_file(root: Path, out: str, n: int, ladder: Path) -> Path:
    rungs = "".join(f'[[ladder]]\nname = "{r}"\nmodel = "tiny:{ladder / r}"\n' for r in RUNGS)
    p = root / f"{out}.toml"
    p.write_text(f'seed = 0\nout = "{out}"\nshots = [0]\nbatch_size = {BATCH}\n{rungs}'
                 f'[[tasks]]\ngenerator = "add2"\nn = {n}\n'
                 f'[[tasks]]\nname = "add2mc"\ngenerator = "add2"\nn = {n}\nchoices = 4\n')
    return p


def timed_run(root: Path, out: str, n: int, ladder: Path, executor: Any = None) -> tuple[float, Any]:
    """Wall seconds of one run on a fresh store, and its records (study column dropped)."""
    s = load_study(study_file(root, out, n, ladder))
    with Store(s.store_path) as store:
        t = time.perf_counter()
        summary = run_study(s, store, None, executor)
        wall = time.perf_counter() - t
        assert summary.written == summary.total
        return wall, store.records().drop(columns="study")


def load_avg() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=96, help="examples per task")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    args = ap.parse_args()
    ladder = Path(str(resources.files("emergentlab") / "data" / "demo_ladder"))
    shards = len(RUNGS) * 2 * -(-args.n // BATCH)
    before = load_avg()
    rows: list[tuple[str, float, int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cold, want = timed_run(root, "local-cold", args.n, ladder)  # imports torch: not the baseline
        local, again = timed_run(root, "local", args.n, ladder)
        assert again.equals(want)
        t = time.perf_counter()
        import ray

        ray_import = time.perf_counter() - t
        t = time.perf_counter()
        with RayExecutor(num_cpus=args.cpus) as exe:
            init = time.perf_counter() - t
            runs: list[tuple[str, Any, int | None]] = [
                ("ray, cold (workers import torch)", exe, None), ("ray, warm", exe, None),
                ("ray, warm, shards of 4 batches", exe, 4 * BATCH)]
            pool = ActorPool()
            runs += [("actor pool, cold (actors start)", pool, None), ("actor pool, warm", pool, None)]
            for label, ex, size in runs:
                ex.shard_size = size
                wall, got = timed_run(root, f"r{len(rows)}", args.n, ladder, ex)
                assert got.equals(want), label
                rows.append((label, wall, len(RUNGS) * 2 * -(-args.n // (size or BATCH))))
            pool.close()
        assert not ray.is_initialized()
    after = load_avg()
    table = "\n".join(f"| {label} | {wall:.2f} | {wall / local:.2f}× | {k} | {(wall - local) / k * 1e3:+.0f} |"
                      for label, wall, k in rows)
    body = f"""
- study: rungs {", ".join(RUNGS)} of the shipped demo ladder × add2 and add2 with 4 choices, 0-shot, {args.n}
  examples each, batch_size {BATCH}: {len(RUNGS) * 2 * args.n} records; every run on a fresh store; a local Ray
  with {args.cpus} CPUs (a task per shard, 1 CPU each), the local run with torch's {torch.get_num_threads()} threads
- every Ray run's records equal the local run's, all fields (checked in the script)
- `import ray` {ray_import:.2f} s; `ray.init` of the local instance {init:.2f} s (neither counted below)
- load before: `{before}`; after: `{after}`

| run | wall s | vs local | shards (Ray tasks) | overhead per shard, ms |
|---|---|---|---|---|
| local executor, first run in the process (imports torch) | {cold:.2f} | {cold / local:.2f}× | {shards} | – |
| local executor, warm (baseline) | {local:.2f} | 1.00× | {shards} | – |
{table}
"""
    print(write_result("ray", body))
    print(body)


if __name__ == "__main__":
    main()
