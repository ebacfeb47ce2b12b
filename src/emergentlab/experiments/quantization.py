"""Quantization sweep (Liu et al. 2023, "Do emergent abilities exist in quantized LLMs?"): every rung of a tiny
ladder evaluated with its weights at each format of `Config.formats` (`emergentlab.models.quant`: fp32, bf16 and
per-group round-to-nearest at 8, 4 and 2 bits, dequantized back to fp32 for the forward pass), then judged per
format with the same `Analysis` as a ladder study.

Stored: each format's records and rungs under the study ``{study}@{format}`` (the rungs keep their fp32 scale facts:
a quantized model has the same parameters, fewer bits each), and one run per format in the runs table (experiment
"quantization", run = format) whose config holds the format's study name, bits per weight and the scoring speed
(target tokens per second of wall time, scoring only: `score`, no generation).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from emergentlab import metrics
from emergentlab.analysis.analyze import Analysis
from emergentlab.analysis.curves import usable_axes
from emergentlab.analysis.scores_csv import MIN_RUNGS
from emergentlab.models.quant import parse_quant, quantize_module
from emergentlab.models.tiny import TinyBackend
from emergentlab.records import Progress, no_progress
from emergentlab.runner import evaluate
from emergentlab.sections import Section, Table
from emergentlab.store import Store
from emergentlab.tasks import build_prompt, make_task
from emergentlab.train import DEMO_LADDER_DIR, checkpoint_dirs

NAME = "quantization"
THREADS = 0  # leaves torch's threads as they are: batched scoring uses every core it is given
FORMATS = ("fp32", "bf16", "int8-g64", "int4-g64", "int2-g64")


@dataclass
class Config:
    """`ladder`: a folder of tiny checkpoints (one subfolder per rung; the shipped demo ladder by default), evaluated
    zero-shot on `n` test items of generator task `task` drawn with `seed`, at each weight format of `formats`."""

    ladder: str = str(DEMO_LADDER_DIR)
    task: str = "add3"
    n: int = 100
    seed: int = 0
    formats: tuple[str, ...] = FORMATS


@dataclass
class FormatRun:
    """One format's evaluation: its study name, storage cost (bits per weight) and scoring speed (target tokens/s)."""

    format: str
    study: str
    bits_per_weight: float
    score_tokens_per_s: float


def run(config: Config | None = None, store: Store | None = None, progress: Progress = no_progress,
        study: str = NAME) -> list[FormatRun]:
    """Evaluate every rung at every format into `store` (records under ``{study}@{format}``); the scoring speed is
    measured on the same prompts for each format, so the formats' tokens/s compare within one run."""
    cfg = config or Config()
    quants = [parse_quant(f) for f in cfg.formats]
    dirs = checkpoint_dirs(Path(cfg.ladder))
    task = make_task(cfg.task, n=cfg.n, seed=cfg.seed)
    prompts = [build_prompt(task, ex, 0, cfg.seed) for ex in task.examples]
    targets = [ex.target for ex in task.examples]
    out = []
    for i, q in enumerate(quants):
        name = f"{study}@{q.name}"
        tokens, seconds = 0, 0.0
        for j, d in enumerate(dirs):
            backend = TinyBackend.from_path(d)
            quantize_module(backend.model, q)
            t0 = time.perf_counter()
            scored = backend.score(prompts, targets)
            seconds += time.perf_counter() - t0
            tokens += sum(len(s.logprobs) for s in scored)
            if store is not None:
                store.put_rung(name, backend.name, f"tiny:{d}", backend.facts())
                store.put_records(evaluate(backend, task, task.examples, 0, name, backend.name, cfg.seed, prompts))
            progress(f"{q.name} · {backend.name}", i * len(dirs) + j + 1, len(quants) * len(dirs))
        fr = FormatRun(q.name, name, q.bits_per_weight, tokens / seconds if seconds > 0 else float("nan"))
        if store is not None:
            store.put_run(study, NAME, q.name, {**asdict(cfg), "formats": list(cfg.formats), **asdict(fr)})
        out.append(fr)
    return out


@dataclass
class Sweep:
    """The fitted sweep: per format (in run order) its `FormatRun` and `Analysis` (None when too few rungs)."""

    runs: list[FormatRun]
    analyses: dict[str, Analysis | None]


def fit(store: Store, study: str | None, seed: int = 0, n_boot: int = 300) -> list[Sweep]:
    """One `Sweep` per study holding quantization runs (`study`, or every one when None)."""
    by_study: dict[str, list[FormatRun]] = {}
    for (st, _run), c in store.runs(NAME, study).items():
        by_study.setdefault(st, []).append(FormatRun(c["format"], c["study"], float(c["bits_per_weight"]),
                                                     float(c["score_tokens_per_s"])))
    out = []
    for st in sorted(by_study):
        runs = sorted(by_study[st], key=lambda r: -r.bits_per_weight)
        analyses: dict[str, Analysis | None] = {}
        for r in runs:
            records, rungs = store.records(r.study), store.rungs(r.study)
            ok = not records.empty and len(rungs) >= MIN_RUNGS and bool(usable_axes(rungs))
            analyses[r.format] = Analysis(n_boot=n_boot, seed=seed).fit(
                metrics.compute(records), rungs, records) if ok else None
        out.append(Sweep(runs, analyses))
    return out


