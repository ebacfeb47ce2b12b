"""Per-example metrics: small pure functions over stored records, each discontinuous or continuous.

Every discontinuous metric (all-or-nothing per example) has continuous partners that see partial progress, so a
jump can be checked against a softer rubric (Schaeffer et al. 2023). Metrics read records only: adding one never
re-runs a model.
"""

from __future__ import annotations

import functools
import hashlib
import math
import multiprocessing as mp
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from rapidfuzz.distance import Levenshtein
from scipy.special import logsumexp

from emergentlab.records import KEY_FIELDS, gc_paused

Row = Mapping[str, Any]
T = TypeVar("T")

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


# Metrics run once per record and metric: a million-record study calls these millions of times on few distinct
# strings (answers repeat across rungs and examples), so the pure string functions are memoised.
@functools.lru_cache(maxsize=1 << 16)
def parse_number(text: str) -> float | None:
    """The first number in `text`, or None."""
    m = _NUMBER.search(text)
    return float(m.group()) if m else None


def response_span(r: Row) -> tuple[int, int]:
    """Where the response lies in the raw generation, in characters: BIG-bench's rule (`postprocess_output` of
    bigbench/models/model_utils.py). The text is cut just after `stop_string` when it occurs past position 0, then
    the response is the first match of `output_regex` (its group, if it has one; empty when nothing matches).
    Records without either rule respond with the whole generation."""
    # a frame mixing records with and without a rule holds NaN, not None, where there is none
    stop, regex = r.get("stop_string"), r.get("output_regex")
    if stop is None and regex is None:  # most records: no rule, the whole generation
        return 0, len(r["generation"])
    return _span(r["generation"], stop if isinstance(stop, str) else None, regex if isinstance(regex, str) else None)


@functools.lru_cache(maxsize=1 << 16)
def _span(text: str, stop: str | None, regex: str | None) -> tuple[int, int]:
    end = len(text)
    if stop and (i := text.find(stop)) > 0:
        end = i + len(stop)
    if not regex:
        return 0, end
    m = re.search(regex, text[:end])
    if m is None:
        return 0, 0
    s, e = m.span(1 if m.re.groups else 0)
    return (s, e) if s >= 0 else (0, 0)


_MISSING = object()


class _Record(dict[str, Any]):
    """A record's fields as `compute` hands them to the metrics, with room for pieces they share."""


def _per_record(fn: Callable[[Row], T]) -> Callable[[Row], T]:
    """`fn(r)` kept in `r` when `r` is one of the rows `compute` makes (a `_Record`, never a caller's mapping, which
    may be copied or changed): the several metrics of one record that need the same piece (its response, its
    targets, their numbers) then work it out once."""
    key = f"_{fn.__name__}"

    @functools.wraps(fn)
    def cached(r: Row) -> T:
        if type(r) is not _Record:
            return fn(r)
        v = r.get(key, _MISSING)
        if v is _MISSING:
            v = r[key] = fn(r)
        return v  # type: ignore[no-any-return]

    return cached


@_per_record
def response(r: Row) -> str:
    """The part of the generation that generative metrics compare (`response_span`)."""
    s, e = response_span(r)
    return str(r["generation"][s:e])


@_per_record
def _refs(r: Row) -> list[str]:
    """Every accepted answer: `targets` when the task gives several, else `target`."""
    t = r.get("targets")
    return list(t) if isinstance(t, (list, tuple)) and len(t) else [r["target"]]


def exact_match(r: Row) -> float:
    """1 if the response (`response`) equals a target after trimming whitespace, else 0; NaN without a
    generation."""
    if not r["generated"]:
        return math.nan
    got = normalize(response(r))
    for t in _refs(r):
        if got == normalize(t):
            return 1.0
    return 0.0


def token_accuracy(r: Row) -> float:
    """Fraction of target tokens that are the model's argmax under teacher forcing (0..1)."""
    g = r["target_greedy"]
    return sum(g) / len(g) if len(g) else math.nan


def token_edit_distance(r: Row) -> float:
    """Levenshtein distance, in tokens, between the response's tokens (the generated tokens that overlap
    `response_span`) and the target's tokens; NaN when either text is there without its tokens (imported
    records)."""
    if not r["generated"] or (r["generation"] and not len(r["generation_tokens"])) or \
            (r["target"] and not len(r["target_tokens"])):
        return math.nan
    toks = list(r["generation_tokens"])
    if r.get("stop_string") or r.get("output_regex"):
        s, e = response_span(r)
        ends = np.cumsum([len(t) for t in toks])
        toks = [t for t, end in zip(toks, ends, strict=True) if end > s and end - len(t) < e]
    return float(Levenshtein.distance(toks, list(r["target_tokens"])))


