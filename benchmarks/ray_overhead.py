"""What `run --executor ray` costs over the local executor, on the same study, in one script.

The study: rungs of the shipped demo ladder × add2 (generative) and add2 with 4 choices, 0-shot, `--n` examples
each, batch_size 8, every run on a fresh store. Wall seconds of `run_study` with:

- `LocalExecutor` (the baseline);
- `RayExecutor` on a local Ray with `--cpus` CPUs: a task per shard (one batch), and per 4 batches;
- the same with every shard asking for all the CPUs, so shards run one at a time: Ray's cost without its
  parallelism;
- the design not taken, a pool of actors (one per CPU, each loading every rung once, shards dealt in turn).

Warm runs are interleaved `--repeat` times (the machine's load drifts) and the fastest is reported; the one-off
starts (torch's import, `ray.init`, the workers' imports, the actors' start) are measured apart. Overhead per shard
(per Ray task) = (ray wall − local wall) / shards. Every run's records are checked equal (all fields) to the first
local run's. Writes benchmarks/results/ray.md.

    python benchmarks/ray_overhead.py [--n 96] [--cpus 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import itertools
import os
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


class OneAtATime(RayExecutor):
    """Every shard asks for all the CPUs, so the shards run one after another: Ray's cost per task with the
    parallelism taken out."""

    def load(self, rung: Rung) -> ScaleFacts:
        facts = super().load(rung)
        self.shape = {**self.shape, "num_cpus": float(self.ray.cluster_resources()["CPU"])}
        return facts


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
    ap.add_argument("--repeat", type=int, default=3, help="warm runs of each kind (the fastest is reported)")
    args = ap.parse_args()
    # One torch thread per process, here and in every Ray worker (the local Ray started below inherits this
    # OMP_NUM_THREADS, and Ray keeps one that is set): on a loaded 2-core machine torch's 2 threads ran this study
    # 20× slower than 1, which would bury what is measured here.
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    ladder = Path(str(resources.files("emergentlab") / "data" / "demo_ladder"))
    before = load_avg()
    runs = itertools.count()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cold, want = timed_run(root, "cold", args.n, ladder)  # the first run imports torch: not the baseline

        def run(ex: Any = None, size: int | None = None) -> float:
            if ex is not None:
                ex.shard_size = size
            wall, got = timed_run(root, f"r{next(runs)}", args.n, ladder, ex)
            assert got.equals(want), "records differ from the local run's"
            return wall

        t = time.perf_counter()
        import ray

        ray_import = time.perf_counter() - t
        t = time.perf_counter()
        with RayExecutor(num_cpus=args.cpus) as exe:
            init = time.perf_counter() - t
            walls: dict[tuple[str, int], list[float]] = {}
            firsts: list[tuple[str, float]] = [("ray, first after `ray.init` (the workers import torch and "
                                                "emergentlab)", run(exe))]

            def block(label: str, ex: Any, size: int | None = None) -> None:
                # interleaved with local runs, so that the load's drift touches both alike
                for _ in range(args.repeat):
                    walls.setdefault(("local executor (baseline)", BATCH), []).append(run())
                    walls.setdefault((label, size or BATCH), []).append(run(ex, size))

            block("ray", exe)
            block("ray, shards of 4 batches", exe, 4 * BATCH)
            # a new task shape, for which Ray may start new worker processes: its first run is not counted
            serial = OneAtATime()
            firsts.append(("ray, one shard at a time, first run (a new task shape)", run(serial)))
            block("ray, one shard at a time (no parallelism)", serial)
            with ActorPool() as pool:  # last: its actors hold the CPUs while it lives
                firsts.append(("actor pool, first (its actors start)", run(pool)))
                block("actor pool (the design not taken)", pool)
        assert not ray.is_initialized()
    after = load_avg()
    local = min(walls[("local executor (baseline)", BATCH)])
    records = len(RUNGS) * 2 * args.n
    shards = len(RUNGS) * 2 * -(-args.n // BATCH)

    def row(label: str, size: int, w: list[float]) -> str:
        k = len(RUNGS) * 2 * -(-args.n // size)
        over = "–" if label.startswith("local") else f"{(min(w) - local) / k * 1e3:+.0f}"
        return (f"| {label} | {min(w):.2f} ({', '.join(f'{x:.2f}' for x in w)}) | {min(w) / local:.2f}× | {k} | "
                f"{over} |")

    table = "\n".join(row(label, size, w) for (label, size), w in walls.items())
    body = f"""
- study: rungs {", ".join(RUNGS)} of the shipped demo ladder × add2 and add2 with 4 choices, 0-shot, {args.n}
  examples each, batch_size {BATCH}: {records} records; every run on a fresh store; a local Ray with {args.cpus}
  CPUs (a task per shard, 1 CPU each); one torch thread per process everywhere
- every Ray run's records equal the local run's, all fields (checked in the script)
- `import ray` {ray_import:.2f} s; `ray.init` of the local instance {init:.2f} s (in no row below)
- load before: `{before}`; after: `{after}`
- overhead per shard = (wall − local wall) / shards, from the fastest of {args.repeat} interleaved warm runs each

| run | wall s, fastest (all) | vs local | shards (Ray tasks) | overhead per shard, ms |
|---|---|---|---|---|
{table}

First runs (each pays a one-off start, counted in no row above):

| first run | wall s | vs local (warm) |
|---|---|---|
| local executor, first in the process (imports torch) | {cold:.2f} | {cold / local:.2f}× |
{chr(10).join(f"| {label} | {w:.2f} | {w / local:.2f}× |" for label, w in firsts)}

Reading it: warm, a shard costs Ray {(min(walls[("ray", BATCH)]) - local) / shards * 1e3:+.0f} ms over running it
here ({(min(walls[("ray, one shard at a time (no parallelism)", BATCH)]) - local) / shards * 1e3:+.0f} ms with
the parallelism taken out), within this machine's run-to-run spread (the local runs' own range:
{min(walls[("local executor (baseline)", BATCH)]):.2f}–{max(walls[("local executor (baseline)", BATCH)]):.2f} s).
What Ray costs is the start: `ray.init` and the workers' first imports, {init + firsts[0][1]:.0f} s together here,
so it pays when a study's models take minutes, not seconds. Larger shards cut the number of tasks but, with only
a few shards per cell, leave workers idle at the end of each cell. The actor pool is no faster warm and starts
slower (a new process per actor), and on a busy cluster it waits for all its actors; hence a task per shard.
"""
    print(write_result("ray", body))
    print(body)


if __name__ == "__main__":
    main()
