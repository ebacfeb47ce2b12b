"""Verdicts per (task, metric pair, variant): emergent / mirage / smooth / inverse / U-shaped / flat / inconclusive.

THE RULE (the one place it is written down; `Verdicts` implements exactly this)
-----------------------------------------------------------------------------
Every curve is first oriented so that up is better (lower-is-better metrics are negated) and placed on the primary
scale axis (log10 parameters, else log10 FLOPs / tokens / steps, else −loss). R rungs are split into a smaller
half (the first ⌈R/2⌉) and a larger half. With δ = `emergence.min_effect` (0.05 for [0, 1] metrics) and 95 %
bootstrap intervals over examples (paired across rungs and metrics):

  D  = mean(larger half) − mean(smaller half)                              (did it change?)
  e  = mean over the larger half of (y − the straight line in log scale fitted to the smaller half)
                                                                          (was it predictable? Wei et al. 2022)
  dL, dR = first rung − lowest interior rung, last rung − lowest interior rung        (did it dip?)

Each curve gets a SHAPE, the first that holds:
  U        dL ≥ δ and dR ≥ δ, both intervals above 0
  jump     D ≥ δ with its interval above 0, and e ≥ D / 2 with its interval above 0
           (most of the rise is missed by extending the small models' trend)
  rise     D ≥ δ with its interval above 0 (and not a jump)
  decline  D ≤ −δ with its interval below 0
  flat     the interval of D lies inside (−δ, δ)
  unclear  anything else (the interval is too wide to say)

The VERDICT for a discontinuous metric (shape s_D) and one continuous partner (shape s_C):
  s_D unclear                                  → inconclusive
  s_D U                                        → U-shaped
  s_D decline: s_C rise or jump → inconclusive; else → inverse
  s_D jump:    s_C jump → emergent; s_C rise → mirage (Schaeffer et al. 2023); no partner → emergent
               (flagged: a mirage is not ruled out); else → inconclusive
  s_D rise:    s_C decline → inconclusive; else → smooth
  s_D flat:    s_C flat or no partner → flat; s_C rise → smooth (the continuous metric sees sub-threshold
               progress); s_C decline → inverse; s_C U → U-shaped; else → inconclusive
A discontinuous metric with several partners gets one HEADLINE verdict (the verdict table's row): `mirage` when
any pair says mirage (one continuous metric rising smoothly is enough to show the jump is the metric's doing),
else the verdict with its first partner in `metrics.PAIRS` order (the primary partner); the other pairs are listed
in the note when they disagree.
CONFIDENCE is the share of bootstrap replicates in which the same verdict comes out when the shapes are read off
the replicate's point values (no intervals); an inconclusive verdict has none (its note gives the replicates'
split instead). RESOLUTION (for inconclusive): examples per rung that would make the undecided curve's D interval
decide, n' = n · (1.96 · se(D) / margin)², margin = |D| (to clear 0) when |D| ≥ δ,
else δ − |D| (to fit inside ±δ); with n = 0 hits the 0 % score only bounds the rate below ~3/n.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from emergentlab import metrics
from emergentlab.analysis import emergence
from emergentlab.analysis.curves import (
    CURVE_KEYS,
    CurveSet,
    curve_blocks,
    interval_ranks,
    percentile_interval,
    rung_se,
)

SHAPES = ("unclear", "flat", "rise", "jump", "decline", "U")
UNCLEAR, FLAT, RISE, JUMP, DECLINE, U = range(6)
NONE = 6  # no continuous partner
VERDICTS = ("inconclusive", "flat", "smooth", "emergent", "mirage", "inverse", "U-shaped")
_INC, _FLAT, _SMOOTH, _EMERGENT, _MIRAGE, _INVERSE, _USHAPED = range(7)

# _TABLE[s_D, s_C] — the verdict rule above as a lookup (columns: unclear, flat, rise, jump, decline, U, none)
_TABLE = np.array([
    [_INC] * 7,                                                              # s_D unclear
    [_INC, _FLAT, _SMOOTH, _INC, _INVERSE, _USHAPED, _FLAT],                  # s_D flat
    [_SMOOTH, _SMOOTH, _SMOOTH, _SMOOTH, _INC, _SMOOTH, _SMOOTH],             # s_D rise
    [_INC, _INC, _MIRAGE, _EMERGENT, _INC, _INC, _EMERGENT],                  # s_D jump
    [_INVERSE, _INVERSE, _INC, _INC, _INVERSE, _INVERSE, _INVERSE],           # s_D decline
    [_USHAPED] * 7,                                                           # s_D U
], dtype=np.int8)

JUMP_SHARE = 0.5
"""A jump: at least this share of the rise (D) is missed by the small-model trend (e)."""


def _lower_end_positive(x: np.ndarray, level: float) -> np.ndarray:
    """Whether each row's interval (`percentile_interval`) starts above 0, by counting instead of sorting: the lower
    order statistic is > 0 exactly when at most its rank of the non-NaN replicates are ≤ 0."""
    m = x.shape[-1] - np.count_nonzero(np.isnan(x), axis=-1)
    return np.count_nonzero(x <= 0, axis=-1) <= interval_ranks(m, level)[0]


def _row_se(x: np.ndarray) -> np.ndarray:
    """Standard deviation per row of x (c, B), NaN replicates left out."""
    s = x.std(axis=-1).astype(float)
    bad = np.isnan(s)
    if bad.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            s[bad] = np.nanstd(x[bad], axis=-1)
    return s


def _shapes_point(d: np.ndarray, e: np.ndarray, dl: np.ndarray, dr: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Shapes read off point values only (used on every bootstrap replicate), int8 codes."""
    u = (dl >= delta) & (dr >= delta)
    up = d >= delta
    jump = ~u & up & (e >= JUMP_SHARE * d)
    out = np.full(d.shape, UNCLEAR, dtype=np.int8)
    out[~u & (np.abs(d) < delta)] = FLAT
    out[~u & (d <= -delta)] = DECLINE
    out[~u & ~jump & up] = RISE
    out[jump] = JUMP
    out[u] = U
    return out


