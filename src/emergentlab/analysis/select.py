"""Model selection ("7B or 70B for multi-hop reasoning?"): the cheapest rung whose metric clears a bar with the
stated confidence, and, when none does, the scale at which the ladder's trend is forecast to reach it.

A rung *clears* the bar when the one-sided `confidence` bound of its mean (over examples; the lower end of the
two-sided 2·confidence − 1 percentile bootstrap interval, or the upper end for a lower-is-better metric) is at or
beyond the bar — so a rung whose mean sits just above the bar with few examples does not clear it. Costs:
`params` (parameters), `flops_per_token` (forward-pass FLOPs per token ≈ 2 · parameters, Kaplan et al. 2020),
`price` (whatever unit the caller's price list uses, e.g. USD per million tokens).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from emergentlab import metrics
from emergentlab.analysis.curves import CurveSet
from emergentlab.analysis.forecast import Forecaster
from emergentlab.errors import UserError

COSTS = ("params", "flops_per_token", "price")
COST_UNIT = {"params": "parameters", "flops_per_token": "FLOPs per token", "price": "price-list unit"}


@dataclass
class Selection:
    """`table`: one row per rung (cheapest first): cost, mean, the one-sided bound, whether it clears the bar.
    `chosen`: the cheapest rung that clears, or None; then `forecast` (with `forecast_lo`/`forecast_hi`, a 90 %
    interval) is the `axis` value at which the trend of the mean reaches the bar (NaN when it does not within the
    extrapolation range)."""

    task: str
    metric: str
    variant: str
    bar: float
    cost: str
    confidence: float
    table: pd.DataFrame
    chosen: str | None
    axis: str
    forecast: float = float("nan")
    forecast_lo: float = float("nan")
    forecast_hi: float = float("nan")


def rung_costs(rungs: pd.DataFrame, cost: str, prices: Mapping[str, float] | None = None) -> np.ndarray:
    """Each rung's cost (unit in `COST_UNIT`); UserError when a rung lacks what the cost needs."""
    if cost not in COSTS:
        raise UserError(f"unknown cost {cost!r}; known: {', '.join(COSTS)}", field="--cost")
    if cost == "price":
        missing = [m for m in rungs["model"] if prices is None or m not in prices]
        if missing:
            raise UserError(f"no price for {', '.join(map(str, missing))}", field="--prices")
        return np.array([float(prices[m]) for m in rungs["model"]])  # type: ignore[index]
    params = pd.to_numeric(rungs["params"], errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(params).all():
        raise UserError("every rung needs a parameter count for this cost", field="--cost")
    return params if cost == "params" else 2.0 * params


def select(cs: CurveSet, task: str, metric: str, bar: float, cost: str = "params", variant: str | None = None,
           confidence: float = 0.95, prices: Mapping[str, float] | None = None, n_boot: int = 100,
           seed: int = 0) -> Selection:
    """The cheapest rung of `cs` whose `metric` on `task` clears `bar` (metric unit) at `confidence`."""
    if not 0.5 < confidence < 1:
        raise UserError(f"must be in (0.5, 1), got {confidence}", field="--confidence")
    k = cs.keys
    rows = np.flatnonzero(((k["task"] == task) & (k["metric"] == metric)).to_numpy())
    if not len(rows):
        raise UserError(f"no {metric} curve for task {task!r} (tasks: {', '.join(sorted(set(k['task'])))})",
                        field="--task")
    variants = [str(k["variant"].iat[i]) for i in rows]
    if variant is None and len(variants) > 1:
        raise UserError(f"the task has several variants ({', '.join(variants)}); name one", field="--variant")
    if variant is not None and variant not in variants:
        raise UserError(f"unknown variant {variant!r}; known: {', '.join(variants)}", field="--variant")
    i = int(rows[variants.index(variant)] if variant is not None else rows[0])
    variant = str(k["variant"].iat[i])
    higher = metrics.METRICS[metric].higher_is_better if metric in metrics.METRICS else True
    lo, hi = cs.interval(2 * confidence - 1)
    bound = lo[i] if higher else hi[i]
    clears = bound >= bar if higher else bound <= bar
    costs = rung_costs(cs.rungs, cost, prices)
    table = pd.DataFrame({"model": cs.rungs["model"].to_numpy(), "params": cs.rungs["params"].to_numpy()
                          if "params" in cs.rungs else np.nan, "cost": costs, "mean": cs.mean[i], "bound": bound,
                          "clears": clears})
    table = table.sort_values(["cost", "params"], kind="stable").reset_index(drop=True)
    ok = table[table["clears"]]
    sel = Selection(task, metric, variant, bar, cost, confidence, table,
                    str(ok["model"].iat[0]) if not ok.empty else None, cs.axis)
    if sel.chosen is None:
        fc = Forecaster(bar, n_boot, seed, metrics=(metric,)).fit(cs).summary_
        hit = fc[(fc["task"] == task) & (fc["variant"] == variant)]
        if not hit.empty:
            sel.forecast, sel.forecast_lo, sel.forecast_hi = (float(hit[c].iat[0]) for c in
                                                              ("crossing", "crossing_lo", "crossing_hi"))
    return sel
