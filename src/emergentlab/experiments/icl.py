"""In-context learning gain: the same items zero-shot and n-shot (n = 1, 2, 4, 8 by default) at every rung of a
ladder of tiny checkpoints.

Records are `runner.evaluate`'s, one variant per shot count ("0shot", "2shot", …), so each n-shot variant pairs
with the zero-shot one by example id. The section has the gain table (n-shot − 0-shot exact match per rung and n,
metric unit) and, per n, `variants.compare_section`: each variant's emergence point, the shift with a paired
bootstrap interval, and the sign flip of the gain. Demonstrations past a checkpoint's context are dropped from the
left by the backend (the records count them in `truncated_tokens`).

Does in-context learning itself emerge? `gain_section` puts each n's gain curve (per example, n-shot minus
zero-shot, along parameters) through the verdict rule (`analysis.verdict.gain_verdicts`): emergent, smooth,
mirage, flat, inverse or U-shaped, with its bootstrap confidence, exact match judged with its continuous partners'
gains. The bursty-training experiment (`experiments.bursty`) uses the same section for its models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from emergentlab import metrics
from emergentlab.analysis.verdict import gain_verdicts
from emergentlab.experiments.base import ladder_rungs, rung_backends
from emergentlab.experiments.variants import compare_section
from emergentlab.records import Progress, no_progress
from emergentlab.runner import evaluate
from emergentlab.sections import Section, Table
from emergentlab.store import Store
from emergentlab.study import CompareSpec
from emergentlab.tasks import TASKS, make_task, variant_name
from emergentlab.tasks.symbols import SYMBOL_TASK, symbol_task
from emergentlab.train import DEMO_LADDER_DIR

NAME = "icl"
THREADS = 2


@dataclass(frozen=True)
class IclConfig:
    """`ladder`: a folder of tiny checkpoints, one rung each, unless `models` lists the rungs as backend specs (any
    backend; `experiments.base.parse_rung`); `task`: a generator of `tasks.synthetic`, or ``symbols``
    (`tasks.symbols.symbol_task`: 2-way symbol-mapping episodes, n shots = n demonstrations per way); `n`: test
    items; `shots`: the n-shot counts compared with zero-shot; `n_boot`: bootstrap replicates of the section;
    `level`: the exact match (fraction) at which a variant counts as emerged."""

    ladder: str = str(DEMO_LADDER_DIR)
    task: str = "add3"
    n: int = 100
    shots: tuple[int, ...] = field(default=(1, 2, 4, 8))
    seed: int = 0
    n_boot: int = 1000
    level: float = 0.1
    models: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.models and not Path(self.ladder).is_dir():
            raise ValueError(f"ladder {self.ladder} is not a folder")
        ladder_rungs(self.ladder, self.models)
        if self.task not in TASKS and self.task != SYMBOL_TASK:
            raise ValueError(f"unknown task {self.task!r}; known: {', '.join(sorted(TASKS))}")
        if self.n < 2 or not self.shots or min(self.shots) < 1:
            raise ValueError(f"need n ≥ 2 and shot counts ≥ 1, got n = {self.n}, shots = {self.shots}")


def run(config: IclConfig, store: Store, progress: Progress = no_progress, study: str = NAME) -> None:
    """Zero-shot and every n-shot variant of every item at every rung, stored as records of `study`."""
    task = (symbol_task(config.n, config.seed) if config.task == SYMBOL_TASK
            else make_task(config.task, n=config.n, seed=config.seed))
    for rung, backend in rung_backends(ladder_rungs(config.ladder, config.models), store, study, progress, "icl"):
        for shots in (0, *config.shots):
            store.put_records(evaluate(backend, task, task.examples, shots, study, rung.name, config.seed))
    store.put_run(study, NAME, config.task, {**asdict(config), "shots": list(config.shots)})


def sections(store: Store, study: str | None) -> list[Section]:
    """Per stored run: the gain table, then n-shot vs 0-shot on exact match along params for each n."""
    out = []
    for (st, _run), cfg in store.runs(NAME, study).items():
        rungs = store.rungs(st).sort_values("params", kind="stable").reset_index(drop=True)
        records = store.records(st, [cfg["task"]])
        if records.empty:
            continue
        specs = [CompareSpec(variant_name(n), variant_name(0), cfg["task"], "exact_match", cfg["level"])
                 for n in cfg["shots"]]
        per_n = [compare_section(c, records, rungs, "params", cfg["seed"], cfg["n_boot"]) for c in specs]
        gains = pd.DataFrame({"model": rungs["model"], "params": rungs["params"]})
        for n, s in zip(cfg["shots"], per_n, strict=True):
            if s.tables:
                gains[f"gain {n}-shot"] = s.tables[0].frame["difference"].to_numpy()
        out.append(Section(f"In-context learning gain — {cfg['task']} · exact_match", [
            "Gain: mean exact match (fraction) n-shot minus zero-shot on the same items, per rung; each n's "
            "intervals, emergence points and sign flip follow."],
            [Table(gains, "ICL gain per rung: n-shot − 0-shot exact match (fraction); params in parameters.",
                   key=f"icl-gain-{cfg['task']}")]))
        out.extend(per_n)
        out.append(gain_section(records, rungs, cfg["task"], cfg["shots"], cfg["seed"], cfg["n_boot"]))
    return out


GAIN_METRIC = "exact_match"


def gain_section(records: pd.DataFrame, rungs: pd.DataFrame, task: str, shots: Sequence[int], seed: int = 0,
                 n_boot: int = 1000) -> Section:
    """"Does ICL itself emerge?": the verdict on each n-shot gain curve (n-shot − 0-shot exact match, per example,
    along parameters), judged with its continuous partners' gains (`metrics.PAIRS`). `records`: one task's records
    with variants ``0shot`` and ``{n}shot``; `rungs`: `Store.rungs`' frame (with params)."""
    title = f"Does in-context learning itself emerge? — {task}"
    scores = metrics.compute(records, [GAIN_METRIC, *metrics.PAIRS[GAIN_METRIC]])
    base = variant_name(0)
    try:
        table = gain_verdicts(scores, rungs, base, "params", n_boot, seed).table_
    except ValueError as e:
        return Section(title, [f"No gain curve: {e}."])
    rows = []
    for n in shots:
        hit = table[(table["metric"] == GAIN_METRIC) & (table["variant"] == f"{variant_name(n)} − {base}")]
        if hit.empty:
            continue
        r = hit.iloc[0]
        rows.append({"shots": n, "verdict": r["verdict"], "confidence": r["confidence"], "change": r["change"],
                     "change_lo": r["change_lo"], "change_hi": r["change_hi"], "excess": r["excess"],
                     "excess_lo": r["excess_lo"], "excess_hi": r["excess_hi"], "shape": r["shape"],
                     "partner": r["partner"], "partner_shape": r["partner_shape"], "note": r["note"]})
    if not rows:
        return Section(title, ["No n-shot variant shares examples with the zero-shot one at every rung."])
    frame = pd.DataFrame(rows)
    said = "; ".join(f"{r.shots}-shot gain {r.verdict}" + (f" ({r.confidence:.0%} of replicates)"
                                                              if np.isfinite(r.confidence) else "")
                     for r in frame.itertuples())
    caption = ("Verdict on each gain curve (the rule of analysis.verdict, applied to per-example n-shot − 0-shot "
               "differences along parameters). change: mean gain of the larger half of the ladder minus the smaller "
               "half's (fraction of items, with 95 % bootstrap interval); excess: how far the larger half's gain "
               "sits above the small models' trend (fraction); confidence: share of bootstrap replicates giving the "
               "same verdict; partner: the continuous metric whose gain was read beside exact match.")
    return Section(title, [
        "The gain from demonstrations is itself a capability that may or may not emerge with scale: each n-shot "
        "gain curve goes through the same verdict rule as any metric, exact match judged with its continuous "
        f"partners' gains (a jump in exact-match gain with a smooth per-token gain is a mirage). {said}."],
        [Table(frame, caption, key=f"icl-gain-verdict-{task}")], summary=[f"ICL gain on {task}: {said}."])
