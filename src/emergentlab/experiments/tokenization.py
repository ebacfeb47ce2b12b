"""Tokenization hurdles and scratchpads (seed 000): the same arithmetic ladder trained under several conditions,
and where each condition's capability emerges relative to the baseline's.

A condition is a name: how numbers are tokenized, "digit" (one token a character), "chunkK" (numbers cut into
K-digit tokens from the left, `models.tiny.ChunkTokenizer`) or "bpeN" (a byte-pair encoding of N merges learned on
the condition's training text, `models.tiny.BPETokenizer`), optionally followed by "+scratchpad" (every training
line shows its work as a worked trace, `tasks.cot.addition_trace`, and the model is asked zero-shot with the answer
read after the marker, `tasks.answers`; without it, training lines are "a+b=c" and the answer is the generation).
Each condition's ladder is the spec's (same sizes, token budgets, items, seed) with the condition's tokenizer and
trace share, trained into `cache/<condition>/` (a rerun resumes). The checkpoint records its tokenizer, so each rung
is evaluated with its own.

The scale axis is non-embedding parameters: a rung has the same transformer in every condition, while a chunked
vocabulary (1,228 ids for K = 3 against 128) adds embedding parameters that do no arithmetic. Every condition gets
the same training tokens per rung; a chunked corpus packs more items into them and a scratchpad corpus fewer (the
section's table gives each condition's tokens per item). Exact match of the final answer is compared, the one
metric that means the same under every tokenizer (token-level metrics count different tokens). The section per
condition is `variants.compare_section` against the baseline (the first condition): each condition's emergence
point at `level`, the threshold shift with a paired bootstrap interval over the same test items, and the sign flip.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emergentlab import metrics
from emergentlab.analysis.curves import axis_position
from emergentlab.experiments.base import LineStyle, trained_rungs
from emergentlab.experiments.variants import compare_section, compare_stats, crossing_text
from emergentlab.models import load_backend
from emergentlab.models.tiny import TinyBackend
from emergentlab.records import Progress, ScaleFacts, no_progress
from emergentlab.runner import evaluate
from emergentlab.sections import Figure, Line, Panel, Section, Table
from emergentlab.store import Store
from emergentlab.study import CompareSpec
from emergentlab.tasks import TASKS, make_task
from emergentlab.tasks.cot import cot_task
from emergentlab.train import DATA_DIR, LadderSpec, load_ladder_spec

NAME = "tokenization"
# one torch thread: rungs this small gain little from a second, and on a shared machine two threads trained them 2-17×
# slower than one (benchmarks/results/cot.md, "threads")
THREADS = 1
AXIS = "non_embedding_params"
TOKENIZATION_LADDER = DATA_DIR / "ladders" / "tokenization.toml"
_CONDITION = re.compile(r"(digit|chunk([2-4])|bpe([1-9][0-9]{0,3}))(\+scratchpad)?")


def condition(name: str) -> tuple[dict[str, Any], bool]:
    """(tokenizer spec, scratchpad) of a condition name such as "digit", "chunk3", "bpe256" or "chunk3+scratchpad";
    ValueError for any other name."""
    m = _CONDITION.fullmatch(name)
    if m is None:
        raise ValueError(f"condition {name!r}: expected digit, chunk2 … chunk4 or bpeN (N merges, 1 … 9999), "
                         "optionally +scratchpad")
    tok: dict[str, Any] = ({"kind": "char"} if m.group(1) == "digit" else {"kind": "chunk", "k": int(m.group(2))}
                           if m.group(2) else {"kind": "bpe", "merges": int(m.group(3))})
    return tok, m.group(4) is not None


@dataclass(frozen=True)
class TokConfig:
    """`spec`: the ladder spec (TOML; its tokenizer and trace share are replaced by each condition's);
    `cache`: where each condition's ladder is trained (`cache/<condition>/`); `conditions`: names as in
    `condition`, the first the baseline every other is compared with; `task`: the addition generator evaluated
    (zero-shot, disjoint test split); `n`: test items; `n_boot`: bootstrap replicates; `level`: the exact match
    (fraction) at which a condition counts as emerged."""

    spec: str = str(TOKENIZATION_LADDER)
    cache: str = "runs/tokenization/ladders"
    conditions: tuple[str, ...] = field(default=("digit", "chunk3", "digit+scratchpad"))
    task: str = "add2"  # the generator the default ladder trains on (its disjoint test split)
    n: int = 200
    seed: int = 0
    n_boot: int = 1000
    level: float = 0.2

    def __post_init__(self) -> None:
        if not Path(self.spec).is_file():
            raise ValueError(f"ladder spec {self.spec} is not a file")
        for c in self.conditions:
            condition(c)
        if len(self.conditions) < 2 or len(set(self.conditions)) < len(self.conditions):
            raise ValueError(f"need at least 2 distinct conditions, got {list(self.conditions)}")
        if TASKS.get(self.task, ("", {}))[1].get("op") != "+":
            raise ValueError(f"task must be an addition generator (add1 … add5), got {self.task!r}")
        if self.n < 2 or not 0 < self.level < 1:
            raise ValueError(f"need n ≥ 2 and 0 < level < 1, got n = {self.n}, level = {self.level}")


def condition_spec(base: LadderSpec, name: str) -> LadderSpec:
    """The ladder `base` under condition `name`: its tokenizer, and every item a trace (scratchpad) or none."""
    tok, pad = condition(name)
    return replace(base, tokenizer=tok, traces=1.0 if pad else 0.0, group=1)


def run(config: TokConfig, store: Store, progress: Progress = no_progress, study: str = NAME) -> None:
    """Train (or resume) each condition's ladder, evaluate every rung on the same items, store the records (variant:
    the condition) and the run's config with each condition's per-rung facts."""
    base = load_ladder_spec(config.spec)
    direct = make_task(config.task, n=config.n, seed=config.seed)
    padded = cot_task(direct)
    facts: dict[str, list[dict[str, Any]]] = {}
    for ci, name in enumerate(config.conditions):
        spec = condition_spec(base, name)
        task = padded if condition(name)[1] else direct
        demo = task.shots_pool[0]
        line = f"{demo.input}={demo.target}"  # what a training item of this condition looks like
        facts[name] = []
        for path in trained_rungs(spec, Path(config.cache) / name, progress, f"{NAME} · {name}"):
            progress(f"{NAME} · {name} · {path.name}", ci, len(config.conditions))
            backend = load_backend(f"tiny:{path}", path.name)
            assert isinstance(backend, TinyBackend)  # a tiny spec always loads one
            f = backend.facts()
            if ci == 0:  # one row per rung: only the axes every condition shares
                store.put_rung(study, path.name, f"tiny:{path}",
                               ScaleFacts(non_embedding_params=f.non_embedding_params, tokens=f.tokens, step=f.step))
            recs = evaluate(backend, task, task.examples, 0, study, path.name, config.seed)
            store.put_records(replace(r, variant=name) for r in recs)
            tok = backend.tok  # the checkpoint's own (a BPE's merges were learned on this condition's corpus)
            facts[name].append({"model": path.name, "params": f.params, "val_loss": f.loss,
                                "vocab": tok.vocab_size, "tokens_per_item": len(tok.encode(line)) + 1,
                                "train_wall_s": backend.meta.get("wall_s")})
    progress(NAME, len(config.conditions), len(config.conditions))
    store.put_run(study, NAME, config.task, {**asdict(config), "conditions": list(config.conditions),
                                             "trained": asdict(base), "facts": facts})


def shift_table(store: Store, study: str, cfg: dict[str, Any]) -> pd.DataFrame:
    """One row per condition against the baseline: emergence points (log10 non-embedding params), the shift with
    its 95 % paired-bootstrap interval, and the sign flip of the exact-match difference."""
    records, rungs = _data(store, study, cfg)
    base, rows = cfg["conditions"][0], []
    for name in cfg["conditions"][1:]:
        _, _, s, f = compare_stats(CompareSpec(name, base, cfg["task"], "exact_match", cfg["level"]), records,
                                   rungs, AXIS, cfg["seed"], cfg["n_boot"])
        rows.append({"condition": name, "baseline": base, "level": cfg["level"],
                     "point": s.point_a if s else math.nan, "baseline point": s.point_b if s else math.nan,
                     "shift": s.shift if s else math.nan, "lo": s.lo if s else math.nan,
                     "hi": s.hi if s else math.nan, "share crossed": s.share_crossed if s else math.nan,
                     "flip": f.text("log10 non-embedding params") if f else "too few paired items"})
    return pd.DataFrame(rows)


def _data(store: Store, study: str, cfg: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    rungs = store.rungs(study).sort_values(AXIS, kind="stable").reset_index(drop=True)
    return store.records(study, [cfg["task"]]), rungs


def sections(store: Store, study: str | None) -> list[Section]:
    """Per stored run: the conditions side by side (exact match per rung, each condition's facts, the shift
    table), then each condition against the baseline (`variants.compare_section` along non-embedding params)."""
    out = []
    for (st, _run), cfg in store.runs(NAME, study).items():
        records, rungs = _data(store, st, cfg)
        if records.empty:
            continue
        conds, base = cfg["conditions"], cfg["conditions"][0]
        em = metrics.compute(records, ["exact_match"]).groupby(["variant", "model"])["value"].mean()
        x = tuple(map(float, rungs[AXIS]))
        means = {c: tuple(float(em.get((c, m), math.nan)) for m in rungs["model"]) for c in conds}
        side = pd.DataFrame({"model": rungs["model"], AXIS: x, **{f"EM {c}": means[c] for c in conds}})
        fact_rows = [{"condition": c, **r} for c in conds for r in cfg["facts"].get(c, [])]
        shifts = shift_table(store, st, cfg)
        top = float(axis_position(AXIS, np.asarray(x)).max()) if x else math.nan
        styles: tuple[LineStyle, ...] = ("line", "dashed", "dotted", "points")
        fig = Figure((Panel(f"{cfg['task']}: exact match by condition", "non-embedding params", "exact match",
                            tuple(Line(x, means[c], c, style=styles[i % 4]) for i, c in enumerate(conds)),
                            xlog=True, ylim=(0.0, 1.0)),),
                     "Each condition's mean exact match (fraction) per rung, on the same test items.")
        trained = LadderSpec(**cfg["trained"])
        text = [f"Ladder: {Path(cfg['spec']).name} ({len(rungs)} rungs, {', '.join(f'{b:,}' for b in trained.budgets)}"
                f" training tokens each, {trained.lines:,} items of {', '.join(trained.tasks)}), trained once per "
                f"condition; evaluated zero-shot on {len(records['example_id'].unique())} items of the "
                f"{cfg['task']} test split. Baseline: {base}. Scale: log10 non-embedding params (same transformer "
                "per rung in every condition).",
                *(f"{r['condition']}: {_shift_sentence(r, top)}" for r in shifts.to_dict("records"))]
        tables = [Table(side, "Exact match (fraction) of each condition per rung; non_embedding_params in params.",
                        key=f"tokenization-{cfg['task']}"),
                  Table(shifts, f"Threshold shift of each condition against {base} at exact match {cfg['level']}: "
                                "points and shift in log10 non-embedding params (negative: emerges at a smaller "
                                "model), 95 % paired-bootstrap interval over items, from the share of replicates in "
                                "which both curves cross.", key=f"tokenization-shift-{cfg['task']}"),
                  Table(pd.DataFrame(fact_rows), "Per condition and rung: all params (embedding included), "
                                                 "validation loss (nats per token of that condition's tokenizer, so "
                                                 "not comparable across tokenizers), tokens per training item, "
                                                 "training wall time (s).", key=f"tokenization-facts-{cfg['task']}")]
        out.append(Section(f"Tokenization and scratchpads — {cfg['task']} · exact_match", text, tables, [fig],
                           summary=[f"Tokenization ({cfg['task']}): {r['condition']} vs {base}: "
                                    f"{_shift_sentence(r, top)}" for r in shifts.to_dict("records")]))
        for name in conds[1:]:
            s = compare_section(CompareSpec(name, base, cfg["task"], "exact_match", cfg["level"]), records, rungs,
                                AXIS, cfg["seed"], cfg["n_boot"])
            s.title = f"Tokenization: {s.title}"
            s.summary = []  # the run's section above already lifts each shift to the top
            out.append(s)
    return out


def _shift_sentence(r: dict[str, Any], top: float) -> str:
    """One condition's shift in words; `top`: log10 non-embedding params of the largest rung, past which a
    crossing is an extrapolation of the fitted curve."""
    point, base = crossing_text(r["point"], top), crossing_text(r["baseline point"], top)
    if not np.isfinite(r["shift"]):
        return (f"no shift can be given at exact match {r['level']:g} (it crosses at {point}, the baseline at "
                f"{base}, log10 non-embedding params); sign flip: {r['flip']}.")
    return (f"shift {r['shift']:+.2f} decades of non-embedding params (95 % interval {r['lo']:+.2f} to "
            f"{r['hi']:+.2f}, from the {100 * r['share crossed']:.0f} % of replicates where both cross; crosses "
            f"{r['level']:g} at {point}, baseline at {base}); sign flip: {r['flip']}.")
