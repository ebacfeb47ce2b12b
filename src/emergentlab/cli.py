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


def ladder_means(scores: pd.DataFrame, rungs: pd.DataFrame) -> pd.DataFrame:
    """Mean of each (task, variant, metric) per model, one column per rung, ordered by parameters then tokens."""
    order = list(rungs.sort_values(["params", "tokens"], na_position="last").model)
    means = scores.groupby(["task", "variant", "metric", "model"], sort=False).value.mean().unstack("model")
    return means[[m for m in order if m in means.columns]]


def print_curves(scores: pd.DataFrame, rungs: pd.DataFrame) -> None:
    """One table per (task, variant): each metric's mean across the ladder, rungs ordered by parameters."""
    means = ladder_means(scores, rungs)
    for (task, variant), block in means.groupby(level=["task", "variant"], sort=False):
        table = Table(title=f"{task} · {variant}", title_justify="left")
        table.add_column("metric")
        table.add_column("kind")
        for m in block.columns:
            table.add_column(m, justify="right")
        for (_, _, metric), row in block.iterrows():
            kind = metrics.METRICS[metric].kind
            table.add_row(metric, "disc." if kind == "discontinuous" else "cont.",
                          *(f"{v:.3f}" if pd.notna(v) else "–" for v in row))
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


def print_verdicts(report: Path) -> None:
    """The verdict table written beside a report, as a rich table; notes follow it, so the table stays narrow."""
    from emergentlab.report.html import load_verdict_table

    vt = load_verdict_table(report)
    notes = vt.pop("note") if "note" in vt.columns else pd.Series("", index=vt.index)
    table = Table(title="verdicts", title_justify="left")
    for col in vt.columns:
        table.add_column(col, overflow="fold", no_wrap=col == "verdict")
    for row in vt.itertuples(index=False):
        table.add_row(*map(str, row))
    console.print(table)
    for (_, row), note in zip(vt.iterrows(), notes, strict=True):
        if isinstance(note, str) and note.strip():
            console.print(f"  {row.get('task', '')} · {row.get('variant', '')} · {row.get('pair', '')}: {note}",
                          markup=False, highlight=False)


def make_report(run_dir: Path, study: str | None) -> Path:
    """report.html (+ PNGs, CSVs) in `run_dir`, from its records store alone, with any training-dynamics sections."""
    from emergentlab.experiments import experiment_sections
    from emergentlab.report.html import build_report
    from emergentlab.report.sections import Section as HtmlSection

    store_path = run_dir / "records.sqlite"
    if not store_path.is_file():
        raise UserError("no records.sqlite here: not a run folder", source=str(run_dir))
    with Store(store_path) as store:  # figure specs are dropped until the report renders emergentlab.sections
        extra = [HtmlSection(s.title, [*s.summary, *s.paragraphs, *(t.caption for t in s.tables)],
                             tables=[t.frame for t in s.tables]) for s in experiment_sections(store, study)]
    return build_report(store_path, study, run_dir, extra_sections=extra)


@app.command()
@_guard
def report(run_dir: Annotated[Path, typer.Argument(help="a run folder (holds records.sqlite)")]) -> None:
    """Rebuild verdicts, forecasts, figures and report.html from the stored records alone (no model runs)."""
    meta = run_dir / "study.json"
    study = json.loads(meta.read_text())["name"] if meta.is_file() else None
    path = make_report(run_dir, study)
    print_verdicts(path)
    console.print(f"report: {path}")


@app.command()
@_guard
def analyze(
    scores_csv: Annotated[
        Path, typer.Argument(help="CSV: model, params, [tokens, flops, loss], task, metric, value, [n]")],
    out: Annotated[Path, typer.Option(help="folder for report.html and figures")] = Path("runs/analyze"),
    seed: int = 0,
) -> None:
    """Verdicts, forecasts and the report from published scores: no models needed."""
    from emergentlab.report.html import analyze_scores

    path = analyze_scores(scores_csv, out, seed=seed)
    print_verdicts(path)
    console.print(f"report: {path}")


@app.command("import-lmeval")
@_guard
def import_lmeval_cmd(
    samples: Annotated[list[Path], typer.Argument(help="lm-eval --log_samples files (samples_*.jsonl) or folders")],
    out: Annotated[Path, typer.Option(help="run folder: records.sqlite, then `emergentlab report OUT`")],
    study: Annotated[str, typer.Option(help="study name for these records")] = "lmeval",
    model: Annotated[str | None, typer.Option(help="rung name (default: the model lm-eval logged)")] = None,
    params: Annotated[float | None, typer.Option(help="parameters, if lm-eval did not log them")] = None,
    tokens: Annotated[float | None, typer.Option(help="training tokens")] = None,
    loss: Annotated[float | None, typer.Option(help="pre-training loss (nats/token)")] = None,
) -> None:
    """Import lm-eval per-sample logs as records, so every metric, verdict and the report work on existing runs."""
    from emergentlab.importers import import_lmeval

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write the run folder: {e.strerror}", source=str(out), field="--out") from None
    facts = {k: v for k, v in (("params", params), ("tokens", tokens), ("loss", loss)) if v is not None}
    with Store(out / "records.sqlite") as store:
        summary = import_lmeval(samples, store, study=study, model=model, facts=facts or None)
    console.print(f"{summary.files} file(s): {summary.written} records written, {summary.skipped} already stored "
                  f"→ {out / 'records.sqlite'}\nnext: emergentlab report {out}")


