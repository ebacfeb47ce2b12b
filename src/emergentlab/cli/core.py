"""Studies and reports: run, train, report, analyze, import-lmeval, demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emergentlab import pipeline
from emergentlab.cli import base
from emergentlab.cli.base import AT, JSON, LEVEL, command
from emergentlab.report.terminal import print_line, print_table, progress


def _summary(s: pipeline.RunSummary) -> None:
    print_line(base.err, f"records: {s.written} written, {s.skipped} already stored"
               + (f", {s.truncated} with prompts cut to fit the model's context" if s.truncated else ""))
    for k in s.skips:
        print_line(base.err, f"skipped {k.model} × {k.task} · {k.variant}: {k.reason}")


@command()
def run(study_file: Annotated[Path, typer.Argument(help="study TOML: ladder, tasks, shots, metrics, out")],
        precision: Annotated[str | None, typer.Option(help="run every rung in fp32 or bf16 (hf and gguf models)")]
        = None,
        dry_run: Annotated[bool, typer.Option(help="check the study and estimate its cost; run nothing")] = False,
        executor: Annotated[str, typer.Option(help="where the models run: local, or ray (a Ray cluster; needs "
                                              "emergentlab[ray])")] = "local",
        ray_address: Annotated[str | None, typer.Option(help="Ray cluster to use, e.g. ray://head:10001 "
                                                        "(default: RAY_ADDRESS, else a local Ray)")] = None,
        shard_size: Annotated[int | None, typer.Option(min=1, help="examples per Ray task, a multiple of the "
                                                       "study's batch_size (default: one batch)")] = None,
        as_json: JSON = False) -> None:
    """Run a study: every model × task × example × variant → records → metrics → curves."""
    if dry_run:
        est = pipeline.dry_run(study_file, precision)
        base.output([("estimated scoring cost per rung (seconds, MB)", est)], [], as_json, {"estimate": est}, {})
        return
    with progress(base.err) as update:
        r = pipeline.run_study(study_file, update, precision, executor, ray_address, shard_size)
    _summary(r.summary)
    tables = [(f"{t} · {v}: mean per rung", b.droplevel([0, 1]).reset_index())
              for (t, v), b in r.means.groupby(level=["task", "variant"], sort=False)]
    base.output(tables, [r.csv], as_json, {"written": r.summary.written, "skipped": r.summary.skipped,
                                     "means": r.means.reset_index()}, {"records": r.study.store_path})


@command()
def train(
    ladder_file: Annotated[Path, typer.Argument(help="ladder TOML: sizes × token budgets, training tasks, seed")],
    out: Annotated[Path, typer.Option(help="folder for the checkpoints, one per rung")] = Path("checkpoints"),
) -> None:
    """Train a ladder of tiny GPTs (sizes × token budgets) on the train split of the synthetic tasks."""
    with progress(base.err) as update:
        df = pipeline.train_ladder(ladder_file, out, update)
    print_table(base.console, df, f"ladder → {out}", "val_loss in nats/token, wall_s in seconds; skipped: already "
                "trained with this config")


def report_out(rep: pipeline.Report, as_json: bool) -> None:
    base.output([("verdicts", rep.verdicts)], rep.csvs, as_json, {"verdicts": rep.verdicts}, {"report": rep.path})


@command()
def report(run_dir: Annotated[Path, typer.Argument(help="a run folder (holds records.sqlite)")],
           as_json: JSON = False, level: LEVEL = 0.5, at: AT = None) -> None:
    """Rebuild verdicts, forecasts, figures and report.html from the stored records alone (no model runs)."""
    report_out(pipeline.build_report(run_dir, threshold=level, at=at), as_json)


@command()
def analyze(scores_csv: Annotated[Path, typer.Argument(help="CSV with columns model, params, task, metric, value; "
                                                         "optional tokens, flops, loss, n")],
            out: Annotated[Path, typer.Option(help="folder for report.html and figures")] = Path("runs/analyze"),
            seed: int = 0, as_json: JSON = False, level: LEVEL = 0.5, at: AT = None) -> None:
    """Verdicts, forecasts and the report from published scores: no models needed."""
    report_out(pipeline.analyze_csv(scores_csv, out, seed, level, at), as_json)


@command("import-lmeval")
def import_lmeval(
    samples: Annotated[list[Path], typer.Argument(help="lm-eval --log_samples files (samples_*.jsonl) or folders")],
    out: Annotated[Path, typer.Option(help="run folder: records.sqlite, then `emergentlab report OUT`")],
    study: Annotated[str, typer.Option(help="study name for these records")] = "lmeval",
    model: Annotated[str | None, typer.Option(help="rung name (default: the model lm-eval logged)")] = None,
    params: Annotated[float | None, typer.Option(help="parameters, if lm-eval did not log them")] = None,
    tokens: Annotated[float | None, typer.Option(help="training tokens")] = None,
    loss: Annotated[float | None, typer.Option(help="pre-training loss (nats/token)")] = None,
) -> None:
    """Import lm-eval per-sample logs as records, so every metric, verdict and the report work on existing runs."""
    facts = {k: v for k, v in (("params", params), ("tokens", tokens), ("loss", loss)) if v is not None}
    s = pipeline.import_lmeval(samples, out, study, model, facts)
    print_line(base.console, f"{s.files} file(s): {s.written} records written, {s.skipped} already stored → {s.store}")
    print_line(base.console, f"next: emergentlab report {out}")


@command()
def demo(
    out: Annotated[Path, typer.Option(help="run folder: records, figures, report")] = Path("runs/demo"),
    retrain: Annotated[bool, typer.Option(help="train the demo ladder from scratch instead of loading it")] = False,
    n: Annotated[int, typer.Option(min=1, help="test examples per task")] = 200,
    seed: int = 0,
    as_json: JSON = False,
) -> None:
    """Tiny ladder × synthetic tasks → records → paired metrics → curves → verdicts → report.html."""
    with progress(base.err) as update:
        d = pipeline.demo(out, retrain, n, seed, update)
    _summary(d.run.summary)
    tables = [(f"{t} · {v} across the ladder", b.droplevel([0, 1]).reset_index())
              for (t, v), b in d.run.means.groupby(level=["task", "variant"], sort=False)]
    base.output([*tables, ("verdicts", d.report.verdicts)], [d.run.csv, *d.report.csvs], as_json,
          {"written": d.run.summary.written, "means": d.run.means.reset_index(), "verdicts": d.report.verdicts},
          {"records": d.run.study.store_path, "report": d.report.path})
