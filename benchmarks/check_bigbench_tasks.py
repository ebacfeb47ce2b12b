"""Load every task.json of the BIG-bench 1.0.0 sdist with `load_bigbench` and report how many load.

Usage: python benchmarks/check_bigbench_tasks.py [bigbench-1.0.0.tar.gz | extracted folder]
(get the sdist with `pip download bigbench==1.0.0 --no-deps`). Writes benchmarks/results/bigbench_load.md.
"""

from __future__ import annotations

import platform
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path

from _machine import cpu_model

from emergentlab.errors import UserError
from emergentlab.tasks.bigbench import load_bigbench


def task_roots(root: Path) -> list[Path]:
    """Each top-level task folder under benchmark_tasks/ (subtask folders load through their parent)."""
    bench = next(root.rglob("benchmark_tasks"))
    return sorted(p for p in bench.iterdir() if p.is_dir() and any(p.rglob("task.json")))


def main(src: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = src
        if src.is_file():
            with tarfile.open(src) as tf:
                tf.extractall(tmp, members=[m for m in tf.getmembers() if m.name.endswith("task.json")],
                              filter="data")
            root = Path(tmp)
        files = list(root.rglob("task.json"))
        t0 = time.perf_counter()
        ok, failed, kinds, n_ex = 0, [], Counter(), 0
        for folder in task_roots(root):
            try:
                tasks = load_bigbench(folder)
            except UserError as e:
                failed.append(f"{folder.name}: {e}")
                continue
            ok += 1
            for t in tasks:
                kinds[t.kind] += 1
                n_ex += len(t)
        secs = time.perf_counter() - t0
        n_tasks = sum(kinds.values())
    cpu = cpu_model()
    lines = [
        "# BIG-bench task.json loading", "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- machine: {cpu}, {len(__import__('os').sched_getaffinity(0))} cores, Python {platform.python_version()}",
        f"- source: {src.name} ({len(files)} task.json files)", "",
        f"**{ok} of {ok + len(failed)} task folders load** ({n_tasks} tasks counting subtasks, {n_ex} examples) "
        f"in {secs:.1f} s.", "",
        "| kind | tasks |", "|---|---|", *[f"| {k} | {v} |" for k, v in sorted(kinds.items())], "",
    ]
    if failed:
        lines += ["## Refused (one line each, as the CLI prints them)", "", *[f"- {f}" for f in failed], ""]
    out = Path(__file__).parent / "results" / "bigbench_load.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/cbb/bigbench-1.0.0.tar.gz"))
