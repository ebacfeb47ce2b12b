"""Per-example metrics: small pure functions over stored records, each discontinuous or continuous.

Every discontinuous metric (all-or-nothing per example) has continuous partners that see partial progress, so a
jump can be checked against a softer rubric (Schaeffer et al. 2023). Metrics read records only: adding one never
re-runs a model.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from rapidfuzz.distance import Levenshtein

from emergentlab.records import KEY_FIELDS

Row = Mapping[str, Any]

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
_INF = math.inf


@dataclass(frozen=True)
class Declared:
    """What a curve needs to know of its metric, whether computed here (`Metric`) or read from a published table
    (`PUBLISHED`). `kind` is "discontinuous" or "continuous".

    `bounds` (lo, hi) is the range of one example's value, in `unit` (±inf where open): curves, fitted trends and
    forecast bands stay inside it. `chance` is what a model that knows nothing scores: a number, or, where that
    depends on the example (multiple choice: the share of right choices), a function of the record; None when
    unknown.
    """

    kind: str
    unit: str
    higher_is_better: bool
    bounds: tuple[float, float]
    chance: float | Callable[[Row], float] | None = None


@dataclass(frozen=True, kw_only=True)
class Metric(Declared):
    """A per-example metric: `fn` of one record, for records of the task kinds in `applies`. Its name and
    documentation are the function's."""

    fn: Callable[[Row], float]
    applies: frozenset[str]

    @property
    def name(self) -> str:
        return self.fn.__name__

    @property
    def doc(self) -> str:
        return self.fn.__doc__ or ""


def normalize(text: str) -> str:
    """Whitespace-trimmed answer text, the form exact match compares."""
    return text.strip()


def parse_number(text: str) -> float | None:
    """The first number in `text`, or None."""
    m = _NUMBER.search(text)
    return float(m.group()) if m else None


def exact_match(r: Row) -> float:
    """1 if the greedy generation equals the target after trimming whitespace, else 0; NaN without a generation."""
    if not r["generated"]:
        return math.nan
    return float(normalize(r["generation"]) == normalize(r["target"]))


def token_accuracy(r: Row) -> float:
    """Fraction of target tokens that are the model's argmax under teacher forcing (0..1)."""
    g = r["target_greedy"]
    return float(np.mean(g)) if len(g) else math.nan


def token_edit_distance(r: Row) -> float:
    """Levenshtein distance, in tokens, between the generation's tokens and the target's tokens; NaN when either
    text is there without its tokens (imported records)."""
    if not r["generated"] or any(r[text] and not len(r[toks]) for text, toks in
                                (("generation", "generation_tokens"), ("target", "target_tokens"))):
        return math.nan
    return float(Levenshtein.distance(list(r["generation_tokens"]), list(r["target_tokens"])))


def expected_exact_match(r: Row) -> float:
    """exp(Σ log p(target token)): the probability that sampling reproduces the whole target (0..1).

    Imported records that carry only the sum (`target_loglikelihood`, nats) use it."""
    lp = r["target_logprobs"]
    if not len(lp):
        total = r["target_loglikelihood"]
        return math.exp(total) if total is not None else math.nan
    return math.exp(sum(lp))


def target_logprob(r: Row) -> float:
    """Mean log-probability of the target tokens, in nats per token (≤ 0)."""
    lp = r["target_logprobs"]
    return float(np.mean(lp)) if len(lp) else math.nan


def _choice_probs(r: Row) -> np.ndarray:
    lp = np.asarray(r["choice_logprobs"], dtype=float)
    p = np.exp(lp - lp.max())
    return p / p.sum()


def _choice_truth(r: Row) -> np.ndarray:
    scores = r.get("choice_scores")
    if isinstance(scores, list | tuple):  # BIG-bench target_scores: every positively scored choice is right
        return (np.asarray(scores, dtype=float) > 0).astype(float)
    y = np.zeros(len(r["choice_logprobs"]))
    y[int(r["correct"])] = 1.0
    return y


def mc_grade(r: Row) -> float:
    """1 if the highest-log-prob choice is a right one (BIG-bench multiple_choice_grade), else 0."""
    return float(_choice_truth(r)[int(np.argmax(r["choice_logprobs"]))] > 0)


def brier(r: Row) -> float:
    """Multi-class Brier score Σ_i (p_i − y_i)² over choices, p normalised over the choices (0..2, lower is better)."""
    return float(np.sum((_choice_probs(r) - _choice_truth(r)) ** 2))


