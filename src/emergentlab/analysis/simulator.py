"""The compositional model of emergence (seed 001) as a simulator: a task that needs N sub-skills, each improving
smoothly with scale, and the synthetic ladders it implies, fed through the same analysis as real records.

Sub-skill j is right with probability p_j(N) = floor + (1 − floor) · σ((log10 N − m_j) / w): a logistic in log
scale (m_j its midpoint in log10 parameters, w its width in decades). An N-step item is right only if each of its
N steps is, so its exact match is Π_j p_j — near 0 for most of the ladder, then a late rise — while the per-step
(token) accuracy is the mean of the p_j and stays as smooth as each sub-skill. The verdict rule should call the
single sub-skills `smooth` and the long chains `mirage` (the continuous partner rises smoothly) or `emergent`.

Records mirror `analysis.synthetic`: one target token per step, greedy right with probability p_j, teacher-forced
log-prob log p_j when right and log((1 − p_j)/9) otherwise (the rest of the mass spread over nine wrong tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from emergentlab import metrics
from emergentlab.analysis.analyze import Analysis
from emergentlab.records import Record


@dataclass(frozen=True)
class Compositional:
    """`n_skills` sub-skills with logistic midpoints spread evenly over `midpoint` ± `spread` (log10 parameters),
    each `width` decades wide, right by chance with probability `floor` (a fraction).

    The defaults put every sub-skill's rise inside the default ladder (10^6 to 10^10 parameters): a logistic
    whose midpoint sits near the top of the ladder is seen only through its foot, and then a single sub-skill
    looks like a jump too — the rule judges the curve the ladder shows."""

    n_skills: int = 8
    midpoint: float = 7.6
    width: float = 1.0
    spread: float = 0.2
    floor: float = 0.0

    def midpoints(self) -> np.ndarray:
        return self.midpoint + (np.linspace(-self.spread, self.spread, self.n_skills) if self.n_skills > 1
                                else np.zeros(1))

    def skill_probs(self, params: np.ndarray) -> np.ndarray:
        """(n_skills, rungs): each sub-skill's probability of being right at each parameter count."""
        t = np.log10(np.asarray(params, dtype=float))
        z = (t[None, :] - self.midpoints()[:, None]) / self.width
        return self.floor + (1.0 - self.floor) / (1.0 + np.exp(-z))

    def task_probs(self, params: np.ndarray, steps: int) -> np.ndarray:
        """(rungs,): the probability that an item needing the first `steps` sub-skills is right (exact match)."""
        return np.prod(self.skill_probs(params)[:steps], axis=0)


def ladder_params(rungs: int = 8, lo: float = 1e6, hi: float = 1e10) -> np.ndarray:
    """Parameter counts of the simulated ladder, log-spaced."""
    return np.logspace(np.log10(lo), np.log10(hi), rungs)


def rungs_frame(params: np.ndarray, study: str = "simulated") -> pd.DataFrame:
    """The ladder as `Store.rungs` returns it: params, tokens (20 per parameter) and FLOPs (6 · N · D)."""
    p = np.asarray(params, dtype=float)
    return pd.DataFrame({"study": study, "model": [f"m{i}" for i in range(len(p))], "spec": "simulated",
                         "params": p, "non_embedding_params": np.nan, "tokens": 20.0 * p, "flops": 120.0 * p * p,
                         "loss": np.nan, "step": np.nan, "extra": "{}"})


def simulate(model: Compositional, steps: Sequence[int] = (1, 2, 4, 8), params: np.ndarray | None = None,
             n_examples: int = 200, seed: int = 0, study: str = "simulated") -> list[Record]:
    """Records for tasks `skill{j}` (one step: sub-skill j alone, for every j) and `steps{N}` (the first N
    sub-skills chained, for each N in `steps`) at every rung, `n_examples` items each."""
    if any(not 1 <= n <= model.n_skills for n in steps):
        raise ValueError(f"steps must lie in 1..{model.n_skills}, got {list(steps)}")
    rng = np.random.default_rng(seed)
    params = ladder_params() if params is None else np.asarray(params, dtype=float)
    p = model.skill_probs(params)
    tasks = [(f"skill{j}", [j]) for j in range(model.n_skills)] + [(f"steps{n}", list(range(n))) for n in steps]
    out: list[Record] = []
    for task, skills in tasks:
        for r in range(len(params)):
            pj = p[skills, r]
            right = rng.random((n_examples, len(skills))) < pj[None, :]
            lp_right, lp_wrong = np.log(pj), np.log((1.0 - pj) / 9.0)
            for e in range(n_examples):
                target = tuple(f"s{j}" for j in skills)
                gen = tuple(t if ok else "x" for t, ok in zip(target, right[e], strict=True))
                lps = tuple(float(a if ok else b) for a, b, ok in zip(lp_right, lp_wrong, right[e], strict=True))
                out.append(Record(study=study, model=f"m{r}", task=task, example_id=f"{e:04d}", variant="plain",
                                  kind="generative", prompt=f"{task} q{e}", target="".join(target),
                                  generation="".join(gen), generation_tokens=gen, target_tokens=target,
                                  target_logprobs=lps, target_greedy=tuple(bool(x) for x in right[e])))
    return out


def records_frame(records: Sequence[Record]) -> pd.DataFrame:
    """Records as the frame `Store.records` returns (one column per `Record` field)."""
    names = [f.name for f in fields(Record)]
    return pd.DataFrame([[getattr(r, n) for n in names] for r in records], columns=names)


def analyze(records: Sequence[Record], rungs: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> Analysis:
    """The simulated ladder through the analysis a stored study goes through: every metric, curves, verdicts."""
    frame = records_frame(records)
    return Analysis(n_boot=n_boot, seed=seed).fit(metrics.compute(frame), rungs, frame)
