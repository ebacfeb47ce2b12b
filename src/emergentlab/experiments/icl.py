"""In-context learning gain: the same items zero-shot and n-shot (n = 1, 2, 4, 8 by default) at every rung of a
ladder of tiny checkpoints.

Records are `runner.evaluate`'s, one variant per shot count ("0shot", "2shot", …), so each n-shot variant pairs
with the zero-shot one by example id. The section has the gain table (n-shot − 0-shot exact match per rung and n,
metric unit) and, per n, `variants.compare_section`: each variant's emergence point, the shift with a paired
bootstrap interval, and the sign flip of the gain. Demonstrations past a checkpoint's context are dropped from the
left by the backend (the records count them in `truncated_tokens`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from emergentlab.experiments.base import ladder_rungs, rung_backends
from emergentlab.experiments.variants import compare_section
from emergentlab.records import Progress, no_progress
from emergentlab.runner import evaluate
from emergentlab.sections import Section, Table
from emergentlab.store import Store
from emergentlab.study import CompareSpec
from emergentlab.tasks import TASKS, make_task, variant_name
from emergentlab.train import DEMO_LADDER_DIR

NAME = "icl"
THREADS = 2


@dataclass(frozen=True)
class IclConfig:
    """`ladder`: a folder of tiny checkpoints, one rung each, unless `models` lists the rungs as backend specs (any
    backend; `experiments.base.parse_rung`); `task`: a generator of `tasks.synthetic`; `n`: test
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
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; known: {', '.join(sorted(TASKS))}")
        if self.n < 2 or not self.shots or min(self.shots) < 1:
            raise ValueError(f"need n ≥ 2 and shot counts ≥ 1, got n = {self.n}, shots = {self.shots}")


def run(config: IclConfig, store: Store, progress: Progress = no_progress, study: str = NAME) -> None:
    """Zero-shot and every n-shot variant of every item at every rung, stored as records of `study`."""
    task = make_task(config.task, n=config.n, seed=config.seed)
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
    return out