def correct_choice_prob(r: Row) -> float:
    """Probability mass on the right choice(s), normalised over the choices (0..1)."""
    return float(np.sum(_choice_probs(r) * _choice_truth(r)))


def uniform_guess_grade(r: Row) -> float:
    """mc_grade (and probability on the right choices) of a model that spreads its mass evenly: right choices /
    choices (0..1)."""
    return float(np.mean(_choice_truth(r)))


def uniform_guess_brier(r: Row) -> float:
    """Brier score of the uniform distribution over the choices (0..2)."""
    truth = _choice_truth(r)
    return float(np.sum((1.0 / len(truth) - truth) ** 2))


def _numbers(r: Row) -> tuple[float | None, float | None]:
    return parse_number(r["generation"]), parse_number(r["target"])


def numeric_exact(r: Row) -> float:
    """1 if the first number in the generation equals the target number, else 0; NaN without a generation."""
    if not r["generated"]:
        return math.nan
    pred, tgt = _numbers(r)
    return float(pred is not None and tgt is not None and pred == tgt)


def abs_distance(r: Row) -> float:
    """|predicted − target| in the task's own units; NaN when the generation holds no number."""
    pred, tgt = _numbers(r)
    return abs(pred - tgt) if pred is not None and tgt is not None else math.nan


def rel_distance(r: Row) -> float:
    """|predicted − target| / max(|target|, 1), unitless; NaN when the generation holds no number."""
    pred, tgt = _numbers(r)
    return abs(pred - tgt) / max(abs(tgt), 1.0) if pred is not None and tgt is not None else math.nan


_GEN = frozenset({"generative", "numeric"})
_MC = frozenset({"multiple_choice"})
_NUM = frozenset({"numeric"})

METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("discontinuous", "fraction", True, (0.0, 1.0), 0.0, fn=exact_match, applies=_GEN),
        Metric("continuous", "fraction", True, (0.0, 1.0), fn=token_accuracy, applies=_GEN),
        Metric("continuous", "tokens", False, (0.0, _INF), fn=token_edit_distance, applies=_GEN),
        Metric("continuous", "probability", True, (0.0, 1.0), fn=expected_exact_match, applies=_GEN),
        Metric("continuous", "nats/token", True, (-_INF, 0.0), fn=target_logprob, applies=_GEN),
        Metric("discontinuous", "fraction", True, (0.0, 1.0), uniform_guess_grade, fn=mc_grade, applies=_MC),
        Metric("continuous", "Brier (0..2)", False, (0.0, 2.0), uniform_guess_brier, fn=brier, applies=_MC),
        Metric("continuous", "probability", True, (0.0, 1.0), uniform_guess_grade, fn=correct_choice_prob,
               applies=_MC),
        Metric("discontinuous", "fraction", True, (0.0, 1.0), 0.0, fn=numeric_exact, applies=_NUM),
        Metric("continuous", "task units", False, (0.0, _INF), fn=abs_distance, applies=_NUM),
        Metric("continuous", "ratio", False, (0.0, _INF), fn=rel_distance, applies=_NUM),
    )
}

PUBLISHED = Declared("discontinuous", "fraction", True, (0.0, 1.0), 0.0)
"""What a metric name outside `METRICS` is taken to be: a published table's own accuracy (a share right, 0..1)."""


def declared(name: str) -> Declared:
    """What is declared of the metric called `name`; names outside `METRICS` are published accuracies."""
    return METRICS.get(name, PUBLISHED)


# Each discontinuous metric and the continuous metrics that see the same ability without the cliff.
PAIRS: dict[str, tuple[str, ...]] = {
    "exact_match": ("token_accuracy", "token_edit_distance", "expected_exact_match", "target_logprob"),
    "mc_grade": ("brier", "correct_choice_prob"),
    "numeric_exact": ("abs_distance", "rel_distance"),
}


def check_names(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise KeyError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")


def compute(records: pd.DataFrame, names: Sequence[str] | None = None) -> pd.DataFrame:
    """Long table (study, model, task, example_id, variant, metric, value): every asked metric that applies.

    `records` is a frame as returned by `Store.records()`; `names=None` means every metric.
    """
    names = list(names) if names is not None else list(METRICS)
    check_names(names)
    rows = records.to_dict("records")
    out: list[tuple[Any, ...]] = []
    for r in rows:
        key = tuple(r[k] for k in KEY_FIELDS)
        for n in names:
            m = METRICS[n]
            if r["kind"] in m.applies:
                out.append((*key, n, m.fn(r)))
    return pd.DataFrame(out, columns=[*KEY_FIELDS, "metric", "value"])
