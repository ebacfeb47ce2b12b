"""The `emergentlab` command: thin — parses, calls the library, prints. Exit 0 ok, 1 failure, 2 user error."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from emergentlab import metrics
from emergentlab.errors import UserError
from emergentlab.runner import run_study
from emergentlab.store import Store, StoreError
from emergentlab.study import Study, check_writable, load_study

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="A laboratory for emergent capabilities of language models.")
console = Console()
err = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def _guard(fn: F) -> F:
    """User errors → one line on stderr, exit 2; anything else → one line, exit 1 (EMERGENTLAB_DEBUG=1 re-raises)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (UserError, StoreError) as e:
            err.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except (typer.Exit, KeyboardInterrupt):
            raise
        except Exception as e:
            if os.environ.get("EMERGENTLAB_DEBUG"):
                raise
            err.print(f"failed: {type(e).__name__}: {e}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def _root() -> None:
    """A laboratory for emergent capabilities of language models."""


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=False, disable=not err.is_terminal and not os.environ.get("CI"))


def _save_study(study: Study) -> None:
    """The resolved study beside its store, so `emergentlab report RUN_DIR` needs nothing else."""
    d = asdict(study)
    d["out"] = str(study.out)
    (study.out / "study.json").write_text(json.dumps(d, indent=2, default=str))


def execute(study: Study) -> pd.DataFrame:
    """Run a study into its store and return the per-example scores."""
    check_writable(study)
    with Store(study.store_path) as store, _progress() as bar:
        job = bar.add_task("evaluating", total=None)
        summary = run_study(study, store, lambda d, n, t: bar.update(job, description=d, completed=n, total=t))
        _save_study(study)
        scores = metrics.compute(store.records(study.name), study.metrics)
    err.print(f"records: {summary.written} written, {summary.skipped} already stored → {study.store_path}")
    return scores


def print_curves(scores: pd.DataFrame, rungs: pd.DataFrame) -> None:
    """One table per (task, variant): each metric's mean across the ladder, rungs ordered by parameters."""
    order = list(rungs.sort_values(["params", "tokens"], na_position="last").model)
    means = scores.groupby(["task", "variant", "metric", "model"], sort=False).value.mean().unstack("model")
    for (task, variant), block in means.groupby(level=["task", "variant"], sort=False):
        table = Table(title=f"{task} · {variant}", title_justify="left")
        table.add_column("metric")
        table.add_column("kind")
        cols = [m for m in order if m in block.columns]
        for m in cols:
            table.add_column(m, justify="right")
        for (_, _, metric), row in block.iterrows():
            kind = metrics.METRICS[metric].kind
            table.add_row(metric, "disc." if kind == "discontinuous" else "cont.",
                          *(f"{row[m]:.3f}" if pd.notna(row[m]) else "–" for m in cols))
        console.print(table)


@app.command()
@_guard
def run(study_file: Annotated[Path, typer.Argument(help="study TOML: ladder, tasks, shots, metrics, out")]) -> None:
    """Run a study: every model × task × example × variant → records → metrics → curves."""
    study = load_study(study_file)
    scores = execute(study)
    with Store(study.store_path) as store:
        print_curves(scores, store.rungs(study.name))


def train_with_progress(spec: Any, out: Path) -> list[dict[str, Any]]:
    """Train a ladder with one progress bar per rung; rungs already trained are skipped."""
    from emergentlab.train import train_ladder

    with _progress() as bar:
        jobs: dict[str, Any] = {}

        def update(rung: str, step: int, total: int, info: dict[str, float]) -> None:
            if rung not in jobs:
                jobs[rung] = bar.add_task(rung, total=total)
            loss = info.get("loss")
            bar.update(jobs[rung], completed=step, description=f"{rung} loss {loss:.3f}" if loss else rung)

        return train_ladder(spec, out, update)


@app.command()
@_guard
def train(
    ladder_file: Annotated[Path, typer.Argument(help="ladder TOML: sizes × token budgets, training tasks, seed")],
    out: Annotated[Path, typer.Option(help="folder for the checkpoints, one per rung")] = Path("checkpoints"),
) -> None:
    """Train a ladder of tiny GPTs (sizes × token budgets) on the train split of the synthetic tasks."""
    from emergentlab.train import load_ladder_spec

    spec = load_ladder_spec(ladder_file)
    rungs = train_with_progress(spec, out)
    table = Table(title=f"ladder → {out}", title_justify="left")
    for col in ("rung", "params", "non-emb params", "tokens", "FLOPs", "val loss (nats/tok)", "wall (s)", ""):
        table.add_column(col, justify="left" if col in ("rung", "") else "right")
    for r in rungs:
        table.add_row(r["name"], f"{r['params']:.3g}", f"{r['non_embedding_params']:.3g}", f"{r['tokens']:.3g}",
                      f"{r['flops']:.3g}", f"{r['val_loss']:.3f}", f"{r['wall_s']:.0f}",
                      "skipped (exists)" if r["skipped"] else "trained")
    console.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
