"""The `Backend` protocol every model sits behind, and the values it returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from emergentlab.records import ScaleFacts


@dataclass(frozen=True)
class TokenScores:
    """Teacher-forced scores of one continuation, one entry per continuation token.

    `logprobs` are natural-log probabilities (nats) of each target token given everything before it;
    `greedy[i]` says whether token i was the model's argmax there (per-token accuracy counts these);
    `tokens` are the tokenizer's strings for the continuation tokens.
    """

    logprobs: tuple[float, ...]
    greedy: tuple[bool, ...]
    tokens: tuple[str, ...]

    @property
    def total(self) -> float:
        """Sum of log-probs in nats: log p(continuation | prompt)."""
        return float(sum(self.logprobs))


@dataclass(frozen=True)
class Generation:
    """A greedy continuation, cut at the first stop string; `tokens` are its tokenizer strings."""

    text: str
    tokens: tuple[str, ...]


@runtime_checkable
class Backend(Protocol):
    """A language model seen as two calls. Implementations: tiny (ours), hf, openai."""

    name: str

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[TokenScores]:
        """Per-token log-probs (nats) of each continuation given its prompt, teacher-forced."""
        ...

    def generate(
        self, prompts: Sequence[str], max_new_tokens: int, stop: Sequence[str] = ()
    ) -> list[Generation]:
        """Greedy continuation of each prompt, at most `max_new_tokens` tokens, cut before any stop string."""
        ...

    def facts(self) -> ScaleFacts:
        """What the backend knows of its own scale (parameter count, training tokens, loss, step)."""
        ...


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """`text` up to the first stop string, and whether one was found."""
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def pack_batches(order: Sequence[int], lengths: Sequence[int], max_tokens: int,
                 max_rows: int | None = None) -> list[list[int]]:
    """Indices in `order`, cut into batches whose rows × longest row stays within `max_tokens` (tokens, padding
    included) and, if given, within `max_rows` rows. Order `order` by length to keep padding small."""
    out: list[list[int]] = []
    cur: list[int] = []
    longest = 0
    for i in order:
        grown = max(longest, lengths[i])
        if cur and ((max_rows is not None and len(cur) >= max_rows) or (len(cur) + 1) * grown > max_tokens):
            out.append(cur)
            cur, grown = [], lengths[i]
        cur.append(i)
        longest = grown
    return out + [cur] if cur else out
