"""In-context learning from bursty data (Chan et al. 2022) on a ladder of tiny GPT sizes: does it appear, at which
size and at which training step, beside the induction-head measures of the same models?

Each size is trained by `emergentlab.train.bursty` on Chan et al.'s recipe (items recur within a context, Zipfian
classes; `emergentlab.tasks.symbols`). Stored per size (run ``L{layers}-d{width}-seed{seed}``): the training
history as series rows (icl_acc, icl_exact, control_acc, iwl_acc as fractions; icl_loss, iwl_loss, val_loss,
train_loss, icl_score in nats; induction_score and every head's scores), the run's `BurstyConfig`, a rung (params,
tokens, FLOPs, step, loss) and, from the final evaluation, one record per held-out episode and shot count (task
``symbols``, variants ``0shot`` … ``4shot``, target and answer a label such as ``s17``), so the ICL gain per shot
count goes through the verdict rule like any ladder's (`experiments.icl.gain_section`).

The *ICL onset* of a size is the jump of icl_acc (2-way accuracy on held-out classes with per-episode symbols;
chance 0.5) by at least `analysis.dynamics.ICL_MIN_RISE`, located on the log-step axis, with an interval from the
evaluation noise of its points (`analysis.dynamics.jump_interval`; fresh episodes at each logged step). ICL has
*appeared* in a run when that jump exists and the shuffled-shots control stayed at chance.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import pandas as pd

from emergentlab.analysis.dynamics import ICL_MIN_RISE, JumpInterval, jump_interval, locate_phase_change
from emergentlab.experiments.base import StoredRun, jump_markers, line, steps_or_nan, steps_text, store_run, stored_runs
from emergentlab.experiments.icl import gain_section
from emergentlab.records import Progress, Record, no_progress
from emergentlab.sections import Figure, Line, Panel, Section, Table
from emergentlab.store import Store
from emergentlab.tasks import variant_name
from emergentlab.tasks.symbols import SYMBOL_TASK
from emergentlab.train.bursty import BurstyConfig, BurstyTraining, train_bursty

NAME = "bursty"
THREADS = 1  # one torch thread is fastest for models this small (as for induction heads)
TASK = SYMBOL_TASK  # the task name of the final evaluation's records
HEAD_DIM = 16  # a size of width d gets d / 16 heads


@dataclass(frozen=True)
class BurstyExperimentConfig:
    """`sizes`: (layers, width) of each model, every one trained with `train` (its shape fields overridden; d/16
    heads); `n_boot`: bootstrap replicates of the onset intervals and the gain verdicts. Defaults: four sizes of
    1500 steps each (under 10 minutes of one core; benchmarks/results/icl.md)."""

    sizes: tuple[tuple[int, int], ...] = ((1, 64), (2, 32), (2, 64), (3, 64))
    train: BurstyConfig = field(default_factory=BurstyConfig)
    n_boot: int = 1000

    def __post_init__(self) -> None:
        object.__setattr__(self, "sizes", tuple((int(n), int(d)) for n, d in self.sizes))
        if not self.sizes:
            raise ValueError("need at least one size")
        for n, d in self.sizes:
            if n < 1 or d < HEAD_DIM or d % HEAD_DIM:
                raise ValueError(f"a size needs ≥ 1 layer and a width that is a multiple of {HEAD_DIM}, got "
                                 f"({n}, {d})")
        if len(set(self.sizes)) != len(self.sizes):
            raise ValueError(f"sizes repeat: {self.sizes}")
        if self.n_boot < 10:
            raise ValueError(f"n_boot must be ≥ 10, got {self.n_boot}")

    @property
    def seed(self) -> int:
        return self.train.seed

    def run_configs(self) -> list[BurstyConfig]:
        return [replace(self.train, n_layer=n, n_embd=d, n_head=d // HEAD_DIM) for n, d in self.sizes]


Config = BurstyExperimentConfig


def records_of(trained: BurstyTraining, cfg: BurstyConfig, study: str) -> list[Record]:
    """One record per (episode, shot count) of the final evaluation: a one-token answer (the predicted label),
    the target label and its log-probability (nats), so exact match and its continuous partners apply."""
    out = []
    for r in trained.final.itertuples(index=False):
        target, got = f"s{r.target}", f"s{r.predicted}"
        out.append(Record(study=study, model=cfg.run_name, task=TASK, example_id=str(r.episode),
                          variant=variant_name(int(r.shots)), kind="generative",
                          prompt=f"{r.episode}: {int(r.shots)} shots per way of {cfg.ways} among {cfg.context} pairs",
                          target=target, generation=got, generation_tokens=(got,), target_tokens=(target,),
                          target_logprobs=(float(r.logprob),), target_greedy=(got == target,),
                          metadata={"way_right": bool(r.way_right), "labels": cfg.space.n_labels}))
    return out


def run(config: BurstyExperimentConfig | None = None, store: Store | None = None, progress: Progress = no_progress,
        study: str = NAME) -> list[BurstyTraining]:
    """Train every size in turn; with `store`, each one's series, config, rung and final records go there."""
    cfg = config or BurstyExperimentConfig()
    out = []
    for run_cfg in cfg.run_configs():
        name = run_cfg.run_name

        def report(step: int, total: int, row: dict[str, float], name: str = name) -> None:
            progress(f"{NAME} · {name} icl {row['icl_acc']:.2f}", step, total)

        trained = train_bursty(run_cfg, report)
        if store is not None:
            store_run(store, study, NAME, name, {**asdict(run_cfg), "final_shots": list(run_cfg.final_shots),
                                                 "n_boot": cfg.n_boot}, trained.history)
            store.put_rung(study, name, f"bursty:{name}", trained.facts)
            store.put_records(records_of(trained, run_cfg, study))
        out.append(trained)
    return out


