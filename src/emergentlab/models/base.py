"""The `Backend` protocol every model sits behind, the `Sampler` protocol of those that also sample, and the values
they return.

Sampling is reproducible draw by draw: the draw for one prompt is a function of (prompt, seed) alone, never of the
other prompts in the call or of how a backend batches them. Each row draws its uniforms from its own generator
(`row_uniforms`, seeded by the seed and a hash of the prompt) and turns them into tokens by the inverse of the
next-token distribution (`pick_tokens`), so two backends that compute the same distribution draw the same text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from emergentlab.records import ScaleFacts

if TYPE_CHECKING:
    import torch


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
    """A continuation (greedy from `generate`, drawn from `sample`), cut at the first stop string; `tokens` are its
    tokenizer strings."""

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


@runtime_checkable
class Sampler(Backend, Protocol):
    """A backend that can also draw continuations at a temperature (tiny, hf, openai)."""

    def sample(self, prompts: Sequence[str], max_new_tokens: int, stop: Sequence[str] = (),
               temperature: float = 1.0, seeds: Sequence[int] = ()) -> list[Generation]:
        """One draw per prompt from the model's next-token distribution at `temperature` (logits divided by it; no
        top-k, no top-p; 0 is greedy), at most `max_new_tokens` tokens, cut before any stop string. Row i's draw is
        a function of (prompts[i], seeds[i]) alone (`seeds` empty: 0 for every row), so batching never changes it
        and the same prompt under two seeds gives two independent draws."""
        ...


SEED_MASK = 0x7FFFFFFF  # seeds sent to servers stay within a signed 32-bit integer, which every server accepts


def draw_seed(seed: int, index: int) -> int:
    """The seed of draw `index` of a run seeded `seed`: a 31-bit integer, independent across indices
    (numpy's SeedSequence, whose output is fixed across numpy releases)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint32)[0]) & SEED_MASK


def row_uniforms(prompt: str, seed: int, n: int) -> np.ndarray:
    """`n` uniforms in [0, 1) for one row's draw: from a generator seeded by `seed` and the SHA-256 of `prompt`, so
    the same (prompt, seed) always draws the same and different prompts draw independently."""
    words = np.frombuffer(hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).digest(), dtype=np.uint32)
    return np.random.default_rng(np.random.SeedSequence([seed, *words.tolist()])).random(n)


def pick_tokens(logits: torch.Tensor, temperature: float, u: torch.Tensor) -> torch.Tensor:
    """Next token ids (B,) from logits (B, V): the argmax at temperature 0, else the inverse of the cumulative
    softmax(logits / temperature), taken in float64, at the row's uniform u (B,) in [0, 1).

    The first token whose cumulative probability exceeds u is drawn, so a token of probability 0 never is, and as the
    temperature falls to 0 the draw becomes the argmax (greedy) whatever u is, ties apart."""
    import torch

    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(-1)
    cdf = (logits.double() / temperature).softmax(-1).cumsum(-1)
    idx = torch.searchsorted(cdf, (u.double() * cdf[:, -1]).unsqueeze(1).contiguous(), right=True).squeeze(1)
    return idx.clamp(max=logits.shape[-1] - 1)


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
