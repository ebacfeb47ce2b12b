"""What moves the threshold: two conditions (A and B) on one ladder, task and metric, scored on the same examples.

Two questions, both answered with a paired bootstrap over examples (one resample of example indices is applied to
both conditions at every rung, so what the pairing cancels stays cancelled):

- **Threshold shift**: each condition's emergence point t* — where the sigmoid trend of `forecast.fit_trend`
  through its rung means crosses a stated level — and the shift t*_A − t*_B. t is the scale axis' coordinate
  (`curves.axis_position`: log10 of a count, so a shift of −1 means A emerges one decade of scale earlier).
- **Sign flip** of the paired difference d = A − B across rungs (CoT − direct hurts small models and helps large
  ones: Wei et al. 2022b). A flip is claimed only when one rung's d is significantly of one sign and a larger rung's
  significantly of the other, with per-rung intervals at the Bonferroni level 1 − α/R, so on a ladder where d is
  flat at 0 a flip is claimed with probability ≤ α. Its location is where the piecewise-linear curve of rung means
  crosses zero between those two rungs, with a bootstrap interval from the same rule applied to each replicate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from emergentlab.analysis.curves import percentile_interval
from emergentlab.analysis.forecast import Bounds, crossing, fit_trend


@dataclass(frozen=True)
class Shift:
    """Emergence points and their shift, in axis coordinates t (decades of scale for a count axis).

    `point_a`/`point_b`: t where each condition's trend crosses `level` (metric unit); NaN if it never does within
    the fitted sigmoid's range. `shift` = point_a − point_b; `lo`/`hi` its percentile interval at `confidence` over
    the bootstrap replicates in which both trends cross (`share_crossed` of them, a fraction)."""

    level: float
    point_a: float
    point_b: float
    shift: float
    lo: float
    hi: float
    confidence: float
    share_crossed: float


@dataclass(frozen=True)
class Flip:
    """The sign flip of d = A − B (metric unit) over the rungs at coordinates `t`.

    `mean`, `lo`, `hi`: per-rung mean paired difference and its simultaneous interval (level 1 − α/R each).
    `found`: whether some rung is significantly of one sign and a larger rung significantly of the other.
    `direction`: +1 when d turns from negative to positive with scale (A starts to help), −1 the other way, 0 when
    no flip is found. `at`: t where the rung-mean curve crosses zero between those rungs; `at_lo`/`at_hi` its
    percentile interval at 1 − α over the replicates that cross in the same direction (`share_crossed` of them)."""

    t: tuple[float, ...]
    mean: tuple[float, ...]
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    alpha: float
    found: bool
    direction: int
    at: float
    at_lo: float
    at_hi: float
    share_crossed: float

    def text(self, unit: str = "t") -> str:
        """One sentence: where A − B changes sign, or that it does not within the ladder."""
        if not self.found:
            return f"no flip within the ladder (no pair of rungs significantly of opposite sign at α = {self.alpha})"
        way = "negative to positive" if self.direction > 0 else "positive to negative"
        return (f"A − B turns from {way} at {unit} = {self.at:.2f} "
                f"({100 * (1 - self.alpha):.0f} % interval {self.at_lo:.2f}–{self.at_hi:.2f})")


def _paired(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 2 or a.shape != b.shape or a.shape[0] < 2 or a.shape[1] < 2:
        raise ValueError(f"need paired scores (examples ≥ 2, rungs ≥ 2) of one shape, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("paired scores must be finite (drop examples missing in either condition first)")
    return a, b


def _resample_weights(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) weights: how often each example is drawn in a replicate, divided by n (rows sum to 1)."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot) / n


def emergence_point(t: np.ndarray, means: np.ndarray, level: float, bounds: Bounds = (0.0, 1.0)) -> np.ndarray:
    """t where the trend through rung means (R,) or (B, R) crosses `level`: a number or (B,), NaN where it never
    does."""
    p = np.atleast_2d(fit_trend(np.asarray(t, dtype=float), means, bounds))
    out = np.array([crossing(row, level) for row in p])
    return out if np.ndim(means) > 1 else out[0]


def threshold_shift(t: np.ndarray, a: np.ndarray, b: np.ndarray, level: float, rng: np.random.Generator, *,
                    bounds: Bounds = (0.0, 1.0), n_boot: int = 1000, confidence: float = 0.95) -> Shift:
    """Each condition's emergence point and their shift, with a paired bootstrap over examples.

    `t`: (R,) rung coordinates; `a`, `b`: (E, R) per-example scores of the same E examples at every rung, in the
    metric's unit; `bounds`: the metric's range (finite for the sigmoid trend)."""
    a, b = _paired(a, b)
    t = np.asarray(t, dtype=float)
    pa, pb = float(emergence_point(t, a.mean(0), level, bounds)), float(emergence_point(t, b.mean(0), level, bounds))
    w = _resample_weights(a.shape[0], n_boot, rng)
    ra, rb = emergence_point(t, w @ a, level, bounds), emergence_point(t, w @ b, level, bounds)
    d = ra - rb
    ok = np.isfinite(d)
    lo, hi = percentile_interval(d[None].copy(), confidence) if ok.any() else (np.array([np.nan]),) * 2
    return Shift(level, pa, pb, pa - pb, float(lo[0]), float(hi[0]), confidence, float(ok.mean()))


def _zero_crossing(t: np.ndarray, d: np.ndarray, direction: int, i: int, j: int) -> float:
    """t of the first crossing of zero in `direction` by the piecewise-linear curve (t, d) on rungs i..j."""
    s = np.sign(d) * direction
    for k in range(i, j):
        if s[k] < 0 <= s[k + 1] or s[k] == 0 < s[k + 1]:
            return float(t[k] + (t[k + 1] - t[k]) * (0.0 - d[k]) / (d[k + 1] - d[k]))
    return math.nan


def sign_flip(t: np.ndarray, a: np.ndarray, b: np.ndarray, rng: np.random.Generator, *, alpha: float = 0.05,
              n_boot: int = 2000) -> Flip:
    """Where the paired difference A − B changes sign across rungs, or that it does not (see the module doc).

    `t`: (R,) increasing rung coordinates; `a`, `b`: (E, R) per-example scores of the same examples."""
    a, b = _paired(a, b)
    t = np.asarray(t, dtype=float)
    if np.any(np.diff(t) <= 0):
        raise ValueError("rung coordinates t must be strictly increasing")
    d = a - b
    r = d.shape[1]
    mean = d.mean(0)
    reps = _resample_weights(d.shape[0], n_boot, rng) @ d  # (B, R)
    lo, hi = percentile_interval(reps.T.copy(), 1 - alpha / r)
    sig = np.where(lo > 0, 1, np.where(hi < 0, -1, 0))
    nz = np.flatnonzero(sig)
    first = int(sig[nz[0]]) if nz.size else 0
    opposite = np.flatnonzero(sig == -first) if first else np.array([], dtype=int)
    opposite = opposite[opposite > nz[0]] if first else opposite
    none = Flip(tuple(t), tuple(mean), tuple(lo), tuple(hi), alpha, False, 0, math.nan, math.nan, math.nan, 0.0)
    if opposite.size == 0:
        return none
    j = int(opposite[0])
    i = int(np.flatnonzero(sig[:j] == first)[-1])
    direction = -first
    at = _zero_crossing(t, mean, direction, i, j)
    # a replicate whose curve does not cross inside the bracket is searched over the whole ladder, so a flip that
    # wanders past a bracket rung still counts where it falls
    ats = np.array([_zero_crossing(t, row, direction, i, j) for row in reps])
    miss = np.isnan(ats)
    ats[miss] = [_zero_crossing(t, row, direction, 0, r - 1) for row in reps[miss]]
    ok = np.isfinite(ats)
    a_lo, a_hi = percentile_interval(ats[None].copy(), 1 - alpha) if ok.any() else (np.array([np.nan]),) * 2
    return Flip(tuple(t), tuple(mean), tuple(lo), tuple(hi), alpha, True, direction, at, float(a_lo[0]),
                float(a_hi[0]), float(ok.mean()))
