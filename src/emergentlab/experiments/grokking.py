"""Grokking as an experiment: train runs of `emergentlab.train.grokking`, store their curves and configs, locate
the memorisation point and the generalisation jump (`emergentlab.analysis.dynamics`), and build report sections.

Stored per run: series rows (study, "grokking", run, step, metric, value) with metrics train_loss, val_loss (nats),
train_acc, val_acc (0–1), weight_norm, fourier_sparsity (0–1), wall_s; and the run's `GrokConfig` in the runs table,
so a sweep's weight decay and train fraction are read back as numbers, not out of the run name.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import pandas as pd

from emergentlab.analysis.dynamics import MEMORISED_ACC, Jump, locate_grokking
from emergentlab.experiments.base import (
    StoredRun,
    jump_markers,
    line,
    run_sections,
    steps_or_nan,
    steps_text,
    store_run,
)
from emergentlab.models.tiny import GPT
from emergentlab.records import Progress, no_progress
from emergentlab.sections import Figure, Line, Marker, Panel, Section, Table
from emergentlab.store import Store
from emergentlab.train.grokking import GrokConfig, train_grokking

NAME = "grokking"
THREADS = 1  # one torch thread is fastest for a model this small (benchmarks/results/grokking.md)
Config = GrokConfig


@dataclass
class GrokResult:
    """A finished run: `history` has one row per logged step (columns in the module docstring), plus its events."""

    config: GrokConfig
    history: pd.DataFrame
    memorisation_step: float | None  # first logged step with train accuracy ≥ MEMORISED_ACC
    jump: Jump | None  # generalisation jump of validation accuracy (None if it rose ≤ 0.5)
    key_frequencies: list[int]  # the top-k frequencies of the final embedding (1 … (p − 1)/2)
    wall_s: float
    model: GPT = field(repr=False)

    @property
    def final(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.history.iloc[-1].items()}


def run(config: GrokConfig | None = None, store: Store | None = None, progress: Progress = no_progress,
        study: str = NAME) -> GrokResult:
    """Train one run (`config.run_name` names it); with `store`, its series and config go there under `study`."""
    cfg = config or GrokConfig()

    def report(step: int, total: int, row: dict[str, float]) -> None:
        progress(f"{cfg.run_name} val acc {row['val_acc']:.2f}", step, total)

    trained = train_grokking(cfg, report)
    if store is not None:
        store_run(store, study, NAME, cfg.run_name, asdict(cfg), trained.history)
    ev = locate_grokking(trained.history)
    return GrokResult(config=cfg, history=trained.history, memorisation_step=ev.memorisation_step, jump=ev.jump,
                      key_frequencies=trained.key_frequencies, wall_s=trained.wall_s, model=trained.model)


def sweep_configs(base: GrokConfig, weight_decays: tuple[float, ...], train_fracs: tuple[float, ...]
                  ) -> list[GrokConfig]:
    """`base` with every (weight decay, train fraction) pair, weight decay varying slowest."""
    return [replace(base, weight_decay=wd, train_frac=frac) for wd in weight_decays for frac in train_fracs]


def sweep_table(results: list[GrokResult]) -> pd.DataFrame:
    """One row per run with where the jump landed.

    Columns: run, weight_decay, train_frac, memorisation_step, jump_step, jump_width (steps), jump_sharpness
    (t₀.₅ / width; NaN when val accuracy never rose by 0.5: the jump vanished within the budget), final_val_acc
    (0–1), steps, wall_s.
    """
    def row(res: GrokResult) -> dict[str, object]:
        j, c = res.jump, res.config
        return {"run": c.run_name, "weight_decay": c.weight_decay, "train_frac": c.train_frac,
                "memorisation_step": steps_or_nan(res.memorisation_step),
                "jump_step": steps_or_nan(j.step if j else None), "jump_width": steps_or_nan(j.width if j else None),
                "jump_sharpness": j.sharpness if j else math.nan,
                "final_val_acc": res.final["val_acc"], "steps": res.final["step"], "wall_s": res.wall_s}

    return pd.DataFrame([row(r) for r in results])


def sections(store: Store, study: str | None) -> list[Section]:
    """One section per stored run (curves, events) and, with several runs, one comparing them; [] when none."""
    return run_sections(store, study, NAME, _run_section, _sweep_section)


def _run_section(r: StoredRun) -> Section:
    h, ev = r.history, locate_grokking(r.history)
    mem, jump = ev.memorisation_step, ev.jump
    last = h.iloc[-1]
    acc = Panel("accuracy", "step", "accuracy (0–1)",
                (line(h, "train_acc", "train"), line(h, "val_acc", "validation")),
                markers=((Marker(mem, f"memorised {mem:,.0f}"),) if mem is not None else ())
                + jump_markers(jump, "jump"), xlog=True, ylim=(0.0, 1.0))
    loss = Panel("loss", "step", "cross-entropy (nats)",
                 (line(h, "train_loss", "train"), line(h, "val_loss", "validation")),
                 markers=jump_markers(jump, "jump"), xlog=True, ylog=True)
    inner: list[Line] = []
    if "weight_norm" in h:
        inner.append(line(h.assign(wn=h["weight_norm"] / h["weight_norm"].max()), "wn", "weight norm / its max"))
    if "fourier_sparsity" in h:
        inner.append(line(h, "fourier_sparsity", "Fourier sparsity"))
    panels = (acc, loss) + ((Panel("what moves first", "step", "share (0–1)", tuple(inner), xlog=True,
                                   ylim=(0.0, 1.0)),) if inner else ())
    figure = Figure(panels, caption=f"Grokking run {r.label}: accuracy and loss against optimizer step (log); "
                                    "vertical lines mark the memorisation point and the jump's t₀.₁, t₀.₅ and t₀.₉. "
                                    "Weight norm is the L2 norm of all weights divided by its maximum over the run; "
                                    "Fourier sparsity is the share of the token embedding's squared norm in its top "
                                    "frequencies of Z_p (Nanda et al. 2023's key frequencies).")
    paras = [
        f"Run {r.label}: {len(h)} logged steps up to step {last['step']:,.0f}; final train accuracy "
        f"{last['train_acc']:.1%}, validation accuracy {last['val_acc']:.1%}.",
        f"Memorisation point (first logged step with train accuracy ≥ {MEMORISED_ACC:.0%}): {steps_text(mem)}. "
        + (f"Generalisation jump of validation accuracy: halfway (t₀.₅) at step {jump.step:,.0f}, 10 %→90 % of its "
           f"rise between steps {jump.start:,.0f} and {jump.end:,.0f} (width {jump.width:,.0f} steps, sharpness "
           f"t₀.₅/width = {jump.sharpness:.1f}); steepest logged rise near step {jump.steepest_step:,.0f}."
           if jump else "Validation accuracy did not rise by 50 points: no generalisation jump within this run."),
        "Jump definitions: crossings of floor + q·(ceiling − floor) for q = 0.1, 0.5, 0.9, interpolated in log-step "
        "(emergentlab.analysis.dynamics).",
    ]
    if mem is not None and jump is not None:
        paras.append(f"The jump comes {jump.step / mem:.1f}× as many steps after the start as memorisation does.")
    summary = (f"Grokking {r.label}: memorised by step {steps_text(mem)}, "
               + (f"generalised at step {jump.step:,.0f} (validation accuracy halfway up)"
                  if jump else "no generalisation jump within the run")
               + f"; final validation accuracy {last['val_acc']:.1%}.")
    table = Table(pd.DataFrame([{"run": r.label, "memorisation_step": steps_or_nan(mem),
                                 "jump_step": steps_or_nan(jump.step if jump else None),
                                 "jump_width": steps_or_nan(jump.width if jump else None),
                                 "jump_sharpness": jump.sharpness if jump else math.nan,
                                 "final_val_acc": float(last["val_acc"])}]),
                  caption="Events of the run. memorisation_step, jump_step (t₀.₅) and jump_width (t₀.₉ − t₀.₁): "
                          "optimizer steps; jump_sharpness: t₀.₅ / width (dimensionless; large = sudden); "
                          "final_val_acc: fraction 0–1. Blank: no jump.")
    return Section(title=f"Grokking — {r.label}", paragraphs=paras, tables=[table], figures=[figure],
                   summary=[summary])


def _sweep_section(runs: list[StoredRun]) -> Section:
    rows, lines, markers = [], [], []
    for r in runs:
        ev = locate_grokking(r.history)
        lines.append(line(r.history, "val_acc", r.label))
        if ev.jump is not None:
            markers.append(Marker(ev.jump.step, f"{r.label} jump"))
        rows.append({"run": r.label, "weight_decay": r.config.get("weight_decay", math.nan),
                     "train_frac": r.config.get("train_frac", math.nan),
                     "memorisation_step": steps_or_nan(ev.memorisation_step),
                     "jump_step": steps_or_nan(ev.jump.step if ev.jump else None),
                     "jump_width": steps_or_nan(ev.jump.width if ev.jump else None),
                     "final_val_acc": float(r.history["val_acc"].iloc[-1]),
                     "steps": float(r.history["step"].iloc[-1])})
    table = pd.DataFrame(rows).sort_values(["weight_decay", "train_frac", "run"], na_position="last")
    vanished = table[table["jump_step"].isna()]["run"].tolist()
    paras = ["Every stored grokking run side by side: with less weight decay or a smaller training split the jump "
             "moves later or vanishes (Power et al. 2022; Nanda et al. 2023)."]
    if vanished:
        paras.append(f"No jump within the run's steps: {', '.join(vanished)}.")
    figure = Figure((Panel("validation accuracy of every run", "step", "validation accuracy (0–1)", tuple(lines),
                           markers=tuple(markers), xlog=True, ylim=(0.0, 1.0)),),
                    caption="Validation accuracy of every stored grokking run against optimizer step (log); "
                            "vertical lines: each run's located jump (t₀.₅).")
    caption = ("One row per run. weight_decay: AdamW weight decay; train_frac: share (0–1) of the a ∘ b table "
               "trained on (both from the run's stored config; blank for runs stored without one); "
               "memorisation_step, jump_step (t₀.₅), jump_width, steps (the last logged step): optimizer steps; "
               "final_val_acc: fraction 0–1. Blank jump: validation accuracy never rose by 50 points.")
    return Section(title="Grokking — weight decay and train fraction", paragraphs=paras,
                   tables=[Table(table.reset_index(drop=True), caption)], figures=[figure])
