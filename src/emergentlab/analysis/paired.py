"""Paired tests for comparing two models on the same items, and corrections for testing several categories.

Both models answer the same items, so each item is its own control: the tests look only at how the two answers
to one item differ. Pass/fail scores → McNemar's exact test on the discordant pairs (b = items OLD got right and
NEW got wrong, c = the reverse; under no difference b ~ Binomial(b + c, ½)). Continuous scores → a paired
bootstrap over items of the mean difference (NEW − OLD). Several categories tested at once → Holm's step-down
(family-wise error ≤ α) or Benjamini–Hochberg (false discovery rate ≤ α) on the p-values of one metric.

Every test here is two-sided at level α: when nothing changed, a category is called improved *or* regressed in
at most α of comparisons (McNemar's exact test is conservative, so usually fewer), and called regressed in at
most about α/2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy.stats import binomtest, false_discovery_control, norm

from emergentlab import metrics

Correction = Literal["holm", "bh", "none"]
CORRECTIONS: tuple[str, ...] = ("holm", "bh", "none")


@dataclass(frozen=True)
class PairedResult:
    """One paired comparison. `delta` = mean(NEW) − mean(OLD) in the metric's unit, with its `level` interval
    (`lo`, `hi`); `p` the two-sided p-value; `n` the items both models were scored on. For McNemar, `regressed`
    (b) and `improved` (c) count the discordant items; for the bootstrap they count items whose score fell or
    rose."""

    test: str
    n: int
    old_mean: float
    new_mean: float
    delta: float
    lo: float
    hi: float
    p: float
    regressed: int
    improved: int


def _pairs(old: np.ndarray, new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    old, new = np.asarray(old, dtype=float), np.asarray(new, dtype=float)
    if old.shape != new.shape or old.ndim != 1:
        raise ValueError(f"old and new must be 1-d and of one length, got {old.shape} and {new.shape}")
    ok = np.isfinite(old) & np.isfinite(new)
    return old[ok], new[ok]


def mcnemar(old: np.ndarray, new: np.ndarray, level: float = 0.95) -> PairedResult:
    """McNemar's exact test for pass/fail scores (1 = pass) of the same items under OLD and NEW.

    p = the two-sided binomial test of b against b + c at ½ (1 when no item changed). The interval of the change
    in pass rate is the Wald interval for paired proportions, (c − b)/n ± z·sqrt(b + c − (c − b)²/n)/n: an
    approximation shown for scale, the decision rests on the exact p."""
    o, n_ = _pairs(old, new)
    bad = ~np.isin(o, (0.0, 1.0)) | ~np.isin(n_, (0.0, 1.0))
    if bad.any():
        raise ValueError("McNemar's test needs pass/fail scores (0 or 1)")
    n = len(o)
    b = int(np.sum((o == 1) & (n_ == 0)))
    c = int(np.sum((o == 0) & (n_ == 1)))
    p = float(binomtest(b, b + c, 0.5).pvalue) if b + c else 1.0
    if n == 0:
        return PairedResult("mcnemar", 0, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, 0, 0)
    d = (c - b) / n
    half = float(norm.ppf(0.5 + level / 2)) * np.sqrt(max(b + c - (c - b) ** 2 / n, 0.0)) / n
    return PairedResult("mcnemar", n, float(o.mean()), float(n_.mean()), d, d - half, d + half, p, b, c)


def paired_bootstrap(old: np.ndarray, new: np.ndarray, rng: np.random.Generator, n_boot: int = 2000,
                     level: float = 0.95) -> PairedResult:
    """Paired bootstrap of the mean difference NEW − OLD over items (pairs with a NaN on either side are dropped).

    Items are resampled with replacement `n_boot` times; the interval is the percentile interval of the resampled
    mean differences. p is the share of resampled means, shifted to the null of no difference (centred on 0), at
    least as far from 0 as the observed mean: (1 + #{|m* − d̄| ≥ |d̄|}) / (n_boot + 1)."""
    o, n_ = _pairs(old, new)
    n = len(o)
    if n == 0:
        return PairedResult("bootstrap", 0, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, 0, 0)
    d = n_ - o
    dbar = float(d.mean())
    m = d[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    a = (1 - level) / 2
    lo, hi = np.quantile(m, [a, 1 - a])
    # exact ties (every difference 0) must give p = 1, not a float-noise rejection
    p = 1.0 if np.all(d == 0) else float((1 + np.sum(np.abs(m - dbar) >= abs(dbar))) / (n_boot + 1))
    return PairedResult("bootstrap", n, float(o.mean()), float(n_.mean()), dbar, float(lo), float(hi), p,
                        int(np.sum(d < 0)), int(np.sum(d > 0)))


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error ≤ α when rejecting adjusted p < α); NaN stays NaN."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (false discovery rate ≤ α for independent or positively dependent
    tests); NaN stays NaN."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = false_discovery_control(p[ok], method="bh")
    return out


