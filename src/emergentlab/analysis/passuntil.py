"""PassUntil (Hu et al. 2023): pass rates too small to see with one greedy answer per item, measured by sampling each
item until its first pass (or a budget of draws), and the task scaling law fitted to them.

The data, per item i of a rung: D_i draws, S_i ∈ {0, 1} passes (S_i = 1: the last draw passed; S_i = 0: the budget
ran out first — a censored item). Each draw of item i passes with probability p_i, independently. Whatever the
stopping rule (one that looks only at past draws), item i's likelihood is p_i^S_i (1 − p_i)^(D_i − S_i): a geometric
item contributes p(1 − p)^(D − 1), a censored one (1 − p)^D.

Per-draw rate (`pooled_rate`, `rate_interval`). If every item shares one p, log L(p) = S log p + F log(1 − p) with
S = Σ S_i passes and F = Σ (D_i − S_i) failures, and dL/dp = 0 gives the maximum-likelihood rate S / (S + F) =
Σ passes / Σ draws; censored items count, their draws all failures. Its interval is the wider of the
likelihood-ratio interval {p : 2 (log L(p̂) − log L(p)) ≤ χ²₁(level)}, honest when few or no draws pass (no pass:
[0, 1 − exp(−χ²₁/(2F))]), and the percentile bootstrap over items. With items of different p_i this pooled rate
estimates Σ E[S_i] / Σ E[D_i] (`planted_rate`), in which hard items weigh more: uncensored, n / Σ 1/p_i, the harmonic
mean — below the mean p_i when items differ (on the demo ladder's top rung, add3 at temperature 1: 0.16 per draw
against a mean item pass rate of 0.34), so it is not the task's pass rate.

Task pass rate PU (`mean_rate`): the mean over items of p_i, the chance that one sampled answer to a random item
passes — what exact match on one sample per item estimates, comparable with greedy exact match and the teacher-forced
target-string probability. With one pass per item there is no unbiased estimate of each p_i (1/D_i overstates it),
so the items' p_i are modelled as drawn from a Beta with mean μ and concentration κ, and μ is estimated by maximum
marginal likelihood: item i contributes B(μκ + S_i, (1 − μ)κ + D_i − S_i) / B(μκ, (1 − μ)κ) (the beta-geometric
likelihood, censoring included). When items share one p, κ → ∞ and μ̂ is the pooled rate. The interval is the
profile likelihood one (κ maximised out on a grid of 0.1 decade from 1e-3 to 1e9) at χ²₁(level); it treats the items
as a sample of the task's items, so when none of n items passes it bounds μ only to about χ²₁(level)/(2n) (a few
easy items could have been missed), however many draws were spent. Known answers (tests/test_passuntil.py): on
homogeneous and heterogeneous planted p_i it recovers the mean within its interval, covering about the nominal rate
on homogeneous items.

The law (`fit_law`): PU(N) = exp(−c · N^−α), fitted as `forecast.law_fit` does (log(−log PU) linear in ln N) to the
rungs with at least one pass and one failure; the interval of α, c and the PU at 10× the largest rung from refits on
replicates that draw each rung's PU from its interval (a two-piece normal on the logit scale whose halves reach the
interval's ends at the level's quantile).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import betaln, expit, logit
from scipy.stats import chi2, norm

from emergentlab.analysis.forecast import law_fit

ITEM_COLUMNS = ("model", "draws", "passes")
"""The columns `rung_table` and `fit_law` read: one row per (rung, item), draws and passes (0 or 1) counts."""
RUNG_COLUMNS = ("model", "items", "draws", "passes", "censored", "pu", "pu_lo", "pu_hi", "per_draw", "per_draw_lo",
                "per_draw_hi")


def _loglik(s: float, f: float, p: float) -> float:
    return (s * np.log(p) if s else 0.0) + (f * np.log1p(-p) if f else 0.0)


def likelihood_interval(passes: int, draws: int, level: float = 0.9) -> tuple[float, float]:
    """The likelihood-ratio interval of one pass rate shared by all draws: passes S of draws D (any stopping rule),
    the rates p whose log-likelihood lies within χ²₁(level)/2 of the maximum at S/D (probabilities)."""
    s, f = float(passes), float(draws - passes)
    if draws <= 0:
        return 0.0, 1.0
    q = float(chi2.ppf(level, 1)) / 2
    top = s / (s + f)
    best = _loglik(s, f, top) if 0 < top < 1 else 0.0

    def gap(p: float) -> float:
        return best - _loglik(s, f, p) - q

    # the log-likelihood is concave in p, so each side has one root; the brackets keep p inside (0, 1)
    lo = 0.0 if s == 0 else brentq(gap, 1e-300, top) if gap(1e-300) > 0 else 0.0
    hi = 1.0 if f == 0 else brentq(gap, top, 1 - 1e-16) if gap(1 - 1e-16) > 0 else 1.0
    return float(lo), float(hi)


def _boot_counts(passes: np.ndarray, draws: np.ndarray, n_boot: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Σ passes and Σ draws of `n_boot` resamples of the items (with replacement)."""
    idx = rng.integers(0, len(draws), (n_boot, len(draws)))
    return passes[idx].sum(1), draws[idx].sum(1)


