"""Predicting emergence by fine-tuning (Snell et al. 2024): fine-tune the smaller rungs of a ladder on k examples of
a task for several k, fit the emergence law (`analysis.emergence_law`: how the emergence point moves with k), and
extrapolate to the un-finetuned model to predict where the larger rungs emerge; the largest rungs are held out and
the prediction is scored against what they actually do.

The ladder is a folder of tiny checkpoints — trained first from a ladder spec when the folder holds none (by default
`data/finetune_ladder.toml`: a mixture in which the target task is a small share of the lines, so it emerges late)
— or, from a study file's `[finetune]` table, the study's own rungs (tiny or hf; hf rungs are fully fine-tuned by
`train.loop.finetune_hf`). The k examples are the first k of the task's train-split pool (nested: the 32 are among
the 128), disjoint from the test items by the generator's keyed split. Fine-tuning is `train.loop.finetune`, the
pre-training loop started from the checkpoint; every fine-tuned model is evaluated with `runner.evaluate` on the
same test items as the un-finetuned one.

Stored: each rung's scale facts (the pre-trained model's: a fine-tuned model is plotted at its base model's
pre-training loss, as Snell et al. do) and records under the records study, variant "base" (not fine-tuned) or
"ft{k}"; one run per task (experiment "finetune") whose config holds the fields below, the resolved axis and the
records study. The sections are rebuilt from the store alone.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emergentlab import metrics
from emergentlab.analysis.curves import AXIS_UNIT, axis_position, axis_value
from emergentlab.analysis.emergence_law import Backtest, EmergenceLaw, backtest
from emergentlab.models import load_backend
from emergentlab.models.tiny import TinyBackend
from emergentlab.records import Progress, ScaleFacts, no_progress
from emergentlab.runner import evaluate
from emergentlab.sections import Figure, Line, Marker, Panel, Section, Table
from emergentlab.store import Store
from emergentlab.study import Rung
from emergentlab.tasks import TASKS, Task, make_task
from emergentlab.train import checkpoint_dirs, load_ladder_spec, train_ladder
from emergentlab.train.loop import TrainConfig, finetune, finetune_hf

NAME = "finetune"
# one thread: these models are too small for a second one to pay, and on a shared machine two OpenMP threads that
# wait for each other ran a 40-step fine-tune 40x slower (58 s against 1.4 s wall, load 20 on 2 cores)
THREADS = 1
DEFAULT_SPEC = Path(__file__).resolve().parent.parent / "data" / "finetune_ladder.toml"
AXES = ("auto", "loss", "params", "non_embedding_params", "flops", "tokens")


def variant(k: int) -> str:
    """The records' variant for k fine-tuning examples: "base" for none, else "ft{k}"."""
    return "base" if k == 0 else f"ft{k}"


