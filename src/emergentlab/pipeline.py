"""The use cases the CLI offers, as library calls: run a study, build a report, analyze published scores, train a
ladder, the demo, import lm-eval logs, the training-dynamics experiments.

Each opens the store once, takes a `Progress` callback, and returns typed results (tables as DataFrames, paths)
for the caller to show; nothing here prints. Process-wide settings (torch threads) are made here, at the top.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from emergentlab import metrics
from emergentlab.analysis.analyze import Analysis
from emergentlab.analysis.policy import PolicyCheck
from emergentlab.analysis.scores_csv import MIN_RUNGS, read_scores_csv, scores_to_sets
from emergentlab.analysis.select import Selection
from emergentlab.errors import UserError
from emergentlab.experiments import experiment_sections, upgrade, variants
from emergentlab.experiments import study as study_exp
from emergentlab.experiments.capability import selection_summary as selection_summary  # for the CLI
from emergentlab.records import Progress, no_progress
from emergentlab.report.html import write_report
from emergentlab.report.text import write_csv
from emergentlab.runner import Executor, RayExecutor, RunSummary, prepare
from emergentlab.sections import Section
from emergentlab.store import Store
from emergentlab.study import PRECISIONS, Study, check_writable, load_saved_study, load_study, parse_study

STORE_NAME = "records.sqlite"


@dataclass
class StudyRun:
    """What `run_study` did: the study, records written/skipped, and each metric's mean per rung."""

    study: Study
    summary: RunSummary
    means: pd.DataFrame  # index (task, variant, metric), one column per rung in ladder order; metric units
    csv: Path


@dataclass
class Report:
    """A built report: its path, the verdict table (text cells, one row per headline verdict) and the CSVs."""

    path: Path
    verdicts: pd.DataFrame
    csvs: list[Path] = field(default_factory=list)
    means: pd.DataFrame | None = None  # as `StudyRun.means`, read off the analysis' curves (no second scoring)


def _open_run(out: Path | str) -> Store:
    """The store of the run folder `out`, the folder made first."""
    Path(out).mkdir(parents=True, exist_ok=True)
    return Store(Path(out) / STORE_NAME)


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def rung_means(scores: pd.DataFrame, rungs: pd.DataFrame) -> pd.DataFrame:
    """Mean of each (task, variant, metric) per model, one column per rung, ordered by parameters then tokens."""
    order = list(rungs.sort_values(["params", "tokens"], na_position="last").model)
    means = scores.groupby(["task", "variant", "metric", "model"], sort=False).value.mean().unstack("model")
    return means[[m for m in order if m in means.columns]]


def execute(study: Study, progress: Progress = no_progress,
            executor: Callable[[], AbstractContextManager[Executor | None]] = nullcontext) -> StudyRun:
    """Evaluate `study` into its store (resuming what is there), then each metric's mean per rung → means.csv; a
    `[finetune]` table also runs that experiment on the study's rungs (records under ``{name}@finetune``).

    `executor` opens where the models run (default: this process), once the study has passed every check."""
    plan = prepare(study)  # every check that needs no store, before anything is written
    ft_cfg = _finetune_config(study.finetune, study.source, "finetune") if study.finetune is not None else None
    check_writable(study)
    with executor() as exe, Store(study.store_path) as store:
        summary = study_exp.run(plan, store, progress, exe)
        if ft_cfg is not None:
            from emergentlab.experiments import finetune as ft
            from emergentlab.experiments.base import torch_threads

            with torch_threads(ft.THREADS):
                ft.run(ft_cfg, store, _stage(progress, "finetune"), study.name, study.ladder,
                       f"{study.name}@{ft.NAME}")
        means = rung_means(metrics.compute(store.records(study.name), study.metrics), store.rungs(study.name))
    csv = study.out / "means.csv"
    write_csv(means.reset_index(), csv)
    return StudyRun(study, summary, means, csv)


def _curve_means(a: Analysis) -> pd.DataFrame:
    """`rung_means` read off a fitted analysis: the primary axis' curves, rungs in ladder order."""
    c = a.curves_[a.curves_["axis"] == a.axis_]
    order = list(a.sets_[a.axis_].rungs["model"])
    wide = c.pivot_table(index=["task", "variant", "metric"], columns="model", values="mean", sort=False)
    return wide[[m for m in order if m in wide.columns]]


