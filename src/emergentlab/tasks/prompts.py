"""Few-shot prompts: n demonstrations drawn with a seed from the task's shot pool, never the test item."""

from __future__ import annotations

import random

from emergentlab.tasks.base import Example, Task


def build_prompt(task: Task, example: Example, shots: int, seed: int = 0) -> str:
    """Task prefix, `shots` solved demonstrations, then the test item up to where its answer starts.

    Demonstrations are drawn per example (seeded by `seed` and the example id) so the same study gives the same
    prompts, and an item whose input equals the test item's is never used as its own demonstration.
    """
    if shots < 0:
        raise ValueError(f"shots must be >= 0, got {shots}")
    pool = [d for d in task.shots_pool if d.id != example.id and d.input != example.input]
    if shots > len(pool):
        raise ValueError(f"task {task.name!r}: asked for {shots} shots but the pool holds {len(pool)}")
    demos = random.Random(f"{seed}:{task.name}:{example.id}").sample(pool, shots)
    parts = [task.prefix] if task.prefix else []
    parts += [task.format(d) + d.target for d in demos]
    parts.append(task.format(example))
    return task.separator.join(parts)


def variant_name(shots: int) -> str:
    return f"{shots}shot"
