"""Forecasts with backtests: where will a metric be at the next rung, and at what scale does it cross a threshold?

The trend model is a sigmoid in log scale for metrics whose declared range (`metrics.Metric.bounds`) is finite
(fractions and probabilities in [0, 1], Brier in [0, 2]): y = lo + (hi − lo) / (1 + exp(−(t − t0) / s)),
t = log10(scale) (or −loss), with lo and hi inside the range; a straight line in t for the rest, cut at the range's
finite end if it has one. Intervals come from refitting on bootstrap replicates of the rung means (parameter
uncertainty), widened in quadrature by the noise of the rung being predicted, and cut to the metric's range.
A rolling-origin backtest fits on the smallest k rungs and predicts every larger one, for each k ≥ `min_train`:
its absolute error and interval coverage say how far to trust the forecast. PassUntil (Hu et al. 2023): with PU
the probability that the greedy target is produced (mean over examples of exp Σ log p), log(−log PU) is fitted
linearly in log10 N.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

from emergentlab.analysis.curves import CURVE_KEYS, CurveSet, axis_value, rung_se

Bounds = tuple[float, float]
"""A metric's range (lo, hi) in its unit; ±inf where open."""

_GRID_BLOCK = 2**14  # (grid point, replicate) entries per block of the sigmoid fit (128 KB per float64 temporary)