def _replicate_stats(cs: CurveSet, w_d: np.ndarray, w_e: np.ndarray, delta: np.ndarray,
                     level: float) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Intervals of D, e and B, D's standard error, whether both dips' intervals start above 0, and every
    replicate's shape (C, B) int8.

    One pass over the replicates, a block of curves at a time (`curves.curve_blocks`): each statistic is made
    and sorted while the block is in cache, and only per-curve numbers and the int8 shapes are kept.
    """
    assert cs.boot is not None
    b, c = cs.boot.shape[:2]
    names = ("change_lo", "change_hi", "change_se", "excess_lo", "excess_hi", "breakthroughness_lo",
             "breakthroughness_hi")
    out = {k: np.empty(c) for k in names}
    out["dips_positive"] = np.empty(c, dtype=bool)
    shapes = np.empty((c, b), dtype=np.int8)
    sign = cs.sign.astype(np.float32)
    delta32 = delta.astype(np.float32)[:, None]
    for sl, y in curve_blocks(cs.boot):
        if (sign[sl] < 0).any():  # oriented copy, made rung-major like its source
            y = (y.transpose(2, 0, 1) * sign[None, sl, None]).transpose(1, 2, 0)
        d, e = emergence.weighted_sum(y, w_d), emergence.weighted_sum(y, w_e)
        dl, dr = emergence.dip(y)
        shapes[sl] = _shapes_point(d, e, dl, dr, delta32[sl])
        out["change_se"][sl] = _row_se(d)
        out["change_lo"][sl], out["change_hi"][sl] = percentile_interval(d, level)
        out["excess_lo"][sl], out["excess_hi"][sl] = percentile_interval(e, level)
        bt = emergence.breakthroughness(y)
        out["breakthroughness_lo"][sl], out["breakthroughness_hi"][sl] = percentile_interval(bt, level)
        out["dips_positive"][sl] = _lower_end_positive(dl, level) & _lower_end_positive(dr, level)
    return out, shapes


def curve_shapes(cs: CurveSet, level: float = 0.95,
                 se: np.ndarray | None = None) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Per-curve statistics and shape (frame, one row per curve) and the replicate shapes (C, B) or None.
    `se`: rung standard errors (`curves.rung_se`), computed when omitted."""
    y = cs.mean * cs.sign[:, None]
    t = cs.t
    r = len(t)
    w_e = emergence.extrapolation_weights(t)
    w_d = emergence.half_difference_weights(r)
    # a hair under δ, so a change of exactly δ counts as one whatever rounding the memory layout gave it
    delta = emergence.min_effect(cs.mean) * (1 - 1e-9)
    point = {"change": y @ w_d, "excess": y @ w_e, "breakthroughness": emergence.breakthroughness(y)}
    dl, dr = emergence.dip(y)
    rep_shapes = None
    if cs.boot is not None:
        iv, rep_shapes = _replicate_stats(cs, w_d, w_e, delta, level)
    else:  # no uncertainty known: every interval is the point itself
        iv = {f"{k}_{side}": v for k, v in point.items() for side in ("lo", "hi")}
        iv.update(change_se=np.zeros(len(y)), dips_positive=(dl > 0) & (dr > 0))
    lin = emergence.linearity(y)
    se = rung_se(cs.boot, cs.mean) if se is None else se
    sigma = np.maximum(np.nanmean(se, axis=-1), 1e-3 * np.maximum(1.0, np.nanmax(np.abs(y), axis=-1)))
    d_aic, cp = emergence.hinge_vs_line(np.nan_to_num(y), t, sigma) if r >= 3 else (np.full(len(y), np.nan),) * 2

    d_pt, e_pt = point["change"], point["excess"]
    d_lo, d_hi = iv["change_lo"], iv["change_hi"]
    u = (dl >= delta) & (dr >= delta) & iv["dips_positive"]
    up = (d_pt >= delta) & (d_lo > 0)
    jump = ~u & up & (e_pt >= JUMP_SHARE * d_pt) & (iv["excess_lo"] > 0)
    shape = np.full(len(y), UNCLEAR)
    shape[~u & (d_lo > -delta) & (d_hi < delta)] = FLAT
    shape[~u & (d_pt <= -delta) & (d_hi < 0)] = DECLINE
    shape[~u & ~jump & up] = RISE
    shape[jump] = JUMP
    shape[u] = U

    frame = cs.keys[CURVE_KEYS + ["kind", "unit"]].copy()
    frame["shape"] = np.array(SHAPES, dtype=object)[shape]
    frame["shape_code"] = shape
    for name, v in point.items():
        frame[name], frame[f"{name}_lo"], frame[f"{name}_hi"] = v, iv[f"{name}_lo"], iv[f"{name}_hi"]
    frame["change_se"] = iv["change_se"]
    frame["linearity"] = lin
    frame["delta"] = delta
    frame["dip_left"], frame["dip_right"] = dl, dr
    frame["hinge_delta_aic"] = d_aic
    frame["changepoint"] = np.power(10.0, cp) if cs.axis != "loss" else -np.asarray(cp)
    frame["n"] = np.nanmin(cs.n, axis=-1) if cs.n.size else np.nan
    return frame, rep_shapes


