"""In-context learning on this CPU (issue 14): what each experiment costs with its defaults, and what it finds.

1. `emergentlab icl` (zero- vs 1, 2, 4, 8-shot on the shipped demo ladder, add3, 100 items) and `emergentlab
   bursty` (tiny GPTs of four sizes trained on Chan et al.'s bursty sequences): wall time, CPU time and peak RSS
   of each, run in a child process of its own. Each has a baseline run in this script for its ratio: for `icl`,
   the same ladder scored zero-shot only (one variant instead of five, no sections); for `bursty`, its largest
   default size trained with no logging but at the first and last step and a small final evaluation (the cost
   of training alone, against which the logged measures and the report are overhead).
2. The scientific results, read back from the two run folders: ICL onset per size (step, interval), the
   induction-head events beside it, and the verdict on each n-shot gain curve (does ICL itself emerge?).

3. With --ablations: the size where ICL appeared (L2-d64) trained without each of the two choices the default
   recipe adds to Chan et al.'s: no per-sequence symbol maps (fixed labels only), and the loss on the query's
   label only.

Writes benchmarks/results/icl.md.    python benchmarks/icl_bench.py [--keep DIR] [--ablations]
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
JOBS = ("icl-zero-shot", "icl", "bursty-train-only", "bursty")
# the default recipe less one of the two choices it adds to Chan et al.'s, on the size where ICL appeared (L2-d64)
ABLATIONS = {"ablation-fixed-labels": {"p_symbols": 0.0}, "ablation-query-loss": {"interim_weight": 0.0}}


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
    elif kind in ABLATIONS:
        pipeline.bursty("2x64", ABLATIONS[kind], out)
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
    done = subprocess.run([sys.executable, __file__, "--child", kind, "--out", str(out)], env=env,
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{kind} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"


def md(frame: pd.DataFrame, floatfmt: str = ".3g") -> str:
    return frame.to_markdown(index=False, floatfmt=floatfmt)


def science(icl_dir: Path, bursty_dir: Path, ablations: list[Path]) -> tuple[str, dict[str, Any]]:
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
    shifts = [s.summary[0] for s in icl_secs if s.title.startswith("Compare") and s.summary]
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
            b_secs[0].summary[0], md(table[cols]),
            "Logged curves (2-way accuracies, chance 0.5; icl_score in nats), every few logged steps:",
            *curves,
            "## 3. Does ICL itself emerge? Verdicts on the n-shot gain curves, and the threshold shifts",
            "Demo ladder (`emergentlab icl`, add3, exact match): " + gain_icl.summary[0], md(
                gain_icl.tables[0].frame[vcols]),
            "Threshold shift of each n-shot variant against zero-shot on the demo ladder (exact match 0.1, log10 "
            "parameters, paired bootstrap intervals; `variants.compare_section`):",
            "\n".join(f"- {line}" for line in shifts)]
    if gain_bursty is not None and gain_bursty.tables:
        body += ["Bursty-trained sizes (final evaluation, 500 held-out episodes): " + gain_bursty.summary[0],
                 md(gain_bursty.tables[0].frame[vcols])]
    if ablations:
        rows = []
        for folder in ablations:
            with Store(folder / "records.sqlite") as store:
                for r in stored_runs(store, bursty.NAME, bursty.NAME):
                    row = bursty.onset_table([bursty.onset(r)]).iloc[0]
                    rows.append({"recipe": folder.name, "p_symbols": r.config["p_symbols"],
                                 "interim_weight": r.config["interim_weight"], **row[cols[3:]].to_dict()})
        base = table[table["run"] == "L2-d64-seed0"].iloc[0]
        rows.insert(0, {"recipe": "default", "p_symbols": 0.5, "interim_weight": 1.0, **base[cols[3:]].to_dict()})
        body += ["## 4. What the default recipe needs (L2-d64, 1500 steps, one seed)",
                 "The default adds two things to Chan et al.'s recipe: half of the bursty sequences carry a symbol "
                 "map of their own (their \"unfixed\" labels: only the context can fit them), and the loss covers "
                 "every label, not the query's alone (their w_interim_predictions). Without either:",
                 md(pd.DataFrame(rows))]
    return "\n\n".join(body), {"onsets": table}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--keep", type=Path, help="keep the run folders here instead of a temporary folder")
    ap.add_argument("--ablations", action="store_true", help="also train L2-d64 without each of the two choices "
                    "the default recipe adds to Chan et al.'s (per-sequence symbols; the loss on every label)")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.out)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        # a --keep folder remembers the jobs it has run (costs.json): a rerun runs only the missing ones
        saved = json.loads((root / "costs.json").read_text()) if (root / "costs.json").is_file() else {}
        cost, loads = saved.get("cost", {}), saved.get("loads", [])
        for kind in (*JOBS, *(ABLATIONS if args.ablations else ())):
            if kind in cost:
                continue
            loads.append(load())
            cost[kind] = spawn(kind, root / kind)
            loads.append(load())
            print(kind, cost[kind], flush=True)
            (root / "costs.json").write_text(json.dumps({"cost": cost, "loads": loads}))
        results, _ = science(root / "icl", root / "bursty",
                             [root / k for k in ABLATIONS if k in cost and (root / k).is_dir()])
    whole = sum(c["wall_s"] for c in cost.values())
    rows = []
    for kind, base in (("icl", "icl-zero-shot"), ("bursty", "bursty-train-only")):
        for k in (base, kind):
            c = cost[k]
            rows.append({"job": k, "wall (s)": c["wall_s"], "CPU (s)": c["cpu_s"], "peak RSS (MiB)": c["peak_rss_mib"],
                         "wall × baseline": c["wall_s"] / cost[base]["wall_s"],
                         "CPU × baseline": c["cpu_s"] / cost[base]["cpu_s"]})
    head = (f"torch threads: icl {icl.THREADS}, bursty {bursty.THREADS}. The machine is shared with other jobs: load "
            f"average (1 min) {' → '.join(loads)} sampled between jobs, on {os.cpu_count()} cores, so wall "
            "times are pessimistic; CPU time is what the job itself used (about its wall time on an idle machine, "
            f"one thread each). All jobs: {whole:.0f} s of wall time.")
    cost_md = ("## 1. Cost of each experiment with its defaults (goal: ≤ 10 min on 2 cores)\n\n"
               + md(pd.DataFrame(rows)) + "\n\nBaselines (ratio 1): `icl-zero-shot` scores the default ladder and "
               "items zero-shot only; `bursty-train-only` trains the largest default size with no logged measures.")
    write_result("icl", "\n\n".join([head, cost_md, results]))


if __name__ == "__main__":
    main()