def _load(study_file: Path, precision: str | None) -> Study:
    study = load_study(study_file)
    if precision is None:
        return study
    if precision not in PRECISIONS:
        raise UserError(f"must be one of {', '.join(PRECISIONS)}, got {precision!r}", field="--precision")
    return replace(study, ladder=tuple(replace(r, precision=precision) for r in study.ladder))


EXECUTORS = ("local", "ray")


def run_study(study_file: Path, progress: Progress = no_progress, precision: str | None = None,
              executor: str = "local", ray_address: str | None = None, shard_size: int | None = None) -> StudyRun:
    """`emergentlab run`: load and check the whole study file first, then evaluate it (every rung at `precision`
    when given, overriding the study file), here or on a Ray cluster (`ray_address`, else RAY_ADDRESS, else a
    local Ray) in shards of `shard_size` examples."""
    if executor not in EXECUTORS:
        raise UserError(f"must be one of {', '.join(EXECUTORS)}, got {executor!r}", field="--executor")
    if executor != "ray" and (ray_address or shard_size):
        raise UserError("needs --executor ray", field="--ray-address" if ray_address else "--shard-size")
    study = _load(study_file, precision)
    if executor == "local":
        return execute(study, progress)
    return execute(study, progress, lambda: RayExecutor(ray_address, shard_size=shard_size))


CHARS_PER_TOKEN = 4.0  # a BPE tokenizer's usual rate on English and digits; tiny models read one character a token


def dry_run(study_file: Path, precision: str | None = None) -> pd.DataFrame:
    """`emergentlab run --dry-run`: per rung, what the study asks (items to score, prompt tokens) and the scoring
    cost `models.cost.estimate_cost` predicts (seconds, peak RSS in MB), without loading any model but tiny ones.

    Parameters come from the rung's `params` (and `non_embedding_params`) facts, or a tiny checkpoint; a rung with
    neither gets no estimate.
    Multiple choice scores each option; generation (greedy decoding for exact match) comes on top."""
    from emergentlab.models import load_backend
    from emergentlab.models.cost import estimate_cost

    plan = prepare(_load(study_file, precision))
    rows = []
    for rung in plan.study.ladder:
        tiny = rung.spec.startswith("tiny:")
        params, non_emb = rung.facts.get("params"), rung.facts.get("non_embedding_params")
        if tiny and not (params and non_emb):  # a tiny checkpoint says what the rung does not
            facts = load_backend(rung.spec, rung.name).facts()
            params, non_emb = params or facts.params, non_emb or facts.non_embedding_params
        per_char = 1.0 if tiny else 1.0 / CHARS_PER_TOKEN
        tokens = [round(len(prompt) * per_char) for c in plan.cells if c.rung is rung
                  for prompt, ex in zip(c.prompts, c.task, strict=True) for _ in (ex.choices or [ex.target])]
        est = estimate_cost(tokens, params, non_embedding_params=non_emb) if params else None
        rows.append({"rung": rung.name, "params": params, "items scored": len(tokens),
                     "mean prompt tokens": sum(tokens) / max(len(tokens), 1),
                     "scoring s (est.)": est.seconds if est else None,
                     "peak MB (est.)": est.peak_rss_mb if est else None})
    return pd.DataFrame(rows)


def _write_tables(a: Analysis, out_dir: Path) -> tuple[pd.DataFrame, list[Path]]:
    vt = study_exp.verdict_table(a)
    files = {"verdict_table.csv": vt, "verdicts.csv": a.table_, "verdict_pairs.csv": a.verdicts_.pairs_,
             "curves.csv": a.curves_}
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, df in files.items():
        write_csv(df, out_dir / name)
    return vt, [out_dir / n for n in files]


def _rule() -> str:
    from emergentlab.analysis import verdict

    return (verdict.__doc__ or "").strip()


def _run_folder(run_dir: Path) -> tuple[Path, Study | None]:
    """A run folder's store path (UserError without one) and the study saved beside it (None: imported records)."""
    store_path = run_dir / STORE_NAME
    if not store_path.is_file():
        raise UserError(f"no {STORE_NAME} here: not a run folder", source=str(run_dir))
    return store_path, load_saved_study(run_dir)


