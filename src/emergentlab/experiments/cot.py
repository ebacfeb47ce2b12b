"""Chain-of-thought vs direct (Wei et al. 2022b): the same addition items asked directly and with worked traces as
demonstrations, at every rung of a ladder of tiny checkpoints.

Both variants are `runner.evaluate` records of the same examples (variant "direct": the task's own prompt and exact
match on the generation; variant "cot": trace demonstrations from `tasks.cot` and exact match on the number after
the answer marker, `tasks.answers`), so they pair by example id. The section is `variants.compare_section` of
cot vs direct on exact match: per-rung paired differences, each variant's emergence point and the sign flip of
CoT − direct with bootstrap intervals, or "no flip within the ladder".

A ladder that never saw a trace in training has nothing to imitate: on it the experiment measures what trace
demonstrations cost a model that cannot use them (the target log-probs of CoT records are those of the bare answer
right after the trace prompt, which no metric of this section reads).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd

from emergentlab.experiments.base import ladder_rungs, rung_backends
from emergentlab.experiments.variants import compare_section
from emergentlab.records import Progress, no_progress
from emergentlab.runner import evaluate
from emergentlab.sections import Section
from emergentlab.store import Store
from emergentlab.study import CompareSpec
from emergentlab.tasks import TASKS, make_task
from emergentlab.tasks.cot import cot_task
from emergentlab.train import DEMO_LADDER_DIR, checkpoint_dirs

NAME = "cot"
THREADS = 2
DIRECT, COT = "direct", "cot"


@dataclass(frozen=True)
class CotConfig:
    """`ladder`: a folder whose subfolders are tiny checkpoints (each with config.json), one rung each, unless
    `models` lists the rungs as backend specs (any backend; `experiments.base.parse_rung`); `task`: an
    addition generator (add1 … add5); `n`: test items; `shots`: demonstrations per prompt in both variants (traces
    are long: the demo ladder's 64-character context holds one); `n_boot`: bootstrap replicates of the section;
    `level`: the exact match (fraction) at which a variant counts as emerged (the demo ladder tops out near 0.4)."""

    ladder: str = str(DEMO_LADDER_DIR)
    task: str = "add3"
    n: int = 100
    shots: int = 1
    seed: int = 0
    n_boot: int = 1000
    level: float = 0.1
    models: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.models and not Path(self.ladder).is_dir():
            raise ValueError(f"ladder {self.ladder} is not a folder")
        ladder_rungs(self.ladder, self.models)
        if TASKS.get(self.task, ("", {}))[1].get("op") != "+":
            raise ValueError(f"task must be an addition generator (add1 … add5), got {self.task!r}")
        if self.n < 2 or self.shots < 0:
            raise ValueError(f"need n ≥ 2 and shots ≥ 0, got n = {self.n}, shots = {self.shots}")


def rung_dirs(ladder: Path) -> list[Path]:
    """The checkpoint folders of a ladder, by name (the analysis sorts them by scale); ValueError when none."""
    out = checkpoint_dirs(ladder)
    if not out:
        raise ValueError(f"no tiny checkpoints (subfolders with config.json) in {ladder}")
    return out


def run(config: CotConfig, store: Store, progress: Progress = no_progress, study: str = NAME) -> None:
    """Both variants of every item at every rung, stored as records of `study`, and the run's config."""
    direct = make_task(config.task, n=config.n, seed=config.seed)
    traced = cot_task(direct)
    for rung, backend in rung_backends(ladder_rungs(config.ladder, config.models), store, study, progress, "cot"):
        for variant, task in ((DIRECT, direct), (COT, traced)):
            recs = evaluate(backend, task, task.examples, config.shots, study, rung.name, config.seed)
            store.put_records(replace(r, variant=variant) for r in recs)
    store.put_run(study, NAME, config.task, asdict(config))


def sections(store: Store, study: str | None) -> list[Section]:
    """Per stored run: CoT vs direct on exact match along params (`variants.compare_section`)."""
    out = []
    for (st, _run), cfg in store.runs(NAME, study).items():
        rungs = store.rungs(st).sort_values("params", kind="stable")
        records = store.records(st, [cfg["task"]])
        if records.empty:
            continue
        s = compare_section(CompareSpec(COT, DIRECT, cfg["task"], "exact_match", cfg["level"]), records,
                            rungs.reset_index(drop=True), "params", cfg["seed"], cfg["n_boot"])
        s.title = f"Chain of thought vs direct ({cfg['shots']}-shot) — {s.title}"
        out.append(s)
    return out


def paired_table(store: Store, study: str) -> pd.DataFrame:
    """The per-rung table of the first stored run (for the CLI and the benchmark)."""
    secs = sections(store, study)
    return secs[0].tables[0].frame if secs and secs[0].tables else pd.DataFrame()