def adjust(p: np.ndarray, correction: str) -> np.ndarray:
    """p-values adjusted by `correction` ("holm", "bh" or "none")."""
    if correction == "holm":
        return holm(p)
    if correction == "bh":
        return benjamini_hochberg(p)
    if correction == "none":
        return np.asarray(p, dtype=float).copy()
    raise ValueError(f"unknown correction {correction!r}; known: {', '.join(CORRECTIONS)}")


def _higher_is_better(metric: str) -> bool:
    m = metrics.METRICS.get(metric)
    return m.higher_is_better if m is not None else True


def _is_pass_fail(metric: str) -> bool:
    m = metrics.METRICS.get(metric)
    return m is not None and m.kind == "discontinuous"


TEST_COLUMNS = ["task", "variant", "metric", "test", "n", "old", "new", "delta", "delta_lo", "delta_hi",
                "regressed_items", "improved_items", "p", "p_adjusted", "status"]


def compare_scores(wide: pd.DataFrame, alpha: float = 0.05, correction: str = "holm", n_boot: int = 2000,
                   seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """One paired test per (task, variant, metric) of a frame with columns task, variant, metric, example_id,
    old, new (each a per-item score in the metric's unit).

    Discontinuous metrics (pass/fail, `metrics.METRICS`) get McNemar's exact test, the rest the paired bootstrap.
    p-values are adjusted by `correction` across the categories (task, variant) of each metric. `status` is
    `regressed` or `improved` when the adjusted p is below `alpha`, oriented by the metric's direction (a rise in
    a lower-is-better metric is a regression), else `unchanged`. Columns: `TEST_COLUMNS`; old/new are the means.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for (task, variant, metric), g in wide.groupby(["task", "variant", "metric"], sort=True):
        g = g.sort_values("example_id")
        old, new = g["old"].to_numpy(dtype=float), g["new"].to_numpy(dtype=float)
        r = mcnemar(old, new, level) if _is_pass_fail(str(metric)) else paired_bootstrap(old, new, rng, n_boot,
                                                                                          level)
        flip = not _higher_is_better(str(metric))
        rows.append({"task": task, "variant": variant, "metric": metric, "test": r.test, "n": r.n,
                     "old": r.old_mean, "new": r.new_mean, "delta": r.delta, "delta_lo": r.lo, "delta_hi": r.hi,
                     "regressed_items": r.improved if flip else r.regressed,
                     "improved_items": r.regressed if flip else r.improved, "p": r.p})
    out = pd.DataFrame(rows, columns=TEST_COLUMNS[:-2])
    out["p_adjusted"] = np.nan
    for _, idx in out.groupby("metric").groups.items():
        out.loc[idx, "p_adjusted"] = adjust(out.loc[idx, "p"].to_numpy(dtype=float), correction)
    better = np.where([_higher_is_better(str(m)) for m in out["metric"]], 1.0, -1.0) * out["delta"].to_numpy()
    sig = out["p_adjusted"].to_numpy(dtype=float) < alpha
    out["status"] = np.where(sig & (better < 0), "regressed", np.where(sig & (better > 0), "improved", "unchanged"))
    return out
