"""Inverse scaling and U-shapes (McKenzie et al. 2023) on a tiny ladder trained so that the prior exists, and on the
real models: the verdicts of the ordinary verdict machinery (`analysis.Analysis`, the same as any study) on the
distractor and sycophancy tasks of `tasks.inverse` → benchmarks/results/inverse.md.

The ladder (benchmarks/inverse_ladder.toml: four sizes, 2M tokens each) is trained on a mixture where the prior
tasks (repeat, agree) are the large share; it is trained into --ladder unless its rungs are there already. Each
task is asked two ways: generated (exact match, token accuracy) and as the 2-way choice between the right answer
and the prior's (mc_grade and the Brier score), where a model that follows the prior falls below the
0.5 of a guess. Beside each: the share of answers that are the prior's.

    PYTHONPATH=src python benchmarks/inverse_bench.py [--ladder runs/inverse_ladder] [--n 200] [--real-n 100]

Records go to --out (runs/inverse_bench/{tiny,real}); a rerun resumes from them (`pipeline.execute`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _machine import load_note, write_result  # noqa: E402
from _real import real_models  # noqa: E402

from emergentlab import metrics  # noqa: E402
from emergentlab.analysis.analyze import Analysis  # noqa: E402
from emergentlab.analysis.scores_csv import MIN_RUNGS  # noqa: E402
from emergentlab.experiments.base import torch_threads  # noqa: E402
from emergentlab.pipeline import execute  # noqa: E402
from emergentlab.store import Store  # noqa: E402
from emergentlab.study import parse_study  # noqa: E402
from emergentlab.tasks import make_task  # noqa: E402
from emergentlab.train import checkpoint_dirs, load_ladder_spec, train_ladder  # noqa: E402

SPEC = Path(__file__).parent / "inverse_ladder.toml"
TASKS = ("distractor", "sycophancy")
PRIORS = {"distractor": "repeat", "sycophancy": "agree"}


def study_dict(ladder: dict[str, str], out: Path, n: int, shots: int, priors: bool) -> dict:
    tasks = [{"generator": t, "n": n, "shots": [shots]} for t in TASKS]
    tasks += [{"generator": t, "name": f"{t}_2way", "n": n, "choices": 2, "shots": [shots]} for t in TASKS]
    if priors:
        tasks += [{"generator": PRIORS[t], "n": n, "shots": [shots]} for t in TASKS]
    return {"name": "inverse", "seed": 0, "out": str(out), "tasks": tasks,
            "ladder": [{"name": k, "model": v} for k, v in ladder.items()]}


def prior_share(records: pd.DataFrame, n: int) -> pd.DataFrame:
    """Per (task, model): the share of items answered with the prior's answer (generated text, or the choice with
    the highest log-prob)."""
    prior = {t: {ex.id: ex.metadata["prior_answer"] for ex in make_task(t, n=n, seed=0).examples} for t in TASKS}
    rows = []
    for r in records.itertuples(index=False):
        base = str(r.task).removesuffix("_2way")
        if base not in prior:
            continue
        p = prior[base].get(r.example_id)
        if r.kind == "multiple_choice":
            lps = list(r.choice_logprobs)
            said = r.choices[max(range(len(lps)), key=lps.__getitem__)]
        else:
            said = metrics.response(r._asdict())
        rows.append({"task": r.task, "model": r.model, "prior": float(said.strip() == p)})
    return pd.DataFrame(rows).groupby(["task", "model"], sort=False)["prior"].mean().unstack("model")


def evaluate(ladder: dict[str, str], out: Path, n: int, shots: int, priors: bool) -> tuple[pd.DataFrame, ...]:
    """Per-rung means (task × metric × rung), the verdict table (None under MIN_RUNGS rungs) and prior shares."""
    study = parse_study(study_dict(ladder, out, n, shots, priors), "<inverse>", Path.cwd())
    run = execute(study)
    with Store(study.store_path) as store:
        records, rungs = store.records("inverse"), store.rungs("inverse")
    keep = ["exact_match", "token_accuracy", "mc_grade", "brier"]
    means = run.means[run.means.index.get_level_values("metric").isin(keep)].droplevel("variant")
    verdicts = pd.DataFrame()
    if len(rungs) >= MIN_RUNGS:
        a = Analysis(n_boot=1000, seed=0).fit(metrics.compute(records), rungs, records)
        verdicts = a.table_[["task", "metric", "verdict", "change", "change_lo", "change_hi", "partner",
                             "partner_change"]]
        verdicts = verdicts[verdicts["metric"].isin(keep)]
    return means, verdicts, prior_share(records, n)


def flagged(verdicts: pd.DataFrame) -> str:
    """The inverse and U-shaped rows of a verdict table, as prose."""
    rows = verdicts[verdicts["verdict"].isin(["inverse", "U-shaped"])] if not verdicts.empty else verdicts
    return "; ".join(f"{r.task} {r.metric} {r.verdict} (D {r.change:+.3f}, 95 % [{r.change_lo:+.3f}, "
                     f"{r.change_hi:+.3f}])" for r in rows.itertuples(index=False)) or "none"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ladder", default="runs/inverse_ladder")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--real-n", type=int, default=100)
    ap.add_argument("--out", default="runs/inverse_bench")
    a = ap.parse_args()
    ladder_dir = Path(a.ladder)
    before = load_note()
    t0 = time.perf_counter()
    with torch_threads(1):
        trained = train_ladder(load_ladder_spec(SPEC), ladder_dir)
        t_train = time.perf_counter() - t0
        tiny = evaluate({p.name: f"tiny:{p}" for p in checkpoint_dirs(ladder_dir)}, Path(a.out) / "tiny", a.n, 0,
                        True)
        t_tiny = time.perf_counter() - t0 - t_train
        reals = real_models()
        real = evaluate(reals, Path(a.out) / "real", a.real_n, 2, False) if reals else None
    t_real = time.perf_counter() - t0 - t_train - t_tiny
    train_rows = "\n".join(f"| {r['name']} | {r['params']:,} | {r['val_loss']:.3f} | {r['wall_s']:.0f} |"
                           for r in trained)
    body = f"""
