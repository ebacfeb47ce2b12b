"""Chain-of-thought variants of the arithmetic tasks: worked digit-by-digit addition traces with carries.

A trace works the columns from the right, each as "x+y+c=s" (digit of a, digit of b, carry in, column sum), then
states the answer after the marker: 457+68 → "7+8+0=15;5+6+1=12;4+0+1=5 answer 525". It is one line, so the
task's "\\n" stop still ends a generation. `cot_task` keeps the test items (their targets stay the bare answer) and
turns the demonstrations into traces; the answer is read by `answers.answer_regex(MARKER)`.
"""

from __future__ import annotations

from dataclasses import replace

from emergentlab.tasks.answers import answer_regex
from emergentlab.tasks.base import Example, Task

MARKER = "answer"


def addition_trace(a: int, b: int) -> str:
    """The worked addition of non-negative `a` and `b`, column by column from the right, with carries."""
    if a < 0 or b < 0:
        raise ValueError(f"traces are for non-negative addends, got {a} and {b}")
    da, db = str(a)[::-1], str(b)[::-1]
    steps, carry = [], 0
    for k in range(max(len(da), len(db))):
        x, y = int(da[k]) if k < len(da) else 0, int(db[k]) if k < len(db) else 0
        s = x + y + carry
        steps.append(f"{x}+{y}+{carry}={s}")
        carry = s // 10
    return f"{';'.join(steps)} {MARKER} {a + b}"


def _traced(ex: Example) -> Example:
    return replace(ex, target=addition_trace(ex.metadata["a"], ex.metadata["b"]))


def cot_task(task: Task) -> Task:
    """`task` (an addition task of `tasks.synthetic`) with trace demonstrations and the answer read after MARKER.

    The test items are unchanged, so a CoT record and a direct one pair up by example id; generation gets room for
    a whole trace (about 10 characters a column)."""
    if task.metadata.get("generator", "")[:3] != "add" or task.kind == "multiple_choice":
        raise ValueError(f"chain-of-thought traces exist for generative addition tasks, not {task.name!r}")
    longest = max(len(addition_trace(e.metadata["a"], e.metadata["b"])) for e in task.examples)
    return replace(task, shots_pool=tuple(_traced(d) for d in task.shots_pool), output_regex=answer_regex(MARKER),
                   max_new_tokens=longest + 4)
