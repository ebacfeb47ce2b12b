"""Quantization sweep (Liu et al. 2023, "Do emergent abilities exist in quantized LLMs?"): every rung of a ladder
(tiny checkpoints, or any backend specs: `experiments.base.ladder_rungs`) evaluated with its weights at each format of
`Config.formats` (`emergentlab.models.quant`: fp32, bf16 and per-group round-to-nearest at 8, 4 and 2 bits, group
size in the name, dequantized back to fp32 for the forward pass), and at each weight level a user supplies as files
(`Config.levels`: GGUF files of the same model(s) at other quantization types, e.g. Q8_0 and Q4_1, loaded as they
are); then judged per format with the same `Analysis` as a ladder study (verdicts need ≥ 3 rungs) and in the
"capability survives" table (the largest rung's metric per format against the format with the most bits per weight).

Stored: each format's records and rungs under the study ``{study}@{format}`` (the rungs keep their scale facts:
a quantized model has the same parameters, fewer bits each), and one run per format in the runs table (experiment
"quantization", run = format) whose config holds the format's study name, bits per weight, its source ("rtn" or
"gguf") and the scoring speed (target tokens per second of wall time, scoring only: `score`, no generation).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from emergentlab import metrics
from emergentlab.analysis.analyze import Analysis
from emergentlab.analysis.curves import bootstrap_means, usable_axes
from emergentlab.analysis.paired import paired_bootstrap
from emergentlab.analysis.scores_csv import MIN_RUNGS
from emergentlab.experiments.base import Rung, ladder_rungs, parse_rung, rung_backends
from emergentlab.models.hf import gguf_format, parse_hf_spec
from emergentlab.models.quant import parse_quant
from emergentlab.records import Progress, no_progress
from emergentlab.runner import evaluate
from emergentlab.sections import Section, Table
from emergentlab.store import Store
from emergentlab.tasks import build_prompt, make_task
from emergentlab.train import DEMO_LADDER_DIR

NAME = "quantization"
THREADS = 0  # leaves torch's threads as they are: batched scoring uses every core it is given
FORMATS = ("fp32", "bf16", "int8-g64", "int4-g64", "int2-g64")


@dataclass(frozen=True)
class Level:
    """A supplied weight level: format `name` (e.g. "gguf-Q8_0"), its files' storage cost in bits per weight, and
    the rungs (one GGUF file each) evaluated at it."""

    name: str
    bits_per_weight: float
    rungs: tuple[Rung, ...]


def _gguf_path(rung: Rung, text: str) -> Path:
    kind, _, rest = rung.spec.partition(":")
    if kind not in ("gguf", "hf") or not rest.endswith(".gguf"):
        raise ValueError(f"a supplied level must be a GGUF file (gguf:FILE), got {text!r}")
    spec = parse_hf_spec(rest)
    path = Path(spec.source) / str(spec.gguf_file)
    if not path.is_file():
        raise ValueError(f"GGUF file not found: {path}")
    return path


def gguf_levels(levels: Sequence[str]) -> list[Level]:
    """``[FORMAT=]SPEC`` entries (SPEC a GGUF file: ``gguf:FILE`` or ``hf:FILE.gguf``) grouped into `Level`s in
    order of first appearance. FORMAT defaults to ``gguf-`` + the file's own type (header general.file_type, e.g.
    gguf-Q4_1); entries of one format are that format's ladder. Bits per weight: over every tensor of the level's
    files (scales included). ValueError for a spec that is not a GGUF file or a rung name used twice in a level."""
    grouped: dict[str, list[Rung]] = {}
    for text in levels:
        head, sep, tail = text.partition("=")
        named = bool(sep and head.strip() and ":" not in head)
        rung = parse_rung(tail if named else text)
        fmt = head.strip() if named else f"gguf-{gguf_format(_gguf_path(rung, text)).name}"
        grouped.setdefault(fmt, []).append(rung)
    out = []
    for fmt, rungs in grouped.items():
        if len({r.name for r in rungs}) < len(rungs):
            raise ValueError(f"two files of level {fmt} have one name: name them FORMAT=NAME=SPEC")
        files = [gguf_format(_gguf_path(r, r.spec)) for r in rungs]
        weights = sum(f.weights for f in files)
        bits = sum(f.bits_per_weight * f.weights for f in files) / max(weights, 1)
        out.append(Level(fmt, bits, tuple(rungs)))
    return out


@dataclass
class Config:
    """`ladder`: a folder of tiny checkpoints (one subfolder per rung; the shipped demo ladder by default), or
    `models`: the rungs as backend specs (tiny, hf, gguf: `experiments.base.parse_rung`), each evaluated at every
    RTN format of `formats`; `levels`: supplied weight levels (`gguf_levels`), each evaluated as it is. Items: `n`
    test items of generator task `task` drawn with `seed`, `shots` demonstrations per prompt."""

    ladder: str = str(DEMO_LADDER_DIR)
    task: str = "add3"
    n: int = 100
    seed: int = 0
    formats: tuple[str, ...] = FORMATS
    models: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    shots: int = 0

    def __post_init__(self) -> None:
        for f in self.formats:
            parse_quant(f)
        if not self.formats and not self.levels:
            raise ValueError("no weight format and no supplied level to evaluate")
        if self.formats:
            ladder_rungs(self.ladder, self.models)
        if self.n < 1 or self.shots < 0:
            raise ValueError(f"need n ≥ 1 and shots ≥ 0, got n = {self.n}, shots = {self.shots}")


@dataclass
class FormatRun:
    """One format's evaluation: its study name, storage cost (bits per weight), scoring speed (target tokens/s) and
    source ("rtn": rounded here; "gguf": a supplied file)."""

    format: str
    study: str
    bits_per_weight: float
    score_tokens_per_s: float
    source: str = "rtn"


def run(config: Config | None = None, store: Store | None = None, progress: Progress = no_progress,
        study: str = NAME) -> list[FormatRun]:
    """Evaluate every rung at every format into `store` (records under ``{study}@{format}``); the scoring speed is
    measured on the same prompts for each format, so the formats' tokens/s compare within one run."""
    cfg = config or Config()
    plans = [(q.name, q.bits_per_weight, ladder_rungs(cfg.ladder, cfg.models), q.name, "rtn")
             for q in map(parse_quant, cfg.formats)]
    plans += [(lv.name, lv.bits_per_weight, list(lv.rungs), "fp32", "gguf") for lv in gguf_levels(cfg.levels)]
    task = make_task(cfg.task, n=cfg.n, seed=cfg.seed)
    prompts = [build_prompt(task, ex, cfg.shots, cfg.seed) for ex in task.examples]
    targets = [ex.target for ex in task.examples]
    out = []
    for fmt, bits, rungs, quant, source in plans:
        name = f"{study}@{fmt}"
        tokens, seconds = 0, 0.0
        for rung, backend in rung_backends(rungs, store, name, progress, f"quantization {fmt}", quant=quant):
            t0 = time.perf_counter()
            scored = backend.score(prompts, targets)
            seconds += time.perf_counter() - t0
            tokens += sum(len(s.logprobs) for s in scored)
            if store is not None:
                store.put_records(evaluate(backend, task, task.examples, cfg.shots, name, rung.name, cfg.seed,
                                           prompts))
        fr = FormatRun(fmt, name, bits, tokens / seconds if seconds > 0 else float("nan"), source)
        if store is not None:
            store.put_run(study, NAME, fmt, {**asdict(cfg), "formats": list(cfg.formats), "models": list(cfg.models),
                                             "levels": list(cfg.levels), **asdict(fr)})
        out.append(fr)
    return out