def build_report(run_dir: Path, seed: int = 0, extra: Sequence[Section] = (), threshold: float = 0.5,
                 at: float | None = None) -> Report:
    """`emergentlab report`: verdicts, forecasts, figures and report.html from a run folder's store alone;
    `threshold` is the metric value whose crossing is forecast, `at` a primary-axis value to predict at."""
    run_dir = Path(run_dir)
    store_path, saved = _run_folder(run_dir)
    name = saved.name if saved is not None else None
    with Store(store_path) as store:
        dynamics = experiment_sections(store, name)
        has_records = store.count() > 0
        # an experiment's records on fewer rungs than a curve needs (one or two bursty sizes) leave it its sections
        curves = has_records and len(store.rungs(name)) >= MIN_RUNGS
        fitted = (study_exp.fit(store, name, seed, str(store_path), threshold, at,
                                saved.strata if saved is not None else None)
                  if curves or not dynamics else None)
        skips = store.skips(name)
    sections = [*dynamics, *extra]
    if fitted is None:
        path = write_report(run_dir, f"emergentlab report — {run_dir.name}",
                            f"training dynamics; built {_stamp()} from {store_path}", sections)
        return Report(path, pd.DataFrame())
    a, records = fitted
    vt, csvs = _write_tables(a, run_dir)
    rungs = a.sets_[a.axis_].rungs
    subtitle = (f"{len(rungs)} rungs × {records['task'].nunique()} task(s), {len(records)} records, primary axis "
                f"{a.axis_}; built {_stamp()} from {store_path}")
    compared = variants.sections(saved.compares, records, rungs, a.axis_, seed) if saved is not None else []
    path = write_report(run_dir, f"emergentlab report — {records['study'].iat[0]}", subtitle,
                        [*study_exp.sections(a, records, skips), *compared, *sections], appendix=_rule())
    return Report(path, vt, csvs, _curve_means(a))


def analyze_csv(csv_path: Path, out_dir: Path, seed: int = 0, threshold: float = 0.5,
                at: float | None = None) -> Report:
    """`emergentlab analyze`: verdicts, forecasts and the report from a table of published scores (`threshold`,
    `at`: as in `build_report`)."""
    df = read_scores_csv(Path(csv_path))
    a = Analysis(seed=seed, threshold=threshold, at=at).fit_sets(scores_to_sets(df, seed=seed, source=str(csv_path)))
    out_dir = Path(out_dir)
    vt, csvs = _write_tables(a, out_dir)
    cs = a.sets_[a.axis_]
    path = write_report(out_dir, f"emergentlab — {Path(csv_path).name}",
                        f"published scores: {len(cs.rungs)} models, {cs.keys['task'].nunique()} task(s); primary "
                        f"axis {a.axis_}; built {_stamp()}", study_exp.sections(a), appendix=_rule())
    return Report(path, vt, csvs)


def train_ladder(ladder_file: Path, out: Path, progress: Progress = no_progress) -> pd.DataFrame:
    """`emergentlab train`: every rung of a ladder file trained into `out` (rungs already trained are kept). One row
    per rung: name, params, non_embedding_params, tokens, flops, val_loss (nats/token), wall_s (s), skipped."""
    from emergentlab.train import load_ladder_spec, train_ladder

    rungs = train_ladder(load_ladder_spec(ladder_file), Path(out), _train_progress(progress))
    return pd.DataFrame(rungs)[["name", "params", "non_embedding_params", "tokens", "flops", "val_loss", "wall_s",
                                "skipped"]]


def _train_progress(progress: Progress) -> Callable[[str, int, int, dict[str, float]], None]:
    """The training loop's per-step callback as a `Progress`: one stage per rung."""
    def update(rung: str, step: int, total: int, info: dict[str, float]) -> None:
        progress(f"training {rung}", step, total)

    return update


@dataclass
class Demo:
    run: StudyRun
    report: Report


def demo_study(ladder_dir: Path, out: Path, n: int, seed: int) -> Study:
    """The demo's study: every rung found in `ladder_dir`, evaluated on the test split of the tasks it was trained on
    (zero- and two-shot), plus the same task as 4-way multiple choice."""
    from emergentlab.train import checkpoint_dirs, load_ladder_spec

    spec = load_ladder_spec(ladder_dir / "ladder.toml")
    rungs = checkpoint_dirs(ladder_dir)
    if not rungs:
        raise UserError("no trained rungs here (run with --retrain)", source=str(ladder_dir))
    tasks = [{"generator": t, "n": n, "shots": [0, 2]} for t in spec.tasks]
    tasks += [{"generator": t, "name": f"{t}_mc", "n": n, "choices": 4, "shots": [0]} for t in spec.tasks]
    data = {"name": "demo", "seed": seed, "out": str(out),
            "ladder": [{"name": p.name, "model": f"tiny:{p}"} for p in rungs], "tasks": tasks}
    return parse_study(data, "<demo>", Path.cwd())


