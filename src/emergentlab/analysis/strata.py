"""Verdicts per difficulty: the same curves and verdict rule, computed on each stratum of examples separately.

Where examples carry a difficulty in their metadata (a synthetic task's `digits` or `steps`, a JSONL `metadata`
field the study names), the whole-task curve can hide opposite movements: easy questions improving while hard
ones get worse, cancelling until everything surges at once. Splitting the examples by the named key and judging
each stratum on its own ladder shows them side by side. A stratum needs `MIN_EXAMPLES` examples to be judged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from emergentlab.analysis.curves import curves_by_axis
from emergentlab.analysis.verdict import Verdicts

MIN_EXAMPLES = 20
"""Examples (per task and variant) a stratum needs before its curve is judged."""

COLUMNS = ["task", "variant", "metric", "stratum_key", "stratum", "examples", "verdict", "confidence", "shape",
           "partner", "partner_shape", "change", "change_lo", "change_hi", "first", "last"]


def stratum_of(records: pd.DataFrame, key: str) -> pd.Series:
    """Each record's value of metadata[key] as text (NaN where the record has none)."""
    return pd.Series([str(m[key]) if isinstance(m, dict) and key in m and m[key] is not None else np.nan
                      for m in records["metadata"]], index=records.index, dtype=object)


def _order(values: list[str]) -> list[str]:
    """Numbers in numeric order (2 before 10), then the rest alphabetically."""
    def sort_key(v: str) -> tuple[int, float, str]:
        try:
            return 0, float(v), v
        except ValueError:
            return 1, 0.0, v

    return sorted(values, key=sort_key)


def strata_verdicts(scores: pd.DataFrame, rungs: pd.DataFrame, records: pd.DataFrame, key: str, axis: str,
                    n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per (task, variant, discontinuous metric, stratum): the headline verdict on that stratum's examples
    alone, on `axis`; `change` (D, with its 95 % interval) and `first`/`last` (the smallest and largest rung's
    mean) in the metric's unit; `examples` per rung. Empty (with `COLUMNS`) when no record carries `key`."""
    strata = stratum_of(records, key)
    ids = records.assign(stratum=strata).dropna(subset=["stratum"])[["task", "variant", "example_id", "stratum"]]
    ids = ids.drop_duplicates(["task", "variant", "example_id"])
    sc = scores.merge(ids, on=["task", "variant", "example_id"], how="inner")
    rows = []
    for value in _order(list(sc["stratum"].unique())):
        sub = sc[sc["stratum"] == value]
        counts = sub.groupby(["task", "variant"])["example_id"].nunique()
        big = counts[counts >= MIN_EXAMPLES].index
        sub = sub[pd.MultiIndex.from_frame(sub[["task", "variant"]]).isin(big)]
        if sub.empty:
            continue
        cs = curves_by_axis(sub.drop(columns="stratum"), rungs, [axis], n_boot=n_boot, seed=seed,
                            records=records)[axis]
        tab = Verdicts().fit(cs).table_
        if tab.empty:
            continue
        idx = {k: i for i, k in enumerate(cs.keys[["task", "metric", "variant"]].itertuples(index=False, name=None))}
        for r in tab.itertuples(index=False):
            i = idx[(r.task, r.metric, r.variant)]
            rows.append({"task": r.task, "variant": r.variant, "metric": r.metric, "stratum_key": key,
                         "stratum": value, "examples": int(counts[(r.task, r.variant)]), "verdict": r.verdict,
                         "confidence": r.confidence, "shape": r.shape,
                         "partner": r.partner if isinstance(r.partner, str) else None,
                         "partner_shape": r.partner_shape, "change": r.change, "change_lo": r.change_lo,
                         "change_hi": r.change_hi, "first": float(cs.mean[i, 0]), "last": float(cs.mean[i, -1])})
    return pd.DataFrame(rows, columns=COLUMNS)