@dataclass
class Sweep:
    """The fitted sweep: per format (most bits per weight first) its `FormatRun`; its `Analysis` (None when the
    ladder has fewer than 3 rungs or no scale axis); the largest rung's name and per-example metric values (the
    `metrics.compute` long table of that rung only)."""

    runs: list[FormatRun]
    analyses: dict[str, Analysis | None]
    top: dict[str, str] = field(default_factory=dict)
    top_scores: dict[str, pd.DataFrame] = field(default_factory=dict)


def fit(store: Store, study: str | None, seed: int = 0, n_boot: int = 300) -> list[Sweep]:
    """One `Sweep` per study holding quantization runs (`study`, or every one when None)."""
    by_study: dict[str, list[FormatRun]] = {}
    for (st, _run), c in store.runs(NAME, study).items():
        by_study.setdefault(st, []).append(FormatRun(c["format"], c["study"], float(c["bits_per_weight"]),
                                                     float(c["score_tokens_per_s"]), c.get("source", "rtn")))
    out = []
    for st in sorted(by_study):
        runs = sorted(by_study[st], key=lambda r: -r.bits_per_weight)
        sweep = Sweep(runs, {})
        for r in runs:
            records, rungs = store.records(r.study), store.rungs(r.study)
            ok = not records.empty and len(rungs) >= MIN_RUNGS and bool(usable_axes(rungs))
            sweep.analyses[r.format] = Analysis(n_boot=n_boot, seed=seed).fit(
                metrics.compute(records), rungs, records) if ok else None
            if records.empty:
                continue
            # the largest rung by parameters (a backend that knows none: the last one stored)
            params = pd.to_numeric(rungs["params"], errors="coerce")
            top = str(rungs.loc[params.idxmax(), "model"] if params.notna().any() else rungs["model"].iloc[-1])
            sweep.top[r.format] = top
            sweep.top_scores[r.format] = metrics.compute(records[records["model"] == top])
        out.append(sweep)
    return out


