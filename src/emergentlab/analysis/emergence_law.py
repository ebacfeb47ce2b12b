"""Emergence laws (Snell et al. 2024, "Predicting Emergent Capabilities by Finetuning"): fine-tuning on D examples
of a task moves the point where performance leaves its floor to weaker models, the more so the larger D; fit that
shift as a function of D on the smaller rungs and extrapolate to the un-finetuned model.

Coordinates: t is the scale axis' increasing coordinate (`curves.axis_position`: −pre-training loss in nats, as
Snell et al. use, or log10 of a count). Performance at (t, D) is a ReLU in t with its elbow at the emergence point
e(D), smoothed (softplus of temperature `tau`, t units) and saturating at the metric's upper bound:

    y = lo + (hi − lo) · (1 − exp(−A · softplus_tau(t − e(D))))

— for A·(t − e) ≪ 1 this is lo + (hi − lo)·A·ReLU(t − e), Snell et al.'s ReLU (their A, B, E); the saturation keeps
a fraction-valued metric inside [lo, hi] once fine-tuned small models near the ceiling. The emergence law is their
log power law, written in t (their E_θ(D) = k·(log D)^α + C in loss, with t = −loss):

    e(D) = c − k · (ln D)^α        (D ≥ 1 examples; k ≥ 0: more data, earlier emergence)

The un-finetuned (few-shot) curve sits on the law at the low-data limit D0 (their D₀, default 1 example, so its
point is c), its floor shifted by Δ (their optional Δ, "shifts the ReLU base"). All parameters — c, k, α, A, lo, Δ —
are fitted jointly by least squares on the cell means (one cell per D and rung; equal example counts make this the
Gaussian maximum-likelihood fit), from a grid of starts. Snell et al. sample a posterior by MCMC; here the interval
is a percentile bootstrap over examples (one resample of example indices shared by every D and rung, since every
cell answers the same test items), seeded. Rung-to-rung training noise is not resampled.

The backtest (`backtest`) holds out the largest rungs: the law fitted on the rest (every D) predicts the
un-finetuned emergence point, the "actual" one is the elbow of the same curve fitted to every rung's un-finetuned
scores, and the error is |predicted − actual| in t units (nats on the loss axis; Snell et al. count an error over
0.1 nats a failure).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares
from scipy.special import expit

from emergentlab.analysis.curves import bootstrap_means, percentile_interval

Bounds = tuple[float, float]


def softplus(x: np.ndarray, tau: float) -> np.ndarray:
    """tau · ln(1 + exp(x / tau)): ReLU(x) smoothed over ~tau (same unit as x); → ReLU as tau → 0."""
    return tau * np.logaddexp(0.0, np.asarray(x, dtype=float) / tau)


def elbow_curve(t: np.ndarray, e: np.ndarray | float, slope: float, lo: float, tau: float,
                bounds: Bounds = (0.0, 1.0)) -> np.ndarray:
    """Performance (metric unit) at coordinates t of a curve with its elbow at e: lo below e, rising from it with
    initial slope (hi − lo)·`slope` per t unit, saturating at the bound hi."""
    hi = bounds[1]
    return lo + (hi - lo) * (1.0 - np.exp(-slope * softplus(np.asarray(t, dtype=float) - e, tau)))


def law_point(d: np.ndarray | float, c: float, k: float, alpha: float) -> np.ndarray:
    """e(D) = c − k·(ln D)^α in t units, for D ≥ 1 examples (below 1, ln D is taken as 0)."""
    logd = np.log(np.maximum(np.asarray(d, dtype=float), 1.0))
    return c - k * logd**alpha


def _unit_curve(t: np.ndarray, e: np.ndarray, slope: float, floor: np.ndarray | float,
                tau: float) -> tuple[np.ndarray, ...]:
    """`elbow_curve` normalised to [0, 1] (hi = 1), and its derivatives in e, slope and floor."""
    x = t - e
    g = softplus(x, tau)
    ex = np.exp(-slope * g)
    z = 1.0 - (1.0 - floor) * ex
    return z, -(1.0 - floor) * slope * expit(x / tau) * ex, (1.0 - floor) * g * ex, ex


def _solve(fun: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], starts: list[np.ndarray], lo: np.ndarray,
           hi: np.ndarray) -> np.ndarray:
    """The least-squares optimum over the box [lo, hi] of the residual that `fun` returns with its Jacobian, best of
    a local fit from each start. A coordinate with lo == hi is held fixed there.

    The box is mapped onto the real line (x = lo + (hi − lo)·sigmoid(u)) so that MINPACK's Levenberg–Marquardt,
    which knows no bounds, can run: several times faster than a bounded trust-region fit on these small problems,
    which matters with a refit per bootstrap replicate."""
    free = lo < hi
    width = (hi - lo)[free]

    def full(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sig = expit(u)
        p = lo.astype(float)
        p[free] = lo[free] + width * sig
        return p, width * sig * (1.0 - sig)

    last: list[tuple[bytes, np.ndarray, np.ndarray]] = []  # MINPACK asks for residual and Jacobian at one point

    def both(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        key = u.tobytes()
        if not last or last[0][0] != key:
            p, dp = full(u)
            r, j = fun(p)
            last[:] = [(key, r, j[:, free] * dp)]
        return last[0][1], last[0][2]

    def res(u: np.ndarray) -> np.ndarray:
        return both(u)[0]

    def jac(u: np.ndarray) -> np.ndarray:
        return both(u)[1]

    best, best_cost = np.clip(starts[0], lo, hi), math.inf
    for x0 in starts:
        z0 = np.clip((np.clip(x0, lo, hi)[free] - lo[free]) / width, 1e-6, 1 - 1e-6)
        r = least_squares(res, np.log(z0 / (1 - z0)), jac=jac, method="lm", max_nfev=200)
        if r.cost < best_cost:
            best, best_cost = full(r.x)[0], float(r.cost)
    return best


@dataclass(frozen=True)
class _Cells:
    """The observed cells, flattened: each one's rung coordinate, amount of data (D0 for the un-finetuned ones),
    whether it is un-finetuned, and its index into the (K, R) table of means."""

    t: np.ndarray
    d: np.ndarray
    base: np.ndarray
    index: tuple[np.ndarray, np.ndarray]


def _cells(t: np.ndarray, d: np.ndarray, means: np.ndarray, d0: float) -> _Cells:
    kk, rr = np.nonzero(np.isfinite(means))
    base = d[kk] == 0
    return _Cells(t[rr], np.where(base, d0, d[kk]), base, (kk, rr))


class EmergenceLaw:
    """Fit Snell et al.'s emergence law to per-example scores and predict the un-finetuned emergence point.

    `d0`: the low-data limit the un-finetuned model stands at (examples); `alpha`: the law's exponent held fixed
    (1: log-linear in D) or None to fit it (Snell et al.'s log power law); `tau`: the softplus temperature in t units
    (None: half the median gap between rungs); `bounds`: the metric's range; `n_boot` bootstrap replicates over
    examples for intervals at `confidence`; `seed` draws them.

    After `fit`: `params_` (c, k, alpha in t units / per (ln D)^α; slope per t unit; lo, delta in the metric's unit),
    `point_` = e(d0), the predicted un-finetuned emergence point (t units), `interval_` its percentile interval,
    `replicates_` (B,) its bootstrap values (NaN where a refit failed), `free_points_` (K,) each D's own elbow when it
    is free of the law (t units; the law's check), `means_` (K, R) the cell means (NaN where not run).
    """

    def __init__(self, d0: float = 1.0, alpha: float | None = 1.0, tau: float | None = None,
                 bounds: Bounds = (0.0, 1.0), n_boot: int = 200, confidence: float = 0.9, seed: int = 0) -> None:
        if d0 < 1:
            raise ValueError(f"d0 must be at least 1 example, got {d0}")
        if not (math.isfinite(bounds[0]) and math.isfinite(bounds[1]) and bounds[0] < bounds[1]):
            raise ValueError(f"the metric's bounds must be finite and increasing, got {bounds}")
        if alpha is not None and not 0.2 <= alpha <= 4:
            raise ValueError(f"alpha must be in [0.2, 4] or None (fitted), got {alpha}")
        self.d0, self.alpha, self.tau, self.bounds, self.n_boot = d0, alpha, tau, bounds, n_boot
        self.confidence, self.seed = confidence, seed

    # ---- fitting ------------------------------------------------------------------------------------------------
    def _check(self, t: np.ndarray, d: np.ndarray, y: np.ndarray) -> None:
        if y.ndim != 3 or y.shape[0] != len(d) or y.shape[2] != len(t):
            raise ValueError(f"scores must be (D values, examples, rungs) = ({len(d)}, E, {len(t)}), got {y.shape}")
        if np.any(np.diff(t) <= 0):
            raise ValueError("rung coordinates t must be strictly increasing")
        if np.any(d < 0) or len(set(d.tolist())) != len(d):
            raise ValueError(f"D values must be distinct and ≥ 0 (0: not fine-tuned), got {d.tolist()}")
        observed = np.isfinite(y).any(axis=1)
        tuned = [i for i in range(len(d)) if d[i] > 0 and observed[i].sum() >= 2]
        if len(tuned) < 2:
            raise ValueError("need at least two fine-tuned D values, each scored at two or more rungs")

    def _law_fit(self, cells: _Cells, m: np.ndarray, x0: list[np.ndarray] | None) -> np.ndarray:
        """(c, s, alpha, slope, lo, delta) fitted to cell means `m`, y normalised to the bounds (lo, delta too)."""
        b_lo, b_hi = self.bounds
        z = (m - b_lo) / (b_hi - b_lo)
        t_min, t_max, span = self._t_min, self._t_max, self._span
        # the law as c − s·u^α, u = ln D / ln D_max: s, the shift at the largest D, is far less tied to α than k is
        u = np.log(np.maximum(cells.d, 1.0)) / self._logd_max
        log_u = np.log(np.where(u > 0, u, 1.0))
        base = cells.base.astype(float)

        def fun(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            c, s, alpha, slope, lo, delta = p
            ua = u**alpha
            zz, de, dslope, dfloor = _unit_curve(cells.t, c - s * ua, slope, lo + delta * base, self.tau_)
            jac = np.column_stack([de, -de * ua, -de * s * ua * log_u, dslope, dfloor, dfloor * base])
            return zz - z, jac

        a_lo, a_hi = (0.2, 4.0) if self.alpha is None else (self.alpha, self.alpha)
        has_base = bool(cells.base.any())
        lo = np.array([t_min - 2 * span, 0.0, a_lo, 0.1 / span, 0.0, -1.0 if has_base else 0.0])
        hi = np.array([t_max + 3 * span, 4 * span, a_hi, 200.0 / span, 1.0, 1.0 if has_base else 0.0])
        if x0 is None:
            floor = float(np.nanmin(z))
            alphas = (0.5, 1.0, 2.0) if self.alpha is None else (self.alpha,)
            x0 = [np.array([c, f * span, a, 3.0 / span, floor, 0.0])
                  for c in np.linspace(t_min, t_max + 1.5 * span, 6) for f in (0.3, 1.0, 2.0) for a in alphas]
        return _solve(fun, x0, lo, hi)

    def _k(self, s: float, alpha: float) -> float:
        """The law's k (t units per (ln D)^α) from the shift s at the largest D."""
        return float(s / self._logd_max**alpha)

    def _free_fit(self, cells: _Cells, m: np.ndarray, n_d: int) -> np.ndarray:
        """(e_1 … e_K, slope, lo, delta): every D its own elbow, the rest shared (the law's unconstrained check)."""
        b_lo, b_hi = self.bounds
        z = (m - b_lo) / (b_hi - b_lo)
        t_min, t_max, span = self._t_min, self._t_max, self._span
        k_of = cells.index[0]
        base = cells.base.astype(float)
        onehot = np.eye(n_d)[k_of]

        def fun(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            zz, de, dslope, dfloor = _unit_curve(cells.t, p[:n_d][k_of], p[n_d], p[n_d + 1] + p[n_d + 2] * base,
                                                 self.tau_)
            return zz - z, np.column_stack([onehot * de[:, None], dslope, dfloor, dfloor * base])

        has_base = bool(cells.base.any())
        lo = np.array([t_min - 2 * span] * n_d + [0.1 / span, 0.0, -1.0 if has_base else 0.0])
        hi = np.array([t_max + 3 * span] * n_d + [200.0 / span, 1.0, 1.0 if has_base else 0.0])
        floor = float(np.nanmin(z))
        x0 = [np.array([e] * n_d + [3.0 / span, floor, 0.0]) for e in np.linspace(t_min, t_max + span, 7)]
        return _solve(fun, x0, lo, hi)

    def fit(self, t: np.ndarray, d: np.ndarray, y: np.ndarray) -> EmergenceLaw:
        """Fit on scores `y` (K, E, R): per D value (`d` (K,), examples fine-tuned on; 0 = not fine-tuned), per
        example (the same E test items in every cell), per rung at coordinates `t` (R,), increasing. NaN marks a
        cell that was not run (e.g. large rungs are never fine-tuned); the metric's unit throughout."""
        t, d, y = np.asarray(t, dtype=float), np.asarray(d, dtype=float), np.asarray(y, dtype=float)
        self._check(t, d, y)
        observed = np.isfinite(y).any(axis=1)  # (K, R)
        used = observed.any(axis=0)
        self._t_min, self._t_max = float(t[used].min()), float(t[used].max())
        self._span = max(self._t_max - self._t_min, 1e-6)
        # half the median gap between rungs: an elbow between two rungs still has a slope to follow, and the curve
        # is a ReLU at the resolution the ladder has (a span-relative width would blur a ladder with far-off rungs)
        self.tau_ = self.tau if self.tau is not None else 0.5 * float(np.median(np.diff(t[used])))
        self._logd_max = float(np.log(max(float(d.max()), 2.0)))
        self.t_, self.d_ = t, d
        mean, _, reps = bootstrap_means(y.transpose(0, 2, 1), self.n_boot, self.seed)  # (K, R), (B, K, R)
        mean = np.where(observed, mean, np.nan)
        self.means_ = mean
        cells = _cells(t, d, mean, self.d0)
        p = self._law_fit(cells, mean[cells.index], None)
        self._p = p
        b_lo, b_hi = self.bounds
        self.params_ = {"c": float(p[0]), "k": self._k(p[1], p[2]), "alpha": float(p[2]), "slope": float(p[3]),
                        "lo": b_lo + (b_hi - b_lo) * float(p[4]), "delta": (b_hi - b_lo) * float(p[5])}
        self.point_ = float(self._point(p, self.d0))
        free = self._free_fit(cells, mean[cells.index], len(d))
        self.free_points_ = np.where(observed.any(axis=1), free[: len(d)], np.nan)
        # each replicate starts from the point estimate and from an elbow past the ladder, so a replicate whose
        # optimum lies on the other side of the data can still find it
        starts = [p, np.array([self._t_max + self._span, *p[1:]])]
        self.replicates_ = np.full(self.n_boot, np.nan)
        self._rep_params = np.full((self.n_boot, 6), np.nan)
        for b in range(self.n_boot):
            m = reps[b][cells.index].astype(float)
            if not np.isfinite(m).all():
                continue
            q = self._law_fit(cells, m, starts)
            self._rep_params[b] = q
            self.replicates_[b] = float(self._point(q, self.d0))
        lo, hi = percentile_interval(self.replicates_[None].copy(), self.confidence)
        self.interval_ = (float(lo[0]), float(hi[0]))
        self._reps = reps
        return self

    # ---- prediction ---------------------------------------------------------------------------------------------
    def _point(self, p: np.ndarray, d: np.ndarray | float) -> np.ndarray:
        return law_point(d, p[0], self._k(p[1], p[2]), p[2])

    def emergence_point(self, d: np.ndarray | float) -> np.ndarray:
        """e(D) of the fitted law, t units; D = 0 means the un-finetuned model (at the low-data limit d0)."""
        dd = np.asarray(d, dtype=float)
        return self._point(self._p, np.where(dd == 0, self.d0, dd))

    def emergence_interval(self, d: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Percentile interval (at `confidence`) of `emergence_point(d)` over the bootstrap refits."""
        dd = np.atleast_1d(np.asarray(d, dtype=float))
        dd = np.where(dd == 0, self.d0, dd)
        ok = np.isfinite(self._rep_params).all(axis=1)
        pts = np.array([self._point(q, dd) for q in self._rep_params[ok]]).T  # (len(d), B_ok)
        if pts.size == 0:
            nan = np.full(dd.shape, np.nan)
            return nan, nan
        return percentile_interval(np.ascontiguousarray(pts), self.confidence)

    def _curve(self, p: np.ndarray, t: np.ndarray, d: float) -> np.ndarray:
        slope, lo, delta = p[3], p[4], p[5]
        e = self._point(p, self.d0 if d == 0 else d)
        floor = lo + (delta if d == 0 else 0.0)
        z = floor + (1 - floor) * (1 - np.exp(-slope * softplus(np.asarray(t, dtype=float) - e, self.tau_)))
        return self.bounds[0] + (self.bounds[1] - self.bounds[0]) * z

    def predict(self, t: np.ndarray, d: float) -> np.ndarray:
        """The law's performance (metric unit) at coordinates `t` after fine-tuning on `d` examples (0: none)."""
        return self._curve(self._p, t, d)

    def predict_interval(self, t: np.ndarray, d: float) -> tuple[np.ndarray, np.ndarray]:
        """Percentile interval (at `confidence`) of `predict(t, d)` over the bootstrap refits."""
        ok = np.isfinite(self._rep_params).all(axis=1)
        curves = np.array([self._curve(q, t, d) for q in self._rep_params[ok]]).T  # (len(t), B_ok)
        if curves.size == 0:
            nan = np.full(np.shape(t), np.nan)
            return nan, nan
        return percentile_interval(np.ascontiguousarray(curves), self.confidence)


def fit_elbow(t: np.ndarray, y: np.ndarray, tau: float, bounds: Bounds = (0.0, 1.0),
              near: np.ndarray | None = None) -> np.ndarray:
    """(e, slope, lo) of one curve's rung means y (R,) at coordinates t: its elbow (t units), initial slope per t
    unit (normalised to the bounds) and floor (metric unit). `near`: a fit of similar data (a bootstrap replicate's
    point estimate) to start from instead of the grid of starts."""
    b_lo, b_hi = bounds
    z = (np.asarray(y, dtype=float) - b_lo) / (b_hi - b_lo)
    span = max(float(np.ptp(t)), 1e-6)

    def fun(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        zz, de, dslope, dfloor = _unit_curve(t, p[0], p[1], p[2], tau)
        return zz - z, np.column_stack([de, dslope, dfloor])

    lo = np.array([t.min() - 2 * span, 0.1 / span, 0.0])
    hi = np.array([t.max() + 3 * span, 200.0 / span, 1.0])
    grid = np.linspace(t.min(), t.max() + span, 7) if near is None else (t.max(),)
    starts = [np.array([e, 3.0 / span, float(np.min(z))]) for e in grid]
    if near is not None:
        starts.append(np.array([near[0], near[1], (near[2] - b_lo) / (b_hi - b_lo)]))
    p = _solve(fun, starts, lo, hi)
    return np.array([p[0], p[1], b_lo + (b_hi - b_lo) * p[2]])


@dataclass(frozen=True)
class Backtest:
    """The law fitted without the `holdout` largest rungs, scored against what the un-finetuned curve does on all.

    In t units (nats on the loss axis, decades on a count axis): `predicted` (the law's e(d0)) and its interval
    `predicted_lo`–`predicted_hi`; `actual`, the elbow of the un-finetuned curve fitted on every rung, and its
    interval; `error` = |predicted − actual| with `error_lo`–`error_hi` the same percentiles of |replicate −
    actual|; `covered`: actual inside the prediction's interval; `success`: error ≤ `tolerance`; `emerged`: the
    un-finetuned curve leaves its floor within the ladder (the top rungs' mean above the fitting rungs' by more than
    the bootstrap's spread; else `actual` is only a bound and `error` is NaN). Per held-out rung: `held_t`, the
    law's predicted un-finetuned performance `held_pred` (interval `held_lo`–`held_hi`) and the measured
    `held_actual` (metric unit).
    """

    holdout: int
    predicted: float
    predicted_lo: float
    predicted_hi: float
    actual: float
    actual_lo: float
    actual_hi: float
    error: float
    error_lo: float
    error_hi: float
    covered: bool
    success: bool
    tolerance: float
    emerged: bool
    held_t: tuple[float, ...]
    held_pred: tuple[float, ...]
    held_lo: tuple[float, ...]
    held_hi: tuple[float, ...]
    held_actual: tuple[float, ...]


def backtest(t: np.ndarray, d: np.ndarray, y: np.ndarray, holdout: int, law: EmergenceLaw,
             tolerance: float = 0.1) -> tuple[Backtest, EmergenceLaw]:
    """Hold out the `holdout` largest rungs (every D), fit `law` on the rest, and score its un-finetuned emergence
    point against the elbow of the un-finetuned curve (D = 0 row of `y`) fitted on all rungs. `t`, `d`, `y` as in
    `EmergenceLaw.fit`; the D = 0 row must be scored at every rung. Returns the backtest and the fitted law."""
    t, d, y = np.asarray(t, dtype=float), np.asarray(d, dtype=float), np.asarray(y, dtype=float)
    if not 1 <= holdout <= len(t) - 3:
        raise ValueError(f"holdout must leave at least 3 rungs to fit on, got {holdout} of {len(t)}")
    if not (d == 0).any():
        raise ValueError("need the un-finetuned scores (D = 0) to score the prediction against")
    i0 = int(np.flatnonzero(d == 0)[0])
    if not np.isfinite(y[i0]).any(axis=0).all():
        raise ValueError("the un-finetuned scores (D = 0) must cover every rung")
    fit_y = y.copy()
    fit_y[:, :, len(t) - holdout:] = np.nan
    law.fit(t, d, fit_y)
    base_mean = np.nanmean(y[i0], axis=0)  # (R,)
    actual_p = fit_elbow(t, base_mean, law.tau_, law.bounds)
    actual = float(actual_p[0])
    # the same example resamples as the law's replicates: one bootstrap for prediction and truth
    _, _, reps = bootstrap_means(y[i0].T[None], law.n_boot, law.seed)  # (B, 1, R)
    act_reps = np.array([fit_elbow(t, reps[b, 0].astype(float), law.tau_, law.bounds, actual_p)[0]
                         for b in range(law.n_boot)])
    a_lo, a_hi = percentile_interval(act_reps[None].copy(), law.confidence)
    # emerged: the held-out rungs' best mean beats the fitting rungs' mean in (almost) every replicate
    rise = reps[:, 0, len(t) - holdout:].max(axis=1) - reps[:, 0, : len(t) - holdout].mean(axis=1)
    r_lo, _ = percentile_interval(rise[None].astype(float), law.confidence)
    emerged = bool(r_lo[0] > 0)
    p_lo, p_hi = law.interval_
    err = abs(law.point_ - actual) if emerged else math.nan
    e_lo, e_hi = percentile_interval(np.abs(law.replicates_ - actual)[None].copy(), law.confidence)
    held = t[len(t) - holdout:]
    h_lo, h_hi = law.predict_interval(held, 0)
    return Backtest(
        holdout, law.point_, p_lo, p_hi, actual, float(a_lo[0]), float(a_hi[0]), err,
        float(e_lo[0]) if emerged else math.nan, float(e_hi[0]) if emerged else math.nan,
        # not emerged: the truth lies beyond the ladder, and an interval reaching past the top rung allows that
        bool(p_lo <= actual <= p_hi) if emerged else bool(p_hi > t[-1]),
        bool(err <= tolerance) if emerged else False, tolerance, emerged,
        tuple(map(float, held)), tuple(map(float, law.predict(held, 0))), tuple(map(float, h_lo)),
        tuple(map(float, h_hi)), tuple(map(float, base_mean[len(t) - holdout:]))), law
