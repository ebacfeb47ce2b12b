"""What every experiment module provides, and the storage and figure helpers they share.

An experiment module has `NAME` (the ``experiment`` column of what it stores), `THREADS` (the torch intra-op thread
count it runs fastest at: the caller sets it at the top with `torch_threads`, the experiment never does), a typed
config dataclass whose defaults run, ``run(config, store, progress, study=...)`` that trains or evaluates and stores
its series and the run's config, and ``sections(store, study)`` that builds its report sections from the store alone.

An experiment that evaluates a ladder reads its rungs with `ladder_rungs` (a folder of tiny checkpoints, or a list of
backend specs of any kind: tiny, hf, gguf, openai) and loads them with `rung_backends`: one code path for a trained
ladder and for real models.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import pandas as pd
import torch

from emergentlab.analysis.dynamics import Jump
from emergentlab.models import KINDS, Backend, load_backend
from emergentlab.models.openai import redact_spec
from emergentlab.records import Progress, no_progress
from emergentlab.sections import Line, Marker, Section
from emergentlab.store import Store
from emergentlab.train import LadderSpec, checkpoint_dirs, train_ladder

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


@dataclass(frozen=True)
class Rung:
    """One model of an experiment's ladder: `name` (the records' model column) and its backend `spec`
    (`emergentlab.models` grammar: tiny:DIR, hf:ORG/NAME, gguf:FILE, openai:…)."""

    name: str
    spec: str


def spec_name(spec: str) -> str:
    """A short model name for a backend spec: a folder's or file's name without .gguf, a hub id as it is, an
    openai model's name; e.g. ``gguf:/x/SmolLM2-135M-Instruct.Q4_1.gguf`` → ``SmolLM2-135M-Instruct.Q4_1``."""
    kind, _, rest = spec.partition(":")
    if kind == "openai":
        return rest.partition("@")[0]  # the model name: the URL (and any secret in it) stays out
    path = rest.rstrip("/")
    if kind == "hf" and not path.startswith(("/", ".", "~")) and not path.endswith(".gguf"):
        return path  # a hub id ORG/NAME[@revision]
    name = Path(path).name
    return name.removesuffix(".gguf") or path


def parse_rung(text: str) -> Rung:
    """``SPEC`` or ``NAME=SPEC`` (a name without ':' or '=') as a `Rung`; ValueError for an unknown backend kind.

    The name defaults to `spec_name(SPEC)`."""
    head, sep, tail = text.partition("=")
    name, spec = (head.strip(), tail.strip()) if sep and head.strip() and ":" not in head else ("", text.strip())
    kind = spec.partition(":")[0]
    if kind not in KINDS or ":" not in spec:
        raise ValueError(f"{text!r} is not a backend spec (KIND:WHERE with KIND one of {', '.join(KINDS)}, "
                         "optionally NAME=KIND:WHERE)")
    return Rung(name or spec_name(spec), spec)


def ladder_rungs(ladder: str | Path, models: Sequence[str] = ()) -> list[Rung]:
    """The rungs an experiment runs: `models` (backend specs, `parse_rung` syntax, in the order given) when any,
    else every tiny checkpoint folder under `ladder` (`train.checkpoint_dirs`, by name) as ``tiny:DIR``.

    One list for every backend, so an experiment has one code path for a trained ladder and real models. ValueError
    when there is no rung or two rungs share a name (records are keyed by it)."""
    rungs = ([parse_rung(m) for m in models] if models
             else [Rung(p.name, f"tiny:{p}") for p in checkpoint_dirs(Path(ladder))])
    if not rungs:
        raise ValueError(f"no tiny checkpoints (subfolders with config.json) in {ladder}, and no model specs given")
    names = [r.name for r in rungs]
    if dup := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"two rungs are named {dup[0]!r}: name them NAME=SPEC")
    return rungs


def rung_backends(rungs: Sequence[Rung], store: Store | None, study: str, progress: Progress, stage: str,
                  quant: str = "fp32") -> Iterator[tuple[Rung, Backend]]:
    """Each rung loaded (its weights rounded to `quant`, `models.quant` formats), its scale facts stored under
    `study` when there is a store, one at a time (a real model is freed before the next loads)."""
    for i, r in enumerate(rungs):
        progress(f"{stage} · {r.name}", i, len(rungs))
        backend = load_backend(r.spec, r.name, quant=quant)
        if store is not None:
            store.put_rung(study, r.name, redact_spec(r.spec), backend.facts())  # a key in a URL is never stored
        yield r, backend
    progress(stage, len(rungs), len(rungs))


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