@dataclass(frozen=True)
class Onset:
    """A run's ICL onset (`interval`), whether ICL appeared, and the induction events of the same history."""

    run: StoredRun
    interval: JumpInterval
    appeared: bool
    phase_change: float | None  # induction-score jump t_0.5 (steps)
    icl_drop: float | None  # ICL-score fall t_0.5 (steps)


def onset(r: StoredRun, n_boot: int = 1000) -> Onset:
    """Locate the ICL onset of one stored run (module docstring) and its induction events."""
    h, cfg = r.history, r.config
    if "icl_score" not in h:  # NaN throughout (query-only loss), so never stored
        h = h.assign(icl_score=math.nan)
    n = int(cfg.get("eval_episodes", 256))
    ji = jump_interval(h["step"], h["icl_acc"], n, ICL_MIN_RISE, n_boot=n_boot, seed=int(cfg.get("seed", 0)))
    chance = 1 / int(cfg.get("ways", 2))
    control_ok = abs(float(h["control_acc"].iloc[-1]) - chance) < 3 * math.sqrt(chance * (1 - chance) / n) + 0.05
    ev = locate_phase_change(h)
    return Onset(r, ji, ji.jump is not None and control_ok, ev.phase_change.step if ev.phase_change else None,
                 ev.icl_drop.step if ev.icl_drop else None)


def sections(store: Store, study: str | None) -> list[Section]:
    """The onset section (every stored size), then per study the verdicts on the final evaluation's ICL gain."""
    runs = stored_runs(store, study, NAME)
    if not runs:
        return []
    n_boot = int(runs[0].config.get("n_boot", 1000))
    out = [_onset_section([onset(r, n_boot) for r in runs])]
    first: dict[str, dict[str, Any]] = {}
    for (st, _run), cfg in sorted(store.runs(NAME, study).items()):
        first.setdefault(st, cfg)  # the runs of one study share their evaluation (seed, shots)
    for st, cfg in first.items():
        records = store.records(st, [TASK])
        if not records.empty:
            shots = [s for s in cfg.get("final_shots", [0, 1, 2, 4]) if s > 0]
            out.append(gain_section(records, store.rungs(st), TASK, shots, int(cfg.get("seed", 0)), n_boot))
    return out


def onset_table(onsets: list[Onset]) -> pd.DataFrame:
    """One row per run: its size, whether ICL appeared, the onset with its interval (steps), the final accuracies
    (fractions) and induction score (0–1), the induction events (steps) and the steps trained."""
    rows = []
    for o in onsets:
        h, cfg, j = o.run.history, o.run.config, o.interval.jump
        last = h.iloc[-1]
        rows.append({"run": o.run.label, "layers": cfg.get("n_layer"), "width": cfg.get("n_embd"),
                     "icl_appeared": o.appeared, "icl_onset_step": steps_or_nan(j.step if j else None),
                     # no onset, no interval: the few replicates that find a rise in noise place it anywhere
                     "onset_lo": o.interval.lo if j else math.nan, "onset_hi": o.interval.hi if j else math.nan,
                     "onset_found": o.interval.found,
                     "rise_start": steps_or_nan(j.start if j else None), "rise_end": steps_or_nan(j.end if j else None),
                     "final_icl_acc": float(last["icl_acc"]), "final_control_acc": float(last["control_acc"]),
                     "final_iwl_acc": float(last["iwl_acc"]), "final_induction_score": float(last["induction_score"]),
                     "phase_change_step": steps_or_nan(o.phase_change), "icl_score_drop_step": steps_or_nan(o.icl_drop),
                     "steps": float(last["step"])})
    return pd.DataFrame(rows)


