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

from dataclasses import dataclass

import numpy as np
import pandas as pd

from emergentlab import metrics
from emergentlab.analysis import emergence
from emergentlab.analysis.curves import CURVE_KEYS, CurveSet

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
])

JUMP_SHARE = 0.5
"""A jump: at least this share of the rise (D) is missed by the small-model trend (e)."""


@dataclass
class _Stat:
    point: np.ndarray  # (C,)
    reps: np.ndarray | None  # (B, C)
    lo: np.ndarray
    hi: np.ndarray
    se: np.ndarray


def _stat(point: np.ndarray, reps: np.ndarray | None, level: float) -> _Stat:
    if reps is None:
        return _Stat(point, None, point, point, np.zeros_like(point))
    a = (1 - level) / 2
    q = np.nanquantile if np.isnan(reps).any() else np.quantile
    lo, hi = q(reps, [a, 1 - a], axis=0)
    return _Stat(point, reps, lo, hi, np.nanstd(reps, axis=0))


def _shapes_point(d: np.ndarray, e: np.ndarray, dl: np.ndarray, dr: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Shapes read off point values only (used on every bootstrap replicate)."""
    u = (dl >= delta) & (dr >= delta)
    jump = ~u & (d >= delta) & (e >= JUMP_SHARE * d)
    rise = ~u & ~jump & (d >= delta)
    decline = ~u & (d <= -delta)
    flat = ~u & (np.abs(d) < delta)
    out = np.full(d.shape, UNCLEAR)
    for mask, code in ((flat, FLAT), (decline, DECLINE), (rise, RISE), (jump, JUMP), (u, U)):
        out[mask] = code
    return out


def curve_shapes(cs: CurveSet, level: float = 0.95) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Per-curve statistics and shape (frame, one row per curve) and the replicate shapes (B, C) or None."""
    sign = cs.sign[:, None]
    y = cs.mean * sign
    reps = cs.boot * sign[None].astype(np.float32) if cs.boot is not None else None
    t = cs.t
    r = len(t)
    w_e = emergence.extrapolation_weights(t)
    w_d = emergence.half_difference_weights(r)
    delta = emergence.min_effect(cs.mean)
    e = _stat(y @ w_e, reps @ w_e.astype(np.float32) if reps is not None else None, level)
    d = _stat(y @ w_d, reps @ w_d.astype(np.float32) if reps is not None else None, level)
    dl_p, dr_p = emergence.dip(y)
    dl_r, dr_r = emergence.dip(reps) if reps is not None else (None, None)
    dl, dr = _stat(dl_p, dl_r, level), _stat(dr_p, dr_r, level)
    b = _stat(emergence.breakthroughness(y), emergence.breakthroughness(reps) if reps is not None else None, level)
    lin = emergence.linearity(y)
    rung_se = np.nanstd(cs.boot, axis=0) if cs.boot is not None else np.zeros_like(cs.mean)
    sigma = np.maximum(np.nanmean(rung_se, axis=-1), 1e-3 * np.maximum(1.0, np.nanmax(np.abs(y), axis=-1)))
    d_aic, cp = emergence.hinge_vs_line(np.nan_to_num(y), t, sigma) if r >= 3 else (np.full(len(y), np.nan),) * 2

    u = (dl.point >= delta) & (dr.point >= delta) & (dl.lo > 0) & (dr.lo > 0)
    up = (d.point >= delta) & (d.lo > 0)
    jump = ~u & up & (e.point >= JUMP_SHARE * d.point) & (e.lo > 0)
    rise = ~u & ~jump & up
    decline = ~u & (d.point <= -delta) & (d.hi < 0)
    flat = ~u & (d.lo > -delta) & (d.hi < delta)
    shape = np.full(len(y), UNCLEAR)
    for mask, code in ((flat, FLAT), (decline, DECLINE), (rise, RISE), (jump, JUMP), (u, U)):
        shape[mask] = code

    frame = cs.keys[CURVE_KEYS + ["kind", "unit"]].copy()
    frame["shape"] = [SHAPES[s] for s in shape]
    frame["shape_code"] = shape
    for name, s in (("change", d), ("excess", e), ("breakthroughness", b)):
        frame[name], frame[f"{name}_lo"], frame[f"{name}_hi"] = s.point, s.lo, s.hi
    frame["change_se"] = d.se
    frame["linearity"] = lin
    frame["delta"] = delta
    frame["dip_left"], frame["dip_right"] = dl.point, dr.point
    frame["hinge_delta_aic"] = d_aic
    cp_x = np.power(10.0, cp) if cs.axis != "loss" else -np.asarray(cp)
    frame["changepoint"] = cp_x
    frame["n"] = np.nanmin(cs.n, axis=-1)
    rep_shapes = None
    if reps is not None:
        assert e.reps is not None and d.reps is not None and dl.reps is not None and dr.reps is not None
        rep_shapes = _shapes_point(d.reps, e.reps, dl.reps, dr.reps, delta[None])
    return frame, rep_shapes


def _resolution(n: float, change: float, se: float, delta: float) -> float:
    """Extra examples per rung for D's 95 % interval to decide (the rule's RESOLUTION paragraph)."""
    margin = abs(change) if abs(change) >= delta else delta - abs(change)
    if not np.isfinite(se) or se <= 0 or margin <= 0 or not np.isfinite(n) or n <= 0:
        return float("nan")
    need = n * (1.96 * se / margin) ** 2
    return float(max(0.0, np.ceil(need - n)))  # 0: the normal approximation already decides: borderline


def pairs(keys: pd.DataFrame) -> list[tuple[int, int | None]]:
    """(discontinuous curve index, continuous partner index or None) for every pair present in `keys`."""
    out: list[tuple[int, int | None]] = []
    idx = {tuple(k): i for i, k in enumerate(keys[CURVE_KEYS].itertuples(index=False))}
    for i, (task, metric, variant) in enumerate(keys[CURVE_KEYS].itertuples(index=False)):
        if keys["kind"].iat[i] != "discontinuous":
            continue
        if metric in metrics.PAIRS:
            partners = [idx[(task, p, variant)] for p in metrics.PAIRS[metric] if (task, p, variant) in idx]
        else:  # a published table's own accuracy names: every continuous metric of the same task is a partner
            partners = [j for j, k in enumerate(keys[CURVE_KEYS].itertuples(index=False))
                        if k[0] == task and k[2] == variant and keys["kind"].iat[j] == "continuous"]
        out.extend((i, j) for j in partners) if partners else out.append((i, None))
    return out


def mirage_test(cs: CurveSet) -> pd.DataFrame:
    """Schaeffer et al. 2023: does exact match ≈ p^k (p = per-token accuracy per rung, k = target tokens)?

    One row per (task, variant) with both metrics and a known k: observed and predicted exact match per rung,
    R² of the prediction, RMSE (fraction), and `explains` = R² ≥ 0.9 (the smooth per-token curve accounts for the
    exact-match curve's shape).
    """
    rows = []
    keys = cs.keys
    for (task, variant), g in keys.groupby(["task", "variant"]):
        em = g.index[g["metric"] == "exact_match"]
        tok = g.index[g["metric"] == "token_accuracy"]
        if len(em) == 0 or len(tok) == 0 or not np.isfinite(cs.k_tokens[em[0]]):
            continue
        k = float(cs.k_tokens[em[0]])
        obs, p = cs.mean[em[0]], cs.mean[tok[0]]
        pred = np.clip(p, 0, 1) ** k
        ss_tot = float(np.sum((obs - obs.mean()) ** 2))
        ss_res = float(np.sum((obs - pred) ** 2))
        r2 = 1 - ss_res / ss_tot if ss_tot > 0 else float("nan")
        rows.append({"task": task, "variant": variant, "k_tokens": k, "observed": obs.round(4).tolist(),
                     "predicted": pred.round(4).tolist(), "r2": r2, "rmse": float(np.sqrt(ss_res / len(obs))),
                     "explains": bool(np.isfinite(r2) and r2 >= 0.9)})
    return pd.DataFrame(rows, columns=["task", "variant", "k_tokens", "observed", "predicted", "r2", "rmse",
                                       "explains"])


def wei_check(cs: CurveSet, stats: pd.DataFrame) -> pd.DataFrame:
    """Wei et al. 2022's definition, per discontinuous curve: a yes/no and the numbers that decided it.

    absent: smallest rung within max(2·se, 0.02) of chance; present: largest rung ≥ chance + max(3·se, 0.1);
    unpredictable: the larger half exceeds the small-model trend (the rule's e: interval above 0, e ≥ D/2).
    Chance is the uniform-guess score (multiple choice) or 0 (exact match); unknown chance → the smallest rung's
    own score cannot be judged and `absent` is false.
    """
    se = np.nanstd(cs.boot, axis=0) if cs.boot is not None else np.zeros_like(cs.mean)
    rows = []
    for i in np.flatnonzero(cs.keys["kind"].to_numpy() == "discontinuous"):
        chance = cs.chance[i]
        small, large = cs.mean[i, 0], cs.mean[i, -1]
        absent = bool(np.isfinite(chance) and abs(small - chance) <= max(2 * se[i, 0], 0.02))
        present = bool(np.isfinite(chance) and large - chance >= max(3 * se[i, -1], 0.1))
        st = stats.iloc[i]
        unpredictable = bool(st["excess_lo"] > 0 and st["excess"] >= JUMP_SHARE * st["change"] and st["change"] > 0)
        rows.append({**{k: cs.keys[k].iat[i] for k in CURVE_KEYS}, "wei_emergent": absent and present and unpredictable,
                     "chance": chance, "smallest": small, "largest": large, "absent_small": absent,
                     "present_large": present, "excess": st["excess"], "excess_lo": st["excess_lo"],
                     "unpredictable": unpredictable})
    return pd.DataFrame(rows)


def _split(codes: np.ndarray) -> str:
    """'flat 55 %, smooth 45 %': how bootstrap replicates' verdicts are shared out."""
    vals, counts = np.unique(codes, return_counts=True)
    order = np.argsort(-counts)
    return ", ".join(f"{VERDICTS[vals[o]]} {counts[o] / len(codes):.0%}" for o in order)


def _headline(v: np.ndarray) -> np.ndarray:
    """HEADLINE over a group's pairs, v (..., P) in `metrics.PAIRS` order → (...): any mirage, else the first."""
    return np.where((v == _MIRAGE).any(axis=-1), _MIRAGE, v[..., 0])


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
        self.curve_stats_, rep_shapes = curve_shapes(cs, self.level)
        self.mirage_ = mirage_test(cs)
        self.wei_ = wei_check(cs, self.curve_stats_)
        st = self.curve_stats_
        shape = st["shape_code"].to_numpy()
        groups: dict[int, list[tuple[int | None, int, np.ndarray | None]]] = {}
        for i, j in pairs(cs.keys):
            v = int(_TABLE[shape[i], shape[j] if j is not None else NONE])
            reps = None
            if rep_shapes is not None:
                rc = rep_shapes[:, j] if j is not None else np.full(len(rep_shapes), NONE)
                reps = _TABLE[rep_shapes[:, i], rc]
            groups.setdefault(i, []).append((j, v, reps))
        rows, heads = [], []
        for i, members in groups.items():
            vs = np.array([v for _, v, _ in members])
            head_v = int(_headline(vs))
            rep_list = [r for _, _, r in members if r is not None]
            head_reps = _headline(np.stack(rep_list, axis=-1)) if rep_list else None
            decider = next(k for k, (_, v, _) in enumerate(members) if v == head_v)
            others = [f"{st['metric'].iat[j]}: {VERDICTS[v]}" for j, v, _ in members
                      if j is not None and v != head_v]
            for k, (j, v, reps) in enumerate(members):
                row = self._row(st, shape, i, j, v, reps)
                rows.append(row)
                if k == decider:
                    head = dict(row)
                    head["confidence"] = (float(np.mean(head_reps == head_v))
                                          if head_reps is not None and head_v != _INC else float("nan"))
                    notes = [str(row["note"])] if row["note"] else []
                    if head_v == _INC and head_reps is not None:
                        notes = [n.split("; ", 1)[1] if n.startswith("replicates") and "; " in n else n
                                 for n in notes if not n.startswith("replicates") or "; " in n]
                        notes.append(f"replicates: {_split(head_reps)}")
                    if others:
                        notes.append("other partners: " + "; ".join(others))
                    head["note"] = " | ".join(notes)
                    heads.append(head)
        self.pairs_ = self._merge(cs, pd.DataFrame(rows))
        self.table_ = self._merge(cs, pd.DataFrame(heads))
        return self

    @staticmethod
    def _row(st: pd.DataFrame, shape: np.ndarray, i: int, j: int | None, v: int,
             reps: np.ndarray | None) -> dict[str, object]:
        di, dj = st.iloc[i], (st.iloc[j] if j is not None else None)
        conf = float(np.mean(reps == v)) if reps is not None and v != _INC else float("nan")
        undecided = di if shape[i] == UNCLEAR or dj is None or shape[j] != UNCLEAR else dj
        extra = (_resolution(undecided["n"], undecided["change"], undecided["change_se"], undecided["delta"])
                 if v == _INC else float("nan"))
        note = ""
        if j is None and v == _EMERGENT:
            note = "no continuous partner: a mirage is not ruled out"
        elif v == _INC and reps is not None:
            note = f"replicates: {_split(reps)}"
        if v == _INC and np.isfinite(extra):
            now = f"n = {undecided['n']:.0f}, change {undecided['change']:.3g} ± {1.96 * undecided['change_se']:.2g}"
            note = (note + "; " if note else "") + (
                f"~{extra:.0f} more examples per rung would decide {undecided['metric']} ({now})" if extra >= 1
                else f"{undecided['metric']} sits on the decision edge ({now})")
        return {
            "task": di["task"], "variant": di["variant"], "metric": di["metric"],
            "partner": dj["metric"] if dj is not None else None, "verdict": VERDICTS[v], "confidence": conf,
            "shape": di["shape"], "partner_shape": dj["shape"] if dj is not None else None,
            "excess": di["excess"], "excess_lo": di["excess_lo"], "excess_hi": di["excess_hi"],
            "change": di["change"], "change_lo": di["change_lo"], "change_hi": di["change_hi"],
            "breakthroughness": di["breakthroughness"], "breakthroughness_lo": di["breakthroughness_lo"],
            "breakthroughness_hi": di["breakthroughness_hi"], "linearity": di["linearity"],
            "partner_change": dj["change"] if dj is not None else np.nan,
            "partner_excess": dj["excess"] if dj is not None else np.nan,
            "n": di["n"], "extra_examples": extra, "note": note,
        }

    def _merge(self, cs: CurveSet, tab: pd.DataFrame) -> pd.DataFrame:
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
