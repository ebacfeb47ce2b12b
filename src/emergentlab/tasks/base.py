"""The nouns of an evaluation: an `Example` (one item) and a `Task` (a named list of them)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Example:
    """One test item.

    `target` is the reference continuation (scored token by token and compared with the greedy generation).
    For multiple-choice items `choices` lists the candidate continuations and `correct` indexes the right one
    (for items with several right answers, `choice_scores` holds each choice's BIG-bench-style score).
    """

    id: str
    input: str
    target: str
    choices: tuple[str, ...] | None = None
    correct: int | None = None
    choice_scores: tuple[float, ...] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def is_multiple_choice(self) -> bool:
        return self.choices is not None


@dataclass(frozen=True)
class Task:
    """A named set of test examples, plus the (disjoint) pool that few-shot demonstrations are drawn from.

    `kind` tells the metrics which family applies: "generative" (exact match and its partners), "numeric"
    (generative, plus numeric distance), or "multiple_choice".
    """

    name: str
    examples: tuple[Example, ...]
    shots_pool: tuple[Example, ...] = ()
    kind: str = "generative"
    prefix: str = ""
    input_prefix: str = ""
    output_prefix: str = " "
    separator: str = "\n"
    max_new_tokens: int = 16
    stop: tuple[str, ...] = ("\n",)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self) -> Iterator[Example]:
        return iter(self.examples)

    def format(self, ex: Example) -> str:
        """The text of one item as the model sees it, up to where the answer starts."""
        return f"{self.input_prefix}{ex.input}{self.output_prefix}"
