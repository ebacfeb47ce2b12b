"""JSONL tasks: one item per line, `{"input", "target"}` plus optional `"choices"`, `"correct"` or `"target_scores"`,
`"id"` and `"split"`.

Lines with `"split": "train"` form the few-shot pool; when there are none, demonstrations come from the other
test items (as BIG-bench does), never the item itself. Items with `choices` (a list, with `correct` an index, or
`target_scores` a `{choice: score}` mapping) make the task multiple choice; if every target is a number the
task is `numeric`, otherwise `generative`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from emergentlab.errors import UserError, read_jsonl
from emergentlab.tasks.base import Example, Task

_NUMBER = re.compile(r"\s*[-+]?\d+(?:\.\d+)?\s*")
_KEYS = {"input", "target", "choices", "correct", "target_scores", "id", "split", "metadata"}


def _example(row: Any, where: str, line: int) -> tuple[Example, str]:
    def bad(msg: str, fld: str | None = None) -> UserError:
        return UserError(msg, source=f"{where}:{line}", field=fld)

    if not isinstance(row, dict):
        raise bad(f"expected a JSON object, got {type(row).__name__}")
    unknown = set(row) - _KEYS
    if unknown:
        raise bad(f"unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_KEYS))}")
    if not isinstance(row.get("input"), str):
        raise bad("missing or not a string", "input")
    choices: tuple[str, ...] | None = None
    correct: int | None = None
    scores: tuple[float, ...] | None = None
    if "target_scores" in row:
        ts = row["target_scores"]
        if not isinstance(ts, dict) or not ts or not all(isinstance(v, int | float) for v in ts.values()):
            raise bad("must be a non-empty object mapping each choice to a number", "target_scores")
        choices, scores = tuple(ts), tuple(float(v) for v in ts.values())
        correct = max(range(len(scores)), key=scores.__getitem__)
    elif "choices" in row:
        ch = row["choices"]
        if not isinstance(ch, list) or len(ch) < 2 or not all(isinstance(c, str) for c in ch):
            raise bad("must be a list of at least two strings", "choices")
        choices = tuple(ch)
        if "correct" in row:
            correct = row["correct"]
            if not isinstance(correct, int) or isinstance(correct, bool) or not 0 <= correct < len(choices):
                raise bad(f"must be an index into choices (0..{len(choices) - 1})", "correct")
        elif isinstance(row.get("target"), str) and row["target"] in choices:
            correct = choices.index(row["target"])
        else:
            raise bad("multiple-choice item needs `correct` or a `target` that is one of the choices", "correct")
    target = row.get("target", choices[correct] if choices is not None and correct is not None else None)
    if not isinstance(target, str):
        raise bad("missing or not a string", "target")
    ex_id = row.get("id", f"{line:06d}")
    if not isinstance(ex_id, str | int):
        raise bad("must be a string or an integer", "id")
    split = row.get("split", "test")
    if split not in ("test", "train"):
        raise bad(f"must be 'test' or 'train', got {split!r}", "split")
    meta = row.get("metadata", {})
    if not isinstance(meta, dict):
        raise bad("must be an object", "metadata")
    return Example(str(ex_id), row["input"], target, choices, correct, scores, {**meta, "line": line}), split


def load_jsonl(path: str | Path, name: str | None = None) -> Task:
    """A `Task` from a JSONL file, named `name` or the file's stem.

    Raises UserError naming the file, the line and the field for anything malformed: a missing file, a line that
    is not JSON, a missing `input`/`target`, a bad `correct` index, duplicate ids, or no test items at all.
    """
    path = Path(path)
    test: list[Example] = []
    train: list[Example] = []
    seen: dict[str, int] = {}
    for line, row in read_jsonl(path):
        ex, split = _example(row, str(path), line)
        if ex.id in seen:
            raise UserError(f"duplicate id {ex.id!r} (first on line {seen[ex.id]})", source=f"{path}:{line}",
                            field="id")
        seen[ex.id] = line
        (train if split == "train" else test).append(ex)
    if not test:
        raise UserError("holds no test items", source=str(path))
    mc = [ex.is_multiple_choice for ex in test + train]
    if any(mc) and not all(mc):
        raise UserError("mixes multiple-choice and open items; split them into two files", source=str(path))
    if all(mc):
        kind = "multiple_choice"
    elif all(_NUMBER.fullmatch(ex.target) for ex in test):
        kind = "numeric"
    else:
        kind = "generative"
    longest = max(len(ex.target) for ex in test)
    return Task(
        name=name or path.stem,
        examples=tuple(test),
        shots_pool=tuple(train) if train else tuple(test),
        kind=kind,
        # characters bound tokens from above for every tokenizer we know, so this never cuts a right answer
        max_new_tokens=max(longest + 2, 4),
        metadata={"source": str(path)},
    )
