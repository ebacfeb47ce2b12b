"""Runs a `Study`: every model × task × example × prompt variant → `Record`s → the store.

Two steps. `prepare` checks everything that can be checked without a store or a model — every task built, every
prompt of every variant, every tiny checkpoint's config and tensor shapes — and fingerprints each cell (model ×
task × variant) by what determines its records, so a bad study fails before anything is written. `run_study`
refuses a store whose records were made under other settings (naming what changed), then works cell by cell:
it claims a cell in the store (a second run on the same store takes the other cells, then waits for the first),
skips what the store holds, and writes each batch in one transaction, so a killed run resumes where it stopped.
A rung that cannot do a task (its context is shorter than the task needs) is skipped for that task with the
reason stored and returned, while the other rungs run.

Where the models run is the `Executor`'s business and nothing else: `run_study` keeps the cell loop, the claims and
the store (the one writer), and hands each cell's examples to the executor in shards; `LocalExecutor` evaluates
them in this process, `RayExecutor` on the workers of a Ray cluster (`emergentlab[ray]`), which return plain
`Record`s for this process to write. Both evaluate the same batches, so they store the same records.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Generator, Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from emergentlab.errors import UserError
from emergentlab.models import Backend, load_backend
from emergentlab.models.openai import redact_spec
from emergentlab.records import Record, ScaleFacts
from emergentlab.store import Store, input_hash
from emergentlab.study import Rung, Study, TaskSpec, build_tasks
from emergentlab.tasks import Example, Task, build_prompt, variant_name

# (description, done, total): called after every batch so a caller can draw a progress bar
Progress = Callable[[str, int, int], None]

# How often a run waiting for cells another run holds looks again (seconds).
POLL_S = 0.5


@dataclass(frozen=True)
class Skip:
    """A (model, task, variant) cell the run did not evaluate, and why."""

    model: str
    task: str
    variant: str
    reason: str


@dataclass(frozen=True)
class RunSummary:
    written: int  # records added by this run
    skipped: int  # records already in the store (a resumed run, or written by another run at the same time)
    total: int  # records the study asks for (cells skipped for a reason included)
    skips: tuple[Skip, ...] = ()  # cells not evaluated, with the reason
    truncated: int = 0  # records written whose prompt lost tokens to fit the model's context


@dataclass(frozen=True)
class Cell:
    """One model × task × variant of a prepared study: its prompts, and the fingerprint of its settings."""

    rung: Rung
    task: Task
    shots: int
    prompts: tuple[str, ...]  # one per example of `task`
    hashes: tuple[int, ...]  # `store.input_hash` of each example's prompt, target and choices
    parts: dict[str, Any]
    fingerprint: str

    @property
    def variant(self) -> str:
        return variant_name(self.shots)


@dataclass(frozen=True)
class Plan:
    """A validated study, ready to run: its cells, rung by rung."""

    study: Study
    cells: tuple[Cell, ...]
    total: int = field(default=0)


def evaluate(backend: Backend, task: Task, examples: Sequence[Example], shots: int, study: str, model: str,
             seed: int, prompts: Sequence[str] | None = None) -> list[Record]:
    """Records for `examples` under `shots`-shot prompts: greedy generation and target log-probs (per token for
    `target`; the total of each of `targets` when an example has several), or per-choice log-probs for
    multiple-choice tasks (the correct choice's tokens then fill the `target_*` fields).

    `truncated_tokens` is filled where the backend can tell how many prompt tokens its context forced it to drop
    (the most over the scored continuations and the generation)."""
    if prompts is None:
        prompts = [build_prompt(task, ex, shots, seed) for ex in examples]
    variant = variant_name(shots)
    dropped = getattr(backend, "dropped_tokens", None)

    def cut(prompt: str, keeps: Sequence[int]) -> int | None:
        return max(dropped(prompt, k) for k in keeps) if dropped is not None else None

    base: list[dict[str, Any]] = [
        dict(study=study, model=model, task=task.name, example_id=ex.id, variant=variant, kind=task.kind, prompt=p,
             target=ex.target, targets=ex.targets, stop_string=task.stop_string, output_regex=task.output_regex,
             metrics=task.metrics, metadata={**ex.metadata, "shots": shots})
        for ex, p in zip(examples, prompts, strict=True)
    ]
    # choices are scored for multiple-choice tasks, and for generative ones whose examples carry them (BIG-bench
    # tasks that declare both kinds of metric)
    flat_p = [p for p, ex in zip(prompts, examples, strict=True) for _ in ex.choices or ()]
    scores = iter(backend.score(flat_p, [c for ex in examples for c in ex.choices or ()]) if flat_p else [])
    per = [[next(scores) for _ in ex.choices or ()] for ex in examples]
    choice: list[dict[str, Any]] = [
        dict(choices=ex.choices, correct=ex.correct, choice_logprobs=tuple(s.total for s in sc),
             choice_ntokens=tuple(len(s.logprobs) for s in sc), choice_scores=ex.choice_scores) if ex.choices else {}
        for ex, sc in zip(examples, per, strict=True)
    ]
    if task.kind == "multiple_choice":
        out = []
        for b, c, ex, sc, p in zip(base, choice, examples, per, prompts, strict=True):
            right = sc[ex.correct if ex.correct is not None else 0]
            out.append(Record(**b, **c, target_tokens=right.tokens, target_logprobs=right.logprobs,
                              target_greedy=right.greedy, truncated_tokens=cut(p, [len(s.logprobs) for s in sc])))
        return out
    # every accepted answer is scored (each distinct string once per example): `target` fills the per-token fields,
    # and an example with several targets keeps each one's total, which the metrics combine by BIG-bench's rule
    answers = [list(dict.fromkeys((ex.target, *ex.targets))) for ex in examples]
    flat = iter(backend.score([p for p, a in zip(prompts, answers, strict=True) for _ in a],
                              [t for a in answers for t in a]))
    scored = [dict(zip(a, (next(flat) for _ in a), strict=True)) for a in answers]
    gens = backend.generate(prompts, task.max_new_tokens, task.stop)
    return [Record(**b, **c, generation=g.text, generation_tokens=g.tokens, target_tokens=sc[ex.target].tokens,
                   target_logprobs=sc[ex.target].logprobs, target_greedy=sc[ex.target].greedy,
                   targets_loglikelihood=tuple(sc[t].total for t in ex.targets) if len(ex.targets) > 1 else (),
                   truncated_tokens=cut(p, [*(len(s.logprobs) for s in sc.values()), task.max_new_tokens]))
            for b, c, ex, sc, g, p in zip(base, choice, examples, scored, gens, prompts, strict=True)]


# --- prepare: everything checked before a store is opened or a model loaded ----------------------------------

def _digest(paths: Sequence[Path]) -> str:
    """SHA-256 of the files' bytes, in order (hex, 16 digits: enough to tell versions apart)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def model_parts(spec: str) -> dict[str, Any]:
    """What identifies a model's weights: the hash of its files where they are local (so a moved checkpoint is
    the same model and a retrained one is not), else the spec itself (a hub id with its revision, a server, with
    any secret in its URL redacted: these parts are stored)."""
    kind, _, rest = spec.partition(":")
    path = Path(rest).expanduser()
    if kind in ("tiny", "gguf", "hf") and path.exists():
        files = sorted(p for p in path.iterdir() if p.suffix in (".json", ".safetensors", ".gguf", ".model")
                       or p.name.startswith("tokenizer")) if path.is_dir() else [path]
        return {"backend": kind, "weights": _digest([p for p in files if p.is_file()])}
    return {"backend": kind, "ref": redact_spec(spec).partition(":")[2]}


def _data_parts(spec: TaskSpec) -> dict[str, Any]:
    if spec.source == "generator":
        return {"generator": spec.ref, "params": spec.params, "choices": spec.choices}
    path = Path(spec.ref)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {spec.source: _digest(files)}


def _fingerprint(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _check_rung(rung: Rung, src: str, where: str) -> None:
    """A tiny checkpoint's config and tensor shapes, read without loading it, so a bad rung fails before the
    first rung runs."""
    kind, _, rest = rung.spec.partition(":")
    if kind == "tiny":
        from emergentlab.models.tiny import check_checkpoint

        try:
            check_checkpoint(Path(rest))
        except UserError as e:
            raise UserError(str(e), source=src, field=f"{where}.model") from None


def prepare(study: Study) -> Plan:
    """Validate `study` completely and fingerprint its cells; nothing is written and no model is loaded.

    Raises UserError naming the study file and the field (`tasks[1].shots`, `ladder[1].model`, ...)."""
    src = study.source
    for i, rung in enumerate(study.ladder):
        _check_rung(rung, src, f"ladder[{i}]")
    models = {r.name: {**model_parts(r.spec), "trust_remote_code": r.trust_remote_code, "precision": r.precision,
                        "quant": r.quant}
              for r in study.ladder}
    built: list[tuple[dict[str, Any], Task, int, tuple[str, ...]]] = []
    for i, spec in enumerate(study.tasks):
        data = _data_parts(spec)
        for task in build_tasks(spec, study.seed, src, f"tasks[{i}]"):
            for j, shots in enumerate(spec.shots):
                try:
                    prompts = tuple(build_prompt(task, ex, shots, study.seed) for ex in task)
                except ValueError as e:
                    raise UserError(str(e), source=src, field=f"tasks[{i}].shots[{j}]") from None
                built.append((data, task, shots, prompts))
    cells = []
    for rung in study.ladder:
        for data, task, shots, prompts in built:
            parts = {
                "model": models[rung.name], "task": data, "kind": task.kind, "seed": study.seed, "shots": shots,
                "format": {"prefix": task.prefix, "input_prefix": task.input_prefix,
                           "output_prefix": task.output_prefix, "separator": task.separator},
                "decoding": {"max_new_tokens": task.max_new_tokens, "stop": list(task.stop), "sampling": "greedy"},
            }
            hashes = tuple(input_hash(p, ex.target, ex.choices) for p, ex in zip(prompts, task, strict=True))
            cells.append(Cell(rung, task, shots, prompts, hashes, parts, _fingerprint(parts)))
    return Plan(study, tuple(cells), total=sum(len(c.task) for c in cells))


# --- run ---------------------------------------------------------------------------------------------------

def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def describe_change(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """What differs between two cells' settings, e.g. `seed 7 → 8, model.weights 3fa2… → 9bc1…`."""
    if old is None:
        return "settings unknown (records stored by an import or an older run)"
    a, b = _flat(old), _flat(new)

    def short(v: Any) -> str:
        t = json.dumps(v, default=str)
        return t if len(t) <= 24 else t[:23] + "…"

    diffs = [f"{k} {short(a.get(k))} → {short(b.get(k))}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return ", ".join(diffs) or "the records' inputs (prompt format or task data)"


def check_store(plan: Plan, store: Store) -> None:
    """Refuse a store that holds records of this study made under other settings, naming the first cell and what
    changed; then fix this plan's fingerprints in the store. Nothing is written when it refuses."""
    study = plan.study
    for cell in plan.cells:
        state = store.cell_state(study.name, cell.rung.name, cell.task.name, cell.variant)
        if state is None or not state.has_records:
            continue
        changed = None
        if state.fingerprint != cell.fingerprint:
            changed = describe_change(state.parts, cell.parts)
        else:
            stored = store.done(study.name, cell.rung.name, cell.task.name, cell.variant)
            new = dict(zip((ex.id for ex in cell.task), cell.hashes, strict=True))
            bad = next((i for i, h in stored.items() if i in new and new[i] != h), None)
            if bad is not None:
                changed = f"the prompt, target or choices of example {bad!r}"
        if changed:
            raise UserError(f"{store.path} holds records of {cell.rung.name} × {cell.task.name} · {cell.variant} "
                            f"made under other settings ({changed}); run the changed study under a new `name` "
                            "or `out`", source=study.source, field="out")
    for cell in plan.cells:
        store.bind(study.name, cell.rung.name, cell.task.name, cell.variant, cell.fingerprint, cell.parts)


def _cannot(backend: Backend, cell: Cell) -> str | None:
    """Why this backend cannot do this cell (a continuation or the generation does not fit its context)."""
    ctx = getattr(backend, "context_length", None)
    if ctx is None:
        return None
    task = cell.task
    if task.kind != "multiple_choice" and task.max_new_tokens >= ctx:
        return f"max_new_tokens {task.max_new_tokens} needs more than the model's {ctx}-token context"
    count = getattr(backend, "dropped_tokens", None)
    longest = max((len(c) for ex in task for c in (ex.choices or (ex.target, *ex.targets))), default=0)
    if count is not None and count("", longest) > 0:
        return f"a {longest}-character answer does not fit the model's {ctx}-token context"
    return None


# --- executors: where a rung's backend lives and a cell's examples are evaluated --------------------------------

Shard = Sequence[tuple[Example, str]]  # examples of one cell with their prompts, in the cell's order


class Executor(Protocol):
    """Where `run_study` has its models run. It loads a rung (before any of the rung's cells), says whether the
    rung can do a cell, and turns a cell's shards into records, one list per batch of the study's `batch_size`,
    in shard order; `run_study` writes each list as it comes, so an interrupted run keeps what was yielded."""

    shard_size: int | None  # examples per shard, a multiple of the study's batch_size; None: one batch a shard

    def load(self, rung: Rung) -> ScaleFacts: ...

    def cannot(self, cell: Cell) -> str | None: ...

    def map(self, cell: Cell, shards: Sequence[Shard], study: Study) -> Generator[list[Record], None, None]: ...


class LocalExecutor:
    """Everything in this process, one rung's backend at a time. A `RayExecutor` worker is one of these too."""

    shard_size: int | None = None

    def __init__(self) -> None:
        self.backend: Backend | None = None

    def load(self, rung: Rung) -> ScaleFacts:
        self.backend = None  # the last rung's model goes before the next one loads
        self.backend = load_backend(rung.spec, rung.name, trust_remote_code=rung.trust_remote_code,
                                    precision=rung.precision, server=rung.server, quant=rung.quant)
        return self.backend.facts()

    def _loaded(self) -> Backend:
        if self.backend is None:
            raise RuntimeError("load the cell's rung first")
        return self.backend

    def cannot(self, cell: Cell) -> str | None:
        return _cannot(self._loaded(), cell)

    def records(self, cell: Cell, shard: Shard, study: str, seed: int, batch_size: int) -> list[list[Record]]:
        """The shard's records, one list per batch of `batch_size` examples: the batches a one-batch-per-shard
        run evaluates, so any shard size gives the same numbers."""
        return [evaluate(self._loaded(), cell.task, [ex for ex, _ in b], cell.shots, study, cell.rung.name, seed,
                         [p for _, p in b])
                for b in (shard[i : i + batch_size] for i in range(0, len(shard), batch_size))]

    def map(self, cell: Cell, shards: Sequence[Shard], study: Study) -> Generator[list[Record], None, None]:
        for shard in shards:
            yield from self.records(cell, shard, study.name, study.seed, study.batch_size)


def run_study(study: Study | Plan, store: Store, progress: Progress | None = None,
              executor: Executor | None = None) -> RunSummary:
    """Evaluate every rung on every task and variant, writing records batch by batch; skip what is stored.

    Takes a `Study` (prepared here) or a `Plan` from `prepare`. A rung with nothing left to do is not even
    loaded, so resuming a finished study costs only store look-ups. Cells another live run holds are left to it
    and waited for at the end, so two runs on one store split the work and both return the whole result.
    `executor` says where the models run (default: `LocalExecutor`, this process); the records are the same.
    """
    plan = study if isinstance(study, Plan) else prepare(study)
    s = plan.study
    exe = executor if executor is not None else LocalExecutor()
    size = exe.shard_size or s.batch_size
    if size % s.batch_size:  # a shard is whole batches, so its numbers are those of a local run
        raise UserError(f"{size} is not a multiple of the study's batch_size {s.batch_size}", field="--shard-size")
    check_store(plan, store)
    known = set(store.rungs(s.name).model)
    written = truncated = done = 0
    skips: dict[tuple[str, str, str], Skip] = {}
    pending = list(plan.cells)
    while pending:
        waiting: list[Cell] = []
        for rung in s.ladder:
            loaded = False
            for cell in [c for c in pending if c.rung is rung]:
                key = (s.name, rung.name, cell.task.name, cell.variant)
                state = store.cell_state(*key)
                if state is not None and state.status == "skipped":
                    skips[key[1:]] = Skip(*key[1:], state.reason or "")
                    done += len(cell.task)
                    continue
                stored = store.done_ids(*key)
                todo = [(ex, p) for ex, p in zip(cell.task, cell.prompts, strict=True) if ex.id not in stored]
                if not todo and rung.name in known:
                    done += len(cell.task)
                    continue
                if not store.claim(*key):
                    waiting.append(cell)
                    continue
                try:
                    stored = store.done_ids(*key)  # another run may have finished it while we looked
                    todo = [(ex, p) for ex, p in todo if ex.id not in stored]
                    done += len(cell.task) - len(todo)
                    if not loaded:
                        facts = exe.load(rung)
                        store.put_rung(s.name, rung.name, redact_spec(rung.spec), facts.merged(rung.facts))
                        known.add(rung.name)
                        loaded = True
                    reason = exe.cannot(cell)
                    if reason is not None:
                        store.release(*key, status="skipped", reason=reason)
                        skips[key[1:]] = Skip(*key[1:], reason)
                        done += len(todo)
                        continue
                    batches = exe.map(cell, [todo[i : i + size] for i in range(0, len(todo), size)], s)
                    with closing(batches):  # on an error, shards still queued elsewhere are dropped now
                        for recs in batches:
                            added = store.put_records(recs)
                            written += added
                            truncated += sum(1 for r in recs if r.truncated_tokens) if added else 0
                            done += len(recs)
                            if progress:
                                progress(f"{rung.name} · {cell.task.name} · {cell.variant}", done, plan.total)
                    store.release(*key)
                except BaseException:  # an error or Ctrl-C: free the cell now rather than after CLAIM_TIMEOUT_S
                    store.release(*key, status="open")
                    raise
        if waiting and len(waiting) == len(pending):
            time.sleep(POLL_S)  # every cell left is another run's: wait for it to finish or die
        pending = waiting
    return RunSummary(written=written, skipped=plan.total - written - sum(
        len(c.task) for c in plan.cells if (c.rung.name, c.task.name, c.variant) in skips), total=plan.total,
        skips=tuple(skips[k] for k in sorted(skips)), truncated=truncated)


# --- Ray: the same executor, on the workers of a cluster ------------------------------------------------------

# A local instance's object store (MB): shards and records are a few kB each, and Ray's default (30% of RAM)
# would crowd a small machine.
RAY_OBJECT_STORE_MB = 200
# Backends whose model runs inside the worker, so a worker of theirs takes a GPU where the cluster has one
# (an openai rung's model runs on its server).
WEIGHT_KINDS = ("tiny", "hf", "gguf")


def import_ray() -> Any:
    """The `ray` module, imported only when a Ray run is asked for; UserError when it is not installed."""
    try:
        import ray
    except ImportError:
        raise UserError("Ray is not installed: pip install 'emergentlab[ray]'", field="--executor") from None
    return ray


# Per Ray worker process: the executor of the last rung it evaluated, so that a rung loads once per worker process
# and not once per shard. The key names one `RayExecutor.load` call, so each run's rungs load afresh (a retrained
# checkpoint is never served stale). Only Ray's worker processes fill it.
_WORKER: dict[str, LocalExecutor] = {}


def _worker(rung: Rung, key: str) -> LocalExecutor:
    if key not in _WORKER:
        _WORKER.clear()  # the last rung's model goes before the next one loads
        ex = LocalExecutor()
        ex.load(rung)
        _WORKER[key] = ex
    return _WORKER[key]


def _ray_facts(rung: Rung, key: str) -> ScaleFacts:
    return _worker(rung, key)._loaded().facts()


def _ray_cannot(rung: Rung, key: str, cell: Cell) -> str | None:
    return _worker(rung, key).cannot(cell)


def _ray_records(rung: Rung, key: str, cell: Cell, shard: Shard, study: str, seed: int,
                 batch_size: int) -> list[list[Record]]:
    return _worker(rung, key).records(cell, shard, study, seed, batch_size)


class RayExecutor:
    """A Ray task per shard: Ray places each on a free worker of the cluster (1 CPU, and 1 GPU for a rung whose
    model runs in the worker — tiny, hf, gguf — when the cluster has GPUs), the worker process loads the rung once
    and keeps it for the rung's later shards, and the plain `Record`s come back in shard order for `run_study`
    (this process, the store's only writer) to write. Tasks rather than a pool of actors: a busy or autoscaling
    cluster gets the shards as it frees or adds workers, and nothing holds a CPU between cells
    (benchmarks/results/ray.md measures both).

    `address` (else RAY_ADDRESS) attaches to a running cluster, e.g. `ray://head:10001`; without one a local
    instance with `num_cpus` CPUs (default: all) starts here and stops on `close`. A Ray already started in this
    process is used as it is and left running.
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None,
                 shard_size: int | None = None) -> None:
        self.ray = import_ray()
        self.shard_size = shard_size
        self.owned = not self.ray.is_initialized()
        if self.owned:
            address = address or os.environ.get("RAY_ADDRESS")
            if address:
                try:
                    self.ray.init(address=address)
                except (ConnectionError, SystemExit) as e:  # Ray exits when no cluster answers there
                    raise UserError(f"no Ray cluster answers at {address!r} ({e})", field="--ray-address") from None
            else:
                # Ray runs its workers at nice 15, for a node's driver to stay responsive; here the workers do
                # all the evaluating and this process only writes, so they take the CPU as a local run would
                self.ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
                              object_store_memory=RAY_OBJECT_STORE_MB << 20, _system_config={"worker_niceness": 0})
        self.fns = [self.ray.remote(f) for f in (_ray_facts, _ray_cannot, _ray_records)]
        self.rung: Rung | None = None
        self.key = ""
        self.shape: dict[str, float] = {}

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the local Ray instance if this executor started it."""
        if self.owned and self.ray.is_initialized():
            self.ray.shutdown()

    def _get(self, refs: Any) -> Any:
        """`ray.get`, with a worker's UserError (a checkpoint missing on that node) raised again here as one."""
        try:
            return self.ray.get(refs)
        except self.ray.exceptions.RayTaskError as e:
            if isinstance(e.cause, UserError):
                raise UserError(str(e.cause)) from None
            raise

    def _on(self) -> tuple[Rung, str]:
        if self.rung is None:
            raise RuntimeError("load the cell's rung first")
        return self.rung, self.key

    def load(self, rung: Rung) -> ScaleFacts:
        gpu = bool(self.ray.cluster_resources().get("GPU")) and rung.spec.partition(":")[0] in WEIGHT_KINDS
        self.shape = {"num_cpus": 1.0, "num_gpus": 1.0 if gpu else 0.0}
        self.rung, self.key = rung, f"{rung.name}:{uuid.uuid4().hex}"
        facts: ScaleFacts = self._get(self.fns[0].options(**self.shape).remote(*self._on()))
        return facts

    def cannot(self, cell: Cell) -> str | None:
        reason: str | None = self._get(self.fns[1].options(**self.shape).remote(*self._on(), cell))
        return reason

    def map(self, cell: Cell, shards: Sequence[Shard], study: Study) -> Generator[list[Record], None, None]:
        # the workers need only the task's settings: its examples travel in the shards
        slim = self.ray.put(replace(cell, task=replace(cell.task, examples=(), shots_pool=()), prompts=(),
                                    hashes=()))
        refs = [self.fns[2].options(**self.shape).remote(*self._on(), slim, list(shard), study.name, study.seed,
                                                         study.batch_size)
                for shard in shards]
        try:
            for ref in refs:
                yield from self._get(ref)
        except BaseException:  # an error, Ctrl-C or a caller that stops reading: drop the shards not yet run
            for ref in refs:
                self.ray.cancel(ref)
            raise
