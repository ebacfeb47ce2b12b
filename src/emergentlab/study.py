"""The study file (TOML) → a validated, typed `Study`. Every error names the file and the field.

    name = "addition"              # optional, defaults to the file's stem
    seed = 0
    out = "runs/addition"          # relative to the study file
    shots = [0, 3]                 # prompt variants for every task (n-shot), default [0]
    metrics = ["exact_match", "token_accuracy"]   # optional; default: every metric that applies
    strata = "digits"              # optional: example metadata key whose values get verdicts of their own

    [[ladder]]                     # one entry per model, smallest first or not: the analysis sorts by scale
                                   # (or `checkpoints = "runs/train/step-*"`: one rung per tiny checkpoint folder)
    name = "tiny-s"
    model = "tiny:checkpoints/s"   # backend spec (see emergentlab.models.load_backend)
    params = 1.2e6                 # optional scale facts overriding what the backend reports:
                                   # params, non_embedding_params, tokens, flops, loss, step
    timeout_s = 60                 # openai: rungs only: seconds per try of a request, prompts per request,
    max_batch = 16                 # and requests in flight at once
    concurrency = 4

    [[tasks]]
    generator = "add3"             # or: bigbench = "path/to/task.json", jsonl = "path/to/items.jsonl"
    n = 200                        # examples (generators; loaders take the first n)
    choices = 0                    # generators only: > 1 makes it multiple choice
    shots = [0, 3]                 # optional per-task override

    [[compare]]                    # optional: threshold shift and sign flip of variant a vs b (analysis.shift)
    a = "3shot"                    # variant names: "<n>shot" for each of the task's shots
    b = "0shot"
    task = "add3"
    metric = "exact_match"
    level = 0.5                    # optional: the emergence level, in the metric's unit (default: mid-range)

    [finetune]                     # optional: predict emergence by fine-tuning (experiments.finetune) on this ladder
    task = "add2"                  # a generator [[tasks]] entry (its train split gives the fine-tuning examples)
    ks = [0, 32, 128, 512]         # further fields: those of experiments.finetune.FinetuneConfig
"""

from __future__ import annotations

import glob as globlib
import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from emergentlab.errors import UserError, read_toml
from emergentlab.metrics import METRICS
from emergentlab.models.openai import ServerOptions, parse_openai_spec, redact_spec
from emergentlab.models.quant import parse_quant
from emergentlab.records import FACT_FIELDS
from emergentlab.tasks import TASKS, Task, make_task, variant_name

PRECISIONS = ("fp32", "bf16")  # what a rung may run in (hf and gguf backends; tiny runs fp32)
_STUDY_KEYS = {"name", "seed", "out", "shots", "metrics", "ladder", "tasks", "batch_size", "strata", "compare",
               "finetune"}
_FINETUNE_KEYS = {"task", "ks", "steps", "lr", "batch_size", "block_size", "holdout", "n", "shots", "axis", "metric",
                  "d0", "alpha", "n_boot", "confidence", "tolerance"}
_COMPARE_KEYS = {"a", "b", "task", "metric", "level"}
_SERVER_KEYS = ("timeout_s", "max_batch", "concurrency")
# tokens_per_step: training tokens per optimizer step, so a checkpoint ladder's tokens follow from its step (Pythia:
# 1024 sequences × 2048 tokens = 2,097,152); declared per rung rather than guessed from a model's name
_RUNG_KEYS = {"name", "model", "checkpoints", "trust_remote_code", "precision", "quant", "tokens_per_step",
              *FACT_FIELDS, *_SERVER_KEYS}
_TASK_KEYS = {"generator", "bigbench", "jsonl", "name", "n", "choices", "shots", "params"}
_SOURCES = ("generator", "bigbench", "jsonl")


@dataclass(frozen=True)
class Rung:
    name: str
    spec: str
    facts: dict[str, float] = field(default_factory=dict)
    trust_remote_code: bool = False  # only an explicit `trust_remote_code = true` in the study file turns it on
    precision: str = "fp32"  # the dtype an hf model runs in: "fp32" or "bf16" (emergentlab.models.hf.PRECISIONS)
    server: ServerOptions = field(default_factory=ServerOptions)  # openai: rungs only
    quant: str = "fp32"  # weight format, e.g. "int4-g64" (emergentlab.models.quant; tiny, hf and gguf rungs)


