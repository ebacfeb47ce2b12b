"""Chain-of-thought vs direct (Wei et al. 2022b): the same addition items asked directly and with worked traces as
demonstrations, at every rung of a ladder of tiny checkpoints.

Both variants are `runner.evaluate` records of the same examples (variant "direct": the task's own prompt and exact
match on the generation; variant "cot": trace demonstrations from `tasks.cot` and exact match on the number after
the answer marker, `tasks.answers`), so they pair by example id. The section is `variants.compare_section` of
cot vs direct on exact match: per-rung paired differences, each variant's emergence point and the sign flip of
CoT − direct with bootstrap intervals, or "no flip within the ladder".

For CoT prompting to mean anything the ladder must have seen traces. With no ladder given, the experiment trains
one first (`COT_LADDER`, a ladder spec whose corpus mixes plain "a+b=c" lines with a share of worked-trace lines,
grouped into documents of one style so that a model learns to answer the way the previous line did; see
`tasks.train_lines`) into `cache`, where a rerun finds the finished rungs and resumes. A ladder that never saw a
trace (the demo ladder) has nothing to imitate: on it the experiment measures what trace demonstrations cost a
model that cannot use them (the target log-probs of CoT records are those of the bare answer right after the trace
prompt, which no metric of this section reads).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from emergentlab.experiments.base import Rung, ladder_rungs, rung_backends, trained_rungs
from emergentlab.experiments.variants import compare_section
from emergentlab.records import Progress, no_progress
from emergentlab.runner import evaluate
from emergentlab.sections import Section
from emergentlab.store import Store
from emergentlab.study import CompareSpec
from emergentlab.tasks import TASKS, make_task
from emergentlab.tasks.answers import extract
from emergentlab.tasks.cot import MARKER, cot_task
from emergentlab.train import DATA_DIR, LadderSpec, checkpoint_dirs, load_ladder_spec

NAME = "cot"
# one torch thread: rungs this small gain little from a second, and on a shared machine two threads trained them 2-17×
# slower than one (benchmarks/results/cot.md, "threads")
THREADS = 1
DIRECT, COT = "direct", "cot"
COT_LADDER = DATA_DIR / "ladders" / "cot.toml"


@dataclass(frozen=True)
class CotConfig:
    """`ladder`: a folder whose subfolders are tiny checkpoints (each with config.json), one rung each, unless
    `models` lists the rungs as backend specs (any backend; `experiments.base.parse_rung`); with neither, the
    ladder spec `spec` (a TOML file, `COT_LADDER` by default) is trained into `cache` first, resuming what is
    there; `task`: an addition generator (add1 … add5); `n`: test items; `shots`: demonstrations per prompt in
    both variants (traces are long: a 128-character context holds one with room for the answer's trace);
    `n_boot`: bootstrap replicates of the section; `level`: the exact match (fraction) at which a variant counts
    as emerged."""

    ladder: str = ""
    spec: str = str(COT_LADDER)
    cache: str = "runs/cot/ladder"
    task: str = "add2"  # the generator the default ladder trains on (its disjoint test split)
    n: int = 200
    shots: int = 1
    seed: int = 0
    n_boot: int = 1000
    level: float = 0.1
    models: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.models:
            ladder_rungs("", self.models)
        elif self.ladder and not Path(self.ladder).is_dir():
            raise ValueError(f"ladder {self.ladder} is not a folder")
        elif not self.ladder and not Path(self.spec).is_file():
            raise ValueError(f"ladder spec {self.spec} is not a file")
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
    """Both variants of every item at every rung (trained first when no ladder is given), stored as records of
    `study`, and the run's config."""
    direct = make_task(config.task, n=config.n, seed=config.seed)
    traced = cot_task(direct)
    spec = None if config.ladder or config.models else load_ladder_spec(config.spec)
    rungs = (ladder_rungs(config.ladder, config.models) if spec is None
             else [Rung(p.name, f"tiny:{p}") for p in trained_rungs(spec, Path(config.cache), progress, NAME)])
    for rung, backend in rung_backends(rungs, store, study, progress, "cot"):
        for variant, task in ((DIRECT, direct), (COT, traced)):
            recs = evaluate(backend, task, task.examples, config.shots, study, rung.name, config.seed)
            store.put_records(replace(r, variant=variant) for r in recs)
    store.put_run(study, NAME, config.task, {**asdict(config), "trained": asdict(spec) if spec else None})


def sections(store: Store, study: str | None) -> list[Section]:
    """Per stored run: CoT vs direct on exact match along params (`variants.compare_section`), with the share of
    CoT generations that state an answer after the marker at each rung (did the model write a trace at all)."""
    out = []
    for (st, _run), cfg in store.runs(NAME, study).items():
        rungs = store.rungs(st).sort_values("params", kind="stable")
        records = store.records(st, [cfg["task"]])
        if records.empty:
            continue
        s = compare_section(CompareSpec(COT, DIRECT, cfg["task"], "exact_match", cfg["level"]), records,
                            rungs.reset_index(drop=True), "params", cfg["seed"], cfg["n_boot"])
        s.title = f"Chain of thought vs direct ({cfg['shots']}-shot) — {s.title}"
        c = records[records["variant"] == COT]
        stated = c.assign(s=[extract(g, r or "") is not None for g, r in zip(c["generation"], c["output_regex"],
                                                                            strict=True)]).groupby("model")["s"]
        if s.tables:
            frame = s.tables[0].frame
            frame["cot states an answer"] = frame["model"].map(stated.mean()).to_numpy()
            s.tables[0].caption += (" 'cot states an answer': share of CoT generations with a number after the "
                                    f"marker {MARKER!r} (a trace carried through to its answer).")
        s.paragraphs.insert(0, _ladder_text(cfg))
        out.append(s)
    return out


def _ladder_text(cfg: dict[str, Any]) -> str:
    if not cfg.get("trained"):
        return (f"Ladder: the checkpoints in {cfg['ladder']} (CoT can only help a ladder whose training data held "
                "worked traces).")
    spec = LadderSpec(**cfg["trained"])
    return (f"Ladder: trained from {Path(cfg['spec']).name} on {', '.join(spec.tasks)}: {spec.lines:,} items, "
            f"{100 * spec.traces:.0f} % of them written as worked traces in documents of {spec.group} items of one "
            f"style, {', '.join(f'{b:,}' for b in spec.budgets)} training tokens per rung; evaluated on the "
            f"disjoint test split of {cfg['task']}.")


def paired_table(store: Store, study: str) -> pd.DataFrame:
    """The per-rung table of the first stored run (for the CLI and the benchmark)."""
    secs = sections(store, study)
    return secs[0].tables[0].frame if secs and secs[0].tables else pd.DataFrame()