def _values(scores: pd.DataFrame, metric: str) -> dict[tuple[str, str], pd.Series]:
    """Per (task, variant): `metric`'s value per example id."""
    m = scores[scores["metric"] == metric]
    return {(str(t), str(v)): g.set_index("example_id")["value"].astype(float)
            for (t, v), g in m.groupby(["task", "variant"], sort=True)}


def survives(sweep: Sweep, metric: str = "exact_match", partner: str = "token_accuracy", n_boot: int = 1000,
             seed: int = 0) -> pd.DataFrame:
    """The "capability survives" table: per format and (task, variant), the largest rung's mean `metric` with its
    95 % bootstrap interval over examples, its paired difference from the reference format (the one with the most
    bits per weight: fp32 when run) with a 95 % paired-bootstrap interval, the continuous `partner` beside it, and
    survives = the mean lies within the reference's interval. Empty when nothing was scored."""
    if not sweep.top_scores:
        return pd.DataFrame()
    ref_fmt = next(r.format for r in sweep.runs if r.format in sweep.top_scores)
    ref = _values(sweep.top_scores[ref_fmt], metric)
    ref_ci = {}
    for key, v in ref.items():
        _, _, reps = bootstrap_means(v.to_numpy()[None, None, :], n_boot, seed)
        ref_ci[key] = np.nanquantile(reps[:, 0, 0], [0.025, 0.975])
    rows = []
    for r in sweep.runs:
        if r.format not in sweep.top_scores:
            continue
        cont = _values(sweep.top_scores[r.format], partner)
        for key, v in _values(sweep.top_scores[r.format], metric).items():
            _, _, reps = bootstrap_means(v.to_numpy()[None, None, :], n_boot, seed)
            lo, hi = np.nanquantile(reps[:, 0, 0], [0.025, 0.975])
            base, d = ref.get(key), None
            if base is not None and len(both := v.index.intersection(base.index)):
                # a generator per row: a row's interval does not depend on which other formats were run
                d = paired_bootstrap(base[both].to_numpy(), v[both].to_numpy(), np.random.default_rng(seed), n_boot)
            rows.append({"format": r.format, "bits/weight": round(r.bits_per_weight, 3), "task": key[0],
                         "variant": key[1], "largest rung": sweep.top[r.format], metric: float(v.mean()),
                         "lo": float(lo), "hi": float(hi),
                         f"Δ vs {ref_fmt}": d.delta if d else np.nan, "Δ lo": d.lo if d else np.nan,
                         "Δ hi": d.hi if d else np.nan,
                         partner: float(cont[key].mean()) if key in cont else np.nan,
                         "survives": bool(key in ref_ci and ref_ci[key][0] <= v.mean() <= ref_ci[key][1])})
    return pd.DataFrame(rows)


