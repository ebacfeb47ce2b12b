"""The plain data every layer shares (this module imports nothing of ours).

`Record`: everything one model did on one example under one prompt variant; metrics are computed from these.
`ScaleFacts`: where a ladder rung sits on each scale axis; `FACT_FIELDS` names those axes in store-column order.
`Progress`: the callback every long-running call reports to.
`gc_paused`: the context in which millions of records are decoded or scored.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from typing import Any

KEY_FIELDS = ("study", "model", "task", "example_id", "variant")

# What every long-running call reports to whoever shows progress: (what is running, units done, units in all or
# None while unknown). The CLI turns it into a progress bar on a terminal and a line per stage when piped.
Progress = Callable[[str, int, int | None], None]


def no_progress(description: str, done: int, total: int | None) -> None:
    """The progress callback that shows nothing."""


@contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused for the block. Decoding a store's records or scoring them builds
    millions of small lists and dicts that hold no reference cycles, and the collector's passes over them, triggered
    by the allocations alone, took half of the decoding time (5.0 vs 2.7 s per 300 k records)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@dataclass(frozen=True)
class Record:
    """One row per (study, model, task, example, variant).

    Log-probs are in nats. `target_*` come from teacher-forced scoring of the reference answer;
    `generation*` from greedy decoding; `choice_logprobs[i]` is log p(choice i | prompt) summed over its
    `choice_ntokens[i]` tokens. `kind` is the task kind: generative, numeric or multiple_choice.
    `generated` is False for a record that holds no generation at all (an imported lm-eval loglikelihood
    request), as opposed to a generation that happens to be empty. `target_loglikelihood` is log p(target |
    prompt) in nats for records that know only that sum, not one value per token (imported lm-eval records).
    `metadata` is provenance for people (where a record came from); no metric reads it.
    `truncated_tokens` counts the prompt tokens dropped from the left to fit the model's context (0: none;
    None: the backend cannot tell).
    `targets` lists every accepted answer when the task gives several (empty: just `target`);
    `targets_loglikelihood[i]` is log p(targets[i] | prompt) in nats, teacher-forced, for records whose every target
    was scored (empty: only `target` was, in `target_logprobs`); `stop_string` and
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
    generated: bool = True
    target_loglikelihood: float | None = None
    targets: tuple[str, ...] = ()
    targets_loglikelihood: tuple[float, ...] = ()
    stop_string: str | None = None
    output_regex: str | None = None
    metrics: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    truncated_tokens: int | None = None

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.study, self.model, self.task, self.example_id, self.variant)


@dataclass(frozen=True)
class ScaleFacts:
    """Where a model sits on each scale axis. Any may be unknown (None).

    params / non_embedding_params: parameter counts; tokens: training tokens seen; flops: training FLOPs
    (6·N·D when not given); loss: validation or pre-training loss in nats per token; step: optimizer steps.
    """

    params: float | None = None
    non_embedding_params: float | None = None
    tokens: float | None = None
    flops: float | None = None
    loss: float | None = None
    step: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def merged(self, override: dict[str, Any]) -> ScaleFacts:
        """These facts with the non-None values of `override` on top (e.g. from a study file); tokens from the step
        when `override` declares `tokens_per_step`, and FLOPs ≈ 6 · params · tokens when unknown."""
        base = {k: v for k, v in asdict(self).items() if k != "extra"}
        known = {k: v for k, v in override.items() if k in base and v is not None}
        facts = ScaleFacts(**{**base, **known}, extra={**self.extra})
        per_step = override.get("tokens_per_step")
        if facts.tokens is None and facts.step is not None and per_step:
            facts = ScaleFacts(**{**asdict(facts), "tokens": facts.step * float(per_step)})
        if facts.flops is None and facts.params is not None and facts.tokens is not None:
            facts = ScaleFacts(**{**asdict(facts), "flops": 6.0 * facts.params * facts.tokens})
        return facts


# The scale facts a rung can have, in the order the store's columns and a study file's fields use.
FACT_FIELDS = tuple(f.name for f in fields(ScaleFacts) if f.name != "extra")
