"""The `emergentlab` command: parse, call `pipeline`, print (`report.terminal`: tables on a terminal, CSV paths
when piped, one JSON object with --json). Exit 0 ok, 1 failure, 2 user error."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from emergentlab import pipeline
from emergentlab.errors import UserError
from emergentlab.report.terminal import print_line, print_table, progress, show

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="A laboratory for emergent capabilities of language models.")
console = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
JSON = Annotated[bool, typer.Option("--json", help="print one JSON object on stdout instead of tables")]
LEVEL = Annotated[float, typer.Option("--level", help="metric value whose crossing is forecast (e.g. 0.5)")]
AT = Annotated[float | None, typer.Option("--at", help="also predict each metric at this primary-axis value")]


def _guard(fn: F) -> F:
    """User errors → one line on stderr, exit 2; anything else → one line, exit 1 (EMERGENTLAB_DEBUG=1 re-raises)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as e:  # StoreError is one: a file that is not a usable store
            print_line(err, f"error: {e}")
            raise typer.Exit(2) from None
        except (typer.Exit, KeyboardInterrupt):
            raise
        except Exception as e:
            if os.environ.get("EMERGENTLAB_DEBUG"):
                raise
            print_line(err, f"failed: {type(e).__name__}: {e}")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def _root() -> None:
    """A laboratory for emergent capabilities of language models."""


def _summary(s: pipeline.RunSummary) -> None:
    print_line(err, f"records: {s.written} written, {s.skipped} already stored"
               + (f", {s.truncated} with prompts cut to fit the model's context" if s.truncated else ""))
    for k in s.skips:
        print_line(err, f"skipped {k.model} × {k.task} · {k.variant}: {k.reason}")


@app.command()
@_guard
def run(study_file: Annotated[Path, typer.Argument(help="study TOML: ladder, tasks, shots, metrics, out")],
        precision: Annotated[str | None, typer.Option(help="run every rung in fp32 or bf16 (hf and gguf models)")]
        = None,
        dry_run: Annotated[bool, typer.Option(help="check the study and estimate its cost; run nothing")] = False,
        as_json: JSON = False) -> None:
    """Run a study: every model × task × example × variant → records → metrics → curves."""
    if dry_run:
        est = pipeline.dry_run(study_file, precision)
        show(console, [("estimated scoring cost per rung (seconds, MB)", est)], [], as_json, {"estimate": est}, {})
        return
    with progress(err) as update:
        r = pipeline.run_study(study_file, update, precision)
    _summary(r.summary)
    tables = [(f"{t} · {v}: mean per rung", b.droplevel([0, 1]).reset_index())
              for (t, v), b in r.means.groupby(level=["task", "variant"], sort=False)]
    show(console, tables, [r.csv], as_json, {"written": r.summary.written, "skipped": r.summary.skipped,
                                     "means": r.means.reset_index()}, {"records": r.study.store_path})


@app.command()
@_guard
def train(
    ladder_file: Annotated[Path, typer.Argument(help="ladder TOML: sizes × token budgets, training tasks, seed")],
    out: Annotated[Path, typer.Option(help="folder for the checkpoints, one per rung")] = Path("checkpoints"),
) -> None:
    """Train a ladder of tiny GPTs (sizes × token budgets) on the train split of the synthetic tasks."""
    with progress(err) as update:
        df = pipeline.train_ladder(ladder_file, out, update)
    print_table(console, df, f"ladder → {out}", "val_loss in nats/token, wall_s in seconds; skipped: already "
                "trained with this config")


def _report_out(rep: pipeline.Report, as_json: bool) -> None:
    show(console, [("verdicts", rep.verdicts)], rep.csvs, as_json, {"verdicts": rep.verdicts}, {"report": rep.path})


@app.command()
@_guard
def report(run_dir: Annotated[Path, typer.Argument(help="a run folder (holds records.sqlite)")],
           as_json: JSON = False, level: LEVEL = 0.5, at: AT = None) -> None:
    """Rebuild verdicts, forecasts, figures and report.html from the stored records alone (no model runs)."""
    _report_out(pipeline.build_report(run_dir, threshold=level, at=at), as_json)


