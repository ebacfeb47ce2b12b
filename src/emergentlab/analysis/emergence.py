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


def _slabs(y: np.ndarray) -> list[np.ndarray]:
    """y[..., j] for every rung j. For the bootstrap's (B, C, R) view each slab is contiguous, so everything
    below is a few elementwise passes over (B, C) arrays instead of reductions along a short strided axis."""
    return [y[..., j] for j in range(y.shape[-1])]


def weighted_sum(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """y @ w over the rung axis, slab by slab (no copy of a transposed y)."""
    out = np.zeros(y.shape[:-1], dtype=np.result_type(y.dtype, np.float32))
    for j, sl in enumerate(_slabs(y)):
        if w[j] != 0:
            out += np.asarray(w[j], dtype=out.dtype) * sl
    return out


def _total_change(y: np.ndarray) -> np.ndarray:
    sl = _slabs(y)
    hi, lo = sl[0].copy(), sl[0].copy()
    arg_hi, arg_lo = np.zeros(hi.shape, np.int8), np.zeros(hi.shape, np.int8)
    for j, v in enumerate(sl[1:], start=1):
        up, down = v > hi, v < lo
        np.copyto(hi, v, where=up)
        np.copyto(lo, v, where=down)
        np.copyto(arg_hi, j, where=up)
        np.copyto(arg_lo, j, where=down)
    return np.where(arg_hi >= arg_lo, 1.0, -1.0) * (hi - lo)


def _median(slabs: list[np.ndarray]) -> np.ndarray:
    """Elementwise median of a few equal-shape arrays (odd-even transposition sort: a sorting network).
    The arrays are overwritten."""
    shape = np.shape(slabs[0])
    v = [np.asarray(x).reshape(-1) for x in slabs]  # callers pass fresh arrays: sorted in place
    m = len(v)
    for rnd in range(m):
        for i in range(rnd % 2, m - 1, 2):
            lo = np.minimum(v[i], v[i + 1])
            np.maximum(v[i], v[i + 1], out=v[i + 1])
            v[i] = lo
    return (v[m // 2] if m % 2 else (v[m // 2 - 1] + v[m // 2]) / 2).reshape(shape)


def _diff2(y: np.ndarray) -> list[np.ndarray]:
    sl = _slabs(y)
    return [(b - a) ** 2 for a, b in zip(sl[:-1], sl[1:], strict=True)]


def breakthroughness(y: np.ndarray, cap: float = 1e3) -> np.ndarray:
    """BIG-bench B = I(y) / sqrt(median(Δy²)); clipped to ±cap (a perfect step has a zero median step)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        b = _total_change(y) / np.sqrt(_median(_diff2(y)))
    return np.clip(np.nan_to_num(b, nan=0.0, posinf=cap, neginf=-cap), -cap, cap)


def linearity(y: np.ndarray) -> np.ndarray:
    """BIG-bench L = I(y) / sqrt(mean(Δy²)); 0 for a flat curve."""
    d2 = _diff2(y)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.nan_to_num(_total_change(y) / np.sqrt(sum(d2) / len(d2)), nan=0.0)


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
    sl = _slabs(y)
    low = sl[1].copy()
    for v in sl[2:-1]:
        np.minimum(low, v, out=low)
    return sl[0] - low, sl[-1] - low


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