def rate_interval(passes: np.ndarray, draws: np.ndarray, level: float = 0.9, n_boot: int = 1000,
                  seed: int = 0) -> tuple[float, float]:
    """The interval of a rung's pooled pass rate (module docstring): the wider of the likelihood-ratio interval and
    the percentile bootstrap over items. `passes` and `draws` hold one count per item."""
    passes, draws = np.asarray(passes, dtype=float), np.asarray(draws, dtype=float)
    lo, hi = likelihood_interval(int(passes.sum()), int(draws.sum()), level)
    if len(draws) > 1 and n_boot > 0:
        s, d = _boot_counts(passes, draws, n_boot, np.random.default_rng(seed))
        a = (1 - level) / 2
        b_lo, b_hi = np.quantile(s / d, [a, 1 - a])
        lo, hi = min(lo, float(b_lo)), max(hi, float(b_hi))
    return lo, hi


def planted_rate(p: np.ndarray, budget: int) -> float:
    """What the pooled rate estimates for items of known pass probabilities `p` sampled until their first pass or
    `budget` draws: Σ E[S_i] / Σ E[D_i], with E[S_i] = 1 − (1 − p_i)^budget and E[D_i] = E[S_i] / p_i."""
    p = np.asarray(p, dtype=float)
    hit = -np.expm1(budget * np.log1p(-p))
    return float(hit.sum() / np.where(p > 0, hit / np.where(p > 0, p, 1.0), budget).sum())


_LOG_KAPPA = np.linspace(np.log(1e-3), np.log(1e9), 121)  # concentrations the profile maximises over (0.1 decade)
_EDGE = 30.0  # logit bound of the search: rates between 1e-13 and 1 − 1e-13


def _profile(x: np.ndarray, s: np.ndarray, f: np.ndarray, w: np.ndarray) -> np.ndarray:
    """−log L at mean rates expit(x) (M,), κ maximised out on the grid: items (passes s, failures f) with
    multiplicity w (P,)."""
    mu = expit(np.asarray(x, dtype=float))[:, None, None]
    k = np.exp(_LOG_KAPPA)[None, :, None]
    a, b = mu * k, (1.0 - mu) * k
    ll = (w * (betaln(a + s, b + f) - betaln(a, b))).sum(-1)
    return np.asarray(-ll.max(-1))


def mean_rate(passes: np.ndarray, draws: np.ndarray, level: float = 0.9) -> tuple[float, float, float]:
    """The task pass rate PU = mean over items of their pass probabilities (module docstring): the beta-geometric
    maximum-likelihood μ and its profile-likelihood interval (probabilities), from one (passes, draws) per item.
    NaN for no items."""
    passes, draws = np.asarray(passes, dtype=float), np.asarray(draws, dtype=float)
    if not len(draws) or draws.sum() <= 0:
        return float("nan"), 0.0, 1.0
    pairs, w = np.unique(np.column_stack([passes, draws - passes]), axis=0, return_counts=True)
    s, f = pairs[:, 0], pairs[:, 1]

    def dev(x: float) -> float:
        return float(_profile(np.array([x]), s, f, w)[0])

    grid = np.linspace(-_EDGE, _EDGE, 61)
    vals = _profile(grid, s, f, w)
    j = int(np.argmin(vals))
    # golden-section polish between the grid neighbours of the best point (the profile is unimodal in practice)
    lo_x, hi_x = grid[max(j - 1, 0)], grid[min(j + 1, len(grid) - 1)]
    g = (np.sqrt(5) - 1) / 2
    for _ in range(30):
        c, d = hi_x - g * (hi_x - lo_x), lo_x + g * (hi_x - lo_x)
        if dev(c) < dev(d):
            hi_x = d
        else:
            lo_x = c
    x = (lo_x + hi_x) / 2
    best = min(dev(x), float(vals[j]))
    q = float(chi2.ppf(level, 1)) / 2

    def gap(y: float) -> float:
        return dev(y) - best - q

    lo = 0.0 if gap(-_EDGE) <= 0 else float(expit(brentq(gap, -_EDGE, x, xtol=1e-4)))
    hi = 1.0 if gap(_EDGE) <= 0 else float(expit(brentq(gap, x, _EDGE, xtol=1e-4)))
    return float(expit(x)), lo, hi