def demo(out: Path, retrain: bool = False, n: int = 200, seed: int = 0, progress: Progress = no_progress) -> Demo:
    """`emergentlab demo`: the shipped tiny ladder (or one retrained into OUT/checkpoints) → records → report."""
    from emergentlab.train import DEMO_LADDER_DIR, demo_ladder_spec, train_ladder

    ladder_dir = DEMO_LADDER_DIR
    if retrain:
        ladder_dir = Path(out) / "checkpoints"
        ladder_dir.mkdir(parents=True, exist_ok=True)
        (ladder_dir / "ladder.toml").write_text((DEMO_LADDER_DIR / "ladder.toml").read_text())
        train_ladder(demo_ladder_spec(), ladder_dir, _train_progress(progress))
    study = demo_study(ladder_dir, Path(out), n, seed)
    check_writable(study)
    with Store(study.store_path) as store:
        summary = study_exp.run(prepare(study), store, progress)
    report = build_report(Path(out), seed)  # scores every record once, for the means and the verdicts alike
    means = report.means if report.means is not None else pd.DataFrame()
    csv = study.out / "means.csv"
    write_csv(means.reset_index(), csv)
    return Demo(StudyRun(study, summary, means, csv), report)


@dataclass
class Imported:
    files: int
    written: int
    skipped: int
    store: Path


def import_lmeval(samples: Sequence[Path], out: Path, study: str, model: str | None,
                  facts: dict[str, float]) -> Imported:
    """`emergentlab import-lmeval`: lm-eval `--log_samples` files as records in OUT/records.sqlite."""
    from emergentlab.importers import read_lmeval, write_lmeval

    samples_read = read_lmeval(samples, study=study, model=model, facts=facts or None)  # all checked first
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write the run folder: {e.strerror}", source=str(out), field="--out") from None
    with Store(out / STORE_NAME) as store:
        s = write_lmeval(samples_read, store)
    return Imported(s.files, s.written, s.skipped, out / STORE_NAME)


# --- training dynamics: grokking and induction heads ------------------------------------------------------------
@dataclass
class Dynamics:
    """Runs of a training-dynamics experiment: one summary row per run (steps, nats), and the rebuilt report."""

    table: pd.DataFrame
    report: Report


def _stage(progress: Progress, name: str) -> Progress:
    """The experiment's progress under a stable stage name (its own descriptions change every step)."""
    return lambda _d, n, t: progress(name, n, t)


def numbers(text: str, kind: type[float] | type[int], option: str) -> tuple[Any, ...]:
    """'0,0.3,1' → (0.0, 0.3, 1.0); anything unparsable is a user error naming the option."""
    try:
        return tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserError(f"expected comma-separated {kind.__name__}s, got {text!r}", field=option) from None


def grok(base: dict[str, Any], sweep_wd: str, sweep_frac: str, out: Path,
         progress: Progress = no_progress) -> Dynamics:
    """`emergentlab grok`: a ∘ b mod p (`base`: `GrokConfig` fields) for every weight decay and train fraction in
    the comma-separated sweeps (none: the base's), into OUT, then the report."""
    from emergentlab.experiments import grokking
    from emergentlab.experiments.base import torch_threads

    try:
        cfg = grokking.GrokConfig(**base)
        configs = grokking.sweep_configs(cfg, numbers(sweep_wd, float, "--sweep-wd") or (cfg.weight_decay,),
                                         numbers(sweep_frac, float, "--sweep-frac") or (cfg.train_frac,))
    except (ValueError, TypeError) as e:
        raise UserError(str(e), source="emergentlab grok") from None
    with _open_run(out) as store, torch_threads(grokking.THREADS):
        results = [grokking.run(c, store, _stage(progress, c.run_name), study="grok") for c in configs]
    return Dynamics(grokking.sweep_table(results), build_report(Path(out)))