def demo_study(ladder_dir: Path, out: Path, n: int, seed: int) -> Study:
    """The demo's study: every rung found in `ladder_dir`, evaluated on the test split of the tasks it was trained on
    (zero- and two-shot), plus the same task as 4-way multiple choice."""
    from emergentlab.study import parse_study
    from emergentlab.train import load_ladder_spec

    spec = load_ladder_spec(ladder_dir / "ladder.toml")
    rungs = sorted(p for p in ladder_dir.iterdir() if (p / "config.json").is_file())
    if not rungs:
        raise UserError("no trained rungs here (run with --retrain)", source=str(ladder_dir))
    tasks = [{"generator": t, "n": n, "shots": [0, 2]} for t in spec.tasks]
    tasks += [{"generator": t, "name": f"{t}_mc", "n": n, "choices": 4, "shots": [0]} for t in spec.tasks]
    data = {"name": "demo", "seed": seed, "out": str(out),
            "ladder": [{"name": p.name, "model": f"tiny:{p}"} for p in rungs], "tasks": tasks}
    return parse_study(data, "<demo>", Path.cwd())


def print_jumps(scores: pd.DataFrame, rungs: pd.DataFrame) -> None:
    """Per discontinuous metric and each continuous partner: the smallest and largest rung's mean, and the share of
    that change made in the single largest step between neighbouring rungs (1.0: all of it in one step)."""
    means = ladder_means(scores, rungs)
    table = Table(title="across the ladder, smallest → largest rung", title_justify="left")
    for col in ("task · variant", "metric", "kind", means.columns[0], means.columns[-1], "largest step"):
        table.add_column(col, justify="left" if col in ("task · variant", "metric", "kind") else "right")
    for task, variant, metric in means.index:
        if metric not in metrics.PAIRS:
            continue
        for m in (metric, *metrics.PAIRS[metric]):
            if (task, variant, m) not in means.index:
                continue
            y = means.loc[(task, variant, m)].to_numpy(dtype=float)
            span = abs(y[-1] - y[0])
            step = f"{float(abs(pd.Series(y).diff()).max()) / span:.0%}" if span > 0 else "–"
            table.add_row(f"{task} · {variant}" if m == metric else "", m,
                          "disc." if m == metric else "cont.", f"{y[0]:.3g}", f"{y[-1]:.3g}", step,
                          end_section=m == metrics.PAIRS[metric][-1])
    console.print(table)


@app.command()
@_guard
def demo(
    out: Annotated[Path, typer.Option(help="run folder: records, figures, report")] = Path("runs/demo"),
    retrain: Annotated[bool, typer.Option(help="train the demo ladder from scratch instead of loading it")] = False,
    n: Annotated[int, typer.Option(min=1, help="test examples per task")] = 200,
    seed: int = 0,
) -> None:
    """Tiny ladder × synthetic tasks → records → paired metrics → curves → verdicts → report.html."""
    from emergentlab.train import DEMO_LADDER_DIR, demo_ladder_spec

    ladder_dir = DEMO_LADDER_DIR
    if retrain:
        ladder_dir = out / "checkpoints"
        ladder_dir.mkdir(parents=True, exist_ok=True)
        (ladder_dir / "ladder.toml").write_text((DEMO_LADDER_DIR / "ladder.toml").read_text())
        train_with_progress(demo_ladder_spec(), ladder_dir)
    study = demo_study(ladder_dir, out, n, seed)
    scores = execute(study)
    with Store(study.store_path) as store:
        rungs = store.rungs(study.name)
    print_curves(scores, rungs)
    print_jumps(scores, rungs)
    path = make_report(out, study.name)
    print_verdicts(path)
    console.print(f"records: {study.store_path}\nfigures: {out}\nreport:  {path}")


# --- training dynamics (issue 7): grokking and induction heads ---------------------------------------------------
def _numbers(text: str, kind: type[float] | type[int], option: str) -> tuple[Any, ...]:
    """'0,0.3,1' → (0.0, 0.3, 1.0); anything unparsable is a user error naming the option."""
    try:
        return tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserError(f"expected comma-separated {kind.__name__}s, got {text!r}", field=option) from None


def _fmt_step(x: float | None) -> str:
    return "—" if x is None else f"{x:,.0f}"


