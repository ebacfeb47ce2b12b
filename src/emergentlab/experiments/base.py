"""What every experiment module provides, and the storage and figure helpers they share.

An experiment module has `NAME` (the ``experiment`` column of what it stores), `THREADS` (the torch intra-op thread
count it runs fastest at: the caller sets it at the top with `torch_threads`, the experiment never does), a typed
config dataclass whose defaults run, ``run(config, store, progress, study=...)`` that trains or evaluates and stores
its series and the run's config, and ``sections(store, study)`` that builds its report sections from the store alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import pandas as pd
import torch

from emergentlab.analysis.dynamics import Jump
from emergentlab.records import Progress, no_progress
from emergentlab.sections import Line, Marker, Section
from emergentlab.store import Store
from emergentlab.train import LadderSpec, train_ladder

LineStyle = Literal["line", "dashed", "dotted", "points"]


class Experiment(Protocol):
    """The module-level contract (`run` is left out: its config type is each experiment's own)."""

    NAME: str
    THREADS: int

    def sections(self, store: Store, study: str | None) -> list[Section]: ...


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to `n` inside the block (0: left as they are), restored after it.

    Process-wide state: for the top of a command (pipeline, CLI, a benchmark script), never inside a library call."""
    old = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def store_run(store: Store, study: str, experiment: str, run: str, config: dict[str, Any],
              history: pd.DataFrame) -> None:
    """The run's config (typed values, as JSON) and every non-step column of `history` as series rows."""
    store.put_run(study, experiment, run, config)
    long = history.melt(id_vars="step", var_name="metric", value_name="value").dropna()
    store.put_series((study, experiment, run, float(s), str(m), float(v))
                     for s, m, v in long[["step", "metric", "value"]].itertuples(index=False))


@dataclass
class StoredRun:
    """One run read back: its label (``study/run`` when several studies are read), config ({} when the store holds
    only its series) and history (one row per logged step, one column per metric, sorted by step)."""

    label: str
    config: dict[str, Any]
    history: pd.DataFrame


def stored_runs(store: Store, study: str | None, experiment: str) -> list[StoredRun]:
    """Every run of `experiment` under `study` (every study if None), in (study, run) order."""
    long = store.series(study=study, experiment=experiment)
    if long.empty:
        return []
    configs = store.runs(experiment, study)
    several = long["study"].nunique() > 1
    out = []
    for (st, run), g in long.groupby(["study", "run"], sort=True):
        wide = g.pivot_table(index="step", columns="metric", values="value", aggfunc="last").sort_index()
        wide.columns.name = None
        out.append(StoredRun(f"{st}/{run}" if several else str(run), configs.get((str(st), str(run)), {}),
                             wide.reset_index()))
    return out


def run_sections(store: Store, study: str | None, experiment: str, one: Callable[[StoredRun], Section],
                 several: Callable[[list[StoredRun]], Section]) -> list[Section]:
    """One section per stored run of `experiment` and, with several runs, one comparing them; [] when none."""
    runs = stored_runs(store, study, experiment)
    return [one(r) for r in runs] + ([several(runs)] if len(runs) > 1 else [])


def trained_rungs(spec: LadderSpec, cache: Path, progress: Progress = no_progress,
                  stage: str = "train") -> list[Path]:
    """The rungs of `spec`, trained into `cache` where they are not there yet (a rung trained under another config
    is a UserError, never reused), in the spec's order."""
    names = [name for name, _, _ in spec.rungs()]

    def update(rung: str, step: int, total: int, info: dict[str, float]) -> None:
        if step == total or step % 50 == 0:
            progress(f"{stage} · train {rung}", names.index(rung) * total + step, len(names) * total)

    train_ladder(spec, cache, update)
    return [cache / name for name in names]


def line(h: pd.DataFrame, column: str, label: str, style: LineStyle = "line") -> Line:
    """`column` against step, leaving out step 0 (a log-step axis cannot show the initialisation)."""
    keep = h[(h["step"] > 0) & h[column].notna()]
    return Line(x=tuple(map(float, keep["step"])), y=tuple(map(float, keep[column])), label=label,
                style=style, markers=False)


def jump_markers(jump: Jump | None, label: str) -> tuple[Marker, ...]:
    """Markers at a jump's t₀.₅ (labelled) and its t₀.₁ / t₀.₉ span; none when there was no jump."""
    if jump is None:
        return ()
    return (Marker(jump.step, f"{label} t₀.₅ {jump.step:,.0f}"), Marker(jump.start, f"{label} t₀.₁"),
            Marker(jump.end, f"{label} t₀.₉"))


def steps_text(x: float | None) -> str:
    """A step count for prose and tables: "1,234", or "—" when there is none."""
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:,.0f}"


def steps_or_nan(x: float | None) -> float:
    """A step for a numeric table column: NaN when there is none."""
    return math.nan if x is None else float(x)
