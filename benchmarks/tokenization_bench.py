"""Cost and scientific result of the two experiments that train their own ladder, each with its default config:
chain of thought vs direct on the trace-mixture ladder (`emergentlab cot`) and the tokenization / scratchpad
conditions (`emergentlab tokenization`).

Each runs in its own process from an empty run folder, so it trains every rung (the whole cost of a first run),
beside a baseline process that evaluates the demo ladder's add3 items zero-shot at every rung (`runner.evaluate`, the
baseline of `prompting_bench.py`): wall times are also given as ratios to it, because the machine is shared. CPU
seconds (user + system of the process) and peak RSS are the process's own; the 1-minute load average before and
after each run says how shared the machine was. Writes benchmarks/results/cot.md and
benchmarks/results/tokenization.md.

    PYTHONPATH=src python benchmarks/tokenization_bench.py [--only cot|tokenization] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine, write_result  # noqa: E402


def child(kind: str, out: Path) -> None:
    from emergentlab import pipeline
    from emergentlab.experiments import cot, tokenization
    from emergentlab.experiments.base import torch_threads
    from emergentlab.models import load_backend
    from emergentlab.runner import evaluate
    from emergentlab.store import Store
    from emergentlab.tasks import make_task
    from emergentlab.train import DEMO_LADDER_DIR

    t = time.perf_counter()
    result: dict[str, object] = {}
    if kind == "threads":
        result = {"threads": threads_rows()}
    elif kind == "baseline":
        task = make_task("add3", n=100, seed=0)
        with torch_threads(cot.THREADS):
            for p in cot.rung_dirs(DEMO_LADDER_DIR):
                evaluate(load_backend(f"tiny:{p}", p.name), task, task.examples, 0, "b", p.name, 0)
    elif kind == "cot":
        pipeline.cot({}, out)
        with Store(out / "records.sqlite") as st:
            (s,) = cot.sections(st, None)
        result = {"title": s.title, "paragraphs": s.paragraphs,
                  "table": s.tables[0].frame.round(3).to_markdown(index=False)}
    else:
        d = pipeline.tokenization({}, out)
        with Store(out / "records.sqlite") as st:
            main = tokenization.sections(st, None)[0]
        result = {"title": main.title, "paragraphs": main.paragraphs,
                  "table": main.tables[0].frame.round(3).to_markdown(index=False),
                  "shifts": d.table.round(3).to_markdown(index=False),
                  "facts": main.tables[2].frame.round(3).to_markdown(index=False)}
    wall = time.perf_counter() - t
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "rss_mib": ru.ru_maxrss / 1024,
                      **result}))


def threads_rows() -> list[dict[str, object]]:
    """Training steps per second of two cot rungs at 1 and 2 torch threads (batch 16 × 96 tokens, 60 steps after
    10 untimed): whether the experiments' THREADS = 1 leaves speed on the table."""
    import torch

    from emergentlab.models.tiny import GPT, GPTConfig
    from emergentlab.train.loop import TrainConfig, _loss, _optimizer

    rows = []
    for layers, width in ((1, 16), (2, 64)):
        for n in (1, 2):
            torch.set_num_threads(n)
            model = GPT(GPTConfig(n_layer=layers, n_embd=width, n_head=4, block_size=96))
            opt, x = _optimizer(model, TrainConfig()), torch.randint(0, 128, (16, 97))
            for i in range(70):
                if i == 10:
                    t0 = time.perf_counter()
                loss = _loss(model, x)
                opt.zero_grad()
                loss.backward()
                opt.step()
            rows.append({"rung": f"L{layers}-d{width}", "threads": n, "steps_s": 60 / (time.perf_counter() - t0),
                         "load": load()})
    return rows


def load() -> float:
    """The 1-minute load average (runnable processes; 2 cores means a load above 2 is queueing)."""
    return float(Path("/proc/loadavg").read_text().split()[0]) if Path("/proc/loadavg").is_file() else float("nan")


def run_child(kind: str, folder: Path) -> dict[str, object]:
    before = load()
    p = subprocess.run([sys.executable, __file__, "--child", kind, "--out", str(folder / kind)], check=True,
                       capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return {**json.loads(p.stdout.strip().splitlines()[-1]), "load_before": before, "load_after": load()}


def cost_table(base: dict[str, object], r: dict[str, object], kind: str) -> list[str]:
    return ["| run | wall (s) | wall / baseline | CPU (s) | peak RSS (MiB) | load before → after |",
            "|---|---|---|---|---|---|",
            *(f"| {k} | {x['wall_s']:.0f} | {x['wall_s'] / base['wall_s']:.2f} | {x['cpu_s']:.0f} | "
              f"{x['rss_mib']:.0f} | {x['load_before']:.1f} → {x['load_after']:.1f} |" for k, x in
              (("baseline", base), (kind, r)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", default="")
    ap.add_argument("--out", default="")
    ap.add_argument("--only", default="", choices=("", "cot", "tokenization"))
    ap.add_argument("--keep", default="", help="run folders go here (kept) instead of a temporary folder")
    a = ap.parse_args()
    if a.child:
        child(a.child, Path(a.out))
        return
    kinds = [a.only] if a.only else ["cot", "tokenization"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(a.keep or tmp)
        threads = run_child("threads", folder)["threads"]
        base = run_child("baseline", folder)
        for kind in kinds:
            r = run_child(kind, folder)
            head = ("Default config of `emergentlab cot` (no --ladder: trains the trace-mixture ladder "
                    "`data/ladders/cot.toml`, then evaluates direct and CoT, 1-shot, and builds the report)"
                    if kind == "cot" else
                    "Default config of `emergentlab tokenization` (trains `data/ladders/tokenization.toml` once per "
                    "condition: digit, chunk3, digit+scratchpad; evaluates; builds the report)")
            lines = [f"{head}, from an empty run folder, in one process.", "", *cost_table(base, r, kind), "",
                     "baseline: the demo ladder's 7 rungs, 100 add3 items zero-shot (a fixed workload that says how "
                     "fast the machine was). CPU: user + system seconds of the process; on an unloaded 2-core "
                     "machine the wall time is about the CPU time (the experiments run torch with one thread). "
                     "Load: 1-minute load average, before → after.", "",
                     f"### {r['title']}", "", *r["paragraphs"], "", r["table"], ""]
            if kind == "cot":
                one = {r["rung"]: r["steps_s"] for r in threads if r["threads"] == 1}
                lines += ["### threads", "", "Training steps per second at 1 and 2 torch threads (batch 16 × 96 "
                          "tokens; ratio: 2 threads over 1; load: 1-minute load average when measured):", "",
                          "| rung | threads | steps/s | × 1 thread | load |", "|---|---|---|---|---|",
                          *(f"| {r['rung']} | {r['threads']} | {r['steps_s']:.1f} | "
                            f"{r['steps_s'] / one[r['rung']]:.2f} | {r['load']:.1f} |" for r in threads), ""]
            if kind == "tokenization":
                lines += ["Threshold shifts against the baseline condition:", "", r["shifts"], "",
                          "Per condition and rung:", "", r["facts"], ""]
            write_result(kind, "\n".join(str(x) for x in lines))
    print(machine())


if __name__ == "__main__":
    main()
