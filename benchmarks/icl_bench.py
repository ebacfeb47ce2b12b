"""In-context learning on this CPU (issue 14): what each experiment costs with its defaults, and what it finds.

1. `emergentlab icl` (zero- vs 1, 2, 4, 8-shot on the shipped demo ladder, add3, 100 items) and `emergentlab
   bursty` (tiny GPTs of four sizes trained on Chan et al.'s bursty sequences): wall time, CPU time and peak RSS
   of each, run in a child process of its own. Each has a baseline run in this script for its ratio: for `icl`,
   the same ladder scored zero-shot only (one variant instead of five, no sections); for `bursty`, its largest
   default size trained with no logging but at the first and last step and a small final evaluation (the cost
   of training alone, against which the logged measures and the report are overhead).
2. The scientific results, read back from the two run folders: ICL onset per size (step, interval), the
   induction-head events beside it, and the verdict on each n-shot gain curve (does ICL itself emerge?).

Writes benchmarks/results/icl.md.    python benchmarks/icl_bench.py [--keep DIR]
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
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _machine import write_result  # noqa: E402

from emergentlab.experiments import bursty, icl  # noqa: E402
from emergentlab.experiments.base import stored_runs  # noqa: E402
from emergentlab.store import Store  # noqa: E402

SRC = str(Path(__file__).resolve().parents[1] / "src")


def child(kind: str, out: Path) -> dict[str, float]:
    """Run one job in this process and return its wall and CPU seconds and peak RSS (MiB)."""
    import torch

    from emergentlab import pipeline
    from emergentlab.experiments.base import torch_threads
    from emergentlab.models import load_backend
    from emergentlab.runner import evaluate
    from emergentlab.tasks import make_task
    from emergentlab.train import checkpoint_dirs
    from emergentlab.train.bursty import BurstyConfig, train_bursty

    torch.manual_seed(0)
    t0, c0 = time.perf_counter(), time.process_time()
    if kind == "icl":
        pipeline.icl({}, out)
    elif kind == "icl-zero-shot":
        cfg = icl.IclConfig()
        task = make_task(cfg.task, n=cfg.n, seed=cfg.seed)
        with torch_threads(icl.THREADS):
            for path in checkpoint_dirs(Path(cfg.ladder)):
                evaluate(load_backend(f"tiny:{path}", path.name), task, task.examples, 0, "b", path.name, 0)
    elif kind == "bursty":
        pipeline.bursty("", {}, out)
    elif kind == "bursty-train-only":
        layers, width = bursty.BurstyExperimentConfig().sizes[-1]
        with torch_threads(bursty.THREADS):
            train_bursty(BurstyConfig(n_layer=layers, n_embd=width, n_head=width // bursty.HEAD_DIM, checkpoints=1,
                                      final_episodes=10, final_shots=(0,)))
    else:
        raise SystemExit(f"unknown job {kind}")
    return {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def spawn(kind: str, out: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": SRC}
    done = subprocess.run([sys.executable, __file__, "--child", kind, "--out", str(out)], env=env, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"


def md(frame: pd.DataFrame, floatfmt: str = ".3g") -> str:
    return frame.to_markdown(index=False, floatfmt=floatfmt)


def science(icl_dir: Path, bursty_dir: Path) -> tuple[str, dict[str, Any]]:
    """The results sections of the file, and the numbers they quote."""
    with Store(icl_dir / "records.sqlite") as store:
        icl_secs = icl.sections(store, None)
    with Store(bursty_dir / "records.sqlite") as store:
        runs = stored_runs(store, bursty.NAME, bursty.NAME)
        onsets = [bursty.onset(r) for r in runs]
        b_secs = bursty.sections(store, None)
        histories = {r.label: r.history for r in runs}
    table = bursty.onset_table(onsets)
    gain_icl = next(s for s in icl_secs if s.title.startswith("Does in-context"))
    gain_bursty = next((s for s in b_secs if s.title.startswith("Does in-context")), None)
    cols = ["run", "layers", "width", "icl_appeared", "icl_onset_step", "onset_lo", "onset_hi", "onset_found",
            "final_icl_acc", "final_control_acc", "final_iwl_acc", "final_induction_score", "phase_change_step",
            "icl_score_drop_step"]
    curves = []
    for label, h in histories.items():
        keep = h[["step", "icl_acc", "icl_seen_acc", "control_acc", "iwl_acc", "induction_score", "icl_score"]]
        curves.append(f"**{label}**\n\n" + md(keep.iloc[:: max(1, len(keep) // 8)].round(3)))
    vcols = ["shots", "verdict", "confidence", "change", "change_lo", "change_hi", "partner", "partner_shape"]
    body = ["## 2. Does in-context learning appear? Bursty training (`emergentlab bursty`, defaults)",
            bursty._onset_section(onsets).summary[0], md(table[cols]),
            "Logged curves (2-way accuracies, chance 0.5; icl_score in nats), every few logged steps:",
            *curves,
            "## 3. Does ICL itself emerge? Verdicts on the n-shot gain curves",
            "Demo ladder (`emergentlab icl`, add3, exact match): " + gain_icl.summary[0], md(
                gain_icl.tables[0].frame[vcols])]
    if gain_bursty is not None and gain_bursty.tables:
        body += ["Bursty-trained sizes (final evaluation, 500 held-out episodes): " + gain_bursty.summary[0],
                 md(gain_bursty.tables[0].frame[vcols])]
    return "\n\n".join(body), {"onsets": table}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--keep", type=Path, help="keep the run folders here instead of a temporary folder")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.out)))
        return
    start = time.perf_counter()
    loads = [load()]
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        cost = {}
        for kind in ("icl-zero-shot", "icl", "bursty-train-only", "bursty"):
            cost[kind] = spawn(kind, root / kind)
            loads.append(load())
            print(kind, cost[kind], flush=True)
        results, _ = science(root / "icl", root / "bursty")
    rows = []
    for kind, base in (("icl", "icl-zero-shot"), ("bursty", "bursty-train-only")):
        for k in (base, kind):
            c = cost[k]
            rows.append({"job": k, "wall (s)": c["wall_s"], "CPU (s)": c["cpu_s"], "peak RSS (MiB)": c["peak_rss_mib"],
                         "wall × baseline": c["wall_s"] / cost[base]["wall_s"],
                         "CPU × baseline": c["cpu_s"] / cost[base]["cpu_s"]})
    head = (f"torch threads: icl {icl.THREADS}, bursty {bursty.THREADS}. The machine is shared with other jobs: load "
            f"average (1 min) {' → '.join(loads)} over the script, on {os.cpu_count()} cores, so wall times are "
            "pessimistic; CPU time is what the job itself used (about its wall time on an idle machine, one thread "
            f"each). Whole script: {time.perf_counter() - start:.0f} s.")
    cost_md = ("## 1. Cost of each experiment with its defaults (goal: ≤ 10 min on 2 cores)\n\n"
               + md(pd.DataFrame(rows)) + "\n\nBaselines (ratio 1): `icl-zero-shot` scores the default ladder and "
               "items zero-shot only; `bursty-train-only` trains the largest default size with no logged measures.")
    write_result("icl", "\n\n".join([head, cost_md, results]))


if __name__ == "__main__":
    main()