def _each_target(r: Row) -> list[float] | None:
    """log p(t | prompt) in nats of each of several targets, when the record has them all (else None)."""
    each, refs = r.get("targets_loglikelihood"), _refs(r)
    if len(refs) > 1 and isinstance(each, list | tuple) and len(each) == len(refs):
        return [float(x) for x in each]
    return None


def expected_exact_match(r: Row) -> float:
    """The target-string probability, teacher-forced: p(target | prompt) = exp(Σ log p(target token)), the chance
    that sampling begins with the target's own tokens (0..1); with several targets, their probabilities summed
    (BIG-bench's rule for scoring several targets), at most 1.

    Counts the targets' own tokenization only, and not whether generation stops after them, so it is neither the
    exact match of a sample nor a bound on it (`experiments.passuntil` samples that). Records holding several
    targets but only the first one's scores (written before every target was scored) give the first's probability.
    Imported records that carry only the sum (`target_loglikelihood`, nats) use it."""
    each = _each_target(r)
    if each is not None:
        return min(1.0, float(np.exp(each).sum()))
    lp = r["target_logprobs"]
    if not len(lp):
        total = r["target_loglikelihood"]
        return math.exp(total) if total is not None else math.nan
    return math.exp(sum(lp))


def target_logprob(r: Row) -> float:
    """Mean log-probability of the target tokens, in nats per token (≤ 0)."""
    lp = r["target_logprobs"]
    return math.fsum(lp) / len(lp) if len(lp) else math.nan


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


@_per_record
def _numbers(r: Row) -> tuple[float | None, list[float]]:
    """The first number of the response, and that of each target holding one."""
    return parse_number(response(r)), [x for t in _refs(r) if (x := parse_number(t)) is not None]


def numeric_exact(r: Row) -> float:
    """1 if the first number in the response equals a target's number, else 0; NaN without a generation."""
    if not r["generated"]:
        return math.nan
    pred, tgts = _numbers(r)
    return float(pred is not None and pred in tgts)


def abs_distance(r: Row) -> float:
    """|predicted − target| in the task's own units, to the nearest target; NaN when the response holds no
    number."""
    pred, tgts = _numbers(r)
    return min(abs(pred - t) for t in tgts) if pred is not None and tgts else math.nan


def rel_distance(r: Row) -> float:
    """|predicted − target| / max(|target|, 1), unitless, to the nearest target; NaN when the response holds no
    number."""
    pred, tgts = _numbers(r)
    return min(abs(pred - t) / max(abs(t), 1.0) for t in tgts) if pred is not None and tgts else math.nan


# --- BIG-bench's metrics, per example (bigbench/api/task_metrics.py, bigbench 1.0.0) ------------------------------
# Each is BIG-bench's function applied to one example, so a task's mean is BIG-bench's task score wherever BIG-bench
# averages over examples; bleu is BIG-bench's corpus BLEU of one example (BIG-bench scores the task as one corpus),
# and rouge is BIG-bench's bootstrap estimate of one example (the task's mean differs from its bootstrap median).


def exact_str_match(r: Row) -> float:
    """BIG-bench exact_str_match: 1 if the response is one of the targets exactly (no trimming), else 0."""
    return float(response(r) in _refs(r)) if r["generated"] else math.nan


def case_insensitive_str_match(r: Row) -> float:
    """BIG-bench case_insensitive_str_match: 1 if the response is a target once both are trimmed and
    lower-cased, else 0."""
    if not r["generated"]:
        return math.nan
    return float(response(r).strip().lower() in [t.strip().lower() for t in _refs(r)])


@functools.cache
def _bleu_scorer() -> Any:
    try:
        from sacrebleu.metrics import BLEU
    except ImportError as e:
        raise ModuleNotFoundError("bleu needs sacrebleu: pip install 'emergentlab[bigbench]'") from e
    # t5.evaluation.metrics.bleu, which BIG-bench calls
    return BLEU(smooth_method="exp", smooth_value=0.0, force=False, lowercase=False, tokenize="intl",
                effective_order=False)


def bleu(r: Row) -> float:
    """BIG-bench bleu of one example: sacreBLEU (intl tokenizer, exp smoothing) of the response against every
    target at once (0..100)."""
    if not r["generated"]:
        return math.nan
    return float(_bleu_scorer().corpus_score([response(r)], [[t] for t in _refs(r)]).score)


@functools.cache
def _rouge_scorer() -> Any:
    try:
        from rouge_score import rouge_scorer
    except ImportError as e:
        raise ModuleNotFoundError("rouge needs rouge-score: pip install 'emergentlab[bigbench]'") from e
    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"])