@app.command()
@_guard
def analyze(scores_csv: Annotated[Path, typer.Argument(help="CSV with columns model, params, task, metric, value; "
                                                         "optional tokens, flops, loss, n")],
            out: Annotated[Path, typer.Option(help="folder for report.html and figures")] = Path("runs/analyze"),
            seed: int = 0, as_json: JSON = False, level: LEVEL = 0.5, at: AT = None) -> None:
    """Verdicts, forecasts and the report from published scores: no models needed."""
    _report_out(pipeline.analyze_csv(scores_csv, out, seed, level, at), as_json)


@app.command("import-lmeval")
@_guard
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
    print_line(console, f"{s.files} file(s): {s.written} records written, {s.skipped} already stored → {s.store}")
    print_line(console, f"next: emergentlab report {out}")


@app.command()
@_guard
def demo(
    out: Annotated[Path, typer.Option(help="run folder: records, figures, report")] = Path("runs/demo"),
    retrain: Annotated[bool, typer.Option(help="train the demo ladder from scratch instead of loading it")] = False,
    n: Annotated[int, typer.Option(min=1, help="test examples per task")] = 200,
    seed: int = 0,
    as_json: JSON = False,
) -> None:
    """Tiny ladder × synthetic tasks → records → paired metrics → curves → verdicts → report.html."""
    with progress(err) as update:
        d = pipeline.demo(out, retrain, n, seed, update)
    _summary(d.run.summary)
    tables = [(f"{t} · {v} across the ladder", b.droplevel([0, 1]).reset_index())
              for (t, v), b in d.run.means.groupby(level=["task", "variant"], sort=False)]
    show(console, [*tables, ("verdicts", d.report.verdicts)], [d.run.csv, *d.report.csvs], as_json,
          {"written": d.run.summary.written, "means": d.run.means.reset_index(), "verdicts": d.report.verdicts},
          {"records": d.run.study.store_path, "report": d.report.path})


@app.command()
@_guard
def compare(old: Annotated[str, typer.Argument(help="OLD model spec (tiny:PATH, hf:ORG/NAME, gguf:FILE, …)")],
            new: Annotated[str, typer.Argument(help="NEW model spec")],
            suite: Annotated[str, typer.Option(help="shipped suite (starter), folder of JSONL/BIG-bench tasks, "
                                                    "a .jsonl, or a TOML with [[tasks]]")] = "starter",
            out: Annotated[Path, typer.Option(help="folder for report, JSON, JUnit XML")] = Path("runs/compare"),
            alpha: float = 0.05, correction: Annotated[str, typer.Option(help="holm, bh or none")] = "holm",
            seed: int = 0, as_json: JSON = False) -> None:
    """Upgrade gate: paired tests of NEW against OLD on the same items. Exit 1 on a significant regression."""
    with progress(err) as update:
        r = pipeline.compare(old, new, suite, out, alpha, correction, seed, update)
    show(console, [("paired tests", r.comparison.tests)], r.csvs, as_json,
         {"gate": r.verdict, "tests": r.comparison.tests}, {"report": r.report, "json": r.json, "junit": r.junit})
    print_line(err, r.verdict)
    if r.comparison.failed:
        raise typer.Exit(1)


@app.command()
@_guard
def check(policy: Annotated[Path, typer.Argument(help="policy TOML: [[thresholds]] task, metric, warning, critical")],
          run_dir: Annotated[Path, typer.Argument(help="a run folder (holds records.sqlite)")],
          seed: int = 0, as_json: JSON = False) -> None:
    """Capability thresholds: which rungs cross each warning/critical line, and when the next crossing is expected.
    Exit 0 none crossed, 3 a warning line, 4 a critical line."""
    r = pipeline.check_policy(policy, run_dir, seed)
    show(console, [("policy: lines and forecasts", r.check.forecasts)], r.csvs, as_json,
          {"level": r.check.level.name.lower(), "forecasts": r.check.forecasts}, {"report": r.report})
    raise typer.Exit(r.exit_code)


