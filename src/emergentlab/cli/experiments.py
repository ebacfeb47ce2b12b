"""One command per experiment kind: grok, induction, cot, icl, quantize, sae, finetune."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from emergentlab import pipeline
from emergentlab.cli import base
from emergentlab.cli.base import JSON, LADDER, OUT, command
from emergentlab.cli.core import report_out
from emergentlab.report.terminal import progress


@command()
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
    with progress(base.err) as update:
        d = pipeline.grok(dict(p=p, op=op, train_frac=train_frac, weight_decay=weight_decay, lr=lr, steps=steps,
                               seed=seed), sweep_wd, sweep_frac, out, update)
    base.output([("grokking runs (steps; final_val_acc 0–1; wall_s seconds)", d.table)], [], as_json,
         {"runs": d.table}, {"report": d.report.path})


@command()
def induction(layers: Annotated[str, typer.Option(help="comma-separated layer counts, one model each")] = "1,2",
              steps: Annotated[int, typer.Option(help="training steps per model")] = 1500, seed: int = 0,
              out: Annotated[Path, typer.Option(help="run folder: records.sqlite, figures, report")]
              = Path("runs/induction"), as_json: JSON = False) -> None:
    """Induction heads: per model the phase-change step, ICL-score and loss drops, and the top head by name."""
    with progress(base.err) as update:
        d = pipeline.induction(layers, steps, seed, out, update)
    base.output([("induction runs (steps; icl score nats; val loss nats/token)", d.table)], [], as_json,
         {"runs": d.table}, {"report": d.report.path})


def _ladder(ladder: Path | None) -> dict[str, Any]:
    return {"ladder": str(ladder)} if ladder is not None else {}


@command()
def cot(out: OUT = Path("runs/cot"), ladder: LADDER = None, task: str = "add3", n: int = 100, seed: int = 0,
        as_json: JSON = False) -> None:
    """Chain of thought vs direct on a tiny ladder: per-rung paired differences and where their sign flips."""
    with progress(base.err) as update:
        report_out(pipeline.cot({**_ladder(ladder), "task": task, "n": n, "seed": seed}, out, update), as_json)


@command()
def icl(out: OUT = Path("runs/icl"), ladder: LADDER = None, task: str = "add3", n: int = 100, seed: int = 0,
        as_json: JSON = False) -> None:
    """In-context learning gain: zero- vs 1, 2, 4, 8-shot at every rung, each gain's threshold shift and sign flip."""
    with progress(base.err) as update:
        report_out(pipeline.icl({**_ladder(ladder), "task": task, "n": n, "seed": seed}, out, update), as_json)


@command()
def quantize(out: OUT = Path("runs/quantize"), ladder: LADDER = None, task: str = "add3", n: int = 100,
             formats: Annotated[str, typer.Option(help="comma-separated, e.g. fp32,bf16,int8-g64,int4-g64")] = "",
             seed: int = 0, as_json: JSON = False) -> None:
    """Quantization sweep: every rung at each weight format; verdicts per format and whether the capability survives."""
    with progress(base.err) as update:
        d = pipeline.quantize(out, ladder, task, n, formats, seed, update)
    base.output([("capability survives (largest rung, exact match)", d.table)], [], as_json, {"formats": d.table},
         {"report": d.report.path})


@command()
def sae(small: Annotated[str, typer.Option(help="the smaller rung's folder name")],
        large: Annotated[str, typer.Option(help="the larger rung's folder name")], out: OUT = Path("runs/sae"),
        ladder: LADDER = None, task: str = "add3", n: int = 300, seed: int = 0, as_json: JSON = False) -> None:
    """Model diffing with a sparse autoencoder: features of the larger rung absent in the smaller one."""
    with progress(base.err) as update:
        d = pipeline.sae_diff(out, small, large, ladder, task, n, seed, update)
    base.output([("features new in the larger rung", d.table)], [], as_json, {"features": d.table},
         {"report": d.report.path})


@command()
def finetune(out: OUT = Path("runs/finetune"),
             ladder: Annotated[Path | None, typer.Option(help="folder of tiny checkpoints (default: OUT/ladder, "
                                                              "trained from --spec first when it holds none)")] = None,
             spec: Annotated[Path | None, typer.Option(help="ladder TOML to train (default: the built-in "
                                                            "mixture where the task is a small share)")] = None,
             task: str = "add2", ks: Annotated[str, typer.Option(help="fine-tuning example counts, 0 = none")]
             = "0,32,128,512", steps: int = 100, lr: float = 1e-3,
             holdout: Annotated[int, typer.Option(help="largest rungs held out and predicted")] = 2, n: int = 200,
             seed: int = 0, as_json: JSON = False) -> None:
    """Predict emergence by fine-tuning (Snell et al. 2024): the emergence law on the smaller rungs vs the held-out."""
    cfg: dict[str, Any] = {"task": task, "ks": pipeline.numbers(ks, int, "--ks"), "steps": steps, "lr": lr,
                           "holdout": holdout, "n": n, "seed": seed, **_ladder(ladder)}
    if spec is not None:
        cfg["spec"] = str(spec)
    with progress(base.err) as update:
        d = pipeline.finetune(cfg, out, update)
    base.output([("emergence prediction vs held-out rungs (axis units; error in nats or decades)", d.table)], [],
                as_json, {"backtest": d.table}, {"report": d.report.path})
