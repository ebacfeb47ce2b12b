"""The nouns of an evaluation: an `Example` (one item) and a `Task` (a named list of them)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Example:
    """One test item.

    `target` is the reference continuation (scored token by token and compared with the greedy generation).
    For multiple-choice items `choices` lists the candidate continuations and `correct` indexes the right one
    (for items with several right answers, `choice_scores` holds each choice's BIG-bench-style score).
    `targets` lists every accepted answer when the source gives several (empty: just `target`).
    """

    id: str
    input: str
    target: str
    choices: tuple[str, ...] | None = None
    correct: int | None = None
    choice_scores: tuple[float, ...] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    targets: tuple[str, ...] = ()

    @property
    def is_multiple_choice(self) -> bool:
        return self.choices is not None


@dataclass(frozen=True)
class Task:
    """A named set of test examples, plus the (disjoint) pool that few-shot demonstrations are drawn from.

    `kind` tells the metrics which family applies: "generative" (exact match and its partners), "numeric"
    (generative, plus numeric distance), or "multiple_choice"; a generative task whose examples carry choices has
    the choices scored too. `metrics` names metrics the task declares beyond those of its kind (BIG-bench's).
    `stop_string` and `output_regex` turn a raw generation into the response that generative metrics compare
    (BIG-bench's rule, `metrics.response`); backends cut generations at `stop`.
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
    metrics: tuple[str, ...] = ()
    stop_string: str | None = None
    output_regex: str | None = None

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self) -> Iterator[Example]:
        return iter(self.examples)

    def format(self, ex: Example) -> str:
        """The text of one item as the model sees it, up to where the answer starts."""
        return f"{self.input_prefix}{ex.input}{self.output_prefix}"

    def prompt(self, example: Example, shots: int, seed: int = 0) -> str:
        """Task prefix, `shots` solved demonstrations, then the test item up to where its answer starts.

        Demonstrations are drawn per example (seeded by `seed` and the example id) so the same study gives the same
        prompts, and an item whose input equals the test item's is never used as its own demonstration. Loaders
        whose source fixes its own rule (BIG-bench) override this.
        """
        if shots < 0:
            raise ValueError(f"shots must be >= 0, got {shots}")
        pool = [d for d in self.shots_pool if d.id != example.id and d.input != example.input]
        if shots > len(pool):
            raise ValueError(f"task {self.name!r}: asked for {shots} shots but the pool holds {len(pool)}")
        demos = random.Random(f"{seed}:{self.name}:{example.id}").sample(pool, shots)
        parts = [self.prefix] if self.prefix else []
        parts += [self.format(d) + d.target for d in demos]
        parts.append(self.format(example))
        return self.separator.join(parts)