def _ladder_experiment(exp: Any, make: Callable[[], Any], out: Path, progress: Progress) -> Report:
    """Build an experiment's config (a bad field is a UserError), run it into OUT/records.sqlite, build the report."""
    try:
        cfg = make()
    except (ValueError, TypeError) as e:
        raise UserError(str(e), source=f"emergentlab {exp.NAME}") from None
    from emergentlab.experiments.base import torch_threads

    with _open_run(out) as store, torch_threads(exp.THREADS):
        exp.run(cfg, store, progress)
    return build_report(Path(out), cfg.seed)


def cot(config: dict[str, Any], out: Path, progress: Progress = no_progress) -> Report:
    """`emergentlab cot`: addition items direct vs with worked traces at every rung of a tiny ladder (`config`:
    `CotConfig` fields; with no ladder, the trace-mixture ladder is trained into OUT/ladder first and a rerun
    resumes it), into OUT, then the report (its CoT section: paired differences and the sign flip)."""
    from emergentlab.experiments import cot as cot_exp

    cache = {"cache": str(Path(out) / "ladder")}
    return _ladder_experiment(cot_exp, lambda: cot_exp.CotConfig(**{**cache, **config}), out, progress)


def tokenization(config: dict[str, Any], out: Path, progress: Progress = no_progress) -> Dynamics:
    """`emergentlab tokenization`: the arithmetic ladder trained under each condition (`config`: `TokConfig`
    fields: digit-level vs chunked numbers, with vs without a scratchpad) into OUT/ladders (a rerun resumes),
    evaluated, then the report (curves side by side, each condition against the first). The table has one row per
    condition: its threshold shift (log10 non-embedding params) with the paired-bootstrap interval, and the flip."""
    from dataclasses import asdict

    from emergentlab.experiments import tokenization as tok_exp
    from emergentlab.experiments.base import torch_threads

    conds = {"conditions": tuple(config["conditions"])} if "conditions" in config else {}
    try:
        cfg = tok_exp.TokConfig(**{"cache": str(Path(out) / "ladders"), **config, **conds})
    except (ValueError, TypeError) as e:
        raise UserError(str(e), source="emergentlab tokenization") from None
    with _open_run(out) as store, torch_threads(tok_exp.THREADS):
        tok_exp.run(cfg, store, progress)
        table = tok_exp.shift_table(store, tok_exp.NAME, asdict(cfg))
    return Dynamics(table, build_report(Path(out), cfg.seed))


def icl(config: dict[str, Any], out: Path, progress: Progress = no_progress) -> Report:
    """`emergentlab icl`: zero- vs n-shot at every rung of a tiny ladder (`config`: `IclConfig` fields), into OUT,
    then the report (its ICL sections: the gain table and each n's shift and sign flip)."""
    from emergentlab.experiments import icl as icl_exp

    shots = {"shots": tuple(config["shots"])} if "shots" in config else {}
    return _ladder_experiment(icl_exp, lambda: icl_exp.IclConfig(**{**config, **shots}), out, progress)


def passuntil(config: dict[str, Any], out: Path, progress: Progress = no_progress) -> Dynamics:
    """`emergentlab passuntil`: items sampled until their first pass at every rung (`config`: `PassUntilConfig`
    fields; a tiny ladder, the demo's by default, or backend specs in `models`), into OUT, then the report. The
    table is the pass rate per rung (counts; rates as probabilities, with their intervals)."""
    from emergentlab.experiments import passuntil as pu

    models = {"models": tuple(config["models"])} if "models" in config else {}
    report = _ladder_experiment(pu, lambda: pu.PassUntilConfig(**{**config, **models}), out, progress)
    with Store(Path(out) / STORE_NAME) as store:
        secs = pu.sections(store, pu.NAME)
    return Dynamics(secs[0].tables[0].frame if secs else pd.DataFrame(), report)


def _finetune_config(fields: dict[str, Any], source: str, field: str) -> Any:
    """`FinetuneConfig` from plain fields (ks as a list); a bad value is a UserError naming `source` and `field`."""
    from emergentlab.experiments import finetune as ft

    try:
        return ft.FinetuneConfig(**{**fields, **({"ks": tuple(fields["ks"])} if "ks" in fields else {})})
    except (ValueError, TypeError) as e:
        raise UserError(str(e), source=source, field=field) from None


