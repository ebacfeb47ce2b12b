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

import functools
import itertools

import numpy as np

JUMP_SHARE = 0.5
"""A jump: at least this share of the half difference D is missed by the small-model trend (e ≥ JUMP_SHARE · D)."""


def _slabs(y: np.ndarray) -> list[np.ndarray]:
    """y[..., j] for every rung j. For a block of bootstrap replicates (`curves.curve_blocks`) each slab is
    contiguous, so everything below is a few elementwise passes over in-cache arrays instead of reductions along a
    short strided axis."""
    return [y[..., j] for j in range(y.shape[-1])]


def weighted_sum(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """y @ w over the rung axis, slab by slab (no copy of a transposed y)."""
    out = np.zeros(y.shape[:-1], dtype=np.result_type(y.dtype, np.float32))
    term = np.empty_like(out)
    for j, sl in enumerate(_slabs(y)):
        if w[j] != 0:
            np.multiply(np.asarray(w[j], dtype=out.dtype), sl, out=term)
            out += term
    return out


def _total_change(y: np.ndarray) -> np.ndarray:
    """I(y) = sign(argmax y − argmin y) · (max y − min y), first occurrences; NaN where any rung is NaN."""
    sl = _slabs(y)
    hi, lo = sl[0].copy(), sl[0].copy()
    # whether the latest new extreme (scanning up the ladder) was a maximum: argmax ≥ argmin, since a rung
    # cannot set both; true while no rung has set either
    rising = np.ones(hi.shape, dtype=bool)
    for v in sl[1:]:
        rising |= v > hi
        rising &= v >= lo
        np.maximum(hi, v, out=hi)
        np.minimum(lo, v, out=lo)
    hi -= lo
    return np.where(rising, hi, -hi)


@functools.cache
def _median_network(m: int) -> tuple[tuple[int, int, bool, bool], ...]:
    """Comparators (i, j, keep min at i, keep max at j) that leave the median of m values at position m // 2
    (and m // 2 − 1 for even m): Batcher's odd-even merge sort on the next power of two (positions ≥ m hold +inf
    and never move), pruned backwards to what the median positions depend on."""
    size = 1 << max(m - 1, 0).bit_length()
    net: list[tuple[int, int]] = []

    def merge(lo: int, hi: int, r: int) -> None:
        step = 2 * r
        if step < hi - lo:
            merge(lo, hi, step)
            merge(lo + r, hi, step)
            net.extend((i, i + r) for i in range(lo + r, hi - r, step))
        else:
            net.append((lo, lo + r))

    def sort(lo: int, hi: int) -> None:
        if hi - lo >= 1:
            mid = lo + (hi - lo) // 2
            sort(lo, mid)
            sort(mid + 1, hi)
            merge(lo, hi, 1)

    sort(0, size - 1)
    needed = {m // 2, (m - 1) // 2}
    kept: list[tuple[int, int, bool, bool]] = []
    for i, j in reversed([c for c in net if c[1] < m]):
        if i in needed or j in needed:
            kept.append((i, j, i in needed, j in needed))
            needed |= {i, j}
    return tuple(reversed(kept))


def _median(slabs: list[np.ndarray]) -> np.ndarray:
    """Elementwise median of a few equal-shape arrays by a pruned sorting network (`_median_network`). The arrays
    are overwritten. NaN inputs give an unspecified value: callers mask them."""
    m = len(slabs)
    v = list(slabs)
    tmp = np.empty_like(v[0])
    for i, j, keep_min, keep_max in _median_network(m):
        if keep_min and keep_max:
            np.minimum(v[i], v[j], out=tmp)
            np.maximum(v[i], v[j], out=v[j])
            v[i], tmp = tmp, v[i]
        elif keep_min:
            np.minimum(v[i], v[j], out=v[i])
        else:
            np.maximum(v[i], v[j], out=v[j])
    return v[m // 2] if m % 2 else (v[m // 2 - 1] + v[m // 2]) / 2


def _diff2(y: np.ndarray) -> list[np.ndarray]:
    out = []
    for a, b in itertools.pairwise(_slabs(y)):
        d = np.subtract(b, a, out=np.empty_like(b))  # an array even for one curve's 0-d slabs
        out.append(np.square(d, out=d))
    return out


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
