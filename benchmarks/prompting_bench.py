"""Cost and result of the prompting experiments on the shipped demo ladder: CoT vs direct and the ICL gain.

Each experiment runs in its own process (peak RSS is per process), beside a baseline process that evaluates the same
items zero-shot only (`runner.evaluate` at every rung), so the wall times are reported as ratios to it (the machine
is shared). Writes benchmarks/results/prompting.md.

    PYTHONPATH=src python benchmarks/prompting_bench.py [--n 100]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine, write_result  # noqa: E402


def child(kind: str, out: Path, n: int) -> None:
    from emergentlab import pipeline
    from emergentlab.experiments import cot, icl
    from emergentlab.experiments.base import torch_threads
    from emergentlab.models import load_backend
    from emergentlab.runner import evaluate
    from emergentlab.store import Store
    from emergentlab.tasks import make_task
    from emergentlab.train import DEMO_LADDER_DIR

    t = time.perf_counter()
    sections = []
    if kind == "baseline":
        task = make_task("add3", n=n, seed=0)
        with torch_threads(cot.THREADS):
            for p in cot.rung_dirs(DEMO_LADDER_DIR):
                evaluate(load_backend(f"tiny:{p}", p.name), task, task.examples, 0, "b", p.name, 0)
    else:
        run = pipeline.cot if kind == "cot" else pipeline.icl
        run({"n": n}, out)
        with Store(out / "records.sqlite") as st:
            sections = (cot if kind == "cot" else icl).sections(st, None)
    wall = time.perf_counter() - t
    print(json.dumps({"wall_s": wall, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "sections": [{"title": s.title, "paragraphs": s.paragraphs,
                                    "table": s.tables[0].frame.round(3).to_markdown(index=False) if s.tables else ""}
                                   for s in sections]}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--child", default="")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    if a.child:
        child(a.child, Path(a.out), a.n)
        return
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("baseline", "cot", "icl"):
            p = subprocess.run([sys.executable, __file__, "--child", kind, "--out", f"{tmp}/{kind}", "--n", str(a.n)],
                               check=True, capture_output=True, text=True)
            res[kind] = json.loads(p.stdout.strip().splitlines()[-1])
    base = res["baseline"]["wall_s"]
    lines = [f"Demo ladder (7 tiny GPTs, 2.3k–615k params, trained on add3 without traces), add3, n = {a.n} items.",
             "", "| run | wall / baseline | peak RSS (MiB) |", "|---|---|---|",
             *(f"| {k} | {r['wall_s'] / base:.2f} | {r['rss_mib']:.0f} |" for k, r in res.items()),
             "", "baseline: the same items zero-shot only, every rung (one process each run; wall ratios because "
             "the machine is shared). cot: direct + CoT (1-shot) and the report; icl: 0/1/2/4/8-shot and the report.",
             ""]
    for kind in ("cot", "icl"):
        for s in res[kind]["sections"]:
            lines += [f"### {s['title']}", "", *s["paragraphs"], "", s["table"], ""]
    write_result("prompting", "\n".join(lines))
    print(machine())


if __name__ == "__main__":
    main()
