"""The tools a team ships models with: the upgrade gate, capability thresholds, model selection, the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emergentlab import pipeline
from emergentlab.cli import base
from emergentlab.cli.base import JSON, command
from emergentlab.report.terminal import print_line, progress


@command()
def compare(old: Annotated[str, typer.Argument(help="OLD model spec (tiny:PATH, hf:ORG/NAME, gguf:FILE, …)")],
            new: Annotated[str, typer.Argument(help="NEW model spec")],
            suite: Annotated[str, typer.Option(help="shipped suite (starter), folder of JSONL/BIG-bench tasks, "
                                                    "a .jsonl, or a TOML with [[tasks]]")] = "starter",
            out: Annotated[Path, typer.Option(help="folder for report, JSON, JUnit XML")] = Path("runs/compare"),
            alpha: float = 0.05, correction: Annotated[str, typer.Option(help="holm, bh or none")] = "holm",
            seed: int = 0, as_json: JSON = False) -> None:
    """Upgrade gate: paired tests of NEW against OLD on the same items. Exit 1 on a significant regression."""
    with progress(base.err) as update:
        r = pipeline.compare(old, new, suite, out, alpha, correction, seed, update)
    base.output([("paired tests", r.comparison.tests)], r.csvs, as_json,
         {"gate": r.verdict, "tests": r.comparison.tests}, {"report": r.report, "json": r.json, "junit": r.junit})
    print_line(base.err, r.verdict)
    if r.comparison.failed:
        raise typer.Exit(1)


@command()
def check(policy: Annotated[Path, typer.Argument(help="policy TOML: [[thresholds]] task, metric, warning, critical")],
          run_dir: Annotated[Path, typer.Argument(help="a run folder (holds records.sqlite)")],
          seed: int = 0, as_json: JSON = False) -> None:
    """Capability thresholds: which rungs cross each warning/critical line, and when the next crossing is expected.
    Exit 0 none crossed, 3 a warning line, 4 a critical line."""
    r = pipeline.check_policy(policy, run_dir, seed)
    base.output([("policy: lines and forecasts", r.check.forecasts)], r.csvs, as_json,
          {"level": r.check.level.name.lower(), "forecasts": r.check.forecasts}, {"report": r.report})
    raise typer.Exit(r.exit_code)


@command()
def select(run_dir: Annotated[Path, typer.Argument(help="a run folder (holds records.sqlite)")],
           task: Annotated[str, typer.Option()], metric: Annotated[str, typer.Option()],
           bar: Annotated[float, typer.Option(help="the level to clear, in the metric's unit")],
           cost: Annotated[str, typer.Option(help="params, flops_per_token or price")] = "params",
           variant: str | None = None, confidence: float = 0.95,
           prices: Annotated[Path | None, typer.Option(help="CSV model,price for --cost price")] = None,
           as_json: JSON = False) -> None:
    """Model selection: the cheapest rung whose metric clears the bar at the confidence; else the forecast scale."""
    s = pipeline.select_model(run_dir, task, metric, bar, cost, variant, confidence, prices)
    base.output([("rungs, cheapest first", s.table)], [], as_json,
         {**vars(s), "summary": pipeline.selection_summary(s)}, {})
    if not as_json:
        print_line(base.console, pipeline.selection_summary(s))


@command()
def catalog(as_json: JSON = False) -> None:
    """The documented emergent capabilities (Wei et al. 2022, Table 1) with the scale each emerged at."""
    df = pipeline.catalog()
    base.output([("documented emergent capabilities", df)], [pipeline.CATALOG], as_json, {"capabilities": df}, {})
