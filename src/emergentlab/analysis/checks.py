"""Two published tests of a jump, reported beside the verdict rule (`analysis.verdict`) but not part of it.

- Schaeffer et al. 2023's p^k test (`mirage_test`): if every one of a target's k tokens is right independently with
  probability p (the per-token accuracy), exact match is p^k; when that prediction follows the observed exact-match
  curve, the smooth per-token curve accounts for the jump.
- Wei et al. 2022's definition (`wei_check`): absent at the smallest rung (near chance), present at the largest, and
  not predictable by extrapolating the smaller models.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from emergentlab.analysis.curves import CURVE_KEYS, CurveSet, rung_se
from emergentlab.analysis.emergence import JUMP_SHARE

MIRAGE_PAIR = ("exact_match", "token_accuracy")
"""The all-or-nothing metric and the per-token metric whose p^k the test compares it with."""

EXPLAINS_R2 = 0.9
"""p^k explains the exact-match curve when its R² against it is at least this."""


def mirage_test(cs: CurveSet) -> pd.DataFrame:
    """Does exact match ≈ p^k (p = per-token accuracy per rung, k = mean target length in tokens)?

    One row per (task, variant) with both metrics and a known k: observed and predicted exact match per rung
    (fractions), R² of the prediction, RMSE (fraction), and `explains` = R² ≥ `EXPLAINS_R2`.
    """
    cols = ["task", "variant", "k_tokens", "observed", "predicted", "r2", "rmse", "explains"]
    whole, per_token = MIRAGE_PAIR
    keys = list(cs.keys[CURVE_KEYS].itertuples(index=False, name=None))
    idx = {k: i for i, k in enumerate(keys)}
    rows = []
    for i, (task, metric, variant) in enumerate(keys):
        j = idx.get((task, per_token, variant))
        if metric != whole or j is None or not np.isfinite(cs.k_tokens[i]):
            continue
        k = float(cs.k_tokens[i])
        obs, p = cs.mean[i], cs.mean[j]
        pred = np.clip(p, 0, 1) ** k
        ss_tot = float(np.sum((obs - obs.mean()) ** 2))
        ss_res = float(np.sum((obs - pred) ** 2))
        r2 = 1 - ss_res / ss_tot if ss_tot > 0 else float("nan")
        rows.append({"task": task, "variant": variant, "k_tokens": k, "observed": obs.round(4).tolist(),
                     "predicted": pred.round(4).tolist(), "r2": r2, "rmse": float(np.sqrt(ss_res / len(obs))),
                     "explains": bool(np.isfinite(r2) and r2 >= EXPLAINS_R2)})
    return pd.DataFrame(rows, columns=cols)


def wei_check(cs: CurveSet, stats: pd.DataFrame, se: np.ndarray | None = None) -> pd.DataFrame:
    """Wei et al. 2022's definition, per discontinuous curve: a yes/no and the numbers that decided it.

    absent: smallest rung within max(2·se, 0.02) of chance; present: largest rung ≥ chance + max(3·se, 0.1);
    unpredictable: the larger half exceeds the small-model trend (the rule's e: interval above 0, e ≥ D/2).
    Chance is the metric's declared chance level (`CurveSet.chance`); where it is unknown, the smallest rung's
    own score cannot be judged and `absent` is false. `stats`: `verdict.curve_shapes`'s per-curve frame;
    `se`: rung standard errors (C, R) in the metric's unit, computed when omitted.
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