Command: `PYTHONPATH=src python benchmarks/inverse_bench.py --n {a.n} --real-n {a.real_n}` (one torch thread;
evaluation wall time of this run, records already stored are reused: tiny ladder {t_tiny:.0f} s, real models
{t_real:.0f} s; {before} at the start, {load_note()}
at the end: the cores are shared with other jobs).

## The ladder (benchmarks/inverse_ladder.toml)

Training mixture, by shares of 120,000 lines: repeat 4, distractor 1, agree 4, sycophancy 1, add2 2 (the priors
drilled, the override and the correction rare). 2M tokens per rung, lr 1e-3.

| rung | params | val loss (nats/char) | train wall s |
|---|---|---|---|
{train_rows}

## Tiny ladder: per-rung means, 0-shot, n = {a.n} test items per task

`*_2way`: the 2-way choice between the right answer and the prior's (a guess scores 0.5); repeat and agree are
the prior tasks themselves (is the prior learnt?).

{tiny[0].round(3).to_markdown()}

Share of answers that are the prior's (generated text; for *_2way the higher-log-prob choice):

{tiny[2].round(3).to_markdown()}

## Tiny ladder: verdicts (`Analysis`, the same machinery as every study; primary axis params)

change D: mean of the larger half of the ladder minus the smaller half (metric unit, 95 % interval).

{tiny[1].round(3).to_markdown(index=False) if not tiny[1].empty else "(none)"}

Inverse or U-shaped here: {flagged(tiny[1])}. A task is inverse on this ladder only where the prior is learnt at a
smaller size than what the prompt asks for; where the rare override share is enough for both to be learnt by the
same rung, the override's curve rises with the prior's instead.
"""
    if real is not None:
        body += f"""
## Real models: {', '.join(reals)}, 2-shot, n = {a.real_n} per task

Two rungs: no verdict (the machinery needs ≥ {MIN_RUNGS} rungs); the means and prior shares are what the data says.

{real[0].round(3).to_markdown()}

Share of answers that are the prior's:

{real[2].round(3).to_markdown()}
"""
    print(write_result("inverse", body))


if __name__ == "__main__":
    main()
