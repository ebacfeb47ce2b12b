"""Induction heads as an experiment: train models with `emergentlab.train.induction`, store their curves and
configs, locate the phase change (`emergentlab.analysis.dynamics`), and build report sections.

Stored per run: series rows (study, "induction", run, step, metric, value) with every column of the training
history (train_loss, val_loss, icl_score in nats; induction_score and each head's ``blocks.{i}.attn.head{h}.{score}``),
and the run's `InductionConfig` in the runs table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from emergentlab.analysis.dynamics import Jump, locate_phase_change
from emergentlab.experiments.base import StoredRun, jump_markers, line, run_sections, steps_or_nan, store_run
from emergentlab.models.tiny import GPT, head_name
from emergentlab.records import Progress, no_progress
from emergentlab.sections import Figure, Panel, Section, Table
from emergentlab.store import Store
from emergentlab.train.induction import InductionConfig, parse_score_key, train_induction

NAME = "induction"
THREADS = 1  # one torch thread is fastest for models this small (benchmarks/results/grokking.md)
Config = InductionConfig


@dataclass
class InductionResult:
    """A finished run: `history` (one row per checkpoint step; columns in the module docstring) and its events."""

    config: InductionConfig
    history: pd.DataFrame
    phase_change: Jump | None  # rise of induction_score (best prefix-matching score of a head in layer ≥ 1) by > 0.3
    icl_drop: Jump | None  # fall of icl_score by > 0.3 nats
    loss_drop: Jump | None  # fall of val_loss by > 0.1 nats
    wall_s: float
    model: GPT = field(repr=False)


def run(config: InductionConfig | None = None, store: Store | None = None, progress: Progress = no_progress,
        study: str = NAME, out_dir: Path | None = None) -> InductionResult:
    """Train one model (`config.run_name` names it); with `store`, its series and config go there under `study`.
    With `out_dir`, every scored step is also saved as a checkpoint ``out_dir/step-000123/``."""
    cfg = config or InductionConfig()

    def report(step: int, total: int, row: dict[str, float]) -> None:
        progress(f"{cfg.run_name} induction {row['induction_score']:.2f}", step, total)

    trained = train_induction(cfg, report, out_dir)
    if store is not None:
        store_run(store, study, NAME, cfg.run_name, asdict(cfg), trained.history)
    ev = locate_phase_change(trained.history)
    return InductionResult(config=cfg, history=trained.history, phase_change=ev.phase_change, icl_drop=ev.icl_drop,
                           loss_drop=ev.loss_drop, wall_s=trained.wall_s, model=trained.model)


def head_table(history: pd.DataFrame) -> pd.DataFrame:
    """One row per head at the last logged step: head, layer, prefix_matching, previous_token (0–1), copying (−1–1),
    sorted by prefix-matching score, highest first."""
    last = history.iloc[-1]
    heads: dict[tuple[int, int], dict[str, object]] = {}
    for key, value in last.items():
        parsed = parse_score_key(str(key))
        if parsed is not None:
            layer, head, score = parsed
            heads.setdefault((layer, head), {"head": head_name(layer, head), "layer": layer})[score] = float(value)
    table = pd.DataFrame(list(heads.values()))
    return table.sort_values("prefix_matching", ascending=False, kind="stable").reset_index(drop=True)


def sections(store: Store, study: str | None) -> list[Section]:
    """One section per stored run (curves, heads, events) and, with several runs, one comparing depths."""
    return run_sections(store, study, NAME, _run_section, _depth_section)


def _run_section(r: StoredRun) -> Section:
    h, ev = r.history, locate_phase_change(r.history)
    phase, icl, loss = ev.phase_change, ev.icl_drop, ev.loss_drop
    heads = head_table(h)
    prefix_lines = tuple(line(h, f"{name}.prefix_matching", str(name)) for name in sorted(heads["head"]))
    figure = Figure((
        Panel("loss", "step", "cross-entropy (nats)",
              (line(h, "train_loss", "train"), line(h, "val_loss", "validation")),
              markers=jump_markers(loss, "loss drop"), xlog=True),
        Panel("in-context learning", "step", "ICL score (nats)", (line(h, "icl_score", "ICL score"),),
              markers=jump_markers(icl, "ICL drop"), xlog=True),
        Panel("prefix matching per head", "step", "prefix-matching score (0–1)", prefix_lines,
              markers=jump_markers(phase, "phase change"), xlog=True, ylim=(0.0, 1.0)),
    ), caption=f"Induction run {r.label} against optimizer step (log): training and validation loss, the ICL score "
               "(loss at a late token minus loss at an early one; more negative = more in-context learning), and each "
               "head's prefix-matching score; vertical lines mark the located events' t₀.₁, t₀.₅ and t₀.₉.")
    last = h.iloc[-1]
    best = heads.iloc[0]
    paras = [f"Run {r.label}: {len(h)} logged steps up to step {last['step']:,.0f}. Head with the highest final "
             f"prefix-matching score: {best['head']} ({best['prefix_matching']:.2f}; copying {best['copying']:+.2f}). "
             f"Final ICL score {last['icl_score']:+.2f} nats (loss at a late token minus loss at an early one)."]
    if phase is None:
        paras.append("No phase change: the best prefix-matching score never rose by 0.3 — no induction head formed "
                     "(Olsson et al. 2022: a one-layer attention-only model cannot compose the previous-token and "
                     "induction heads).")
        summary = f"Induction {r.label}: no induction head formed (no phase change within {last['step']:,.0f} steps)."
    else:
        lined = ", ".join(f"{name} at step {j.step:,.0f} ({j.step / phase.step:.2f}× the phase change)"
                          for name, j in (("ICL-score drop", icl), ("validation-loss drop", loss)) if j is not None)
        paras.append(f"Phase change (induction score halfway up) at step {phase.step:,.0f}, rising over "
                     f"{phase.start:,.0f}–{phase.end:,.0f}" + (f"; {lined}." if lined else "."))
        summary = (f"Induction {r.label}: induction heads formed at step {phase.step:,.0f} (phase change); "
                   f"top head {best['head']}, final ICL score {last['icl_score']:+.2f} nats.")
    events = Table(pd.DataFrame([{"run": r.label, "induction_head": best["head"],
                                  "final_induction_score": float(last["induction_score"]),
                                  "final_icl_score": float(last["icl_score"]),
                                  "phase_change_step": steps_or_nan(phase.step if phase else None),
                                  "icl_drop_step": steps_or_nan(icl.step if icl else None),
                                  "loss_drop_step": steps_or_nan(loss.step if loss else None)}]),
                   caption="Events of the run. final_induction_score: best final prefix-matching score of a head "
                           "that can be an induction head (0–1); final_icl_score: nats; phase_change_step, "
                           "icl_drop_step, loss_drop_step: optimizer steps at t₀.₅ (blank: no such event).")
    head_caption = ("Every head at the last logged step. layer: 0-based; prefix_matching, previous_token: mean "
                    "attention (0–1) to the token after the current token's earlier occurrence, and to the previous "
                    "token, on repeated random rows; copying: OV-circuit eigenvalue score (−1–1).")
    return Section(title=f"Induction heads — {r.label}", paragraphs=paras,
                   tables=[events, Table(heads, head_caption)], figures=[figure], summary=[summary])


def _depth_section(runs: list[StoredRun]) -> Section:
    rows = []
    for r in runs:
        ev = locate_phase_change(r.history)
        layers = r.config.get("n_layer", int(head_table(r.history)["layer"].max()) + 1)
        rows.append({"run": r.label, "layers": layers,
                     "final_induction_score": float(r.history["induction_score"].iloc[-1]),
                     "final_icl_score": float(r.history["icl_score"].iloc[-1]),
                     "phase_change_step": steps_or_nan(ev.phase_change.step if ev.phase_change else None),
                     "icl_drop_step": steps_or_nan(ev.icl_drop.step if ev.icl_drop else None)})
    table = pd.DataFrame(rows).sort_values(["layers", "run"]).reset_index(drop=True)
    caption = ("One row per run. layers: transformer layers; final_induction_score: 0–1; final_icl_score: nats; "
               "phase_change_step, icl_drop_step: optimizer steps at t₀.₅ (blank: none).")
    return Section(title="Induction heads — depth", paragraphs=[
        "Every stored induction run: the phase change should appear only in models with at least two layers."],
        tables=[Table(table, caption)])


