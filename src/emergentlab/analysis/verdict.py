"""Verdicts per (task, metric pair, variant): emergent / mirage / smooth / inverse / U-shaped / flat / inconclusive.

THE RULE (the one place it is written down; `shape_codes` and `Verdicts` implement exactly this; the p^k test and
Wei et al.'s definition, reported beside it, are in `analysis.checks`)
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
(`other_partners`) when they disagree.
CONFIDENCE is the share of bootstrap replicates in which the same verdict comes out when the shapes are read off
the replicate's point values (no intervals); an inconclusive verdict has none (`replicate_verdicts` gives the
replicates' split instead). RESOLUTION (for inconclusive): examples per rung that would make the undecided curve's
D interval decide, n' = n · (1.96 · se(D) / margin)², margin = |D| (to clear 0) when |D| ≥ δ, else δ − |D| (to
fit inside ±δ); with n = 0 hits the 0 % score only bounds the rate below ~3/n.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from enum import IntEnum
from typing import Any

import numpy as np
import pandas as pd

from emergentlab import metrics
from emergentlab.analysis import emergence
from emergentlab.analysis.checks import MIRAGE_PAIR, mirage_test, wei_check
from emergentlab.analysis.curves import (
    CURVE_KEYS,
    CurveSet,
    axis_value,
    curve_blocks,
    curves_by_axis,
    interval_ranks,
    percentile_interval,
    rung_se,
    usable_axes,
)
from emergentlab.analysis.emergence import JUMP_SHARE


class Shape(IntEnum):
    """A curve's SHAPE (the rule above), as stored in `shape_code` columns and replicate arrays (int8)."""

    UNCLEAR = 0
    FLAT = 1
    RISE = 2
    JUMP = 3
    DECLINE = 4
    U = 5

    @property
    def label(self) -> str:
        return self.name if self is Shape.U else self.name.lower()


class Verdict(IntEnum):
    """A pair's VERDICT (the rule above); frames hold its `label`."""

    INCONCLUSIVE = 0
    FLAT = 1
    SMOOTH = 2
    EMERGENT = 3
    MIRAGE = 4
    INVERSE = 5
    U_SHAPED = 6

    @property
    def label(self) -> str:
        return "U-shaped" if self is Verdict.U_SHAPED else self.name.lower()


NO_PARTNER = len(Shape)
"""The rule table's column for a discontinuous metric without a continuous partner."""

_SHAPE_LABELS = np.array([s.label for s in Shape], dtype=object)
_VERDICT_LABELS = np.array([v.label for v in Verdict], dtype=object)


def _rule_table() -> np.ndarray:
    """_TABLE[s_D, s_C] (s_C = `NO_PARTNER` without a partner): the VERDICT paragraph of the rule as a lookup."""
    S, V = Shape, Verdict
    t = np.full((len(S), len(S) + 1), V.INCONCLUSIVE, dtype=np.int8)
    t[S.FLAT, [S.FLAT, NO_PARTNER]] = V.FLAT
    t[S.FLAT, S.RISE] = V.SMOOTH
    t[S.FLAT, S.DECLINE] = V.INVERSE
    t[S.FLAT, S.U] = V.U_SHAPED
    t[S.RISE] = V.SMOOTH
    t[S.RISE, S.DECLINE] = V.INCONCLUSIVE
    t[S.JUMP, S.RISE] = V.MIRAGE
    t[S.JUMP, [S.JUMP, NO_PARTNER]] = V.EMERGENT
    t[S.DECLINE] = V.INVERSE
    t[S.DECLINE, [S.RISE, S.JUMP]] = V.INCONCLUSIVE
    t[S.U] = V.U_SHAPED
    return t


_TABLE = _rule_table()