def finetune(config: dict[str, Any], out: Path, progress: Progress = no_progress) -> Dynamics:
    """`emergentlab finetune`: predict emergence by fine-tuning (`config`: `FinetuneConfig` fields; the ladder is
    trained into OUT/ladder unless one is given), then the report. The table is each run's backtest: predicted and
    actual un-finetuned emergence points (axis unit), the interval, the error (nats or decades) and the verdicts."""
    from emergentlab.experiments import finetune as ft
    from emergentlab.experiments.base import torch_threads

    cfg = _finetune_config({"ladder": str(Path(out) / "ladder"), **config}, "emergentlab finetune", "options")
    with _open_run(out) as store:
        with torch_threads(ft.THREADS):
            ft.run(cfg, store, _stage(progress, "finetune"))
        table = ft.backtest_table(ft.fit(store, ft.NAME))
    return Dynamics(table, build_report(Path(out), cfg.seed))


def induction(layers: str, steps: int, seed: int, out: Path, progress: Progress = no_progress) -> Dynamics:
    """`emergentlab induction`: one attention-only model per layer count, into OUT, then the report. The table has
    per run the phase-change, ICL-score-drop and loss-drop steps, the final ICL score (nats) and validation loss
    (nats/token), and the head with the highest prefix-matching score."""
    from emergentlab.experiments import induction as ind
    from emergentlab.experiments.base import torch_threads

    counts = numbers(layers, int, "--layers")
    if not counts:
        raise UserError("no layer counts given", field="--layers")
    try:
        configs = [ind.InductionConfig(n_layer=n, steps=steps, seed=seed) for n in counts]
    except ValueError as e:
        raise UserError(str(e), source="emergentlab induction") from None
    with _open_run(out) as store, torch_threads(ind.THREADS):
        results = [ind.run(c, store, _stage(progress, c.run_name), study="induction") for c in configs]
    rows = []
    for r in results:
        last, top = r.history.iloc[-1], ind.head_table(r.history).iloc[0]
        rows.append({"run": r.config.run_name, **{k: j.step if j else None for k, j in (
            ("phase_change_step", r.phase_change), ("icl_drop_step", r.icl_drop), ("loss_drop_step", r.loss_drop))},
            "final_icl_score": float(last["icl_score"]), "val_loss": float(last["val_loss"]),
            "top_head": top["head"], "prefix_matching": top["prefix_matching"], "copying": top.get("copying")})
    return Dynamics(pd.DataFrame(rows), build_report(Path(out)))


def bursty(sizes: str, train: dict[str, Any], out: Path, progress: Progress = no_progress) -> Dynamics:
    """`emergentlab bursty`: a tiny GPT of each size ("LAYERSxWIDTH,…"; empty: the defaults) trained on bursty
    sequences (`train`: `BurstyConfig` fields), into OUT, then the report. The table has one row per size: whether
    and at which step in-context learning appeared (with its interval), final accuracies, induction events."""
    from emergentlab.experiments import bursty as exp
    from emergentlab.experiments.base import stored_runs, torch_threads
    from emergentlab.train.bursty import BurstyConfig

    pairs: list[tuple[int, int]] = []
    for part in (p for p in sizes.split(",") if p.strip()):
        layers, _, width = part.lower().partition("x")
        if not (layers.strip().isdigit() and width.strip().isdigit()):
            raise UserError(f"expected comma-separated LAYERSxWIDTH, got {sizes!r}", field="--sizes")
        pairs.append((int(layers), int(width)))
    try:
        run_cfg = BurstyConfig(**train)
        cfg = (exp.BurstyExperimentConfig(sizes=tuple(pairs), train=run_cfg) if pairs
               else exp.BurstyExperimentConfig(train=run_cfg))
    except (ValueError, TypeError) as e:
        raise UserError(str(e), source="emergentlab bursty") from None
    with _open_run(out) as store, torch_threads(exp.THREADS):
        exp.run(cfg, store, _stage(progress, exp.NAME), study=exp.NAME)
        table = exp.onset_table([exp.onset(r, cfg.n_boot) for r in stored_runs(store, exp.NAME, exp.NAME)])
    return Dynamics(table, build_report(Path(out), cfg.seed))