@functools.lru_cache(maxsize=4096)
def _rouge(refs: tuple[str, ...], resp: str) -> dict[str, float]:
    """Best F-measure over the targets of each ROUGE type, ×100, as t5.evaluation.metrics.rouge prepares texts."""
    def prep(text: str) -> str:
        return text.replace(" . ", " .\n")  # sentence breaks, for rougeLsum

    scores = [_rouge_scorer().score(target=prep(t), prediction=prep(resp)) for t in refs]
    return {k: max(s[k].fmeasure for s in scores) * 100 for k in ("rouge1", "rouge2", "rougeLsum")}


def rouge1(r: Row) -> float:
    """BIG-bench rouge1: unigram-overlap F-measure of the response with the best-matching target (0..100)."""
    return _rouge(tuple(_refs(r)), response(r))["rouge1"] if r["generated"] else math.nan


def rouge2(r: Row) -> float:
    """BIG-bench rouge2: bigram-overlap F-measure of the response with the best-matching target (0..100)."""
    return _rouge(tuple(_refs(r)), response(r))["rouge2"] if r["generated"] else math.nan


def rougeLsum(r: Row) -> float:  # noqa: N802 (BIG-bench's name)
    """BIG-bench rougeLsum: summary-level longest-common-subsequence F-measure of the response with the
    best-matching target (0..100)."""
    return _rouge(tuple(_refs(r)), response(r))["rougeLsum"] if r["generated"] else math.nan


def sequence_f1(r: Row) -> float:
    """BIG-bench sequence_f1 (in fact label accuracy): the share of the first target's space-separated labels that
    the response's labels at the same positions equal, padded with "O" (0..100)."""
    if not r["generated"]:
        return math.nan
    want = _refs(r)[0].split(" ")
    got = response(r).split(" ")[: len(want)]
    got += ["O"] * (len(want) - len(got))
    return float(100 * np.mean([g == w for g, w in zip(got, want, strict=True)]))


def numeric_match_with_0_1_relative_error(r: Row) -> float:
    """BIG-bench numeric_match_with_0_1_relative_error: 1 if float(response) is within 10% of float(target), else 0.

    As BIG-bench, the error is divided by the signed target (so any number passes a negative target) and the
    whole response must parse; NaN for several targets, which BIG-bench refuses."""
    refs = _refs(r)
    if not r["generated"] or len(refs) != 1:
        return math.nan
    try:
        want, got = float(refs[0]), float(response(r))
    except ValueError:
        return 0.0
    return float(abs(got - want) / (want if want != 0 else 1) <= 0.1)


def log_likelihood(r: Row) -> float:
    """BIG-bench log_likelihood: log p(target | prompt), in nats, summed over the target's tokens; with several
    targets, log Σ_t p(t | prompt) (BIG-bench's `log_likelihood_fn` takes logsumexp over an example's targets);
    NaN for a record with several targets but one scored (written before every target was)."""
    each = _each_target(r)
    if each is not None:
        return float(logsumexp(each))
    lp = r["target_logprobs"]
    return float(sum(lp)) if len(lp) and len(_refs(r)) == 1 else math.nan


def _bigbench_argmax(lp: np.ndarray) -> int:
    """BIG-bench's argmax: ties broken by a hash of the values, not by position."""
    best = np.arange(len(lp))[lp == np.max(lp)]
    return int(best[int(hashlib.sha256(lp.tobytes()).hexdigest(), 16) % len(best)])


def _choice_weights(r: Row) -> np.ndarray:
    scores = r.get("choice_scores")
    if isinstance(scores, list | tuple):
        return np.asarray(scores, dtype=float)
    y = np.zeros(len(r["choice_logprobs"]))
    y[int(r["correct"])] = 1.0
    return y


def multiple_choice_grade(r: Row) -> float:
    """BIG-bench multiple_choice_grade: the target score of the highest-probability choice (1 or 0 for a single
    right answer; graded scores count as given)."""
    lp = np.asarray(r["choice_logprobs"], dtype=float)
    if np.count_nonzero(lp == lp.max()) > 1:  # the hash that breaks a tie reads the normalised values
        lp = lp - logsumexp(lp)
    return float(_choice_weights(r)[_bigbench_argmax(lp)])


def _bigbench_brier(r: Row, p: np.ndarray) -> float:
    w = _choice_weights(r)
    q = w / w.sum() if w.sum() != 0 else np.zeros_like(w)
    return float(np.sum(q * (p - 1) ** 2 + (1 - q) * p**2) / len(p))