def _sigmoid(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    lo, hi, t0, s = p
    return lo + (hi - lo) / (1.0 + np.exp(-np.clip((t - t0) / s, -60, 60)))


def fit_trend(t: np.ndarray, y: np.ndarray, bounds: Bounds) -> np.ndarray:
    """Trend parameters through (t, y) for one curve y (R,) or many (B, R): (…, 4) sigmoid (lo, hi, t0, s), lo and
    hi inside `bounds`, when both bounds are finite, else (…, 2) line (a, b).

    The sigmoid is fitted to y rescaled to [0, 1] by the bounds. It is linear in (lo, hi) once (t0, s) is fixed, so
    every replicate is fitted at once by solving the 2-parameter least squares on a grid of (t0, s) and keeping each
    replicate's best. A single curve goes through
    the same grid (no local polish), so a point estimate and its bootstrap replicates come from one estimator and
    the point cannot fall outside its own interval by a change of method.
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
    span = max(float(np.ptp(t_)), 1e-6)
    t0s = np.linspace(t_.min() - span, t_.max() + 2 * span, 241)  # 1/60 of the ladder's span per step
    ss = np.geomspace(span / 100, 2 * span, 20)
    g_t0, g_s = np.repeat(t0s, len(ss)), np.tile(ss, len(t0s))
    sig = 1.0 / (1.0 + np.exp(-np.clip((t_[None] - g_t0[:, None]) / g_s[:, None], -60, 60)))  # (G, R)
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


class Forecaster:
    """sklearn-like: `Forecaster(threshold, n_boot, seed).fit(curveset)`.

    Fitted on the discontinuous curves (the headline metrics) of one `CurveSet` (one scale axis).
    `backtest_`: one row per (curve, origin k, predicted rung): observed, predicted, lo, hi (the interval, inside
    the metric's declared range), covered.
    `summary_`: per curve: mean absolute error and coverage over the backtest, and the threshold crossing on the
    axis (x in the axis' unit: parameters, FLOPs, tokens, steps, or loss in nats) with its interval.
    `fits_`: per curve the full-ladder trend parameters and the fitted curve on a fine grid (for plots): `t` (axis
    position), `x` (the same in the axis' unit) and `y` (metric unit, inside its range).
    """

    def __init__(self, threshold: float = 0.5, n_boot: int = 100, seed: int = 0, level: float = 0.9,
                 min_train: int = 4, metrics: tuple[str, ...] | None = None) -> None:
        self.threshold, self.n_boot, self.seed, self.level = threshold, n_boot, seed, level
        self.min_train, self.metrics = min_train, metrics

    def _replicates(self, cs: CurveSet, i: int) -> np.ndarray:
        if cs.boot is None:
            return cs.mean[i][None]
        rng = np.random.default_rng(self.seed + i)
        pick = rng.choice(cs.boot.shape[0], size=min(self.n_boot, cs.boot.shape[0]), replace=False)
        return cs.boot[pick, i].astype(float)

    def fit(self, cs: CurveSet) -> Forecaster:
        t = cs.t
        r = len(t)
        a = (1 - self.level) / 2
        z = float(norm.ppf(1 - a))
        se = rung_se(cs.boot, cs.mean)
        bt_rows, sum_rows, fits = [], [], {}
        chosen = [i for i in range(len(cs.keys)) if (cs.keys["kind"].iat[i] == "discontinuous"
                  if self.metrics is None else cs.keys["metric"].iat[i] in self.metrics)]
        grid = np.linspace(t.min(), t.max() + 0.25 * np.ptp(t), 80)
        for i in chosen:
            key = {k: cs.keys[k].iat[i] for k in CURVE_KEYS}
            bounds = (float(cs.keys["bound_lo"].iat[i]), float(cs.keys["bound_hi"].iat[i]))
            y = cs.mean[i]
            reps = self._replicates(cs, i)
            for k in range(min(self.min_train, r - 1), r):
                p = fit_trend(t[:k], y[:k], bounds)
                pred = predict_trend(p, t[k:], bounds)
                rp = predict_trend(fit_trend(t[:k], reps[:, :k], bounds), t[k:], bounds)
                half = (np.quantile(rp, 1 - a, axis=0) - np.quantile(rp, a, axis=0)) / 2
                width = np.sqrt(half**2 + (z * se[i, k:]) ** 2)
                lo, hi = np.clip(pred - width, *bounds), np.clip(pred + width, *bounds)
                for j, (obs, pr) in enumerate(zip(y[k:], pred, strict=True)):
                    bt_rows.append({**key, "origin": k, "rung": k + j, "model": cs.rungs["model"].iat[k + j],
                                    "observed": obs, "predicted": pr, "lo": lo[j], "hi": hi[j],
                                    "covered": bool(lo[j] <= obs <= hi[j])})
            p_full = fit_trend(t, y, bounds)
            cross = [crossing(q, self.threshold) for q in fit_trend(t, reps, bounds)]
            cross_arr = np.array(cross, dtype=float)
            found = np.isfinite(cross_arr)
            # a crossing most replicates do not find (noise around a level far from the threshold) is not reported
            reliable = found.mean() >= 0.5
            c_pt = crossing(p_full, self.threshold) if reliable else float("nan")
            c_lo, c_hi = np.quantile(cross_arr[found], [a, 1 - a]) if reliable else (np.nan, np.nan)
            x_pt, x_lo, x_hi = (float(axis_value(cs.axis, v)) for v in (c_pt, c_lo, c_hi))
            if cs.axis == "loss":
                x_lo, x_hi = x_hi, x_lo
            fits[tuple(key.values())] = {"params": p_full, "t": grid, "x": axis_value(cs.axis, grid),
                                         "y": predict_trend(p_full, grid, bounds)}
            sum_rows.append({**key, "axis": cs.axis, "threshold": self.threshold, "crossing": x_pt,
                             "crossing_lo": x_lo, "crossing_hi": x_hi, "crossing_found_share": float(found.mean()),
                             "model": "sigmoid" if len(p_full) == 4 else "line"})
        self.backtest_ = pd.DataFrame(bt_rows)
        summ = pd.DataFrame(sum_rows)
        if not self.backtest_.empty:
            bt = self.backtest_.assign(abs_error=(self.backtest_["observed"] - self.backtest_["predicted"]).abs())
            agg = bt.groupby(CURVE_KEYS).agg(backtest_mae=("abs_error", "mean"), backtest_coverage=("covered", "mean"),
                                             backtest_n=("covered", "size")).reset_index()
            summ = summ.merge(agg, on=CURVE_KEYS, how="left")
        self.summary_ = summ
        self.fits_ = fits
        return self


def pass_until(cs: CurveSet, metric: str = "expected_exact_match") -> pd.DataFrame:
    """PassUntil task scaling law, PU(N) = exp(−c · N^−α): fit log(−log PU) = log c − α · ln N on rungs with 0 < PU < 1.

    Needs a count axis (parameters, FLOPs, tokens). Returns per (task, variant): α, c, R² of the linear fit,
    `accelerated` (the quadratic term in log N is negative: faster than the law, Hu et al.'s accelerated
    emergence) and the PU the law predicts at 10× the largest rung.
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
        z = np.log(-np.log(pu[ok]))
        slope, icpt = np.polyfit(ln_n[ok], z, 1)
        pred = icpt + slope * ln_n[ok]
        ss = float(np.sum((z - z.mean()) ** 2))
        r2 = 1 - float(np.sum((z - pred) ** 2)) / ss if ss > 0 else float("nan")
        quad = np.polyfit(ln_n[ok], z, 2)[0] if ok.sum() >= 4 else float("nan")
        nxt = ln_n.max() + np.log(10.0)
        rows.append({"task": cs.keys["task"].iat[i], "variant": cs.keys["variant"].iat[i], "alpha": -slope,
                     "c": float(np.exp(icpt)), "r2": r2, "accelerated": bool(np.isfinite(quad) and quad < 0),
                     "pu_at_10x": float(np.exp(-np.exp(icpt + slope * nxt))), "rungs_used": int(ok.sum())})
    return pd.DataFrame(rows)