def shape_codes(d: np.ndarray, e: np.ndarray, dl: np.ndarray, dr: np.ndarray, delta: np.ndarray,
                intervals: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The SHAPE rule, elementwise: int8 `Shape` codes from D, e, the dips dL and dR, and δ (all metric units).

    `intervals` = (D's lower end, D's upper end, e's lower end, whether both dips' intervals start above 0) for a
    curve with its bootstrap intervals. Without them the shape is read off point values alone, as on one bootstrap
    replicate: every interval is then the point itself, and since δ > 0 each interval condition of the rule holds
    whenever its point condition does.
    """
    u = (dl >= delta) & (dr >= delta)
    up = d >= delta
    steep = e >= JUMP_SHARE * d
    if intervals is None:
        flat = np.abs(d) < delta
        decline = d <= -delta
    else:
        d_lo, d_hi, e_lo, dips_positive = intervals
        u &= dips_positive
        up &= d_lo > 0
        steep &= e_lo > 0
        flat = (d_lo > -delta) & (d_hi < delta)
        decline = (d <= -delta) & (d_hi < 0)
    jump = ~u & up & steep
    out = np.full(np.shape(d), Shape.UNCLEAR, dtype=np.int8)
    out[~u & flat] = Shape.FLAT
    out[~u & decline] = Shape.DECLINE
    out[~u & ~jump & up] = Shape.RISE
    out[jump] = Shape.JUMP
    out[u] = Shape.U
    return out


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
        shapes[sl] = shape_codes(d, e, dl, dr, delta32[sl])
        out["change_se"][sl] = _row_se(d)
        out["change_lo"][sl], out["change_hi"][sl] = percentile_interval(d, level)
        out["excess_lo"][sl], out["excess_hi"][sl] = percentile_interval(e, level)
        bt = emergence.breakthroughness(y)
        out["breakthroughness_lo"][sl], out["breakthroughness_hi"][sl] = percentile_interval(bt, level)
        out["dips_positive"][sl] = _lower_end_positive(dl, level) & _lower_end_positive(dr, level)
    return out, shapes


def curve_shapes(cs: CurveSet, level: float = 0.95,
                 se: np.ndarray | None = None) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Per-curve statistics and shape (frame, one row per curve) and the replicate shapes (C, B) int8 `Shape`
    codes, or None without replicates. `se`: rung standard errors (`curves.rung_se`), computed when omitted.

    Frame columns: the curve's keys, kind and unit; `shape` (label) and `shape_code` (`Shape`); change D, excess e
    and breakthroughness B with their intervals (`_lo`, `_hi`; D and e in the metric's unit, B unitless);
    `change_se`; BIG-bench linearity; δ (`delta`); the dips; the hinge fit's ΔAIC and changepoint (in the axis'
    unit); `n`, the fewest examples behind a rung."""
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

    shape = shape_codes(point["change"], point["excess"], dl, dr, delta,
                        (iv["change_lo"], iv["change_hi"], iv["excess_lo"], iv["dips_positive"]))

    frame = cs.keys[CURVE_KEYS + ["kind", "unit"]].copy()
    frame["shape"] = _SHAPE_LABELS[shape]
    frame["shape_code"] = shape
    for name, v in point.items():
        frame[name], frame[f"{name}_lo"], frame[f"{name}_hi"] = v, iv[f"{name}_lo"], iv[f"{name}_hi"]
    frame["change_se"] = iv["change_se"]
    frame["linearity"] = lin
    frame["delta"] = delta
    frame["dip_left"], frame["dip_right"] = dl, dr
    frame["hinge_delta_aic"] = d_aic
    frame["changepoint"] = axis_value(cs.axis, cp)
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


def _shares(codes: np.ndarray) -> tuple[tuple[str, float], ...]:
    """(verdict label, share of bootstrap replicates) for every verdict the replicates gave, most common first."""
    vals, counts = np.unique(codes, return_counts=True)
    order = np.argsort(-counts)
    return tuple((str(_VERDICT_LABELS[vals[o]]), float(counts[o] / len(codes))) for o in order)


def _headline(v: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """HEADLINE per group of consecutive pairs (groups begin at `starts`, pairs in `metrics.PAIRS` order), over the
    first axis of v (P, ...) → (G, ...): any mirage, else the first pair's verdict."""
    any_mirage = np.logical_or.reduceat(v == Verdict.MIRAGE, starts, axis=0)
    return np.where(any_mirage, np.int8(Verdict.MIRAGE), v[starts])


def note(row: Mapping[str, Any]) -> str:
    """A verdict row's note for people, from its typed columns (a `Verdicts.pairs_` or `table_` row): why an
    `emergent` without a partner is flagged; for an inconclusive verdict how many more examples would decide it,
    and how the bootstrap replicates split; the other partners that disagree with a headline."""
    parts = []
    if row["verdict"] == Verdict.EMERGENT.label and not isinstance(row["partner"], str):
        parts.append("no continuous partner: a mirage is not ruled out")
    extra = row["extra_examples"]
    if np.isfinite(extra):
        now = f"n = {row['undecided_n']:.0f}, change {row['undecided_change']:.3g} ± " \
              f"{1.96 * row['undecided_change_se']:.2g}"
        parts.append(f"~{extra:.0f} more examples per rung would decide {row['undecided_metric']} ({now})"
                     if extra >= 1 else f"{row['undecided_metric']} sits on the decision edge ({now})")
    if row["replicate_verdicts"]:
        parts.append("replicates: " + ", ".join(f"{v} {s:.0%}" for v, s in row["replicate_verdicts"]))
    if row["other_partners"]:
        parts.append("other partners: " + "; ".join(f"{m}: {v}" for m, v in row["other_partners"]))
    return " | ".join(parts)


_PAIR_COLS = ("excess", "excess_lo", "excess_hi", "change", "change_lo", "change_hi", "breakthroughness",
              "breakthroughness_lo", "breakthroughness_hi", "linearity")


class Verdicts:
    """sklearn-like: `Verdicts(level).fit(curveset)`; results in `table_`, `pairs_`, `curve_stats_`, `mirage_`,
    `wei_`.

    `pairs_`: one row per (task, metric pair, variant): `verdict` (a `Verdict` label), `confidence` (share of
    bootstrap replicates), both curves' shapes, the deciding numbers (change D and excess e with intervals, in the
    metric's unit; breakthroughness B), the Wei check and (exact match) the p^k test's R² (`analysis.checks`).
    For an inconclusive verdict: `extra_examples` (per rung) that would let `undecided_metric`'s D decide, with
    that curve's `undecided_n`, `undecided_change` and `undecided_change_se` (metric unit), and
    `replicate_verdicts`, ((verdict label, share), …) most common first.
    `table_`: the HEADLINE row per (task, discontinuous metric, variant), same columns, `partner` being the pair
    that decided it, `replicate_verdicts` the headline's own and `other_partners` ((partner, verdict label), …)
    the pairs that disagree with it.
    Both carry `note`, prose made from those columns (`note`) for people; read the columns, not the note.
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
        v = _TABLE[shape[ii], np.where(has, shape[jj], NO_PARTNER)]
        rv = None
        if rep_shapes is not None:
            rv = _TABLE[rep_shapes[ii], np.where(has[:, None], rep_shapes[jj], NO_PARTNER)]  # (P, B)
        conf = np.where(v == Verdict.INCONCLUSIVE, np.nan,
                        (rv == v[:, None]).mean(axis=1) if rv is not None else np.nan)
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
            heads["confidence"] = np.where(head_v == Verdict.INCONCLUSIVE, np.nan,
                                           (head_rv == head_v[:, None]).mean(axis=1))
        metric = st["metric"].to_numpy()
        ends = np.r_[starts[1:], len(v)]
        heads["replicate_verdicts"] = pd.Series(
            [_shares(head_rv[g]) if head_rv is not None and head_v[g] == Verdict.INCONCLUSIVE else ()
             for g in range(len(starts))], dtype=object)
        heads["other_partners"] = pd.Series(
            [tuple((str(metric[jj[k]]), str(_VERDICT_LABELS[v[k]])) for k in range(starts[g], ends[g])
                   if jj[k] >= 0 and v[k] != head_v[g]) for g in range(len(starts))], dtype=object)
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
                            "verdict": _VERDICT_LABELS[v], "confidence": conf,
                            "shape": st["shape"].to_numpy()[ii],
                            "partner_shape": np.where(has, st["shape"].to_numpy()[jj0], None)})
        for c in _PAIR_COLS:
            out[c] = st[c].to_numpy()[ii]
        out["partner_change"] = np.where(has, st["change"].to_numpy()[jj0], np.nan)
        out["partner_excess"] = np.where(has, st["excess"].to_numpy()[jj0], np.nan)
        out["n"] = st["n"].to_numpy()[ii]
        # the curve whose D left the verdict open: the discontinuous one unless only its partner is unclear
        und = np.where(has & (shape[ii] != Shape.UNCLEAR) & (shape[jj0] == Shape.UNCLEAR), jj0, ii)
        n_u, ch_u, se_u, de_u = (st[c].to_numpy(dtype=float)[und] for c in ("n", "change", "change_se", "delta"))
        inc = v == Verdict.INCONCLUSIVE
        out["extra_examples"] = [_resolution(n_u[k], ch_u[k], se_u[k], de_u[k]) if inc[k] else np.nan
                                 for k in range(len(v))]
        out["undecided_metric"] = np.where(inc, st["metric"].to_numpy()[und], None)
        for name, col in (("undecided_n", n_u), ("undecided_change", ch_u), ("undecided_change_se", se_u)):
            out[name] = np.where(inc, col, np.nan)
        out["replicate_verdicts"] = pd.Series(
            [_shares(rv[k]) if rv is not None and inc[k] else () for k in range(len(v))], dtype=object)
        out["other_partners"] = pd.Series([()] * len(v), dtype=object)
        return out

    def _merge(self, tab: pd.DataFrame) -> pd.DataFrame:
        """Add the Wei check, (exact match only) the p^k test's R², and the note, to a verdict frame."""
        if tab.empty:
            return tab
        w = self.wei_[[*CURVE_KEYS, "wei_emergent"]]
        tab = tab.merge(w, on=CURVE_KEYS, how="left")
        m = self.mirage_[["task", "variant", "r2", "explains"]].rename(
            columns={"r2": "mirage_r2", "explains": "mirage_explains"})
        tab = tab.merge(m, on=["task", "variant"], how="left")
        em = tab["metric"] == MIRAGE_PAIR[0]
        tab["mirage_r2"] = tab["mirage_r2"].where(em)
        tab["mirage_explains"] = tab["mirage_explains"].astype(object).where(em)
        tab["note"] = [note(r) for r in tab.to_dict("records")]
        return tab


def gain_scores(scores: pd.DataFrame, base: str) -> pd.DataFrame:
    """Per-example gains of every variant over `base`, as a scores frame: for each (model, task, example, metric)
    scored under both, the variant's value minus the base's (the metric's own unit), under variant
    ``"{variant} − {base}"``. `scores`: `metrics.compute`'s long frame."""
    keys = ["model", "task", "example_id", "metric"]
    b = scores[scores["variant"] == base][[*keys, "value"]].rename(columns={"value": "base"})
    other = scores[scores["variant"] != base].merge(b, on=keys, how="inner")
    other["value"] = other["value"] - other["base"]
    other["variant"] = other["variant"].astype(str) + f" − {base}"
    return other.drop(columns="base").reset_index(drop=True)


def gain_verdicts(scores: pd.DataFrame, rungs: pd.DataFrame, base: str, axis: str = "params", n_boot: int = 1000,
                  seed: int = 0) -> Verdicts:
    """THE RULE applied to gain curves: does the gain of each variant over `base` (n-shot over zero-shot, say)
    itself emerge along `axis`? The gain of a discontinuous metric is judged with its continuous partners' gains,
    so a gain that jumps under exact match but rises smoothly in per-token terms is a mirage. Intervals are
    bootstraps over examples, paired across rungs and across the two variants (the gain is per example).
    `scores`: `metrics.compute`'s frame with `base` among its variants; `rungs`: `Store.rungs`' frame."""
    if axis not in usable_axes(rungs):
        raise ValueError(f"a gain curve needs rungs at two or more {axis} values, known for every rung")
    sets = curves_by_axis(gain_scores(scores, base), rungs, [axis], n_boot=n_boot, seed=seed)
    if axis not in sets:
        raise ValueError(f"no gain curve along {axis}: no example scored under {base} and another variant")
    return Verdicts().fit(sets[axis])