@dataclass(frozen=True)
class FinetuneConfig:
    """`ladder`: a folder of tiny checkpoints (one rung each); when it holds none, or `spec` names a ladder TOML,
    the spec (default: the built-in mixture `DEFAULT_SPEC`) is trained into it first (finished rungs are kept).
    `task`: a generator of `tasks.synthetic` (its train split gives the fine-tuning examples); `ks`: fine-tuning
    example counts, 0 = the un-finetuned model; `steps`, `lr`, `batch_size`, `block_size`: the fine-tuning run
    (optimizer steps, peak learning rate, rows per step, tokens per row); `holdout`: the largest rungs left out of
    the fit (never fine-tuned) and scored against; `n`: test items; `shots`: demonstrations in every prompt;
    `axis`: the scale axis ("auto": pre-training loss when every rung records it, else parameters); `metric`: a
    metric with a bounded range; `d0`: the low-data limit of the un-finetuned model (examples); `alpha`: the law's
    exponent (1: log-linear in D; None: fitted); `n_boot`, `confidence`: the bootstrap over examples; `tolerance`:
    the error (t units: nats on the loss axis, decades on a count axis) under which a prediction counts as a
    success (Snell et al.: 0.1 nats)."""

    ladder: str = "runs/finetune/ladder"
    spec: str = ""
    task: str = "add2"
    ks: tuple[int, ...] = field(default=(0, 32, 128, 512))
    steps: int = 100
    lr: float = 1e-3
    batch_size: int = 16
    block_size: int = 64
    holdout: int = 2
    n: int = 200
    shots: int = 0
    axis: str = "auto"
    metric: str = "exact_match"
    d0: float = 1.0
    alpha: float | None = 1.0
    n_boot: int = 200
    confidence: float = 0.9
    tolerance: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; known: {', '.join(sorted(TASKS))}")
        ks = sorted(set(self.ks))
        if len(ks) != len(self.ks) or 0 not in ks or min(ks) < 0 or sum(k > 0 for k in ks) < 2:
            raise ValueError(f"ks must be distinct, ≥ 0, include 0 (the un-finetuned model) and at least two "
                             f"fine-tuning counts, got {self.ks}")
        for name in ("steps", "batch_size", "block_size", "holdout", "n_boot"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.n < 2 or self.shots < 0 or not self.lr > 0:
            raise ValueError(f"need n ≥ 2, shots ≥ 0 and lr > 0, got n = {self.n}, shots = {self.shots}, "
                             f"lr = {self.lr}")
        if self.axis not in AXES:
            raise ValueError(f"axis must be one of {', '.join(AXES)}, got {self.axis!r}")
        if self.metric not in metrics.METRICS or not all(map(math.isfinite, metrics.declared(self.metric).bounds)):
            raise ValueError(f"metric must be a metric with a bounded range (e.g. exact_match), got {self.metric!r}")
        if self.d0 < 1 or not 0 < self.confidence < 1 or self.tolerance <= 0:
            raise ValueError(f"need d0 ≥ 1, 0 < confidence < 1 and tolerance > 0, got {self.d0}, "
                             f"{self.confidence}, {self.tolerance}")
        if self.alpha is not None and not 0.2 <= self.alpha <= 4:
            raise ValueError(f"alpha must be in [0.2, 4] or None (fitted), got {self.alpha}")


def tiny_rungs(config: FinetuneConfig, progress: Progress = no_progress) -> list[Rung]:
    """The rungs of `config.ladder` — every checkpoint folder, the intermediate ones of a "model × step" ladder
    (`<rung>/step-XXXXXX/`, named `<rung>-step-XXXXXX`) too — trained from `config.spec` (or the built-in spec)
    first when it holds no checkpoints or a spec is named."""
    ladder = Path(config.ladder)
    if config.spec or not checkpoint_dirs(ladder):
        spec = load_ladder_spec(config.spec or DEFAULT_SPEC)
        train_ladder(spec, ladder, lambda rung, s, total, _i: progress(f"pre-train · {rung}", s, total))
    out = []
    for p in checkpoint_dirs(ladder):
        out.append(Rung(p.name, f"tiny:{p}"))
        out += [Rung(f"{p.name}-{q.name}", f"tiny:{q}") for q in checkpoint_dirs(p) if q.name.startswith("step-")]
    return out


def finetune_lines(task: Task, k: int) -> list[str]:
    """The first k examples of the task's train-split pool as training lines ("input=target" for a generator)."""
    if k > len(task.shots_pool):
        raise ValueError(f"task {task.name!r}: {k} fine-tuning examples asked for, its train pool holds "
                         f"{len(task.shots_pool)}")
    return [task.format(ex) + ex.target for ex in task.shots_pool[:k]]


def _axis(config: FinetuneConfig, facts: Sequence[ScaleFacts]) -> str:
    def known(a: str) -> bool:
        vals = [getattr(f, a) for f in facts]
        return all(v is not None and math.isfinite(v) for v in vals) and len(set(vals)) == len(vals)

    if config.axis != "auto":
        if not known(config.axis):
            raise ValueError(f"axis {config.axis!r}: not every rung records a distinct value")
        return config.axis
    return "loss" if known("loss") else "params"


def _train_config(config: FinetuneConfig, block: int) -> TrainConfig:
    # fp32: at fine-tuning sizes bf16 autocast's casts cost more than its matmuls save (2.8x slower for a 1-layer
    # d32 tiny GPT, 1 thread)
    return TrainConfig(tokens=config.steps * config.batch_size * block, batch_size=config.batch_size,
                       block_size=block, lr=config.lr, warmup_steps=max(1, config.steps // 10), seed=config.seed,
                       bf16=False)


def run(config: FinetuneConfig, store: Store, progress: Progress = no_progress, study: str = NAME,
        rungs: Sequence[Rung] | None = None, records_study: str | None = None) -> dict[str, Any]:
    """Evaluate every rung un-finetuned, fine-tune every rung but the `holdout` largest on k examples for each k and
    evaluate it again; records and rungs under `records_study` (default `study`), the run under `study`.

    `rungs`: the models (tiny or hf specs, with scale facts to override); None: the tiny ladder of `config`.
    Returns the stored run config (with the resolved axis and wall times in seconds)."""
    t_start = time.perf_counter()
    rec_study = records_study or study
    rungs = list(rungs) if rungs is not None else tiny_rungs(config, progress)
    if len(rungs) < config.holdout + 3:
        raise ValueError(f"{len(rungs)} rungs: need at least holdout + 3 = {config.holdout + 3} (3 to fit on)")
    max_k = max(config.ks)
    task = make_task(config.task, n=config.n, seed=config.seed, shots_pool=max(max_k, config.shots + 1, 64))
    facts = []
    for i, r in enumerate(rungs):
        progress(f"evaluate · {r.name}", i, len(rungs))
        backend = load_backend(r.spec, r.name, r.trust_remote_code, r.precision)
        f = backend.facts().merged(r.facts)
        facts.append(f)
        store.put_rung(rec_study, r.name, r.spec, f)
        store.put_records(replace(x, variant=variant(0)) for x in
                          evaluate(backend, task, task.examples, config.shots, rec_study, r.name, config.seed))
    axis = _axis(config, facts)
    order = np.argsort(axis_position(axis, np.array([getattr(f, axis) for f in facts], dtype=float)), kind="stable")
    fit_rungs = [rungs[i] for i in order[: len(rungs) - config.holdout]]
    t_ft = time.perf_counter()
    jobs = [(r, k) for r in fit_rungs for k in config.ks if k > 0]
    for j, (r, k) in enumerate(jobs):
        progress(f"fine-tune · {r.name} · k={k}", j, len(jobs))
        backend = load_backend(r.spec, r.name, r.trust_remote_code, r.precision)
        lines = finetune_lines(task, k)
        if isinstance(backend, TinyBackend):
            finetune(backend.model, _train_config(config, min(config.block_size, backend.model.cfg.block_size)),
                     lines)
        elif hasattr(backend, "tok") and hasattr(backend, "model"):  # an hf backend
            finetune_hf(backend, _train_config(config, config.block_size), lines)  # type: ignore[arg-type]
        else:
            raise ValueError(f"rung {r.name!r} ({r.spec.split(':')[0]}): only tiny and hf models can be fine-tuned")
        store.put_records(replace(x, variant=variant(k)) for x in
                          evaluate(backend, task, task.examples, config.shots, rec_study, r.name, config.seed))
    progress("fine-tune", len(jobs), len(jobs))
    cfg = {**asdict(config), "ks": list(config.ks), "axis": axis, "records": rec_study,
           "fit_rungs": [r.name for r in fit_rungs], "finetune_s": round(time.perf_counter() - t_ft, 2),
           "wall_s": round(time.perf_counter() - t_start, 2)}
    store.put_run(study, NAME, config.task, cfg)
    return cfg


# ---- analysis of what is stored ---------------------------------------------------------------------------------
@dataclass
class Fitted:
    """One stored run, fitted: its config, rungs (sorted along the axis), the k values, per-rung means (K, R) in
    the metric's unit (NaN where not run), the law fitted without the held-out rungs, and the backtest."""

    config: dict[str, Any]
    rungs: pd.DataFrame
    ks: list[int]
    means: np.ndarray
    law: EmergenceLaw
    backtest: Backtest


def fit(store: Store, study: str | None) -> list[Fitted]:
    """Every stored finetune run under `study` (every study if None), refitted from its records."""
    out = []
    for (st, _run), cfg in store.runs(NAME, study).items():
        rec = cfg.get("records", st)
        records = store.records(rec, [cfg["task"]])
        if records.empty:
            continue
        axis = cfg["axis"]
        rungs = store.rungs(rec)
        rungs = rungs.assign(_t=axis_position(axis, rungs[axis].to_numpy(dtype=float))).sort_values(
            "_t", kind="stable").reset_index(drop=True)
        ks = sorted(int(k) for k in cfg["ks"])
        scores = metrics.compute(records, [cfg["metric"]])
        wide = scores.pivot_table(index="example_id", columns=["variant", "model"], values="value", aggfunc="first")
        cols = pd.MultiIndex.from_tuples([(variant(k), m) for k in ks for m in rungs["model"]])
        y = wide.reindex(columns=cols).to_numpy(dtype=float).reshape(len(wide), len(ks), len(rungs))
        y = y.transpose(1, 0, 2)  # (K, E, R)
        law = EmergenceLaw(d0=cfg["d0"], alpha=cfg["alpha"], bounds=metrics.declared(cfg["metric"]).bounds,
                           n_boot=cfg["n_boot"], confidence=cfg["confidence"], seed=cfg["seed"])
        bt, law = backtest(rungs["_t"].to_numpy(), np.array(ks, dtype=float), y, cfg["holdout"], law,
                           cfg["tolerance"])
        with warnings.catch_warnings():  # a cell that was not run (a held-out rung's fine-tuning) is all NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            means = np.nanmean(y, axis=1)
        out.append(Fitted(cfg, rungs, ks, means, law, bt))
    return out


def _where(axis: str) -> tuple[str, str]:
    """How t reads on `axis` (for prose), and the unit of an error in t."""
    return ("pre-training loss (nats)", "nats") if axis == "loss" else (f"log10 {AXIS_UNIT.get(axis, axis)}",
                                                                        "decades")


def _v(axis: str, t: float) -> float:
    return float(axis_value(axis, t)) if math.isfinite(t) else math.nan


def _fmt(axis: str, t: float) -> str:
    """A t coordinate in the axis' own unit, for prose."""
    if not math.isfinite(t):
        return "—"
    return f"{-t:.3f} nats" if axis == "loss" else f"{axis_value(axis, t):.3g} {AXIS_UNIT.get(axis, axis)}"


def prediction_text(f: Fitted) -> str:
    """One sentence: the prediction, its interval, what the held-out rungs did and the error."""
    b, cfg = f.backtest, f.config
    axis = cfg["axis"]
    _, eunit = _where(axis)
    conf = f"{100 * cfg['confidence']:.0f} %"
    head = (f"{cfg['task']} ({cfg['metric']}): the emergence law fitted on the {len(f.rungs) - b.holdout} smaller "
            f"rungs predicts un-finetuned emergence at {_fmt(axis, b.predicted)} ({conf} interval "
            f"{_fmt(axis, b.predicted_lo)} to {_fmt(axis, b.predicted_hi)})")
    if not b.emerged:
        return (f"{head}; the un-finetuned curve does not leave its floor within the ladder, so the held-out rungs "
                f"only bound the truth (beyond {_fmt(axis, float(f.rungs['_t'].iloc[-1]))}); the interval "
                f"{'allows' if b.covered else 'rules out'} that.")
    verdict = "a success" if b.success else "a failure"
    return (f"{head}; fitted on all {len(f.rungs)} rungs it emerges at {_fmt(axis, b.actual)}: error "
            f"{b.error:.3f} {eunit} ({conf} of replicates {b.error_lo:.3f}–{b.error_hi:.3f}), {verdict} at "
            f"{b.tolerance:g} {eunit}; the interval {'covers' if b.covered else 'misses'} the actual point.")


def _section(f: Fitted) -> Section:
    cfg, b, law = f.config, f.backtest, f.law
    axis, metric = cfg["axis"], cfg["metric"]
    where, eunit = _where(axis)
    unit = AXIS_UNIT.get(axis, axis)
    t = f.rungs["_t"].to_numpy()
    x = tuple(float(axis_value(axis, v)) for v in t)
    held = len(t) - b.holdout
    per_rung = pd.DataFrame({"model": f.rungs["model"], axis: f.rungs[axis].to_numpy(dtype=float),
                             "role": ["fit"] * held + ["held out"] * b.holdout})
    for i, k in enumerate(f.ks):
        per_rung[f"k={k}"] = f.means[i]
    lo_pts, hi_pts = law.emergence_interval(np.array(f.ks, dtype=float))
    points = pd.DataFrame({
        "k (examples)": f.ks, "free elbow": [_v(axis, v) for v in law.free_points_],
        "law e(k)": [_v(axis, v) for v in law.emergence_point(np.array(f.ks, dtype=float))],
        "law lo": [_v(axis, v) for v in lo_pts], "law hi": [_v(axis, v) for v in hi_pts]})
    conf = f"{100 * cfg['confidence']:.0f} %"
    pred = pd.DataFrame([{
        "predicted": _v(axis, b.predicted), "pred lo": _v(axis, b.predicted_lo), "pred hi": _v(axis, b.predicted_hi),
        "actual": _v(axis, b.actual), "actual lo": _v(axis, b.actual_lo), "actual hi": _v(axis, b.actual_hi),
        f"error ({eunit})": b.error, "error lo": b.error_lo, "error hi": b.error_hi, "covered": b.covered,
        f"success (≤ {b.tolerance:g})": b.success, "emerged in ladder": b.emerged}])
    held_tab = pd.DataFrame({"model": f.rungs["model"].iloc[held:].to_numpy(), axis: x[held:],
                             "predicted": b.held_pred, "lo": b.held_lo, "hi": b.held_hi, "actual": b.held_actual})
    p = law.params_
    law_text = (f"Emergence law (log power law of Snell et al., t = {'−loss' if axis == 'loss' else where}): "
                f"e(k) = {p['c']:.3f} − {p['k']:.4f}·(ln k)^{p['alpha']:.2f}"
                f"{' (α fixed)' if cfg['alpha'] is not None else ''}; performance "
                f"{p['lo']:.3f} + (1 − {p['lo']:.3f})·(1 − exp(−{p['slope']:.2f}·softplus(t − e))) per t unit, the "
                f"un-finetuned floor shifted by Δ = {p['delta']:+.3f}; the un-finetuned model stands at k = "
                f"{cfg['d0']:g}.")
    setup = (f"Ladder of {len(t)} rungs along {where}; the {held} smaller ones fine-tuned on k ∈ "
             f"{[k for k in f.ks if k > 0]} examples of {cfg['task']}'s train split ({cfg['steps']} steps, lr "
             f"{cfg['lr']:g}, {cfg['batch_size']} rows of {cfg['block_size']} tokens), the {b.holdout} largest held "
             f"out; every model answers the same {cfg['n']} test items {cfg['shots']}-shot. Intervals: {conf} "
             f"percentile bootstrap over test items ({cfg['n_boot']} replicates), refitting the law each time.")
    x_ks = [k for k in f.ks if k > 0]
    curve_t = np.linspace(t.min(), t.max(), 60)
    curve_x = tuple(float(axis_value(axis, v)) for v in curve_t)
    lines = []
    for i, k in enumerate(f.ks):
        keep = np.isfinite(f.means[i])
        lines.append(Line(tuple(np.array(x)[keep]), tuple(f.means[i][keep]), f"k={k} measured", style="points"))
        lines.append(Line(curve_x, tuple(law.predict(curve_t, k)), f"k={k} law", style="dashed", markers=False))
    marks = tuple(Marker(_v(axis, v), lab) for v, lab in ((b.predicted, "predicted emergence (k=0)"),
                                                          (b.actual, "actual (all rungs)")) if math.isfinite(v))
    blo, bhi = metrics.declared(metric).bounds
    curves = Panel(f"{cfg['task']}: {metric} per k", f"{axis} ({unit})", metric, tuple(lines), marks,
                   xlog=axis != "loss", ylim=(blo, bhi))
    dd = np.geomspace(max(cfg["d0"], 1.0), max(x_ks), 40)
    lo_l, hi_l = law.emergence_interval(dd)
    shift = Panel("emergence point vs k", "k (fine-tuning examples)", f"emergence point ({unit})", (
        Line(tuple(map(float, dd)), tuple(_v(axis, v) for v in law.emergence_point(dd)), "law",
             lo=tuple(_v(axis, v) for v in lo_l), hi=tuple(_v(axis, v) for v in hi_l), markers=False),
        Line(tuple(map(float, x_ks)), tuple(_v(axis, v) for v, k in zip(law.free_points_, f.ks, strict=True)
                                            if k > 0), "free elbow per k", style="points"),
        Line((float(cfg["d0"]),), (_v(axis, b.actual),), "actual un-finetuned (all rungs)", style="points")),
        xlog=True, ylog=axis != "loss")
    fig = Figure((curves, shift), f"Left: mean {metric} per rung for each k (points) and the fitted law (dashed); "
                                  "markers at the predicted and actual un-finetuned emergence points. Right: the "
                                  f"emergence point against k with the law's {conf} band, extrapolated to k = "
                                  f"{cfg['d0']:g} (the un-finetuned model).")
    text = prediction_text(f)
    return Section(f"Predicting emergence by fine-tuning — {cfg['task']} · {metric}", [setup, law_text, text], [
        Table(per_rung, f"Mean {metric} ({metrics.declared(metric).unit}) per rung and k; {axis} in {unit}; "
                        "held-out rungs are never fine-tuned.", key=f"finetune-means-{cfg['task']}"),
        Table(points, f"Emergence point per k ({unit}): each k's own elbow (free fit, shared slope and floor) and "
                      f"the law's e(k) with its {conf} interval.", key=f"finetune-points-{cfg['task']}"),
        Table(pred, f"Backtest: predicted un-finetuned emergence point (law on the smaller rungs) vs the elbow of "
                    f"the un-finetuned curve on all rungs, in {unit}, with {conf} intervals; error in {eunit}.",
              key=f"finetune-backtest-{cfg['task']}"),
        Table(held_tab, f"Held-out rungs: the law's predicted un-finetuned {metric} ({conf} interval) vs measured.",
              key=f"finetune-heldout-{cfg['task']}")], [fig], summary=[text])


def backtest_table(fitted: Sequence[Fitted]) -> pd.DataFrame:
    """One row per fitted run: task, axis, predicted and actual un-finetuned emergence points (axis unit) with
    intervals, the error (nats or decades), and whether the interval covers and the error is within tolerance."""
    rows = []
    for f in fitted:
        b, axis = f.backtest, f.config["axis"]
        rows.append({"task": f.config["task"], "axis": axis, "held out": b.holdout,
                     "predicted": _v(axis, b.predicted), "lo": _v(axis, b.predicted_lo),
                     "hi": _v(axis, b.predicted_hi), "actual": _v(axis, b.actual), "error": b.error,
                     "covered": b.covered, "success": b.success, "emerged": b.emerged})
    return pd.DataFrame(rows)


def sections(store: Store, study: str | None) -> list[Section]:
    """Per stored run: curves per k, the emergence law, prediction vs actual with interval and error."""
    return [_section(f) for f in fit(store, study)]
