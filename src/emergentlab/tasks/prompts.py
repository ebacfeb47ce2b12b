"""Few-shot prompts: n demonstrations drawn with a seed from the task's shot pool, never the test item."""

from __future__ import annotations

from emergentlab.tasks.base import Example, Task


def build_prompt(task: Task, example: Example, shots: int, seed: int = 0) -> str:
    """The prompt for `example` with `shots` solved demonstrations, by the task's rule (`Task.prompt`)."""
    return task.prompt(example, shots, seed)


def variant_name(shots: int) -> str:
    return f"{shots}shot"