@app.command()
@_guard
def select(run_dir: Annotated[Path, typer.Argument(help="a run folder (holds records.sqlite)")],
           task: Annotated[str, typer.Option()], metric: Annotated[str, typer.Option()],
           bar: Annotated[float, typer.Option(help="the level to clear, in the metric's unit")],
           cost: Annotated[str, typer.Option(help="params, flops_per_token or price")] = "params",
           variant: str | None = None, confidence: float = 0.95,
           prices: Annotated[Path | None, typer.Option(help="CSV model,price for --cost price")] = None,
           as_json: JSON = False) -> None:
    """Model selection: the cheapest rung whose metric clears the bar at the confidence; else the forecast scale."""
    s = pipeline.select_model(run_dir, task, metric, bar, cost, variant, confidence, prices)
    show(console, [("rungs, cheapest first", s.table)], [], as_json,
         {**vars(s), "summary": pipeline.selection_summary(s)}, {})
    if not as_json:
        print_line(console, pipeline.selection_summary(s))


@app.command()
@_guard
def catalog(as_json: JSON = False) -> None:
    """The documented emergent capabilities (Wei et al. 2022, Table 1) with the scale each emerged at."""
    df = pipeline.catalog()
    show(console, [("documented emergent capabilities", df)], [pipeline.CATALOG], as_json, {"capabilities": df}, {})


@app.command()
@_guard
def grok(p: Annotated[int, typer.Option(help="the modulus (a prime)")] = 97,
         op: Annotated[str, typer.Option(help="+, -, * or /")] = "+",
         train_frac: Annotated[float, typer.Option(help="share of the p² pairs used for training")] = 0.3,
         weight_decay: Annotated[float, typer.Option(help="AdamW weight decay")] = 1.0,
         lr: Annotated[float, typer.Option(help="AdamW learning rate")] = 3e-3,
         steps: Annotated[int, typer.Option(help="full-batch optimizer steps per run")] = 6000, seed: int = 0,
         out: Annotated[Path, typer.Option(help="run folder: records.sqlite, figures, report")] = Path("runs/grok"),
         sweep_wd: Annotated[str, typer.Option(help="comma-separated weight decays, e.g. 0,0.3,1")] = "",
         sweep_frac: Annotated[str, typer.Option(help="comma-separated train fractions, e.g. 0.3,0.5")] = "",
         as_json: JSON = False) -> None:
    """Grokking on a ∘ b mod p: memorisation point, generalisation jump (step, width, sharpness), report."""
    with progress(err) as update:
        d = pipeline.grok(dict(p=p, op=op, train_frac=train_frac, weight_decay=weight_decay, lr=lr, steps=steps,
                               seed=seed), sweep_wd, sweep_frac, out, update)
    show(console, [("grokking runs (steps; final_val_acc 0–1; wall_s seconds)", d.table)], [], as_json,
         {"runs": d.table}, {"report": d.report.path})


@app.command()
@_guard
def induction(layers: Annotated[str, typer.Option(help="comma-separated layer counts, one model each")] = "1,2",
              steps: Annotated[int, typer.Option(help="training steps per model")] = 1500, seed: int = 0,
              out: Annotated[Path, typer.Option(help="run folder: records.sqlite, figures, report")]
              = Path("runs/induction"), as_json: JSON = False) -> None:
    """Induction heads: per model the phase-change step, ICL-score and loss drops, and the top head by name."""
    with progress(err) as update:
        d = pipeline.induction(layers, steps, seed, out, update)
    show(console, [("induction runs (steps; icl score nats; val loss nats/token)", d.table)], [], as_json,
         {"runs": d.table}, {"report": d.report.path})


def main() -> None:
    app()


if __name__ == "__main__":
    main()
