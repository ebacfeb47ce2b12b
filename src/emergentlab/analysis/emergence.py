"""Emergence scores of a curve, vectorised over curves and bootstrap replicates (arrays (..., R), rungs last).

- BIG-bench (Srivastava et al. 2022, App. B): with y over increasing scale and I(y) = sign(argmax y − argmin y)
  · (max y − min y), breakthroughness B = I(y) / RootMedianSquare(Δy) and linearity L = I(y) / RootMeanSquare(Δy),
  where RootMedianSquare(z) = sqrt(median(z²)) and RootMeanSquare(z) = sqrt(mean(z²)). Both are ratios of
  differences of y, so they do not depend on y's unit; a straight line over R rungs scores R − 1 on both.
- Extrapolation excess (Wei et al. 2022, "not predictable by extrapolating smaller models"): fit a straight line
  in log scale to the smaller half of the ladder, and measure how far the larger half sits above it (metric units).
- Half difference: mean of the larger half minus mean of the smaller half (metric units): did it change at all?
- Dip: how far an interior rung falls below each end (U-shape: both positive).
- Smooth vs flat-then-rise: a straight line in log scale against a hinge (flat until a changepoint, then linear),
  compared by AIC with the curve's own bootstrap noise level.
"""

from __future__ import annotations

import numpy as np


def _total_change(y: np.ndarray) -> np.ndarray:
    sign = np.where(np.argmax(y, axis=-1) >= np.argmin(y, axis=-1), 1.0, -1.0)
    return sign * (np.max(y, axis=-1) - np.min(y, axis=-1))


def breakthroughness(y: np.ndarray, cap: float = 1e3) -> np.ndarray:
    """BIG-bench B = I(y) / sqrt(median(Δy²)); clipped to ±cap (a perfect step has a zero median step)."""
    d2 = np.diff(y, axis=-1) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        b = _total_change(y) / np.sqrt(np.median(d2, axis=-1))
    return np.clip(np.nan_to_num(b, nan=0.0, posinf=cap, neginf=-cap), -cap, cap)


def linearity(y: np.ndarray) -> np.ndarray:
    """BIG-bench L = I(y) / sqrt(mean(Δy²)); 0 for a flat curve."""
    d2 = np.diff(y, axis=-1) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.nan_to_num(_total_change(y) / np.sqrt(np.mean(d2, axis=-1)), nan=0.0)


def split(r: int) -> int:
    """Rungs in the smaller half of an r-rung ladder (the middle rung, if any, goes to the smaller half)."""
    return (r + 1) // 2


def extrapolation_weights(t: np.ndarray) -> np.ndarray:
    """w (R,) such that y @ w = mean over the larger half of (y − line fitted to the smaller half, in t)."""
    r = len(t)
    k = split(r)
    x = np.column_stack([np.ones(k), t[:k]])
    pred = np.column_stack([np.ones(r - k), t[k:]]) @ np.linalg.pinv(x)  # (R−k, k): predictions from y[:k]
    w = np.zeros(r)
    w[k:] += 1.0 / (r - k)
    w[:k] -= pred.mean(axis=0)
    return w


def half_difference_weights(r: int) -> np.ndarray:
    """w (R,) such that y @ w = mean(larger half) − mean(smaller half)."""
    k = split(r)
    w = np.zeros(r)
    w[k:] = 1.0 / (r - k)
    w[:k] = -1.0 / k
    return w


def dip(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first − interior min, last − interior min): both clearly positive is a U; metric units."""
    if y.shape[-1] < 3:
        z = np.zeros(y.shape[:-1])
        return z, z
    low = np.min(y[..., 1:-1], axis=-1)
    return y[..., 0] - low, y[..., -1] - low


def hinge_vs_line(y: np.ndarray, t: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ΔAIC = AIC(line) − AIC(flat-then-rise hinge) and the hinge's changepoint (in t), per curve.

    y: (C, R); sigma: (C,) the noise of one rung mean (bootstrap standard error), so χ² = SSE / σ².
    Line: y = a + b·t (2 parameters). Hinge: y = a + b·max(0, t − c) with c on a grid of the interior rungs
    (3 parameters). ΔAIC > 0 favours the hinge.
    """
    r = len(t)

    def sse(x: np.ndarray) -> np.ndarray:
        resid = np.eye(r) - x @ np.linalg.pinv(x)
        e = y @ resid.T
        return np.sum(e * e, axis=-1)

    line = sse(np.column_stack([np.ones(r), t]))
    cands = t[1:-1]
    hinge = np.stack([sse(np.column_stack([np.ones(r), np.maximum(0.0, t - c)])) for c in cands], axis=-1)
    best = np.argmin(hinge, axis=-1)
    s2 = np.maximum(sigma, 1e-9) ** 2
    d_aic = (line / s2 + 4.0) - (np.take_along_axis(hinge, best[..., None], -1)[..., 0] / s2 + 6.0)
    return d_aic, cands[best]


def min_effect(mean: np.ndarray) -> np.ndarray:
    """Smallest change worth calling a change, per curve (C,): 0.05 in [0, 1] metrics, 5 % of the level else."""
    return 0.05 * np.maximum(1.0, np.nanmedian(np.abs(mean), axis=-1))
