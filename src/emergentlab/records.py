"""`Record`: everything one model did on one example under one prompt variant. Metrics are computed from these."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

KEY_FIELDS = ("study", "model", "task", "example_id", "variant")

# What every long-running call reports to whoever shows progress: (what is running, units done, units in all or
# None while unknown). The CLI turns it into a progress bar on a terminal and a line per stage when piped.
Progress = Callable[[str, int, int | None], None]


def no_progress(description: str, done: int, total: int | None) -> None:
    """The progress callback that shows nothing."""


@dataclass(frozen=True)
class Record:
    """One row per (study, model, task, example, variant).

    Log-probs are in nats. `target_*` come from teacher-forced scoring of the reference answer;
    `generation*` from greedy decoding; `choice_logprobs[i]` is log p(choice i | prompt) summed over its
    `choice_ntokens[i]` tokens. `kind` is the task kind: generative, numeric or multiple_choice.
    `targets` lists every accepted answer when the task gives several (empty: just `target`); `stop_string` and
    `output_regex` are the task's rule from generation to response (BIG-bench's); `metrics` names metrics the task
    declares beyond those of its kind.
    """

    study: str
    model: str
    task: str
    example_id: str
    variant: str
    kind: str
    prompt: str
    target: str
    generation: str = ""
    generation_tokens: tuple[str, ...] = ()
    target_tokens: tuple[str, ...] = ()
    target_logprobs: tuple[float, ...] = ()
    target_greedy: tuple[bool, ...] = ()
    choices: tuple[str, ...] | None = None
    correct: int | None = None
    choice_logprobs: tuple[float, ...] | None = None
    choice_ntokens: tuple[int, ...] | None = None
    choice_scores: tuple[float, ...] | None = None
    targets: tuple[str, ...] = ()
    stop_string: str | None = None
    output_regex: str | None = None
    metrics: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.study, self.model, self.task, self.example_id, self.variant)
