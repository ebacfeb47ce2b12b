"""Forecasts with backtests: where will a metric be at the next rung, and at what scale does it cross a threshold?

The trend model is a sigmoid in log scale for metrics whose declared range (`metrics.Declared.bounds`) is finite
(fractions and probabilities in [0, 1], Brier in [0, 2]): y = lo + (hi − lo) / (1 + exp(−(t − t0) / s)),
t = log10(scale) (or −loss), with lo and hi inside the range; a straight line in t for the rest, cut at the range's
finite end if it has one. A sigmoid's intervals span every sigmoid that fits the rungs within their noise (a
profile likelihood set, `plausible`; rung standard errors from the bootstrap over examples, or from binomial draws
from n for published scores), calibrated on synthetic ladders with known crossings
(benchmarks/results/forecast_calibration.md: nominal 90 % covers 85–95 %); with no more rungs than its four
parameters they widen to what any monotone curve through the rungs allows (`bracket_crossing`, `bracket_values`).
A line's come from refitting on bootstrap replicates. Predicted rungs widen in quadrature by their own noise, and
every band is cut to the metric's range. The exact-match forecast is also made from its continuous partner (the
per-token accuracy p, fitted and raised to the answer length k: Schaeffer et al. 2023) and both are backtested.
A rolling-origin backtest fits on the smallest k rungs and predicts every larger one, for each k ≥ `min_train`:
its absolute error and interval coverage say how far to trust the forecast. Hu et al. 2023's task scaling law,
log(−log PU) linear in log N (`law_fit`), is fitted here to the teacher-forced target-string probability
(`target_string_law`: mean over examples of p(reference | prompt)), a cheap stand-in for their sampled PassUntil
rate, which `analysis.passuntil` estimates from draws.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import chi2 as chi2dist
from scipy.stats import norm

from emergentlab.analysis.checks import MIRAGE_PAIR
from emergentlab.analysis.curves import CURVE_KEYS, CurveSet, axis_position, axis_value, rung_se

Bounds = tuple[float, float]
"""A metric's range (lo, hi) in its unit; ±inf where open."""

SIGMOID_PARAMS = 4
"""lo, hi, t0, s: a ladder needs more rungs than this for the sigmoid's tails to be tested by the data."""
_GRID_BLOCK = 2**14  # (grid point, replicate) entries per block of the sigmoid fit (128 KB per float64 temporary)