def calibration_multiple_choice_brier_score(r: Row) -> float:
    """BIG-bench's Brier score of one example: mean over choices of q(p − 1)² + (1 − q)p², p the probability
    normalised over the choices and q the choice's share of the target scores (0..1, lower is better)."""
    return _bigbench_brier(r, _choice_probs(r))


def uniform_guess_target_score(r: Row) -> float:
    """multiple_choice_grade of a uniform guess: the mean target score over the choices (BIG-bench's low_score)."""
    return float(np.mean(_choice_weights(r)))


def uniform_guess_bigbench_brier(r: Row) -> float:
    """calibration_multiple_choice_brier_score of the uniform distribution over the choices (0..1)."""
    n = len(_choice_weights(r))
    return _bigbench_brier(r, np.full(n, 1.0 / n))


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
        Metric("discontinuous", "fraction", True, (0.0, 1.0), 0.0, fn=exact_str_match, applies=_GEN),
        Metric("discontinuous", "fraction", True, (0.0, 1.0), 0.0, fn=case_insensitive_str_match, applies=_GEN),
        Metric("continuous", "BLEU (0..100)", True, (0.0, 100.0), fn=bleu, applies=_GEN),
        Metric("continuous", "ROUGE-1 F (0..100)", True, (0.0, 100.0), fn=rouge1, applies=_GEN),
        Metric("continuous", "ROUGE-2 F (0..100)", True, (0.0, 100.0), fn=rouge2, applies=_GEN),
        Metric("continuous", "ROUGE-Lsum F (0..100)", True, (0.0, 100.0), fn=rougeLsum, applies=_GEN),
        Metric("continuous", "percent", True, (0.0, 100.0), fn=sequence_f1, applies=_GEN),
        Metric("discontinuous", "fraction", True, (0.0, 1.0), 0.0, fn=numeric_match_with_0_1_relative_error,
               applies=_NUM),
        Metric("continuous", "nats", True, (-_INF, 0.0), fn=log_likelihood, applies=_GEN),
        Metric("discontinuous", "fraction", True, (0.0, 1.0), uniform_guess_target_score, fn=multiple_choice_grade,
               applies=_MC),
        Metric("continuous", "Brier (0..1)", False, (0.0, 1.0), uniform_guess_bigbench_brier,
               fn=calibration_multiple_choice_brier_score, applies=_MC),
    )
}
# Computed only for records whose task declares them (`Record.metrics`: BIG-bench's), not for every record of a kind
DECLARED_ONLY = frozenset({"exact_str_match", "case_insensitive_str_match", "bleu", "rouge1", "rouge2", "rougeLsum",
                           "sequence_f1", "numeric_match_with_0_1_relative_error", "log_likelihood",
                           "multiple_choice_grade", "calibration_multiple_choice_brier_score"})

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
    "exact_str_match": ("token_accuracy", "token_edit_distance", "expected_exact_match", "target_logprob", "bleu",
                        "rouge1", "rouge2", "rougeLsum"),
    "case_insensitive_str_match": ("token_accuracy", "token_edit_distance", "expected_exact_match",
                                   "target_logprob", "bleu", "rouge1", "rouge2", "rougeLsum"),
    "numeric_match_with_0_1_relative_error": ("abs_distance", "rel_distance"),
    "multiple_choice_grade": ("calibration_multiple_choice_brier_score", "correct_choice_prob"),
}


