"""Synthetic ladders with known answers: the checks the verdict rule must pass (tests, benchmark, demos).

Each generator draws per-example records for a ladder of `rungs` models at log-spaced sizes; a target is `k` tokens
long and every token is right independently with probability p(rung), so exact match = all k right (mean p^k,
Schaeffer et al. 2023) and per-token accuracy = the share right. Records carry teacher-forced log-probs log p, so
every metric in `metrics.METRICS` for generative tasks can be computed from them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from emergentlab.records import FACT_FIELDS, Record, ScaleFacts

Shape = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def sizes(rungs: int = 8, lo: float = 1e6, hi: float = 1e10) -> np.ndarray:
    """Parameter counts of the ladder, log-spaced."""
    return np.logspace(np.log10(lo), np.log10(hi), rungs)


def schaeffer(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-token cross-entropy a power law in N (2.5 · (N / 1e6)^−0.35 nats): p smooth, p^k sharp."""
    p = np.exp(-2.5 * (n / 1e6) ** -0.35)
    return p, p


def step(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A genuine step at the 6th rung in both the per-token and the all-or-nothing ability."""
    up = np.arange(len(n)) >= 5
    return np.where(up, 0.97, 0.35), np.where(up, 0.97, 0.35)


def inverse(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gets worse with scale."""
    p = np.linspace(0.97, 0.75, len(n))
    return p, p


def u_shaped(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dips in the middle of the ladder, recovers at the top."""
    x = np.linspace(-1, 1, len(n))
    p = 0.75 + 0.22 * x**2
    return p, p


def noise(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """No ability at any scale: every token right with probability 0.3 (chance for exact match ≈ 0)."""
    p = np.full(len(n), 0.3)
    return p, p


SHAPES: dict[str, Shape] = {"schaeffer": schaeffer, "step": step, "inverse": inverse, "u_shaped": u_shaped,
                            "noise": noise}


def ladder(rungs: int = 8) -> list[tuple[str, ScaleFacts]]:
    """(model name, scale facts) per rung: params, tokens (20 per parameter), FLOPs 6·N·D, and a loss falling as
    a power law in N (nats/token)."""
    out = []
    for i, n in enumerate(sizes(rungs)):
        out.append((f"m{i}", ScaleFacts(params=float(n), tokens=20.0 * n, flops=120.0 * n * n,
                                        loss=float(1.7 + 3.0 * (n / 1e6) ** -0.2))))
    return out


def records(shapes: dict[str, Shape], n_examples: int = 200, k: int = 5, rungs: int = 8, seed: int = 0,
            study: str = "synthetic") -> list[Record]:
    """Records for every (task = key of `shapes`, rung, example): greedy tokens right with probability p."""
    rng = np.random.default_rng(seed)
    out: list[Record] = []
    n = sizes(rungs)
    for task, shape in shapes.items():
        p_tok, _ = shape(n)
        for r, (model, _facts) in enumerate(ladder(rungs)):
            right = rng.random((n_examples, k)) < p_tok[r]
            for e in range(n_examples):
                target = tuple(f"d{(e + j) % 10}" for j in range(k))
                gen = tuple(t if ok else "x" for t, ok in zip(target, right[e], strict=True))
                lp = tuple(float(np.log(p_tok[r])) if ok else float(np.log(1 - p_tok[r]) - np.log(9))
                           for ok in right[e])
                out.append(Record(study=study, model=model, task=task, example_id=f"{e:04d}", variant="plain",
                                  kind="generative", prompt=f"q{e}", target="".join(target),
                                  generation="".join(gen), generation_tokens=gen, target_tokens=target,
                                  target_logprobs=lp, target_greedy=tuple(bool(x) for x in right[e])))
    return out


def rungs_frame(study: str = "synthetic", rungs: int = 8) -> pd.DataFrame:
    """The ladder as `Store.rungs` returns it."""
    return pd.DataFrame([{"study": study, "model": m, "spec": "synthetic", **{k: getattr(f, k) for k in FACT_FIELDS},
                          "extra": "{}"} for m, f in ladder(rungs)])