def _resolution(n: float, change: float, se: float, delta: float) -> float:
    """Extra examples per rung for D's 95 % interval to decide (the rule's RESOLUTION paragraph)."""
    margin = abs(change) if abs(change) >= delta else delta - abs(change)
    if not np.isfinite(se) or se <= 0 or margin <= 0 or not np.isfinite(n) or n <= 0:
        return float("nan")
    need = n * (1.96 * se / margin) ** 2
    return float(max(0.0, np.ceil(need - n)))  # 0: the normal approximation already decides: borderline


def pairs(keys: pd.DataFrame) -> list[tuple[int, int | None]]:
    """(discontinuous curve index, continuous partner index or None) for every pair present in `keys`, the
    partners of one discontinuous curve consecutive and in `metrics.PAIRS` order."""
    out: list[tuple[int, int | None]] = []
    rows = list(keys[CURVE_KEYS].itertuples(index=False, name=None))
    kind = keys["kind"].to_numpy()
    idx = {k: i for i, k in enumerate(rows)}
    continuous: dict[tuple[str, str], list[int]] = {}
    for j, (task, _, variant) in enumerate(rows):
        if kind[j] == "continuous":
            continuous.setdefault((task, variant), []).append(j)
    for i, (task, metric, variant) in enumerate(rows):
        if kind[i] != "discontinuous":
            continue
        if metric in metrics.PAIRS:
            partners = [idx[(task, p, variant)] for p in metrics.PAIRS[metric] if (task, p, variant) in idx]
        else:  # a published table's own accuracy names: every continuous metric of the same task is a partner
            partners = continuous.get((task, variant), [])
        out.extend((i, j) for j in partners) if partners else out.append((i, None))
    return out