def verdicts(sweep: Sweep) -> pd.DataFrame:
    """One row per (format, task, variant, discontinuous metric): the verdict, and the change D of the metric and
    of its continuous partner across the ladder (metric unit, 95 % interval)."""
    rows = []
    for r in sweep.runs:
        a = sweep.analyses[r.format]
        if a is None:
            continue
        for t in a.table_.itertuples(index=False):
            d = t._asdict()
            rows.append({"format": r.format, "bits/weight": r.bits_per_weight, "task": d["task"],
                         "variant": d["variant"], "metric": d["metric"], "verdict": d["verdict"],
                         "change D": d["change"], "D lo": d["change_lo"], "D hi": d["change_hi"],
                         "partner": d["partner"] if isinstance(d["partner"], str) else "–",
                         "partner change": d["partner_change"]})
    return pd.DataFrame(rows)


def sections(store: Store, study: str | None) -> list[Section]:
    """Per sweep: one sentence per format on whether the largest rung keeps its exact match, the survives table,
    the verdicts per format (when the ladder has ≥ 3 rungs) and the scoring speed."""
    out = []
    for sweep in fit(store, study):
        surv = survives(sweep)
        ver = verdicts(sweep)
        ref = sweep.runs[0].format
        summary = [f"Quantization · {r.task} ({r.variant}) at {r.format}: the largest rung's exact match "
                   f"{r.exact_match:.3f} [{r.lo:.3f}, {r.hi:.3f}] "
                   f"{'stays within' if r.survives else 'falls outside'} {ref}'s interval "
                   f"(token accuracy {r.token_accuracy:.3f})." for r in surv.itertuples(index=False)
                   if r.format != ref]
        speed = pd.DataFrame([{"format": r.format, "source": r.source, "bits/weight": r.bits_per_weight,
                               "score tokens/s": r.score_tokens_per_s} for r in sweep.runs])
        speed[f"× {ref}"] = speed["score tokens/s"] / float(speed["score tokens/s"].iloc[0])
        tables = [Table(surv.round(4), "Capability survives: per weight format, the largest rung's exact match "
                        "(fraction) with its 95 % bootstrap interval over examples, its paired difference from the "
                        f"format with the most bits ({ref}; fraction, 95 % paired-bootstrap interval), token "
                        f"accuracy (fraction) beside it; survives = the mean lies within {ref}'s interval.",
                        key="quant-survives"),
                  Table(ver.round(4), "Verdict per weight format, task and discontinuous metric; change D: mean of "
                        "the larger half of the ladder minus the smaller half (metric unit, 95 % interval), for the "
                        "metric and its continuous partner.", key="quant-verdicts"),
                  Table(speed.round(3), "Scoring speed per format: target tokens scored per second of wall time "
                        "over every rung (RTN weights are dequantized to fp32, so this measures no integer kernel; a "
                        "GGUF level is dequantized at load too); bits/weight counts one fp16 scale per group (RTN) "
                        "or every byte of the file's tensors (GGUF).", key="quant-speed")]
        paragraphs = ["Each rung's Linear and Embedding weights are rounded per group to the format's levels "
                      "(round-to-nearest, symmetric unless -asym; the group size is the number after g: int4-g64 "
                      "rounds groups of 64 consecutive input weights, each with its own scale) and dequantized back "
                      "to fp32 for the forward pass; LayerNorm gains stay in fp32. A gguf-… format is a supplied "
                      "GGUF file evaluated as it is."]
        if all(a is None for a in sweep.analyses.values()):
            paragraphs.append(f"No verdicts: a verdict needs a ladder of at least {MIN_RUNGS} rungs with a scale "
                              "axis; this sweep has fewer, so only the survives table applies.")
        out.append(Section(title="Quantization sweep", summary=summary, tables=tables, paragraphs=paragraphs))
    return out