def quantize(out: Path, ladder: Path | None = None, task: str = "add3", n: int = 100, formats: str = "",
             seed: int = 0, progress: Progress = no_progress, models: Sequence[str] = (),
             levels: Sequence[str] = (), shots: int = 0) -> Dynamics:
    """`emergentlab quantize`: every rung of a tiny ladder (the demo's by default) or of `models` (backend specs) at
    each weight format of the comma-separated `formats` (none: fp32, bf16, int8-g64, int4-g64, int2-g64; "none":
    only the supplied `levels`, GGUF files), into OUT, then its report. The table is the capability-survives table
    (largest rung's exact match per format, fraction)."""
    from emergentlab.experiments import quantization as q

    names = tuple(f.strip() for f in formats.split(",") if f.strip())
    names = () if names == ("none",) else names or q.FORMATS
    try:
        for f in names:
            q.parse_quant(f)
    except ValueError as e:
        raise UserError(str(e), field="--formats") from None
    try:
        q.gguf_levels(levels)
    except ValueError as e:
        raise UserError(str(e), field="--level") from None
    try:
        cfg = q.Config(task=task, n=n, seed=seed, formats=names, models=tuple(models), levels=tuple(levels),
                       shots=shots, **({"ladder": str(ladder)} if ladder is not None else {}))
    except ValueError as e:
        raise UserError(str(e), source=None if models else str(ladder or ""), field="--model" if models
                        else "--ladder") from None
    with _open_run(out) as store:
        q.run(cfg, store, _stage(progress, "quantize"))
        sections = q.sections(store, q.NAME)
        table = q.survives(q.fit(store, q.NAME)[0])
    path = write_report(Path(out), f"emergentlab report — {Path(out).name}",
                        f"quantization sweep; built {_stamp()}", sections)
    return Dynamics(table, Report(path, pd.DataFrame()))


def sae_diff(out: Path, small: str, large: str, ladder: Path | None = None, task: str = "add3", n: int = 300,
             seed: int = 0, progress: Progress = no_progress) -> Dynamics:
    """`emergentlab sae`: SAE model diffing of rungs `small` and `large` of a tiny ladder (the demo's by default),
    into OUT, then its report. The table lists the larger rung's unmatched features (frequency: share of tokens;
    correlations −1…1) with their top tokens."""
    from emergentlab.experiments import sae
    from emergentlab.experiments.base import torch_threads

    cfg = sae.Config(small=small, large=large, task=task, n=n, seed=seed)
    cfg = replace(cfg, ladder=str(ladder)) if ladder is not None else cfg
    for fld, rung in (("small", small), ("large", large)):
        if not (Path(cfg.ladder) / rung / "config.json").is_file():
            raise UserError(f"no tiny checkpoint {rung!r} in the ladder folder", source=cfg.ladder, field=f"--{fld}")
    with _open_run(out) as store, torch_threads(sae.THREADS):
        rec = sae.run(cfg, store, _stage(progress, "sae"))
        sections = sae.sections(store, sae.NAME)
    table = pd.DataFrame([{k: v for k, v in f.items() if k != "examples"} for f in rec["features"]])
    path = write_report(Path(out), f"emergentlab report — {Path(out).name}", f"SAE model diffing; built {_stamp()}",
                        sections)
    return Dynamics(table, Report(path, pd.DataFrame()))


# === production use (issue 16): the upgrade gate, capability thresholds, model selection, the catalog ============
CATALOG = Path(__file__).parent / "data" / "catalog" / "emergent_capabilities.csv"
CHECK_EXIT = {0: 0, 1: 3, 2: 4}
"""`emergentlab check` exit status per `analysis.policy.Level`: 0 no line crossed, 3 a warning line, 4 a critical one
(1 and 2 stay failure and user error)."""


@dataclass
class Compared:
    """What `compare` did: the comparison (tests, items, gate), records written, and the files beside the report."""

    comparison: upgrade.Comparison
    verdict: str  # one sentence: does the gate pass, and why
    summary: RunSummary
    report: Path
    json: Path
    junit: Path
    csvs: list[Path]