def mirage_test(cs: CurveSet) -> pd.DataFrame:
    """Schaeffer et al. 2023: does exact match ≈ p^k (p = per-token accuracy per rung, k = target tokens)?

    One row per (task, variant) with both metrics and a known k: observed and predicted exact match per rung,
    R² of the prediction, RMSE (fraction), and `explains` = R² ≥ 0.9 (the smooth per-token curve accounts for the
    exact-match curve's shape).
    """
    cols = ["task", "variant", "k_tokens", "observed", "predicted", "r2", "rmse", "explains"]
    keys = list(cs.keys[CURVE_KEYS].itertuples(index=False, name=None))
    idx = {k: i for i, k in enumerate(keys)}
    rows = []
    for i, (task, metric, variant) in enumerate(keys):
        j = idx.get((task, "token_accuracy", variant))
        if metric != "exact_match" or j is None or not np.isfinite(cs.k_tokens[i]):
            continue
        k = float(cs.k_tokens[i])
        obs, p = cs.mean[i], cs.mean[j]
        pred = np.clip(p, 0, 1) ** k
        ss_tot = float(np.sum((obs - obs.mean()) ** 2))
        ss_res = float(np.sum((obs - pred) ** 2))
        r2 = 1 - ss_res / ss_tot if ss_tot > 0 else float("nan")
        rows.append({"task": task, "variant": variant, "k_tokens": k, "observed": obs.round(4).tolist(),
                     "predicted": pred.round(4).tolist(), "r2": r2, "rmse": float(np.sqrt(ss_res / len(obs))),
                     "explains": bool(np.isfinite(r2) and r2 >= 0.9)})
    return pd.DataFrame(rows, columns=cols)


def wei_check(cs: CurveSet, stats: pd.DataFrame, se: np.ndarray | None = None) -> pd.DataFrame:
    """Wei et al. 2022's definition, per discontinuous curve: a yes/no and the numbers that decided it.

    absent: smallest rung within max(2·se, 0.02) of chance; present: largest rung ≥ chance + max(3·se, 0.1);
    unpredictable: the larger half exceeds the small-model trend (the rule's e: interval above 0, e ≥ D/2).
    Chance is the uniform-guess score (multiple choice) or 0 (exact match); unknown chance → the smallest rung's
    own score cannot be judged and `absent` is false. `se`: rung standard errors (C, R), computed when omitted.
    """
    se = rung_se(cs.boot, cs.mean) if se is None else se
    i = np.flatnonzero(cs.keys["kind"].to_numpy() == "discontinuous")
    chance, small, large = cs.chance[i], cs.mean[i, 0], cs.mean[i, -1]
    known = np.isfinite(chance)
    absent = known & (np.abs(small - chance) <= np.maximum(2 * se[i, 0], 0.02))
    present = known & (large - chance >= np.maximum(3 * se[i, -1], 0.1))
    st = stats.iloc[i]
    ex, ex_lo, ch = (st[c].to_numpy(dtype=float) for c in ("excess", "excess_lo", "change"))
    unpredictable = (ex_lo > 0) & (ex >= JUMP_SHARE * ch) & (ch > 0)
    out = cs.keys.iloc[i][CURVE_KEYS].reset_index(drop=True)
    out["wei_emergent"] = absent & present & unpredictable
    out["chance"], out["smallest"], out["largest"] = chance, small, large
    out["absent_small"], out["present_large"] = absent, present
    out["excess"], out["excess_lo"], out["unpredictable"] = ex, ex_lo, unpredictable
    return out


