"""PassUntil (Hu et al. 2023): at every rung of a ladder, sample each item at a stated temperature until its first pass
or a budget of draws, estimate the rung's pass rate from the draws, and fit the task scaling law to the rates.

Per rung the items are first evaluated as every study evaluates them (`runner.evaluate`: one greedy answer and the
teacher-forced log-probs of the reference answers, stored as records), then sampled in rounds: each round draws every
still-unresolved item once — several times when few are left, so a call carries about `batch` prompts — and an
item is resolved at its first pass, judged by the same per-example metric as the greedy answer (`metric`, exact match
by default, with the task's stop and response rules). Draw k of every item is seeded `draw_seed(seed, k)` and a
backend's draw depends only on (prompt, seed) (`models.base.Sampler`), so the draws, and every count, are the same
whatever `batch` is. Per item the number of draws and of passes (0 or 1) are stored as the run's series (step = the
item's index in the task), with the run's config and rung; `sections` reads them back and estimates the pooled rate
with its interval and the law (`analysis.passuntil`).

Beside the sampled rate the section shows the teacher-forced target-string probability (mean over items of
p(reference | prompt)) and the greedy pass rate of the same items: the first is what the study report's law fit
uses, and differs from the sampled rate wherever other spellings pass or generation does not stop after the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emergentlab import metrics
from emergentlab.analysis.forecast import law_fit
from emergentlab.analysis.passuntil import fit_law, rung_table
from emergentlab.errors import UserError
from emergentlab.experiments.base import StoredRun, store_run, stored_runs
from emergentlab.experiments.cot import rung_dirs
from emergentlab.models import load_backend
from emergentlab.models.base import Sampler, draw_seed
from emergentlab.models.openai import redact_spec
from emergentlab.records import Progress, Record, no_progress
from emergentlab.runner import evaluate
from emergentlab.sections import Figure, Line, Panel, Section, Table
from emergentlab.store import Store
from emergentlab.tasks import TASKS, make_task
from emergentlab.train import DEMO_LADDER_DIR

NAME = "passuntil"
# many small forward passes (a few hundred rows of ~20 tokens): on 2 shared cores one intra-op thread ran the
# sampling loop 4-6x faster than two, whose OpenMP workers spin while the other core is busy
THREADS = 1
TEACHER_FORCED = "expected_exact_match"  # the metric that holds p(reference | prompt) per record


@dataclass(frozen=True)
class PassUntilConfig:
    """`ladder`: a folder of tiny checkpoints, one rung each, used when `models` is empty; `models`: backend specs
    instead (tiny:, hf:, gguf:, openai: — any backend that samples); `task`: a generator of `tasks.synthetic`; `n`:
    items; `temperature`: the sampling temperature (logits divided by it; 1 samples the model's own distribution);
    `budget`: draws per item at most; `batch`: prompts per sampling call; `metric`: the per-example pass/fail metric
    (discontinuous, of generated text); `level`: confidence of every interval; `n_boot`: bootstrap replicates."""

    ladder: str = str(DEMO_LADDER_DIR)
    models: tuple[str, ...] = field(default=())
    task: str = "add3"
    n: int = 100
    temperature: float = 1.0
    budget: int = 1000
    batch: int = 512
    seed: int = 0
    metric: str = "exact_match"
    level: float = 0.9
    n_boot: int = 1000

    def __post_init__(self) -> None:
        if not self.models and not Path(self.ladder).is_dir():
            raise ValueError(f"ladder {self.ladder} is not a folder")
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; known: {', '.join(sorted(TASKS))}")
        m = metrics.METRICS.get(self.metric)
        if m is None or m.kind != "discontinuous" or not m.applies & {"generative", "numeric"}:
            names = [k for k, v in metrics.METRICS.items() if v.kind == "discontinuous" and v.applies
                     & {"generative", "numeric"}]
            raise ValueError(f"metric must be a pass/fail metric of generated text ({', '.join(names)}), "
                             f"got {self.metric!r}")
        if self.n < 2 or self.budget < 1 or self.batch < 1:
            raise ValueError(f"need n ≥ 2, budget ≥ 1 and batch ≥ 1, got {self.n}, {self.budget}, {self.batch}")
        if not (self.temperature > 0 and np.isfinite(self.temperature)):
            raise ValueError(f"temperature must be positive (0 is greedy: nothing to sample), got {self.temperature}")
        if not 0 < self.level < 1 or self.n_boot < 1:
            raise ValueError(f"need 0 < level < 1 and n_boot ≥ 1, got {self.level}, {self.n_boot}")


def sample_until(backend: Sampler, records: Sequence[Record], max_new_tokens: int, stop: Sequence[str],
                 temperature: float, budget: int, batch: int, seed: int, metric: str = "exact_match",
                 progress: Progress = no_progress) -> pd.DataFrame:
    """Draws until each record's first pass or `budget` draws: one row per record (its order), `example_id`,
    `draws` (count) and `passes` (1 if a draw passed, 0 if the budget ran out first).

    A pass is `metric` (a pass/fail metric) of the record with its generation replaced by the draw. Each round gives
    every unresolved record m = max(1, batch // unresolved) draws (k, k + 1, …, seeded `draw_seed(seed, k)`); a
    record resolves at the first passing draw, and draws after it in the same round are discarded, so the counts
    equal those of drawing one at a time."""
    fn = metrics.METRICS[metric].fn
    base = [asdict(r) for r in records]
    first: list[int | None] = [None] * len(records)
    tried = [0] * len(records)
    todo = list(range(len(records)))
    while todo:
        m = max(1, batch // len(todo))
        rows = sorted((k, i) for i in todo for k in range(tried[i], min(tried[i] + m, budget)))
        passed: dict[int, int] = {}
        for at in range(0, len(rows), batch):
            chunk = rows[at:at + batch]
            gens = backend.sample([base[i]["prompt"] for _, i in chunk], max_new_tokens, stop, temperature,
                                  [draw_seed(seed, k) for k, _ in chunk])
            for (k, i), g in zip(chunk, gens, strict=True):
                if fn({**base[i], "generation": g.text, "generation_tokens": g.tokens}) == 1.0:
                    passed[i] = min(k, passed.get(i, k))
        for i in todo:
            if i in passed:
                first[i] = passed[i]
            tried[i] = min(tried[i] + m, budget)
        todo = [i for i in todo if first[i] is None and tried[i] < budget]
        progress("passuntil · sampling", sum(f is not None or t >= budget for f, t in zip(first, tried, strict=True)),
                 len(records))
    return pd.DataFrame({"example_id": [r.example_id for r in records],
                         "draws": [budget if f is None else f + 1 for f in first],
                         "passes": [int(f is not None) for f in first]})


def _specs(config: PassUntilConfig) -> list[tuple[str, str | None]]:
    """(backend spec, rung name or None for the backend's own) per rung."""
    if config.models:
        return [(s, None) for s in config.models]
    return [(f"tiny:{p}", p.name) for p in rung_dirs(Path(config.ladder))]


def _rung_progress(progress: Progress, model: str) -> Progress:
    return lambda _d, done, total: progress(f"passuntil · {model}", done, total)


def run(config: PassUntilConfig, store: Store, progress: Progress = no_progress, study: str = NAME) -> None:
    """Every rung: records of the greedy answer and teacher-forced scores, then PassUntil sampling; each rung's
    per-item draws and passes stored as a run of `study` (config with the typed `model` and `task`)."""
    task = make_task(config.task, n=config.n, seed=config.seed)
    specs = _specs(config)
    for j, (spec, name) in enumerate(specs):
        backend = load_backend(spec, name)
        if not isinstance(backend, Sampler):
            raise UserError(f"the {spec.partition(':')[0]} backend cannot sample", source=redact_spec(spec),
                            field="models")
        model = backend.name
        progress(f"passuntil · {model}", j, len(specs))
        store.put_rung(study, model, redact_spec(spec), backend.facts())
        records = evaluate(backend, task, task.examples, 0, study, model, config.seed)
        store.put_records(records)
        items = sample_until(backend, records, task.max_new_tokens, task.stop, config.temperature, config.budget,
                             config.batch, config.seed, config.metric, _rung_progress(progress, model))
        cfg: dict[str, Any] = {**asdict(config), "models": list(config.models), "model": model, "task": task.name,
                               "study": study}
        store_run(store, study, NAME, f"{task.name} · {model}", cfg,
                  pd.DataFrame({"step": np.arange(len(items), dtype=float), "draws": items["draws"],
                                "passes": items["passes"]}))
    progress("passuntil", len(specs), len(specs))


def _items(runs: list[StoredRun]) -> pd.DataFrame:
    return pd.concat([r.history.assign(model=r.config["model"])[["model", "draws", "passes"]] for r in runs],
                     ignore_index=True)


def sections(store: Store, study: str | None) -> list[Section]:
    """Per study and task: the pass rate per rung (sampled, with its interval; teacher-forced target-string
    probability; greedy), the task law fitted to the sampled rates and to the teacher-forced ones, and a figure."""
    out = []
    groups: dict[tuple[str, str], list[StoredRun]] = {}
    for r in stored_runs(store, study, NAME):
        groups.setdefault((str(r.config["study"]), str(r.config["task"])), []).append(r)
    for (st, task), group in groups.items():
        cfg = group[0].config
        rungs = store.rungs(st).set_index("model")
        items = _items(group)
        table = rung_table(items, cfg["level"], cfg["n_boot"], cfg["seed"],
                           {r.config["model"]: int(r.config["budget"]) for r in group})
        table.insert(1, "params", [float(rungs["params"].get(m, np.nan)) for m in table["model"]])
        records = store.records(st, [task])
        scores = metrics.compute(records, [TEACHER_FORCED, cfg["metric"]]) if not records.empty else pd.DataFrame()
        for col, metric in (("target-string probability", TEACHER_FORCED), (f"greedy {cfg['metric']}",
                                                                            cfg["metric"])):
            mean = (scores[scores["metric"] == metric].groupby("model")["value"].mean() if not scores.empty
                    else pd.Series(dtype=float))
            table[col] = [float(mean.get(m, np.nan)) for m in table["model"]]
        table = table.sort_values("params", kind="stable").reset_index(drop=True)
        sizes = {m: p for m, p in zip(table["model"], table["params"], strict=True) if np.isfinite(p)}
        law = fit_law(table, sizes, cfg["level"], cfg["n_boot"], cfg["seed"])
        out.append(_section(task, cfg, table, law, sizes))
    return out


def _law_rows(table: pd.DataFrame, law: dict[str, Any], level: float) -> pd.DataFrame:
    pct = f"{level:.0%}"
    rows = []
    if law:
        rows.append({"pass rate": "sampled PassUntil", "alpha": law["alpha"],
                     f"alpha {pct} interval": f"[{law['alpha_lo']:.3g}, {law['alpha_hi']:.3g}]", "c": law["c"],
                     f"c {pct} interval": f"[{law['c_lo']:.3g}, {law['c_hi']:.3g}]", "r2": law["r2"],
                     "accelerated": law["accelerated"], "pu_at_10x": law["pu_at_10x"],
                     f"pu_at_10x {pct} interval": f"[{law['pu_at_10x_lo']:.3g}, {law['pu_at_10x_hi']:.3g}]",
                     "rungs_used": law["rungs_used"]})
    tf = table[(table["target-string probability"] > 0) & (table["target-string probability"] < 1)
               & np.isfinite(table["params"])]
    if len(tf) >= 3:
        f = law_fit(np.log(tf["params"].to_numpy()), tf["target-string probability"].to_numpy())
        rows.append({"pass rate": "target-string probability (teacher-forced)", "alpha": f["alpha"], "c": f["c"],
                     "r2": f["r2"], "accelerated": f["accelerated"], "pu_at_10x": f["pu_at_10x"],
                     "rungs_used": len(tf)})
    return pd.DataFrame(rows)


def _section(task: str, cfg: dict[str, Any], table: pd.DataFrame, law: dict[str, Any],
             sizes: dict[str, float]) -> Section:
    pct = f"{cfg['level']:.0%}"
    shown = table.rename(columns={"pu": "PU (sampled)", "pu_lo": f"PU {pct} lo", "pu_hi": f"PU {pct} hi"})
    tables = [Table(shown, f"Pass rate per rung, {task}: items sampled at temperature {cfg['temperature']:g} until "
                    f"their first pass under {cfg['metric']} or {cfg['budget']} draws. draws, passes, censored "
                    f"(items without a pass within the budget) are counts; PU = passes / draws, the maximum-"
                    f"likelihood pass rate per draw (a probability), with its {pct} interval; target-string "
                    "probability is the teacher-forced mean of p(reference | prompt); the greedy column the share "
                    "of items whose greedy answer passes (fractions); params in parameters.",
                    key=f"passuntil-{task}")]
    laws = _law_rows(table, law, cfg["level"])
    if not laws.empty:
        tables.append(Table(laws, f"Task scaling law PU(N) = exp(−c·N^−α) (Hu et al. 2023), fitted as log(−log PU) "
                            f"linear in ln N over rungs with 0 < PU < 1: alpha (unitless), c (unitless), R² on the "
                            f"log(−log) scale, accelerated = convex there (faster than the law), pu_at_10x the "
                            f"rate predicted at 10× the largest rung (probability). Sampled intervals ({pct}) from "
                            "refits on item-resampled replicates; the teacher-forced row has no interval.",
                            key=f"passuntil-law-{task}"))
    ok = table[np.isfinite(table["params"]) & (table["pu"] > 0)]
    floor = float(ok["pu"].min()) / 10 if not ok.empty else 1e-6  # a band reaching 0 would stretch the log axis
    lines = [Line(tuple(map(float, ok["params"])), tuple(map(float, ok["pu"])), "PU (sampled)",
                  tuple(map(float, ok["pu_lo"].clip(lower=floor))), tuple(map(float, ok["pu_hi"])))]
    tf = table[np.isfinite(table["params"]) & (table["target-string probability"] > 0)]
    if not tf.empty:
        lines.append(Line(tuple(map(float, tf["params"])), tuple(map(float, tf["target-string probability"])),
                          "target-string probability (teacher-forced)", style="dashed"))
    if law:
        grid = np.geomspace(min(sizes.values()), 10 * max(sizes.values()), 60)
        fit = np.exp(-law["c"] * grid ** -law["alpha"])
        lines.append(Line(tuple(map(float, grid)), tuple(map(float, fit)), "law fitted to PU", style="dotted",
                          markers=False))
    figures = [Figure((Panel(f"PassUntil — {task}", "parameters", "pass rate per draw", tuple(lines), xlog=True,
                             ylog=True),), f"Sampled pass rate per rung with its {pct} interval (band), the "
                      "teacher-forced target-string probability, and the task law through the sampled rates.")]
    summary = []
    if law:
        summary.append(f"PassUntil on {task}: PU(N) = exp(−c·N^−α) with α = {law['alpha']:.3g} "
                       f"[{law['alpha_lo']:.3g}, {law['alpha_hi']:.3g}] ({pct}); predicted pass rate at 10× the "
                       f"largest rung {law['pu_at_10x']:.3g} [{law['pu_at_10x_lo']:.3g}, {law['pu_at_10x_hi']:.3g}].")
    paragraphs = [
        "PassUntil (Hu et al. 2023) measures pass rates below what one greedy answer per item can show: each item is "
        f"sampled at temperature {cfg['temperature']:g} until it passes once or {cfg['budget']} draws are spent, "
        "and a rung's rate is its passes over its draws (the maximum-likelihood rate shared by its draws; with "
        "items of different difficulty it weighs hard items more). The teacher-forced target-string probability "
        "beside it is the cheap stand-in the study report fits: it counts the reference answers' own spelling only, "
        "and not whether generation stops after them, so it can fall on either side of the sampled rate."]
    return Section(f"PassUntil — {task}", paragraphs, tables, figures, summary)