def compare(old: str, new: str, suite: str = "starter", out: Path = Path("runs/compare"), alpha: float = 0.05,
            correction: str = "holm", seed: int = 0, progress: Progress = no_progress) -> Compared:
    """`emergentlab compare`: both models on the suite's items → paired tests → report.html, compare.json,
    junit.xml, tests.csv and items.csv in OUT."""
    from emergentlab.report.terminal import to_json

    cfg = upgrade.UpgradeConfig(old, new, suite, Path(out), alpha, correction, seed=seed)
    upgrade.make_study(cfg)  # every input checked before a folder is made or a model loaded
    try:
        cfg.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write the output folder: {e.strerror}", source=str(out), field="--out") from None
    with Store(cfg.out / STORE_NAME) as store:
        summary = upgrade.run(cfg, store, progress)
        c = upgrade.compare(store, cfg)
    csvs = [cfg.out / "tests.csv", cfg.out / "items.csv"]
    write_csv(c.tests, csvs[0])
    write_csv(c.items, csvs[1])
    js, junit, verdict = cfg.out / "compare.json", cfg.out / "junit.xml", upgrade.verdict(c)
    js.write_text(to_json({"gate": "failed" if c.failed else "passed", "verdict": verdict, "old": old,
                           "new": new, "suite": suite, "alpha": alpha, "correction": correction, "tests": c.tests,
                           "new_capabilities": c.new_capabilities, "regressed_items": c.regressed_items}) + "\n",
                  encoding="utf-8")
    junit.write_text(upgrade.junit_xml(c), encoding="utf-8")
    report = write_report(cfg.out, f"emergentlab compare — {Path(new).name} against {Path(old).name}",
                          f"suite {suite}; built {_stamp()}", upgrade.sections(c))
    return Compared(c, verdict, summary, report, js, junit, csvs)


@dataclass
class PolicyResult:
    check: PolicyCheck
    exit_code: int
    report: Path
    csvs: list[Path]


def check_policy(policy_file: Path, run_dir: Path, seed: int = 0) -> PolicyResult:
    """`emergentlab check`: a policy's warning/critical lines against a run's rungs, with forecasts of the next
    crossing; the report is rebuilt with the policy section, and the tables written as policy_*.csv."""
    from emergentlab.analysis.policy import check as check_lines
    from emergentlab.analysis.policy import load_policy
    from emergentlab.experiments.capability import curve_set, level_names, policy_sections

    policy = load_policy(policy_file)
    run_dir = Path(run_dir)
    store_path, saved = _run_folder(run_dir)
    with Store(store_path) as store:
        cs = curve_set(store, saved.name if saved else None, sorted({t.metric for t in policy.thresholds}),
                       policy.axis, seed=seed, source=str(store_path))
    res = check_lines(policy, cs, seed=seed)
    sections = policy_sections(res)
    csvs = [run_dir / "policy_rungs.csv", run_dir / "policy_forecasts.csv"]
    write_csv(level_names(res.rungs), csvs[0])
    write_csv(res.forecasts, csvs[1])
    rep = build_report(run_dir, seed, extra=sections)
    return PolicyResult(res, CHECK_EXIT[int(res.level)], rep.path, csvs)


def _prices(path: Path | None) -> dict[str, float] | None:
    """The price list (CSV with columns model, price; any one unit) as {rung: price}."""
    if path is None:
        return None
    try:
        df = pd.read_csv(path, comment="#", skipinitialspace=True)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise UserError(f"not a readable CSV ({str(e).splitlines()[0]})", source=str(path), field="--prices") from None
    if not {"model", "price"} <= set(df.columns):
        raise UserError("needs columns model and price", source=str(path), field="--prices")
    return {str(m): float(p) for m, p in zip(df["model"], df["price"], strict=True)}


def select_model(run_dir: Path, task: str, metric: str, bar: float, cost: str = "params",
                 variant: str | None = None, confidence: float = 0.95, prices: Path | None = None,
                 seed: int = 0) -> Selection:
    """`emergentlab select`: the cheapest rung of a run whose metric clears the bar at `confidence`, or the
    forecast scale at which one would."""
    from emergentlab.analysis.select import select
    from emergentlab.experiments.capability import curve_set

    if metric not in metrics.METRICS:
        raise UserError(f"unknown metric {metric!r}; known: {', '.join(metrics.METRICS)}", field="--metric")
    run_dir = Path(run_dir)
    store_path, saved = _run_folder(run_dir)
    with Store(store_path) as store:
        cs = curve_set(store, saved.name if saved else None, [metric], "params", seed=seed, source=str(store_path))
    return select(cs, task, metric, bar, cost, variant, confidence, _prices(prices), seed=seed)


def catalog() -> pd.DataFrame:
    """The documented emergent capabilities (Wei et al. 2022, Table 1) with checked accuracies; see its README."""
    return pd.read_csv(CATALOG, dtype={"before_accuracy": float, "after_accuracy": float})