@app.command()
@_guard
def grok(
    p: Annotated[int, typer.Option(help="the modulus (a prime)")] = 97,
    op: Annotated[str, typer.Option(help="+, -, * or /")] = "+",
    train_frac: Annotated[float, typer.Option(help="share of the p² pairs used for training")] = 0.3,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay")] = 1.0,
    lr: Annotated[float, typer.Option(help="AdamW learning rate")] = 3e-3,
    steps: Annotated[int, typer.Option(help="full-batch optimizer steps per run")] = 6000,
    seed: int = 0,
    out: Annotated[Path, typer.Option(help="run folder: records.sqlite, figures, report")] = Path("runs/grok"),
    sweep_wd: Annotated[str, typer.Option(help="comma-separated weight decays to sweep, e.g. 0,0.3,1")] = "",
    sweep_frac: Annotated[str, typer.Option(help="comma-separated train fractions to sweep, e.g. 0.3,0.5")] = "",
) -> None:
    """Grokking on a ∘ b mod p: memorisation point, generalisation jump (step, sharpness), report."""
    from emergentlab.experiments import grokking
    from emergentlab.experiments.base import torch_threads
    from emergentlab.experiments.grokking import GrokConfig, sweep_configs, sweep_table

    try:
        base = GrokConfig(p=p, op=op, train_frac=train_frac, weight_decay=weight_decay, lr=lr,  # type: ignore[arg-type]
                          steps=steps, seed=seed)
        configs = sweep_configs(base, _numbers(sweep_wd, float, "--sweep-wd") or (weight_decay,),
                                _numbers(sweep_frac, float, "--sweep-frac") or (train_frac,))
    except ValueError as e:
        raise UserError(str(e), source="emergentlab grok") from None
    results = []
    with Store(out / "records.sqlite") as store, _progress() as bar, torch_threads(grokking.THREADS):
        for cfg in configs:
            job = bar.add_task(cfg.run_name, total=cfg.steps)

            def update(what: str, done: int, total: int | None, job: Any = job) -> None:
                bar.update(job, completed=done, description=what)

            results.append(grokking.run(cfg, store, update, study="grok"))
    table = Table(title=f"grokking → {out}", title_justify="left",
                  caption="steps; jump = where val accuracy is halfway up, width = its 10→90 % span, sharpness = "
                          "jump / width", caption_justify="left")
    for col in ("run", "memorised", "jump", "width", "sharpness", "val acc", "wall s"):
        table.add_column(col, justify="left" if col == "run" else "right", no_wrap=col == "run")
    for row in sweep_table(results).itertuples(index=False):
        jumped = pd.notna(row.jump_step)
        table.add_row(row.run, _fmt_step(row.memorisation_step if pd.notna(row.memorisation_step) else None),
                      _fmt_step(row.jump_step if jumped else None), _fmt_step(row.jump_width if jumped else None),
                      f"{row.jump_sharpness:.2f}" if jumped else "—", f"{row.final_val_acc:.1%}", f"{row.wall_s:.0f}")
    console.print(table)
    console.print(f"report: {make_report(out, 'grok')}")


@app.command()
@_guard
def induction(
    layers: Annotated[str, typer.Option(help="comma-separated layer counts, one attention-only model each")] = "1,2",
    steps: Annotated[int, typer.Option(help="training steps per model")] = 1500,
    seed: int = 0,
    out: Annotated[Path, typer.Option(help="run folder: records.sqlite, figures, report")] = Path("runs/induction"),
) -> None:
    """Induction heads: per model the phase-change step, ICL-score and loss drops, and the top heads by name."""
    from emergentlab.experiments import induction as ind
    from emergentlab.experiments.base import torch_threads
    from emergentlab.experiments.induction import InductionConfig

    try:
        configs = [InductionConfig(n_layer=n, steps=steps, seed=seed)
                   for n in _numbers(layers, int, "--layers")]
    except ValueError as e:
        raise UserError(str(e), source="emergentlab induction") from None
    if not configs:
        raise UserError("no layer counts given", field="--layers")
    with Store(out / "records.sqlite") as store, _progress() as bar, torch_threads(ind.THREADS):
        results = []
        for cfg in configs:
            job = bar.add_task(cfg.run_name, total=cfg.steps)

            def update(what: str, done: int, total: int | None, job: Any = job) -> None:
                bar.update(job, completed=done, description=what)

            results.append(ind.run(cfg, store, update, study="induction"))
    for res in results:
        last = res.history.iloc[-1]
        heads = sorted(((k.removesuffix(".prefix_matching"), float(v)) for k, v in last.items()
                        if str(k).endswith(".prefix_matching")), key=lambda kv: -kv[1])[:3]
        events = ", ".join(f"{name} {_fmt_step(j.step if j else None)}" for name, j in
                           (("phase change", res.phase_change), ("ICL-score drop", res.icl_drop),
                            ("loss drop", res.loss_drop)))
        console.print(f"[bold]{res.config.run_name}[/]: {events} (steps); final ICL score "
                      f"{last['icl_score']:+.2f} nats, val loss {last['val_loss']:.3f} nats/token")
        for name, score in heads:
            console.print(f"  {name}: prefix matching {score:.2f}, copying {float(last[f'{name}.copying']):+.2f}",
                          markup=False, highlight=False)
    console.print(f"report: {make_report(out, 'induction')}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
