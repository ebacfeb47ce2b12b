"""One command per experiment kind: grok, induction, cot, tokenization, icl, bursty, passuntil, quantize, sae,
finetune."""

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


MODELS = Annotated[list[str] | None, typer.Option(
    "--model", help="a rung as a backend spec (tiny:DIR, hf:ORG/NAME, gguf:FILE; NAME=SPEC names it), once per rung, "
    "in place of --ladder")]


def _ladder(ladder: Path | None, models: list[str] | None = None) -> dict[str, Any]:
    return {**({"ladder": str(ladder)} if ladder is not None else {}),
            **({"models": tuple(models)} if models else {})}


SPEC = Annotated[Path | None, typer.Option(help="ladder spec (TOML) to train (default: the shipped one)")]


def _spec(spec: Path | None) -> dict[str, Any]:
    return {"spec": str(spec)} if spec is not None else {}


@command()
def cot(out: OUT = Path("runs/cot"),
        ladder: Annotated[Path | None, typer.Option(help="folder of tiny checkpoints (default: train the trace-"
                                                         "mixture ladder --spec into OUT/ladder; a rerun resumes)")]
        = None, spec: SPEC = None, task: str = "add2", n: int = 200, seed: int = 0, model: MODELS = None,
        as_json: JSON = False) -> None:
    """Chain of thought vs direct on a ladder: per-rung paired differences and where their sign flips."""
    with progress(base.err) as update:
        report_out(pipeline.cot({**_ladder(ladder, model), **_spec(spec), "task": task, "n": n, "seed": seed}, out,
                                update), as_json)


@command()
def tokenization(out: OUT = Path("runs/tokenization"), spec: SPEC = None,
                 conditions: Annotated[str, typer.Option(help="comma-separated, the first the baseline: digit or "
                                                              "chunk2-4, optionally +scratchpad")]
                 = "digit,chunk3,digit+scratchpad", task: str = "add2", n: int = 200, seed: int = 0,
                 as_json: JSON = False) -> None:
    """Tokenization and scratchpads: the arithmetic ladder per condition (trained into OUT/ladders; a rerun resumes),
    each condition's threshold shift against the baseline with a paired-bootstrap interval."""
    conds = [c.strip() for c in conditions.split(",") if c.strip()]
    with progress(base.err) as update:
        d = pipeline.tokenization({**_spec(spec), "conditions": conds, "task": task, "n": n, "seed": seed}, out,
                                  update)
    base.output([("threshold shift per condition (log10 non-embedding params)", d.table)], [], as_json,
                {"shifts": d.table}, {"report": d.report.path})


@command()
def icl(out: OUT = Path("runs/icl"), ladder: LADDER = None, task: str = "add3", n: int = 100, seed: int = 0,
        model: MODELS = None, as_json: JSON = False) -> None:
    """In-context learning gain: zero- vs 1, 2, 4, 8-shot at every rung, each gain's threshold shift and sign flip."""
    with progress(base.err) as update:
        report_out(pipeline.icl({**_ladder(ladder, model), "task": task, "n": n, "seed": seed}, out, update),
                   as_json)


@command()
def passuntil(out: OUT = Path("runs/passuntil"), ladder: LADDER = None,
              model: Annotated[list[str] | None, typer.Option(
                  help="a backend spec per rung instead of a ladder (tiny:, hf:, gguf:, openai:); repeat it")] = None,
              task: str = "add3", n: int = 100,
              temperature: Annotated[float, typer.Option(help="sampling temperature (> 0)")] = 1.0,
              budget: Annotated[int, typer.Option(help="draws per item at most")] = 1000,
              batch: Annotated[int, typer.Option(help="prompts per sampling call")] = 512,
              metric: Annotated[str, typer.Option(help="the pass/fail metric of a draw")] = "exact_match",
              seed: int = 0, as_json: JSON = False) -> None:
    """PassUntil: sample each item until its first pass; pass rate per rung with intervals and the task law."""
    with progress(base.err) as update:
        d = pipeline.passuntil({**_ladder(ladder), **({"models": model} if model else {}), "task": task, "n": n,
                                "temperature": temperature, "budget": budget, "batch": batch, "metric": metric,
                                "seed": seed}, out, update)
    base.output([("PassUntil per rung (counts; rates are probabilities)", d.table)], [], as_json,
                {"rungs": d.table}, {"report": d.report.path})


@command()
def bursty(sizes: Annotated[str, typer.Option(help="comma-separated LAYERSxWIDTH, one model each (empty: "
                                                   "1x64,2x32,2x64,3x64)")] = "",
           steps: Annotated[int | None, typer.Option(help="training steps per model (default 1500)")] = None,
           polysemy: Annotated[int | None, typer.Option(help="labels per class, drawn per sequence")] = None,
           zipf: Annotated[float | None, typer.Option(help="Zipf exponent of the class distribution")] = None,
           p_bursty: Annotated[float | None, typer.Option(help="share of bursty sequences")] = None,
           p_symbols: Annotated[float | None, typer.Option(help="share of bursty sequences with their own "
                                                                "symbol map (0: Chan et al.'s fixed labels only)")]
           = None,
           seed: int = 0, out: OUT = Path("runs/bursty"), as_json: JSON = False) -> None:
    """In-context learning from bursty data (Chan et al. 2022): at which size and step it appears, beside the
    induction-head measures, and the verdict on its n-shot gain."""
    given = {"steps": steps, "polysemy": polysemy, "zipf": zipf, "p_bursty": p_bursty, "p_symbols": p_symbols}
    with progress(base.err) as update:
        d = pipeline.bursty(sizes, {"seed": seed, **{k: v for k, v in given.items() if v is not None}}, out, update)
    base.output([("ICL onset per size (steps; accuracies 0–1)", d.table)], [], as_json, {"runs": d.table},
                {"report": d.report.path})


@command()
def quantize(out: OUT = Path("runs/quantize"), ladder: LADDER = None, task: str = "add3", n: int = 100,
             formats: Annotated[str, typer.Option(help="comma-separated, e.g. fp32,bf16,int8-g64,int4-g64; none: "
                                                  "only --level files")] = "",
             seed: int = 0, model: MODELS = None,
             level: Annotated[list[str] | None, typer.Option(
                 help="a supplied weight level: [FORMAT=]gguf:FILE (format from the file's header unless named), "
                 "once per file")] = None,
             shots: Annotated[int, typer.Option(help="demonstrations per prompt")] = 0, as_json: JSON = False) -> None:
    """Quantization sweep: every rung at each weight format; verdicts per format and whether the capability survives."""
    with progress(base.err) as update:
        d = pipeline.quantize(out, ladder, task, n, formats, seed, update, model or (), level or (), shots)
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