def verdicts(sweep: Sweep) -> pd.DataFrame:
    """One row per (format, task, variant, discontinuous metric): the verdict, and the change D of the metric and
    of its continuous partner across the ladder (metric unit, 95 % interval)."""
    rows = []
    for r in sweep.runs:
        a = sweep.analyses[r.format]
        if a is None:
            continue
        for t in a.table_.itertuples(index=False):
            d = t._asdict()
            rows.append({"format": r.format, "bits/weight": r.bits_per_weight, "task": d["task"],
                         "variant": d["variant"], "metric": d["metric"], "verdict": d["verdict"],
                         "change D": d["change"], "D lo": d["change_lo"], "D hi": d["change_hi"],
                         "partner": d["partner"] if isinstance(d["partner"], str) else "–",
                         "partner change": d["partner_change"]})
    return pd.DataFrame(rows)


def survives(sweep: Sweep, metric: str = "exact_match") -> pd.DataFrame:
    """The "capability survives" table: per format and (task, variant), the largest rung's mean `metric` with its
    95 % bootstrap interval over examples, and whether it stays within fp32's interval (survives) — with the
    continuous partner (token accuracy) beside it. Empty when fp32 was not run."""
    base = sweep.analyses.get("fp32")
    if base is None:
        return pd.DataFrame()

    def top(a: Analysis, m: str) -> pd.DataFrame:
        c = a.curves_[(a.curves_["axis"] == a.axis_) & (a.curves_["metric"] == m)]
        return c.loc[c.groupby(["task", "variant"])["x"].idxmax()].set_index(["task", "variant"])

    ref = top(base, metric)
    rows = []
    for r in sweep.runs:
        a = sweep.analyses[r.format]
        if a is None:
            continue
        cur, cont = top(a, metric), top(a, "token_accuracy")
        for key, c in cur.iterrows():
            f = ref.loc[key] if key in ref.index else None
            task, variant = key if isinstance(key, tuple) else (key, "")
            rows.append({"format": r.format, "task": task, "variant": variant, "largest rung": c["model"],
                         metric: c["mean"], "lo": c["lo"], "hi": c["hi"],
                         "token_accuracy": cont.loc[key, "mean"] if key in cont.index else np.nan,
                         "survives": bool(f is not None and f["lo"] <= c["mean"] <= f["hi"])})
    return pd.DataFrame(rows)


def sections(store: Store, study: str | None) -> list[Section]:
    """Per sweep: one sentence per format on whether the largest rung keeps its exact match, the survives table,
    the verdicts per format and the scoring speed."""
    out = []
    for sweep in fit(store, study):
        surv = survives(sweep)
        ver = verdicts(sweep)
        summary = [f"Quantization · {r.task} ({r.variant}) at {r.format}: the largest rung's exact match "
                   f"{r.exact_match:.3f} [{r.lo:.3f}, {r.hi:.3f}] "
                   f"{'stays within' if r.survives else 'falls outside'} fp32's interval "
                   f"(token accuracy {r.token_accuracy:.3f})." for r in surv.itertuples(index=False)
                   if r.format != "fp32"]
        speed = pd.DataFrame([{"format": r.format, "bits/weight": r.bits_per_weight,
                               "score tokens/s": r.score_tokens_per_s} for r in sweep.runs])
        fp = speed.loc[speed["format"] == "fp32", "score tokens/s"]
        if not fp.empty:
            speed["× fp32"] = speed["score tokens/s"] / float(fp.iloc[0])
        tables = [Table(surv.round(4), "Capability survives: per weight format, the largest rung's exact match "
                        "(fraction) with its 95 % bootstrap interval over examples, token accuracy (fraction) beside "
                        "it; survives = the mean lies within fp32's interval.", key="quant-survives"),
                  Table(ver.round(4), "Verdict per weight format, task and discontinuous metric; change D: mean of "
                        "the larger half of the ladder minus the smaller half (metric unit, 95 % interval), for the "
                        "metric and its continuous partner.", key="quant-verdicts"),
                  Table(speed.round(3), "Scoring speed per format: target tokens scored per second of wall time "
                        "over every rung (weights dequantized to fp32, so this measures no integer kernel); "
                        "bits/weight counts one fp16 scale per group.", key="quant-speed")]
        out.append(Section(title="Quantization sweep", summary=summary, tables=tables, paragraphs=[
            "Each rung's Linear and Embedding weights are rounded per group to the format's levels "
            "(round-to-nearest, symmetric unless -asym; group size in the name) and dequantized back to fp32 for "
            "the forward pass; LayerNorm gains stay in fp32."]))
    return out
