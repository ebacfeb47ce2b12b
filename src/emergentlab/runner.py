"""Runs a `Study`: every model × task × example × prompt variant → `Record`s → the store.

What the store already holds is skipped, so a run that was interrupted (even killed) resumes where it stopped;
each batch is written in one transaction, so at most the batch in flight is lost and then redone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from emergentlab.models import Backend, load_backend
from emergentlab.records import Record
from emergentlab.store import Store
from emergentlab.study import Study, build_tasks
from emergentlab.tasks import Example, Task, build_prompt, variant_name

# (description, done, total): called after every batch so a caller can draw a progress bar
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class RunSummary:
    written: int  # records added by this run
    skipped: int  # records already in the store (a resumed run)
    total: int


def evaluate(backend: Backend, task: Task, examples: Sequence[Example], shots: int, study: str, model: str,
             seed: int) -> list[Record]:
    """Records for `examples` under `shots`-shot prompts: greedy generation and target log-probs, or per-choice
    log-probs for multiple-choice tasks (the correct choice's tokens then fill the `target_*` fields)."""
    prompts = [build_prompt(task, ex, shots, seed) for ex in examples]
    variant = variant_name(shots)
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
        for b, c, ex, sc in zip(base, choice, examples, per, strict=True):
            right = sc[ex.correct if ex.correct is not None else 0]
            out.append(Record(**b, **c, target_tokens=right.tokens, target_logprobs=right.logprobs,
                              target_greedy=right.greedy))
        return out
    scored = backend.score(prompts, [ex.target for ex in examples])
    gens = backend.generate(prompts, task.max_new_tokens, task.stop)
    return [Record(**b, **c, generation=g.text, generation_tokens=g.tokens, target_tokens=s.tokens,
                   target_logprobs=s.logprobs, target_greedy=s.greedy)
            for b, c, s, g in zip(base, choice, scored, gens, strict=True)]


def run_study(study: Study, store: Store, progress: Progress | None = None) -> RunSummary:
    """Evaluate every rung on every task and variant, writing records batch by batch; skip what is stored.

    A rung with nothing left to do is not even loaded, so resuming a finished study costs only store look-ups.
    """
    plan = [(t, s) for spec in study.tasks for t in build_tasks(spec, study.seed, study.source) for s in spec.shots]
    total = sum(len(t) for t, _ in plan) * len(study.ladder)
    done = written = 0
    known = set(store.rungs(study.name).model)
    for rung in study.ladder:
        todo = [(t, s, [ex for ex in t if ex.id not in store.done_ids(study.name, rung.name, t.name,
                                                                        variant_name(s))])
                for t, s in plan]
        done += sum(len(t) - len(exs) for t, _, exs in todo)
        if rung.name in known and not any(exs for _, _, exs in todo):
            continue
        backend = load_backend(rung.spec, rung.name, trust_remote_code=rung.trust_remote_code)
        store.put_rung(study.name, rung.name, rung.spec, backend.facts().merged(rung.facts))
        for task, shots, exs in todo:
            for i in range(0, len(exs), study.batch_size):
                batch = exs[i : i + study.batch_size]
                written += store.put_records(evaluate(backend, task, batch, shots, study.name, rung.name,
                                                      study.seed))
                done += len(batch)
                if progress:
                    progress(f"{rung.name} · {task.name} · {variant_name(shots)}", done, total)
    return RunSummary(written=written, skipped=total - written, total=total)