def _onset_section(onsets: list[Onset]) -> Section:
    table = onset_table(onsets)
    caption = ("One row per size. icl_onset_step: t₀.₅ of the rise of 2-way in-context accuracy on held-out classes "
               "(optimizer steps; blank: no rise ≥ 0.25), onset_lo–onset_hi its 95 % interval from evaluation noise "
               "(fresh episodes per logged step; not the spread between training seeds) and onset_found the share "
               "of bootstrap replicates with a rise; rise_start, rise_end: t₀.₁, t₀.₉ (steps). final_*: at the last "
               "step; icl and control: 2-way accuracy (chance 0.5), iwl: in-weights accuracy on training classes "
               "absent from the context, induction_score: best prefix-matching score (0–1) of a head in layer ≥ 1. "
               "phase_change_step, icl_score_drop_step: t₀.₅ of the induction-score rise (> 0.3) and of the ICL-score "
               "fall (> 0.3 nats), optimizer steps.")
    appeared = [o for o in onsets if o.appeared]
    if appeared:
        first = min(appeared, key=lambda o: (o.run.config.get("n_layer", 0), o.run.config.get("n_embd", 0)))
        j = first.interval.jump
        assert j is not None
        verdict = (f"In-context learning appeared in {len(appeared)} of {len(onsets)} sizes; the smallest, "
                   f"{first.run.label}, at step {steps_text(j.step)} (95 % interval {steps_text(first.interval.lo)}–"
                   f"{steps_text(first.interval.hi)}).")
    else:
        verdict = (f"In-context learning did not appear in any of the {len(onsets)} sizes within "
                   f"{steps_text(float(table['steps'].max()))} steps: no rise of held-out 2-way accuracy by "
                   f"{ICL_MIN_RISE} with the shuffled-shots control at chance.")
    paras = [
        "Models of several sizes trained on Chan et al. (2022)'s bursty sequences (a class recurs within a context, "
        "classes drawn from a Zipf law) and tested, as they train, on classes never seen in training whose labels "
        "are symbols drawn per episode, so only the context can tell them. " + verdict,
        "The control gives every shot a symbol drawn at random from the episode's: a model that reads the map "
        "falls to chance on it. The induction-head measures of the same models are beside each onset: ICL here "
        "needs a head that finds the query's earlier occurrence and copies the label after it."]
    copiers = [o.run.label for o in onsets if not o.appeared and o.icl_drop is not None]
    if copiers:
        paras.append(f"{', '.join(copiers)}: the ICL score fell (later labels cheaper than the first) with no onset: "
                     "the model learned to answer with a label from its context, not which one.")
    figure = Figure((
        Panel("in-context (held-out classes)", "step", "2-way accuracy", tuple(
            line(o.run.history, "icl_acc", o.run.label) for o in onsets) + (_chance(onsets),),
            markers=tuple(m for o in appeared for m in jump_markers(o.interval.jump, o.run.label)[:1]),
            xlog=True, ylim=(0.0, 1.0)),
        Panel("in-weights (training classes)", "step", "accuracy", tuple(
            line(o.run.history, "iwl_acc", o.run.label) for o in onsets), xlog=True, ylim=(0.0, 1.0)),
        Panel("induction heads", "step", "induction score (0–1)", tuple(
            line(o.run.history, "induction_score", o.run.label) for o in onsets), xlog=True, ylim=(0.0, 1.0)),
    ), caption="Per size against optimizer step (log): 2-way in-context accuracy on held-out classes (dotted: "
               "chance), in-weights accuracy on training classes absent from the context, and the best "
               "prefix-matching score of a head in layer ≥ 1; markers at each ICL onset's t₀.₅.")
    return Section("In-context learning from bursty data — onset by size", paras, [Table(table, caption)],
                   [figure], summary=[verdict])


def _chance(onsets: list[Onset]) -> Line:
    steps = [float(s) for o in onsets for s in o.run.history["step"] if s > 0]
    ways = int(onsets[0].run.config.get("ways", 2))
    lo, hi = (min(steps), max(steps)) if steps else (1.0, 1.0)
    return Line((lo, hi), (1 / ways, 1 / ways), "chance", style="dotted", markers=False)