def _split(codes: np.ndarray) -> str:
    """'flat 55 %, smooth 45 %': how bootstrap replicates' verdicts are shared out."""
    vals, counts = np.unique(codes, return_counts=True)
    order = np.argsort(-counts)
    return ", ".join(f"{VERDICTS[vals[o]]} {counts[o] / len(codes):.0%}" for o in order)


def _headline(v: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """HEADLINE per group of consecutive pairs (groups begin at `starts`, pairs in `metrics.PAIRS` order), over the
    first axis of v (P, ...) → (G, ...): any mirage, else the first pair's verdict."""
    any_mirage = np.logical_or.reduceat(v == _MIRAGE, starts, axis=0)
    return np.where(any_mirage, _MIRAGE, v[starts])


_PAIR_COLS = ("excess", "excess_lo", "excess_hi", "change", "change_lo", "change_hi", "breakthroughness",
              "breakthroughness_lo", "breakthroughness_hi", "linearity")


class Verdicts:
    """sklearn-like: `Verdicts(level).fit(curveset)`; results in `table_`, `pairs_`, `curve_stats_`, `mirage_`,
    `wei_`.

    `pairs_`: one row per (task, metric pair, variant) — verdict, confidence (share of bootstrap replicates),
    the deciding numbers (change D and excess e with intervals, in the metric's unit; breakthroughness B),
    mirage and Wei results for the discontinuous metric, and `extra_examples` (per rung) when inconclusive.
    `table_`: the HEADLINE row per (task, discontinuous metric, variant), same columns, `partner` being the pair
    that decided it.
    """

    def __init__(self, level: float = 0.95) -> None:
        self.level = level

    def fit(self, cs: CurveSet) -> Verdicts:
        se = rung_se(cs.boot, cs.mean)
        self.curve_stats_, rep_shapes = curve_shapes(cs, self.level, se)
        self.mirage_ = mirage_test(cs)
        self.wei_ = wei_check(cs, self.curve_stats_, se)
        st = self.curve_stats_
        shape = st["shape_code"].to_numpy()
        pr = pairs(cs.keys)
        if not pr:
            self.pairs_ = self.table_ = pd.DataFrame()
            return self
        ii = np.array([i for i, _ in pr])
        jj = np.array([-1 if j is None else j for _, j in pr])
        has = jj >= 0
        v = _TABLE[shape[ii], np.where(has, shape[jj], NONE)]
        rv = None
        if rep_shapes is not None:
            rv = _TABLE[rep_shapes[ii], np.where(has[:, None], rep_shapes[jj], NONE)]  # (P, B)
        conf = np.where(v == _INC, np.nan, (rv == v[:, None]).mean(axis=1) if rv is not None else np.nan)
        rows = self._frame(st, shape, ii, jj, v, conf, rv)
        starts = np.flatnonzero(np.r_[True, ii[1:] != ii[:-1]])
        head_v = _headline(v, starts)
        pos = np.arange(len(v))
        group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(v)]))
        # the deciding pair: the group's first pair whose verdict is the headline
        match = np.where(v == head_v[group], pos, len(v))
        decider = np.minimum.reduceat(match, starts)
        heads = rows.iloc[decider].reset_index(drop=True)
        head_rv = _headline(rv, starts) if rv is not None else None  # (G, B)
        if head_rv is not None:
            heads["confidence"] = np.where(head_v == _INC, np.nan, (head_rv == head_v[:, None]).mean(axis=1))
        metric = st["metric"].to_numpy()
        notes = heads["note"].tolist()
        ends = np.r_[starts[1:], len(v)]
        disagree = np.logical_or.reduceat(v != head_v[group], starts)
        for g in np.flatnonzero(disagree | (head_v == _INC)):
            members = range(starts[g], ends[g])
            others = [f"{metric[jj[k]]}: {VERDICTS[v[k]]}" for k in members if jj[k] >= 0 and v[k] != head_v[g]]
            parts = [notes[g]] if notes[g] else []
            if head_v[g] == _INC and head_rv is not None:
                parts = [p.split("; ", 1)[1] if p.startswith("replicates") and "; " in p else p
                         for p in parts if not p.startswith("replicates") or "; " in p]
                parts.append(f"replicates: {_split(head_rv[g])}")
            if others:
                parts.append("other partners: " + "; ".join(others))
            notes[g] = " | ".join(parts)
        heads["note"] = notes
        self.pairs_ = self._merge(rows)
        self.table_ = self._merge(heads)
        return self

    @staticmethod
    def _frame(st: pd.DataFrame, shape: np.ndarray, ii: np.ndarray, jj: np.ndarray, v: np.ndarray,
               conf: np.ndarray, rv: np.ndarray | None) -> pd.DataFrame:
        """One row per pair, built column-wise from the per-curve statistics."""
        has = jj >= 0
        jj0 = np.where(has, jj, 0)
        out = pd.DataFrame({"task": st["task"].to_numpy()[ii], "variant": st["variant"].to_numpy()[ii],
                            "metric": st["metric"].to_numpy()[ii],
                            "partner": np.where(has, st["metric"].to_numpy()[jj0], None),
                            "verdict": np.array(VERDICTS, dtype=object)[v], "confidence": conf,
                            "shape": st["shape"].to_numpy()[ii],
                            "partner_shape": np.where(has, st["shape"].to_numpy()[jj0], None)})
        for c in _PAIR_COLS:
            out[c] = st[c].to_numpy()[ii]
        out["partner_change"] = np.where(has, st["change"].to_numpy()[jj0], np.nan)
        out["partner_excess"] = np.where(has, st["excess"].to_numpy()[jj0], np.nan)
        out["n"] = st["n"].to_numpy()[ii]
        # the curve whose D left the verdict open: the discontinuous one unless only its partner is unclear
        und = np.where(has & (shape[ii] != UNCLEAR) & (shape[jj0] == UNCLEAR), jj0, ii)
        n_u, ch_u, se_u, de_u = (st[c].to_numpy(dtype=float)[und] for c in ("n", "change", "change_se", "delta"))
        extra = np.full(len(v), np.nan)
        notes = [""] * len(v)
        metric = st["metric"].to_numpy()
        for k in np.flatnonzero((v == _INC) | (~has & (v == _EMERGENT))):
            if v[k] == _EMERGENT:
                notes[k] = "no continuous partner: a mirage is not ruled out"
                continue
            extra[k] = _resolution(n_u[k], ch_u[k], se_u[k], de_u[k])
            parts = [f"replicates: {_split(rv[k])}"] if rv is not None else []
            if np.isfinite(extra[k]):
                now = f"n = {n_u[k]:.0f}, change {ch_u[k]:.3g} ± {1.96 * se_u[k]:.2g}"
                parts.append(f"~{extra[k]:.0f} more examples per rung would decide {metric[und[k]]} ({now})"
                             if extra[k] >= 1 else f"{metric[und[k]]} sits on the decision edge ({now})")
            notes[k] = "; ".join(parts)
        out["extra_examples"], out["note"] = extra, notes
        return out

    def _merge(self, tab: pd.DataFrame) -> pd.DataFrame:
        """Add the Wei check and (exact match only) the mirage test's R² to a verdict frame."""
        if tab.empty:
            return tab
        w = self.wei_[[*CURVE_KEYS, "wei_emergent"]]
        tab = tab.merge(w, on=CURVE_KEYS, how="left")
        m = self.mirage_[["task", "variant", "r2", "explains"]].rename(
            columns={"r2": "mirage_r2", "explains": "mirage_explains"})
        tab = tab.merge(m, on=["task", "variant"], how="left")
        em = tab["metric"] == "exact_match"
        tab["mirage_r2"] = tab["mirage_r2"].where(em)
        tab["mirage_explains"] = tab["mirage_explains"].astype(object).where(em)
        return tab