def check_names(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise KeyError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")


# The record fields metrics read; the rows `compute` hands them carry only these (a third fewer entries to build).
READS = frozenset({"kind", "metrics", "generated", "generation", "generation_tokens", "stop_string", "output_regex",
                   "target", "targets", "target_tokens", "target_logprobs", "target_greedy", "target_loglikelihood",
                   "targets_loglikelihood", "choice_logprobs", "choice_scores", "correct"})

# Below this many records a second process costs more (its start, sending the values back) than it saves.
PARALLEL_MIN_RECORDS = 100_000

PlanKey = tuple[str, tuple[str, ...]]


def compute(records: pd.DataFrame, names: Sequence[str] | None = None) -> pd.DataFrame:
    """Long table (study, model, task, example_id, variant, metric, value): every asked metric that applies.

    `records` is a frame as returned by `Store.records()`; `names=None` means every metric. The key columns are
    categoricals (categories sorted, so they sort as the text does): a million records give millions of scores whose
    keys repeat, and grouping by them as text was most of the time of the analysis that follows.

    From `PARALLEL_MIN_RECORDS` records on, and where processes fork (Linux), the second half of the records is
    scored in a forked process on another core while this one scores the first: the values are the same, as
    each depends on its record alone.
    """
    names = list(names) if names is not None else list(METRICS)
    check_names(names)
    halves = _scored_in_halves(records, names)
    keys = list(dict.fromkeys(k for ks, _, _ in halves for k in ks))
    plan = np.concatenate([np.asarray([keys.index(k) for k in ks], dtype=np.intp)[p] for ks, p, _ in halves])
    plan_names = [_applying(k, names) for k in keys]
    counts = np.array([len(ns) for ns in plan_names], dtype=np.intp)[plan]
    idx = np.repeat(np.arange(len(plan)), counts)
    # the j-th value of a record is the j-th metric of its plan
    first = np.cumsum(counts) - counts
    metric_names = sorted({n for ns in plan_names for n in ns})
    metric = np.empty(len(idx), dtype=np.intp)
    for p, ns in enumerate(plan_names):
        at = first[plan == p]
        for j, n in enumerate(ns):
            metric[at + j] = metric_names.index(n)
    out = pd.DataFrame({k: _repeated(records[k], idx) for k in KEY_FIELDS})
    out["metric"] = pd.Categorical.from_codes(metric, categories=metric_names)
    out["value"] = np.concatenate([v for _, _, v in halves])
    return out


def _applying(key: PlanKey, names: Sequence[str]) -> list[str]:
    """The metrics of `names` computed for records of this (kind, declared metrics)."""
    kind, declared_ = key
    return [n for n in names if n in declared_ or (kind in METRICS[n].applies and n not in DECLARED_ONLY)]


def _scored(records: pd.DataFrame, names: Sequence[str]) -> tuple[list[PlanKey], np.ndarray, np.ndarray]:
    """The records' plans (which metrics apply depends only on the (kind, declared metrics) pair, so it is worked
    out once per pair), each record's plan as an index into them, and every value, record after record."""
    cols = [c for c in records.columns if c in READS]
    # rows as plain dicts, without DataFrame.to_dict's per-cell boxing
    rows = (_Record(zip(cols, vals, strict=True)) for vals in zip(*(records[c].tolist() for c in cols), strict=True))
    plans: dict[PlanKey, int] = {}
    plan_fns: list[list[Callable[[Row], float]]] = []
    plan_of: list[int] = []
    value: list[float] = []
    with gc_paused():
        for r in rows:
            key = (r["kind"], tuple(r.get("metrics") or ()))
            p = plans.get(key)
            if p is None:
                p = plans[key] = len(plan_fns)
                plan_fns.append([METRICS[n].fn for n in _applying(key, names)])
            plan_of.append(p)
            value += [fn(r) for fn in plan_fns[p]]
    return list(plans), np.asarray(plan_of, dtype=np.intp), np.asarray(value, dtype=float)


def _scored_in_halves(records: pd.DataFrame, names: Sequence[str]) -> list[tuple[list[PlanKey], np.ndarray,
                                                                              np.ndarray]]:
    """`_scored` of the records, the second half in a forked process when `scoring_processes` says so."""
    if scoring_processes(len(records)) == 1:
        return [_scored(records, names)]
    half = len(records) // 2
    ctx = mp.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    # forked, the child sees the records as they are in memory: nothing is copied or pickled on the way in
    child = ctx.Process(target=_score_and_send, args=(records.iloc[half:], names, send), daemon=True)
    child.start()
    send.close()
    try:
        first = _scored(records.iloc[:half], names)
        second = receive.recv()
    except EOFError:
        raise RuntimeError(f"the process scoring records {half}…{len(records)} died (exit code "
                           f"{child.exitcode}); out of memory?") from None
    finally:
        receive.close()
        child.join()
    if isinstance(second, BaseException):
        raise second
    return [first, second]


def scoring_processes(n_records: int) -> int:
    """How many processes `compute` scores `n_records` records in: 2 from `PARALLEL_MIN_RECORDS` on where this
    process may run on two cores and can fork, else 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    ok = n_records >= PARALLEL_MIN_RECORDS and cores >= 2 and "fork" in mp.get_all_start_methods()
    return 2 if ok else 1


def _score_and_send(records: pd.DataFrame, names: Sequence[str], conn: Connection) -> None:
    try:
        conn.send(_scored(records, names))
    except BaseException as e:  # the parent raises it
        conn.send(e)
    finally:
        conn.close()


def _repeated(col: pd.Series, idx: np.ndarray) -> pd.Categorical:
    """`col` taken at `idx`, as a categorical (factorized over the records, not over their many scores)."""
    codes, uniques = pd.factorize(col, sort=True)
    return pd.Categorical.from_codes(codes[idx], categories=uniques)