def _sigmoid(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    lo, hi, t0, s = p
    return lo + (hi - lo) / (1.0 + np.exp(-np.clip((t - t0) / s, -60, 60)))


def _grid(t: np.ndarray, t0s: np.ndarray | None = None,
          ss: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (t0, s) grid a sigmoid fit searches (by default the ladder-wide one every fit starts from), and each grid
    point's unit sigmoid at the rungs t (G, R)."""
    span = max(float(np.ptp(t)), 1e-6)
    if t0s is None or ss is None:
        t0s = np.linspace(t.min() - span, t.max() + 2 * span, 241)  # 1/60 of the ladder's span per step
        ss = np.geomspace(span / 100, 2 * span, 20)
    g_t0, g_s = np.repeat(t0s, len(ss)), np.tile(ss, len(t0s))
    return g_t0, g_s, 1.0 / (1.0 + np.exp(-np.clip((t[None] - g_t0[:, None]) / g_s[:, None], -60, 60)))


def fit_trend(t: np.ndarray, y: np.ndarray, bounds: Bounds) -> np.ndarray:
    """Trend parameters through (t, y) for one curve y (R,) or many (B, R): (…, 4) sigmoid (lo, hi, t0, s), lo and
    hi inside `bounds`, when both bounds are finite, else (…, 2) line (a, b).

    The sigmoid is fitted to y rescaled to [0, 1] by the bounds. It is linear in (lo, hi) once (t0, s) is fixed, so
    every replicate is fitted at once by solving the 2-parameter least squares on a grid of (t0, s) and keeping each
    replicate's best. A single curve goes through the same grid (no local polish), so a point estimate and its
    bootstrap replicates come from one estimator and the point cannot fall outside its own interval by a change of
    method.
    """
    y2 = np.atleast_2d(np.asarray(y, dtype=float))
    ok = np.isfinite(y2).all(axis=0)
    t_, y_ = t[ok], y2[:, ok]
    b_lo, b_hi = bounds
    if not (np.isfinite(b_lo) and np.isfinite(b_hi)):
        x = np.column_stack([np.ones(len(t_)), t_])
        coef = np.linalg.lstsq(x, y_.T, rcond=None)[0].T
        return coef[0] if np.ndim(y) == 1 else coef
    y_ = (y_ - b_lo) / (b_hi - b_lo)
    g_t0, g_s, sig = _grid(t_)
    x = np.stack([1.0 - sig, sig], axis=-1)  # (G, R, 2)
    # normal equations per grid point; SSE as a quadratic form, so no (G, R, B) prediction is materialised
    xtx = np.einsum("gri,grj->gij", x, x)
    xt = np.ascontiguousarray(x.transpose(0, 2, 1)).reshape(-1, len(t_))  # (2G, R)
    # a grid point whose sigmoid is constant over the rungs is singular: its (clipped) guess just loses on SSE
    det = np.maximum(xtx[:, 0, 0] * xtx[:, 1, 1] - xtx[:, 0, 1] ** 2, 1e-12)
    y_t = np.ascontiguousarray(y_.T)
    yy = np.sum(y_ * y_, axis=1)
    n = y_.shape[0]
    cols = np.arange(n)
    best = np.full(n, np.inf)
    params = np.zeros((n, 4))
    # blocks of grid points, so the (grid, replicate) temporaries stay in cache; the running minimum keeps the
    # first grid point on ties, as one argmin over the whole grid would
    step = max(1, _GRID_BLOCK // max(n, 1))
    for lo in range(0, len(g_t0), step):
        g = slice(lo, min(lo + step, len(g_t0)))
        xty = (xt[2 * g.start:2 * g.stop] @ y_t).reshape(g.stop - g.start, 2, n)  # (g, 2, B)
        a_, b_, d_, det_ = xtx[g, 0, 0, None], xtx[g, 0, 1, None], xtx[g, 1, 1, None], det[g, None]
        c0 = np.clip((d_ * xty[:, 0] - b_ * xty[:, 1]) / det_, 0.0, 1.0)  # (g, B)
        c1 = np.clip((a_ * xty[:, 1] - b_ * xty[:, 0]) / det_, 0.0, 1.0)
        sse = (yy[None] - 2 * (c0 * xty[:, 0] + c1 * xty[:, 1])
               + a_ * c0 * c0 + 2 * b_ * c0 * c1 + d_ * c1 * c1)  # (g, B)
        k = np.argmin(sse, axis=0)
        m = sse[k, cols]
        won = m < best
        best[won] = m[won]
        kw = k[won]
        params[won] = np.column_stack([c0[kw, cols[won]], c1[kw, cols[won]], g_t0[g][kw], g_s[g][kw]])
    params[:, :2] = b_lo + (b_hi - b_lo) * params[:, :2]  # levels back in the metric's unit
    return params if np.ndim(y) > 1 else params[0]


def predict_trend(p: np.ndarray, t: np.ndarray, bounds: Bounds = (-np.inf, np.inf)) -> np.ndarray:
    """Trend values at t for parameters p (P,) → (len(t),), or (B, P) → (B, len(t)), inside `bounds` (a line can
    leave a half-open range; a sigmoid fitted by `fit_trend` never leaves its own)."""
    if p.ndim == 2:
        y = _sigmoid(p.T[..., None], t) if p.shape[1] == 4 else p[:, :1] + p[:, 1:2] * t
    else:
        y = _sigmoid(p, t) if len(p) == 4 else p[0] + p[1] * t
    return np.clip(y, *bounds)


def crossing(p: np.ndarray, threshold: float) -> float:
    """t at which the trend reaches `threshold` (NaN if it never does)."""
    if len(p) == 2:
        return (threshold - p[0]) / p[1] if p[1] != 0 else float("nan")
    lo, hi, t0, s = p
    lo_, hi_ = min(lo, hi), max(lo, hi)
    if not lo_ < threshold < hi_:
        return float("nan")
    return float(t0 - s * np.log((hi - lo) / (threshold - lo) - 1.0))


def sigmoid_crossings(p: np.ndarray, threshold: float) -> np.ndarray:
    """t at which each sigmoid of p (G, 4) reaches `threshold`: +inf where it never does because the threshold lies
    beyond its far level (it would cross later), −inf where it lies behind its near level (it crossed before)."""
    lo, hi, t0, s = p.T
    d = np.sign(hi - lo)
    inside = (d * (threshold - lo) > 0) & (d * (hi - threshold) > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = t0 - s * np.log((hi - lo) / (threshold - lo) - 1.0)
    return np.where(inside, t, np.where(d * (threshold - lo) <= 0, -np.inf, np.inf))


def profile_fits(t: np.ndarray, y: np.ndarray, se: np.ndarray, bounds: Bounds, t0s: np.ndarray | None = None,
                 ss: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every sigmoid of the (t0, s) grid with its best levels (lo, hi inside `bounds`) by weighted least squares,
    and its χ² = Σ ((y − fit) / se)²: (G, 4) parameters in the metric's unit and (G,) χ² (unitless).

    The levels are the exact box-constrained optimum for the grid point (the unconstrained solution when it lies
    inside the range, else the best of the solutions along the box's edges), so a grid point's χ² is its profile.
    """
    b_lo, b_hi = bounds
    w = ((b_hi - b_lo) / se) ** 2
    yu = (y - b_lo) / (b_hi - b_lo)
    g_t0, g_s, sig = _grid(t, t0s, ss)
    x0, x1 = 1.0 - sig, sig
    a, b, d = (x0 * x0) @ w, (x0 * x1) @ w, (x1 * x1) @ w
    u0, u1 = x0 @ (w * yu), x1 @ (w * yu)
    yy = float(np.sum(w * yu * yu))
    det = np.maximum(a * d - b * b, 1e-12)
    cands = [((d * u0 - b * u1) / det, (a * u1 - b * u0) / det)]
    for edge in (0.0, 1.0):
        cands.append((np.full_like(a, edge), np.clip((u1 - b * edge) / np.maximum(d, 1e-12), 0, 1)))
        cands.append((np.clip((u0 - b * edge) / np.maximum(a, 1e-12), 0, 1), np.full_like(a, edge)))
    best = np.full(len(a), np.inf)
    c0b, c1b = np.zeros(len(a)), np.zeros(len(a))
    for c0, c1 in cands:
        ok = (c0 >= 0) & (c0 <= 1) & (c1 >= 0) & (c1 <= 1)
        chi2 = yy - 2 * (c0 * u0 + c1 * u1) + a * c0 * c0 + 2 * b * c0 * c1 + d * c1 * c1
        won = ok & (chi2 < best)
        best[won], c0b[won], c1b[won] = chi2[won], c0[won], c1[won]
    params = np.column_stack([b_lo + (b_hi - b_lo) * c0b, b_lo + (b_hi - b_lo) * c1b, g_t0, g_s])
    return params, np.maximum(best, 0.0)


def plausible(t: np.ndarray, y: np.ndarray, se: np.ndarray, bounds: Bounds,
              level: float) -> tuple[np.ndarray, np.ndarray, str]:
    """The sigmoids that fit (t, y) as well as the best one within the data's noise, at confidence `level`:
    χ² ≤ χ²_min + q · max(1, χ²_min / (R − 4)), q the `level` quantile of χ² with one degree of freedom (a profile
    likelihood interval for any one quantity of the curve, such as its crossing); the factor widens the set where
    the rungs scatter about the best sigmoid more than their standard errors say (a shape the sigmoid misses).
    Returns the best parameters (4,), the plausible set (P, 4) and a note (empty when nothing to say) when rungs
    are too few to pin the sigmoid's four parameters."""
    params, chi2 = profile_fits(t, y, se, bounds)
    dof = len(t) - SIGMOID_PARAMS
    q = float(chi2dist.ppf(level, 1))
    # the ladder-wide grid is coarser than a well-measured crossing: search again, finely, around its plausible part
    near = params[chi2 <= chi2.min() + 4 * q * max(1.0, chi2.min() / dof if dof > 0 else 1.0)]
    span = max(float(np.ptp(t)), 1e-6)
    t0s = np.linspace(near[:, 2].min() - span / 80, near[:, 2].max() + span / 80, 161)
    ss = np.geomspace(near[:, 3].min() / 1.3, near[:, 3].max() * 1.3, 40)
    fine, fine_chi2 = profile_fits(t, y, se, bounds, t0s, ss)
    params, chi2 = np.concatenate([params, fine]), np.concatenate([chi2, fine_chi2])
    k = int(np.argmin(chi2))
    scale = max(1.0, chi2[k] / dof) if dof > 0 else 1.0
    keep = chi2 <= chi2[k] + q * scale
    note = (f"{len(t)} rungs for a {SIGMOID_PARAMS}-parameter sigmoid: the interval is what any monotone curve "
            "through the rungs allows" + (" and no single fit is best" if dof < 0 else "") if dof <= 0 else "")
    return params[k], params[keep], note


def z_of(level: float) -> float:
    """The standard normal quantile of a two-sided `level` interval (1.645 for 90 %)."""
    return float(norm.ppf(1 - (1 - level) / 2))


def bracket_crossing(t: np.ndarray, y: np.ndarray, half: np.ndarray, threshold: float) -> tuple[float, float]:
    """Where a curve that moves one way only can cross `threshold`, from the rungs alone: after the last rung
    surely on the start's side (y ± half, `half` the interval's half-width per rung) and before the first rung
    surely past it (±inf when no rung is)."""
    d = 1.0 if y[-1] >= y[0] else -1.0
    below = d * (y + half - threshold) < 0
    above = d * (y - half - threshold) > 0
    first_above = int(np.argmax(above)) if above.any() else len(t)
    before = np.flatnonzero(below[:first_above])
    return (float(t[before[-1]]) if before.size else -np.inf), (float(t[first_above]) if above.any() else np.inf)


def bracket_values(t: np.ndarray, y: np.ndarray, half: np.ndarray, t_out: np.ndarray,
                   bounds: Bounds) -> tuple[np.ndarray, np.ndarray]:
    """What a curve that moves one way only can be at t_out, from the rungs alone: between its neighbouring rungs'
    intervals (y ± half) inside the ladder; past it, between the nearest end rung's interval and the metric's
    bound in the direction the curve moved (the other bound before the ladder)."""
    up = y[-1] >= y[0]
    lo_r, hi_r = y - half, y + half
    lo, hi = np.empty(len(t_out)), np.empty(len(t_out))
    for m, x in enumerate(t_out):
        j = int(np.searchsorted(t, x))
        if j >= len(t):
            lo[m], hi[m] = (lo_r[-1], bounds[1]) if up else (bounds[0], hi_r[-1])
        elif j == 0 and x < t[0]:
            lo[m], hi[m] = (bounds[0], hi_r[0]) if up else (lo_r[0], bounds[1])
        else:
            nb = [j - 1, j] if x < t[j] else [j]
            lo[m], hi[m] = lo_r[nb].min(), hi_r[nb].max()
    return np.clip(lo, *bounds), np.clip(hi, *bounds)


def rung_noise(cs: CurveSet, i: int, se: np.ndarray | None = None) -> np.ndarray:
    """Standard error of each rung mean of curve i (R,) in the metric's unit: the bootstrap's, but never below a
    binomial floor from the example count for a bounded metric (a rung at 0 % or 100 % has a bootstrap se of 0,
    yet n examples only bound the rate to about 1/n); NaN when no uncertainty is known (no replicates, no n).
    `se`: `rung_se` of the whole set (C, R), computed when omitted (pass it when asking for many curves)."""
    if se is None:
        se = rung_se(cs.boot, cs.mean)
    se = se[i] if cs.boot is not None else np.full(cs.mean.shape[1], np.nan)
    b_lo, b_hi = float(cs.keys["bound_lo"].iat[i]), float(cs.keys["bound_hi"].iat[i])
    n = cs.n[i]
    if np.isfinite(b_lo) and np.isfinite(b_hi):
        q = (np.clip((cs.mean[i] - b_lo) / (b_hi - b_lo), 0, 1) * n + 0.5) / (n + 1)
        floor = (b_hi - b_lo) * np.sqrt(q * (1 - q) / n)
        se = np.where(np.isfinite(se) & (se > 0), np.maximum(se, floor), floor)
    return se


class Forecaster:
    """sklearn-like: `Forecaster(threshold, n_boot, seed, level, at=…).fit(curveset)`.

    Fitted on the discontinuous curves (the headline metrics) of one `CurveSet` (one scale axis).
    Intervals come from the data's uncertainty. For a sigmoid (a bounded metric) they span every sigmoid that fits
    the rungs within their noise (`plausible`: a profile likelihood set, with rung standard errors from the
    bootstrap over examples, or from the binomial draws from n for published scores); with fewer rungs than the
    sigmoid has parameters that set is as wide as the data leave it, and an end no plausible sigmoid reaches is
    ±inf. For a line they are percentiles of refits on the bootstrap replicates.
    `backtest_`: one row per (curve, origin k, predicted rung): observed, predicted, lo, hi (the interval, widened
    in quadrature by the noise of the rung being predicted and cut to the metric's range), covered.
    `summary_`: per curve: mean absolute error and coverage over the backtest, the threshold crossing on the axis
    (x in the axis' unit: parameters, FLOPs, tokens, steps, or loss in nats) with its interval and `interval_note`,
    and, when `at` (an axis value) is given, the metric predicted there (`at_pred`, `at_lo`, `at_hi`).
    `partner_`: per exact-match curve with a per-token accuracy p and a known answer length k: the rolling-origin
    backtest of the direct fit and of p's fit raised to k (Schaeffer et al.'s construction), each one's mean
    absolute error on the same held-out rungs, which wins, and both predictions at `at` (default: 10× the largest
    rung, or one rung step past it on a loss axis).
    `fits_`: per curve the full-ladder trend parameters and the fitted curve on a fine grid (for plots): `t` (axis
    position), `x` (the same in the axis' unit) and `y` (metric unit, inside its range).
    """

    def __init__(self, threshold: float = 0.5, n_boot: int = 100, seed: int = 0, level: float = 0.9,
                 min_train: int = 4, metrics: tuple[str, ...] | None = None, at: float | None = None) -> None:
        self.threshold, self.n_boot, self.seed, self.level = threshold, n_boot, seed, level
        self.min_train, self.metrics, self.at = min_train, metrics, at

    def _replicates(self, cs: CurveSet, i: int) -> np.ndarray:
        if cs.boot is None:
            return cs.mean[i][None]
        rng = np.random.default_rng(self.seed + i)
        pick = rng.choice(cs.boot.shape[0], size=min(self.n_boot, cs.boot.shape[0]), replace=False)
        return cs.boot[pick, i].astype(float)

    def _band(self, cs: CurveSet, i: int, rungs: slice, t_out: np.ndarray,
              se: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
        """Fit curve i on `rungs` and predict at t_out: point (T,), interval (lo, hi) of the trend itself, the
        trend parameters, and the plausible set's note."""
        bounds = (float(cs.keys["bound_lo"].iat[i]), float(cs.keys["bound_hi"].iat[i]))
        t, y = cs.t[rungs], cs.mean[i, rungs]
        a = (1 - self.level) / 2
        if np.isfinite(bounds).all() and np.isfinite(se[rungs]).all():
            p, ok, note = plausible(t, y, se[rungs], bounds, self.level)
            preds = predict_trend(ok, t_out, bounds)
            lo, hi = preds.min(axis=0), preds.max(axis=0)
            if note:  # too few rungs to trust the sigmoid's tails: only what a monotone curve allows
                b_lo, b_hi = bracket_values(t, y, z_of(self.level) * se[rungs], t_out, bounds)
                lo, hi = np.minimum(lo, b_lo), np.maximum(hi, b_hi)
            return predict_trend(p, t_out, bounds), lo, hi, p, note
        p = fit_trend(t, y, bounds)
        rp = predict_trend(fit_trend(t, self._replicates(cs, i)[:, rungs], bounds), t_out, bounds)
        return (predict_trend(p, t_out, bounds), np.quantile(rp, a, axis=0), np.quantile(rp, 1 - a, axis=0), p,
                "" if cs.boot is not None else "no uncertainty known (no replicates, no n)")

    def crossing_interval(self, cs: CurveSet, i: int, se: np.ndarray) -> tuple[float, float, float, str]:
        """The crossing t of curve i's full-ladder trend and its interval (t, ±inf for an open end)."""
        bounds = (float(cs.keys["bound_lo"].iat[i]), float(cs.keys["bound_hi"].iat[i]))
        t, y = cs.t, cs.mean[i]
        if np.isfinite(bounds).all() and np.isfinite(se).all():
            p, ok, note = plausible(t, y, se, bounds, self.level)
            c = sigmoid_crossings(ok, self.threshold)
            lo, hi = float(c.min()), float(c.max())
            if note:  # too few rungs to trust the sigmoid's tails: only what a monotone curve allows
                b_lo, b_hi = bracket_crossing(t, y, z_of(self.level) * se, self.threshold)
                lo, hi = min(lo, b_lo), max(hi, b_hi)
            pt = float(sigmoid_crossings(p[None], self.threshold)[0])
            # fewer rungs than parameters: sigmoids through every rung cross anywhere in the bracket, none is best
            return (pt if np.isfinite(pt) and len(t) >= SIGMOID_PARAMS else float("nan")), lo, hi, note
        a = (1 - self.level) / 2
        cross = np.array([crossing(q, self.threshold) for q in fit_trend(t, self._replicates(cs, i), bounds)])
        found = np.isfinite(cross)
        if found.mean() < 0.5:  # noise around a level far from the threshold: no crossing to report
            return float("nan"), float("nan"), float("nan"), "most bootstrap refits never cross"
        lo, hi = np.quantile(cross[found], [a, 1 - a])
        return crossing(fit_trend(t, y, bounds), self.threshold), float(lo), float(hi), ""

    def fit(self, cs: CurveSet) -> Forecaster:
        t = cs.t
        r = len(t)
        z = z_of(self.level)
        se_all = rung_se(cs.boot, cs.mean)
        bt_rows, sum_rows, fits = [], [], {}
        chosen = [i for i in range(len(cs.keys)) if (cs.keys["kind"].iat[i] == "discontinuous"
                  if self.metrics is None else cs.keys["metric"].iat[i] in self.metrics)]
        grid = np.linspace(t.min(), t.max() + 0.25 * np.ptp(t), 80)
        t_at = float(axis_position(cs.axis, np.array([self.at]))[0]) if self.at is not None else None
        for i in chosen:
            key = {k: cs.keys[k].iat[i] for k in CURVE_KEYS}
            bounds = (float(cs.keys["bound_lo"].iat[i]), float(cs.keys["bound_hi"].iat[i]))
            y = cs.mean[i]
            se = rung_noise(cs, i, se_all)
            noise = np.nan_to_num(se)
            for k in range(min(self.min_train, r - 1), r):
                pred, lo_t, hi_t, _, _ = self._band(cs, i, slice(0, k), t[k:], se)
                lo = np.clip(pred - np.hypot(pred - lo_t, z * noise[k:]), *bounds)
                hi = np.clip(pred + np.hypot(hi_t - pred, z * noise[k:]), *bounds)
                for j, (obs, pr) in enumerate(zip(y[k:], pred, strict=True)):
                    bt_rows.append({**key, "origin": k, "rung": k + j, "model": cs.rungs["model"].iat[k + j],
                                    "observed": obs, "predicted": pr, "lo": lo[j], "hi": hi[j],
                                    "covered": bool(lo[j] <= obs <= hi[j])})
            c_pt, c_lo, c_hi, note = self.crossing_interval(cs, i, se)
            x_pt, x_lo, x_hi = (float(axis_value(cs.axis, v)) for v in (c_pt, c_lo, c_hi))
            if cs.axis == "loss":
                x_lo, x_hi = x_hi, x_lo
            _, _, _, p_full, _ = self._band(cs, i, slice(0, r), grid, se)
            fits[tuple(key.values())] = {"params": p_full, "t": grid, "x": axis_value(cs.axis, grid),
                                         "y": predict_trend(p_full, grid, bounds)}
            row = {**key, "axis": cs.axis, "threshold": self.threshold, "crossing": x_pt, "crossing_lo": x_lo,
                   "crossing_hi": x_hi, "interval_note": note, "model": "sigmoid" if len(p_full) == 4 else "line"}
            if t_at is not None:
                at_pt, at_lo, at_hi, _, _ = self._band(cs, i, slice(0, r), np.array([t_at]), se)
                declined = len(p_full) == SIGMOID_PARAMS and r < SIGMOID_PARAMS  # as for the crossing
                row.update(at=self.at, at_pred=float("nan") if declined else float(at_pt[0]), at_lo=float(at_lo[0]),
                           at_hi=float(at_hi[0]))
            sum_rows.append(row)
        self.backtest_ = pd.DataFrame(bt_rows)
        summ = pd.DataFrame(sum_rows)
        if not self.backtest_.empty:
            bt = self.backtest_.assign(abs_error=(self.backtest_["observed"] - self.backtest_["predicted"]).abs())
            agg = bt.groupby(CURVE_KEYS).agg(backtest_mae=("abs_error", "mean"), backtest_coverage=("covered", "mean"),
                                             backtest_n=("covered", "size")).reset_index()
            summ = summ.merge(agg, on=CURVE_KEYS, how="left")
        self.summary_ = summ
        self.fits_ = fits
        self.partner_ = self._partner(cs, t_at, se_all)
        return self

    def _partner(self, cs: CurveSet, t_at: float | None, se_all: np.ndarray) -> pd.DataFrame:
        """Direct fit of exact match against p^k from the per-token accuracy's fit (see the class docstring)."""
        cols = ["task", "variant", "metric", "partner", "k_tokens", "at", "direct", "direct_lo", "direct_hi",
                "from_partner", "from_partner_lo", "from_partner_hi", "mae_direct", "mae_partner", "backtest_n",
                "better"]
        whole, per_token = MIRAGE_PAIR
        idx = {k: i for i, k in enumerate(cs.keys[CURVE_KEYS].itertuples(index=False, name=None))}
        t, r = cs.t, len(cs.t)
        if t_at is None:
            t_at = float(t.max() + (1.0 if cs.axis != "loss" else np.ptp(t) / max(r - 1, 1)))
        rows = []
        for (task, metric, variant), i in idx.items():
            j = idx.get((task, per_token, variant))
            if metric != whole or j is None or not np.isfinite(cs.k_tokens[i]):
                continue
            k_tok = float(cs.k_tokens[i])
            se_i, se_j = rung_noise(cs, i, se_all), rung_noise(cs, j, se_all)
            err_d, err_p = [], []
            for k in range(min(self.min_train, r - 1), r):
                d, *_ = self._band(cs, i, slice(0, k), t[k:], se_i)
                p, *_ = self._band(cs, j, slice(0, k), t[k:], se_j)
                err_d += list(np.abs(cs.mean[i, k:] - d))
                err_p += list(np.abs(cs.mean[i, k:] - np.clip(p, 0, 1) ** k_tok))
            d_pt, d_lo, d_hi, _, _ = self._band(cs, i, slice(0, r), np.array([t_at]), se_i)
            p_pt, p_lo, p_hi, _, _ = self._band(cs, j, slice(0, r), np.array([t_at]), se_j)
            mae_d, mae_p = float(np.mean(err_d)), float(np.mean(err_p))
            rows.append({"task": task, "variant": variant, "metric": metric, "partner": per_token, "k_tokens": k_tok,
                         "at": float(axis_value(cs.axis, t_at)), "direct": float(d_pt[0]), "direct_lo": float(d_lo[0]),
                         "direct_hi": float(d_hi[0]), "from_partner": float(np.clip(p_pt[0], 0, 1) ** k_tok),
                         "from_partner_lo": float(np.clip(p_lo[0], 0, 1) ** k_tok),
                         "from_partner_hi": float(np.clip(p_hi[0], 0, 1) ** k_tok), "mae_direct": mae_d,
                         "mae_partner": mae_p, "backtest_n": len(err_d),
                         "better": "p^k" if mae_p < mae_d else "direct" if mae_d < mae_p else "tie"})
        return pd.DataFrame(rows, columns=cols)


def law_fit(ln_n: np.ndarray, pu: np.ndarray) -> dict[str, float | bool]:
    """Hu et al. 2023's task scaling law PU(N) = exp(−c · N^−α) fitted by least squares on the log(−log) scale:
    log(−log PU) = log c − α · ln N, for pass rates 0 < PU < 1 (probabilities) at sizes N (ln N given).

    Returns α (unitless), c (unitless), R² of the linear fit, `accelerated` (the quadratic term in ln N is
    negative: faster than the law, Hu et al.'s accelerated emergence; False with fewer than 4 rates), and
    `pu_at_10x`, the PU the law predicts at 10× the largest N. Raises ValueError with fewer than 2 rates."""
    ln_n, pu = np.asarray(ln_n, dtype=float), np.asarray(pu, dtype=float)
    if len(pu) < 2 or not ((pu > 0) & (pu < 1)).all():
        raise ValueError("the law needs at least 2 pass rates, each strictly between 0 and 1")
    z = np.log(-np.log(pu))
    slope, icpt = np.polyfit(ln_n, z, 1)
    ss = float(np.sum((z - z.mean()) ** 2))
    r2 = 1 - float(np.sum((z - icpt - slope * ln_n) ** 2)) / ss if ss > 0 else float("nan")
    quad = np.polyfit(ln_n, z, 2)[0] if len(z) >= 4 else float("nan")
    nxt = ln_n.max() + np.log(10.0)
    return {"alpha": float(-slope), "c": float(np.exp(icpt)), "r2": r2,
            "accelerated": bool(np.isfinite(quad) and quad < 0),
            "pu_at_10x": float(np.exp(-np.exp(icpt + slope * nxt)))}


def target_string_law(cs: CurveSet, metric: str = "expected_exact_match") -> pd.DataFrame:
    """The task scaling law (`law_fit`) fitted to the teacher-forced target-string probability: per rung the mean
    over examples of p(a reference answer | prompt), a probability (the accepted answers' probabilities summed).

    Not Hu et al.'s PassUntil, which samples until a pass (`analysis.passuntil`): this counts only the reference
    strings as tokenized, so it misses every other spelling that passes (other whitespace, another tokenization,
    text after the answer that the response rule cuts off) and ignores whether generation stops after the answer —
    a cheap estimate that can fall on either side of the sampled pass rate. Needs a count axis (parameters,
    FLOPs, tokens). Returns per (task, variant) the `law_fit` values and `rungs_used` (rungs with 0 < PU < 1).
    """
    if cs.axis == "loss":
        return pd.DataFrame()
    rows = []
    ln_n = cs.t * np.log(10.0)
    for i in np.flatnonzero(cs.keys["metric"].to_numpy() == metric):
        pu = cs.mean[i]
        ok = (pu > 0) & (pu < 1)
        if ok.sum() < 3:
            continue
        rows.append({"task": cs.keys["task"].iat[i], "variant": cs.keys["variant"].iat[i],
                     **law_fit(ln_n[ok], pu[ok]), "rungs_used": int(ok.sum())})
    return pd.DataFrame(rows)