def rung_table(items: pd.DataFrame, level: float = 0.9, n_boot: int = 1000, seed: int = 0,
               budget: Mapping[str, int] | None = None) -> pd.DataFrame:
    """Per rung (`model`), in the order the rungs first appear: items, draws and passes (counts), censored items (no
    pass within `budget[model]` draws, when given; else items without a pass); the task pass rate `pu` (mean over
    items, `mean_rate`) with its interval `pu_lo`, `pu_hi`; the pooled per-draw rate `per_draw` (Σ passes / Σ draws,
    `rate_interval`) with `per_draw_lo`, `per_draw_hi`. Rates are probabilities."""
    rows = []
    for k, (model, g) in enumerate(items.groupby("model", sort=False)):
        s, d = g["passes"].to_numpy(dtype=float), g["draws"].to_numpy(dtype=float)
        lo, hi = rate_interval(s, d, level, n_boot, seed + k)
        cap = budget.get(str(model)) if budget is not None else None
        censored = int(((s == 0) & (d >= cap)).sum()) if cap is not None else int((s == 0).sum())
        mu, mu_lo, mu_hi = mean_rate(s, d, level)
        rows.append({"model": model, "items": len(g), "draws": int(d.sum()), "passes": int(s.sum()),
                     "censored": censored, "pu": mu, "pu_lo": mu_lo, "pu_hi": mu_hi,
                     "per_draw": float(s.sum() / d.sum()) if d.sum() else float("nan"), "per_draw_lo": lo,
                     "per_draw_hi": hi})
    return pd.DataFrame(rows, columns=list(RUNG_COLUMNS))


def fit_law(table: pd.DataFrame, sizes: Mapping[str, float], level: float = 0.9, n_boot: int = 1000,
            seed: int = 0) -> dict[str, float | int | bool]:
    """Hu et al.'s task law PU(N) = exp(−c · N^−α) through the rungs' task pass rates, with intervals.

    `table` is `rung_table`'s (model, passes, draws, pu, pu_lo, pu_hi); `sizes` maps a rung to its size N
    (parameters, or any count axis). Rungs without a size, without a pass or without a failure are left out.
    Returns `law_fit`'s values (alpha, c, r2, accelerated, pu_at_10x) with `alpha_lo`/`alpha_hi`, `c_lo`/`c_hi`,
    `pu_at_10x_lo`/`pu_at_10x_hi` (percentiles of `n_boot` refits on replicates drawn from the rungs' intervals, at
    confidence `level`) and `rungs_used`; {} with fewer than 3 usable rungs."""
    size = np.array([float(sizes.get(str(m), np.nan)) for m in table["model"]])
    ok = (np.isfinite(size) & (size > 0) & (table["passes"].to_numpy() > 0)
          & (table["passes"].to_numpy() < table["draws"].to_numpy())
          & (table["pu"].to_numpy() > 0) & (table["pu"].to_numpy() < 1))
    if ok.sum() < 3:
        return {}
    order = np.argsort(size[ok], kind="stable")
    ln_n = np.log(size[ok])[order]
    pu, lo, hi = (table[c].to_numpy(dtype=float)[ok][order] for c in ("pu", "pu_lo", "pu_hi"))
    point = law_fit(ln_n, pu)
    zq = float(norm.ppf(1 - (1 - level) / 2))
    tiny = 1e-12  # an interval end at 0 or 1 becomes this far inside, so its half of the logit normal is finite
    mid = logit(pu)
    below = (mid - logit(np.clip(lo, tiny, 1 - tiny))) / zq
    above = (logit(np.clip(hi, tiny, 1 - tiny)) - mid) / zq
    e = np.random.default_rng(seed).standard_normal((n_boot, len(pu)))
    reps = expit(mid + e * np.where(e < 0, below, above))
    fits = [law_fit(ln_n, np.clip(r, tiny, 1 - tiny)) for r in reps]
    a = (1 - level) / 2
    out: dict[str, float | int | bool] = {**point, "rungs_used": int(ok.sum())}
    for key in ("alpha", "c", "pu_at_10x"):
        q_lo, q_hi = np.quantile([float(f[key]) for f in fits], [a, 1 - a])
        out[f"{key}_lo"], out[f"{key}_hi"] = float(q_lo), float(q_hi)
    return out