@dataclass(frozen=True)
class TaskSpec:
    """Where a task comes from: `source` is generator / bigbench / jsonl, `ref` the generator name or file."""

    source: str
    ref: str
    name: str
    n: int
    shots: tuple[int, ...]
    choices: int = 0
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CompareSpec:
    """Two prompt variants of one task, compared on one metric; `level` (metric unit) None: mid-range."""

    a: str
    b: str
    task: str
    metric: str
    level: float | None = None


@dataclass(frozen=True)
class Study:
    name: str
    seed: int
    out: Path
    ladder: tuple[Rung, ...]
    tasks: tuple[TaskSpec, ...]
    metrics: tuple[str, ...] | None = None
    batch_size: int = 64
    source: str = "<study>"
    strata: str | None = None  # example metadata key (e.g. "digits") whose values split verdicts by difficulty
    compares: tuple[CompareSpec, ...] = ()
    # the [finetune] table: FinetuneConfig fields (names checked here, values when the experiment's config is built),
    # its `task` resolved to the generator the named [[tasks]] entry draws from
    finetune: dict[str, Any] | None = None

    @property
    def store_path(self) -> Path:
        return self.out / "records.sqlite"


def _int(v: Any, src: str, fld: str, lo: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise UserError(f"must be an integer >= {lo}, got {v!r}", source=src, field=fld)
    return v


def _shots(v: Any, src: str, fld: str) -> tuple[int, ...]:
    if not isinstance(v, list) or not v:
        raise UserError(f"must be a non-empty list of integers, got {v!r}", source=src, field=fld)
    return tuple(_int(s, src, f"{fld}[{i}]") for i, s in enumerate(v))


def _unknown(d: dict[str, Any], allowed: set[str], src: str, where: str) -> None:
    extra = sorted(set(d) - allowed)
    if extra:
        raise UserError(f"unknown field(s) {', '.join(extra)}; allowed: {', '.join(sorted(allowed))}",
                        source=src, field=where or extra[0])


def _check_spec(spec: str, base: Path, src: str, fld: str) -> str:
    """Resolve relative paths of file-backed specs against the study's folder and check they exist."""
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise UserError(f"model spec {spec!r} must look like KIND:REF (e.g. tiny:PATH, hf:ORG/NAME)",
                        source=src, field=fld)
    if kind in ("tiny", "gguf") or (kind == "hf" and rest.startswith((".", "/"))):
        path = Path(rest) if Path(rest).is_absolute() else base / rest
        if not path.exists():
            raise UserError(f"checkpoint {path} does not exist", source=src, field=fld)
        return f"{kind}:{path}"
    if kind == "openai":
        parse_openai_spec(rest, source=src, field=fld)
    return spec


def _tables(data: dict[str, Any], key: str, allowed: set[str], src: str) -> list[tuple[str, dict[str, Any]]]:
    """The non-empty array of tables `[[key]]`, each checked to be a table with only `allowed` keys."""
    raw = data.get(key)
    if not isinstance(raw, list) or not raw:
        raise UserError(f"needs at least one [[{key}]] entry", source=src, field=key)
    out = []
    for i, t in enumerate(raw):
        where = f"{key}[{i}]"
        if not isinstance(t, dict):
            raise UserError("must be a table", source=src, field=where)
        _unknown(t, allowed, src, where)
        out.append((where, t))
    return out


def _checkpoint_rungs(r: dict[str, Any], base: Path, src: str, where: str) -> list[Rung]:
    """`checkpoints = "runs/train/step-*"`: one tiny-checkpoint rung per matching folder (relative to the study),
    named after the folder, in step order, with the step and tokens its config.json records (a training-step
    ladder in one line); other facts in the entry apply to every rung."""
    pattern, fld = r["checkpoints"], f"{where}.checkpoints"
    if not isinstance(pattern, str) or "model" in r or "name" in r:
        raise UserError("must be a glob of tiny checkpoint folders, without model or name", source=src, field=fld)
    found = []
    for p in sorted(globlib.glob(pattern if Path(pattern).is_absolute() else str(base / pattern))):
        cfg = Path(p) / "config.json"
        if cfg.is_file() and (Path(p) / "model.safetensors").is_file():
            try:
                meta = json.loads(cfg.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
                raise UserError(f"unreadable {cfg}: {e}", source=src, field=fld) from None
            facts = {f: float(meta[f]) for f in ("step", "tokens") if isinstance(meta.get(f), int | float)}
            found.append((facts.get("step", 0.0), Path(p).name,
                          {**facts, **{f: float(r[f]) for f in FACT_FIELDS if f in r}}, f"tiny:{Path(p).resolve()}"))
    if not found:
        raise UserError(f"{pattern!r} matches no checkpoint folder (config.json + model.safetensors)", source=src,
                        field=fld)
    return [Rung(name, spec, facts, bool(r.get("trust_remote_code", False))) for _, name, facts, spec in sorted(found)]


def parse_study(data: dict[str, Any], src: str, base: Path) -> Study:
    """Validate a study given as a dict (as read from TOML); relative paths resolve against `base`."""
    _unknown(data, _STUDY_KEYS, src, "")
    seed = _int(data.get("seed", 0), src, "seed")
    shots = _shots(data.get("shots", [0]), src, "shots")
    metrics = data.get("metrics")
    if metrics is not None:
        if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
            raise UserError("must be a list of metric names", source=src, field="metrics")
        bad = [m for m in metrics if m not in METRICS]
        if bad:
            raise UserError(f"unknown metric {bad[0]!r}; known: {', '.join(METRICS)}", source=src, field="metrics")

    ladder: list[Rung] = []
    for where, r in _tables(data, "ladder", _RUNG_KEYS, src):
        if "checkpoints" in r:
            for rung in _checkpoint_rungs(r, base, src, where):
                if any(x.name == rung.name for x in ladder):
                    raise UserError(f"duplicate rung name {rung.name!r}", source=src, field=f"{where}.checkpoints")
                ladder.append(rung)
            continue
        if not isinstance(r.get("model"), str):
            raise UserError("needs a model spec string", source=src, field=f"{where}.model")
        spec = _check_spec(r["model"], base, src, f"{where}.model")
        facts: dict[str, float] = {}
        for f in (*FACT_FIELDS, "tokens_per_step"):
            if f in r:
                v = r[f]
                if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                    raise UserError(f"must be a finite non-negative number, got {v!r}", source=src,
                                    field=f"{where}.{f}")
                facts[f] = float(r[f])
        if "name" in r and (not isinstance(r["name"], str) or not r["name"].strip()):
            raise UserError(f"must be a non-empty string, got {r['name']!r}", source=src, field=f"{where}.name")
        name = str(r.get("name") or redact_spec(r["model"]).rsplit("/", 1)[-1])
        if any(x.name == name for x in ladder):
            raise UserError(f"duplicate rung name {name!r}", source=src, field=f"{where}.name")
        trust = r.get("trust_remote_code", False)
        if not isinstance(trust, bool):
            raise UserError(f"must be true or false, got {trust!r}", source=src, field=f"{where}.trust_remote_code")
        precision = r.get("precision", "fp32")
        if precision not in PRECISIONS:
            raise UserError(f"must be one of {', '.join(PRECISIONS)}, got {precision!r}", source=src,
                            field=f"{where}.precision")
        quant = r.get("quant", "fp32")
        try:
            parse_quant(quant if isinstance(quant, str) else repr(quant))
        except ValueError as e:
            raise UserError(str(e), source=src, field=f"{where}.quant") from None
        if quant != "fp32" and spec.startswith("openai:"):
            raise UserError("an openai: rung's weights cannot be quantized here", source=src, field=f"{where}.quant")
        limits = {k: r[k] for k in _SERVER_KEYS if k in r}
        if limits and not spec.startswith("openai:"):
            raise UserError(f"only openai: rungs take {', '.join(limits)}", source=src,
                            field=f"{where}.{next(iter(limits))}")
        for k, v in limits.items():
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < math.inf or (
                    k != "timeout_s" and not isinstance(v, int)):
                kind = "a positive number of seconds" if k == "timeout_s" else "a positive integer"
                raise UserError(f"must be {kind}, got {v!r}", source=src, field=f"{where}.{k}")
        ladder.append(Rung(name, spec, facts, trust, precision, ServerOptions(**limits), quant))

    tasks: list[TaskSpec] = []
    for where, t in _tables(data, "tasks", _TASK_KEYS, src):
        given = [s for s in _SOURCES if s in t]
        if len(given) != 1:
            raise UserError(f"needs exactly one of {', '.join(_SOURCES)}", source=src, field=where)
        source = given[0]
        ref = t[source]
        if not isinstance(ref, str):
            raise UserError("must be a string", source=src, field=f"{where}.{source}")
        if source == "generator" and ref not in TASKS:
            raise UserError(f"unknown task {ref!r}; known: {', '.join(sorted(TASKS))}", source=src,
                            field=f"{where}.generator")
        if source != "generator":
            path = Path(ref) if Path(ref).is_absolute() else base / ref
            if not path.exists():
                raise UserError(f"{path} does not exist", source=src, field=f"{where}.{source}")
            ref = str(path)
        params = t.get("params", {})
        if not isinstance(params, dict):
            raise UserError("must be a table", source=src, field=f"{where}.params")
        if "name" in t and (not isinstance(t["name"], str) or not t["name"].strip()):
            raise UserError(f"must be a non-empty string, got {t['name']!r}", source=src, field=f"{where}.name")
        name = str(t.get("name") or (ref if source == "generator" else Path(ref).stem))
        if any(x.name == name for x in tasks):
            raise UserError(f"duplicate task name {name!r}", source=src, field=f"{where}.name")
        tasks.append(TaskSpec(
            source=source, ref=ref, name=name, n=_int(t.get("n", 200), src, f"{where}.n", lo=1),
            shots=_shots(t["shots"], src, f"{where}.shots") if "shots" in t else shots,
            choices=_int(t.get("choices", 0), src, f"{where}.choices"), params=params,
        ))

    for key in ("name", "out"):
        if key in data and (not isinstance(data[key], str) or not data[key].strip()):
            raise UserError(f"must be a non-empty string, got {data[key]!r}", source=src, field=key)
    compares = [_compare(where, c, tasks, src)
                for where, c in (_tables(data, "compare", _COMPARE_KEYS, src) if "compare" in data else [])]
    out = Path(str(data.get("out", "runs/study")))
    return Study(
        name=str(data.get("name") or Path(src).stem), seed=seed, out=out if out.is_absolute() else base / out,
        ladder=tuple(ladder), tasks=tuple(tasks), metrics=tuple(metrics) if metrics is not None else None,
        batch_size=_int(data.get("batch_size", 64), src, "batch_size", lo=1), source=src, strata=_strata(data, src),
        compares=tuple(compares), finetune=_finetune(data["finetune"], tasks, src) if "finetune" in data else None,
    )


def _finetune(t: Any, tasks: list[TaskSpec], src: str) -> dict[str, Any]:
    if not isinstance(t, dict):
        raise UserError("must be a table", source=src, field="finetune")
    _unknown(t, _FINETUNE_KEYS, src, "finetune")
    task = next((x for x in tasks if x.name == t.get("task")), None)
    if task is None or task.source != "generator":
        raise UserError(f"must name a generator [[tasks]] entry (its train split gives the fine-tuning examples): "
                        f"{', '.join(x.name for x in tasks if x.source == 'generator') or 'none'}", source=src,
                        field="finetune.task")
    return {"n": task.n, **t, "task": task.ref}


def _strata(data: dict[str, Any], src: str) -> str | None:
    v = data.get("strata")
    if v is not None and (not isinstance(v, str) or not v):
        raise UserError(f"must be an example metadata key such as \"digits\", got {v!r}", source=src, field="strata")
    return v


def _compare(where: str, c: dict[str, Any], tasks: list[TaskSpec], src: str) -> CompareSpec:
    task = next((t for t in tasks if t.name == c.get("task")), None)
    if task is None:
        raise UserError(f"must name one of the [[tasks]]: {', '.join(t.name for t in tasks)}", source=src,
                        field=f"{where}.task")
    variants = [variant_name(s) for s in task.shots]
    for k in ("a", "b"):
        if c.get(k) not in variants:
            raise UserError(f"must be a variant of {task.name}: {', '.join(variants)}", source=src,
                            field=f"{where}.{k}")
    if c["a"] == c["b"]:
        raise UserError("a and b must differ", source=src, field=f"{where}.b")
    if c.get("metric") not in METRICS:
        raise UserError(f"must be a metric: {', '.join(METRICS)}", source=src, field=f"{where}.metric")
    level = c.get("level")
    if level is not None and (isinstance(level, bool) or not isinstance(level, int | float)
                              or not math.isfinite(level)):
        raise UserError(f"must be a finite number, got {level!r}", source=src, field=f"{where}.level")
    return CompareSpec(c["a"], c["b"], task.name, c["metric"], None if level is None else float(level))


def load_study(path: str | Path) -> Study:
    """Read and validate a study file. Raises UserError naming the file and the field."""
    path = Path(path)
    return parse_study(read_toml(path), str(path), path.parent)


def check_writable(study: Study) -> None:
    """Fail before any model runs if the output folder cannot be written."""
    try:
        study.out.mkdir(parents=True, exist_ok=True)
        probe = study.out / ".write-probe"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UserError(f"output folder is not writable ({e.strerror})", source=study.source, field="out") from None
    if not os.access(study.out, os.W_OK):
        raise UserError("output folder is not writable", source=study.source, field="out")


def build_tasks(spec: TaskSpec, seed: int, src: str = "<study>", where: str | None = None) -> list[Task]:
    """The tasks a spec names: one generated with the study's seed, or those loaded from BIG-bench (a task
    folder with subtasks gives one task each, named `name/subtask`) or JSONL, each cut to the first `n` examples.

    Errors name `src` and `where` (the spec's place in the study, e.g. `tasks[1]`; default: its name); a generator
    that cannot give `n` distinct test items is an error saying how many it has."""
    fld = where or spec.name
    try:
        if spec.source == "generator":
            task = make_task(spec.ref, n=spec.n, seed=seed, choices=spec.choices, **spec.params)
            if len(task) < spec.n:
                raise UserError(f"{spec.ref} has only {len(task)} distinct test items, n = {spec.n} asks for more",
                                source=src, field=f"{fld}.n")
            return [replace(task, name=spec.name)]
        if spec.source == "bigbench":
            from emergentlab.tasks.bigbench import load_bigbench

            loaded = load_bigbench(Path(spec.ref))
        else:
            from emergentlab.tasks.jsonl import load_jsonl

            loaded = [load_jsonl(Path(spec.ref), spec.name)]
    except (KeyError, ValueError, TypeError) as e:
        raise UserError(str(e).strip("'\""), source=src, field=fld) from None
    if len(loaded) == 1:
        return [replace(loaded[0], name=spec.name, examples=loaded[0].examples[: spec.n])]
    return [replace(t, name=f"{spec.name}/{t.name.rsplit(':', 1)[-1]}", examples=t.examples[: spec.n])
            for t in loaded]


STUDY_JSON = "study.json"


def save_study(study: Study) -> Path:
    """The resolved study as `OUT/study.json`, so a run folder reloads into the same `Study` (`load_saved_study`)."""
    d = asdict(study)
    d["out"] = str(study.out)
    for r in d["ladder"]:
        r["spec"] = redact_spec(r["spec"])  # a key in a server URL is never written
    path = study.out / STUDY_JSON
    path.write_text(json.dumps(d, indent=2, default=str), encoding="utf-8")
    return path


def load_saved_study(run_dir: Path) -> Study | None:
    """The `Study` saved in a run folder, None when there is none (a folder of imported or dynamics records)."""
    if not Path(run_dir).is_dir():
        raise UserError("not a run folder (no such folder)", source=str(run_dir))
    path = Path(run_dir) / STUDY_JSON
    if not path.exists():
        return None
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        return Study(**{**d, "out": Path(d["out"]),
                        "ladder": tuple(Rung(**{**r, "server": ServerOptions(**r["server"])}) for r in d["ladder"]),
                        "tasks": tuple(TaskSpec(**{**t, "shots": tuple(t["shots"])}) for t in d["tasks"]),
                        "metrics": tuple(d["metrics"]) if d.get("metrics") is not None else None,
                        "compares": tuple(CompareSpec(**c) for c in d.get("compares", ()))})
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, KeyError, AttributeError) as e:
        raise UserError(f"unreadable: not a study saved by emergentlab ({type(e).__name__}: {str(e)[:80]})",
                        source=str(path)) from None
