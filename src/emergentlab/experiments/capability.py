"""Capability thresholds and model selection over a stored ladder study: the curves they need, read from the store,
and the report sections that show a policy check (`analysis.policy`) and a selection (`analysis.select`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from emergentlab import metrics
from emergentlab.analysis.curves import AXIS_UNIT, CurveSet, curves_by_axis, primary_axis, usable_axes
from emergentlab.analysis.policy import Level, PolicyCheck
from emergentlab.analysis.scores_csv import MIN_RUNGS
from emergentlab.analysis.select import COST_UNIT, Selection
from emergentlab.errors import UserError
from emergentlab.experiments.study import study_records
from emergentlab.sections import Section, Table
from emergentlab.store import Store


def curve_set(store: Store, study: str | None, names: Sequence[str], axis: str | None = None, n_boot: int = 1000,
              seed: int = 0, source: str = "") -> CurveSet:
    """The curves of metrics `names` for the records `store` holds of `study` (the only one when None), along
    `axis` (the primary axis when None or not known for every rung). UserError when there is nothing to judge."""
    records, rungs = study_records(store, study, source)
    if len(rungs) < MIN_RUNGS or not usable_axes(rungs):
        raise UserError(f"needs records of at least {MIN_RUNGS} rungs with a known scale that varies", source=source)
    ax = primary_axis(rungs, axis)
    return curves_by_axis(metrics.compute(records, names), rungs, [ax], n_boot=n_boot, seed=seed,
                          records=records)[ax]


def level_names(df: pd.DataFrame) -> pd.DataFrame:
    """A policy check's rung table with its `Level` codes as words (below, warning, critical) for people."""
    return df.assign(**{c: [Level(v).name.lower() for v in df[c]] for c in ("level", "interval_reaches")})


def policy_sections(check: PolicyCheck) -> list[Section]:
    """The policy check: a sentence per threshold first (which line is crossed, by whom, and when the next
    crossing is expected), then the forecasts and the per-rung table."""
    unit = AXIS_UNIT.get(check.axis, check.axis)
    summary = []
    for (label, variant), g in check.forecasts.groupby(["threshold", "variant"], sort=False):
        parts = []
        for r in g.itertuples(index=False):
            if isinstance(r.crossed_by, str):
                parts.append(f"{r.line} line ({r.value:g}) crossed by {r.crossed_by}")
            elif np.isfinite(r.forecast):
                parts.append(f"{r.line} line ({r.value:g}) expected at {unit} {r.forecast:.3g} "
                             f"(90 % interval {r.forecast_lo:.3g}–{r.forecast_hi:.3g})")
            else:
                parts.append(f"{r.line} line ({r.value:g}) not crossed and no crossing forecast within reach")
        summary.append(f"Policy · {label} ({variant}): " + "; ".join(parts) + ".")
    head = {Level.BELOW: "no line crossed", Level.WARNING: "a WARNING line is crossed",
            Level.CRITICAL: "a CRITICAL line is crossed"}[check.level]
    fc = check.forecasts.rename(columns={"value": "level value", "crossed_by": "first rung past it",
                                         "forecast": f"forecast ({unit})", "forecast_lo": "90 % lo",
                                         "forecast_hi": "90 % hi"})
    rungs = level_names(check.rungs).rename(columns={"lo": "95 % lo", "hi": "95 % hi", "level": "line crossed",
                                                 "interval_reaches": "interval reaches"})
    return [Section(title="Capability thresholds", summary=[f"Policy check: {head}.", *summary], paragraphs=[
        "Each threshold declares a warning and a critical level of a metric (in the metric's unit). A rung crosses "
        "a line when its mean is at or beyond it in the metric's better direction; 'interval reaches' is the line "
        "the better end of its 95 % interval reaches — a crossing the data cannot rule out."],
        tables=[Table(fc, f"Per threshold and line: the first rung past it, or where the trend fitted to every rung "
                      f"is forecast to cross it ({unit}), with a 90 % interval from bootstrap refits.",
                      key="policy-forecasts"),
                Table(rungs, "Per threshold and rung: the mean (metric unit) with its 95 % bootstrap interval over "
                      "examples and the line it crosses.", key="policy-rungs")])]


def selection_summary(sel: Selection) -> str:
    """One sentence: the rung to take and why, or the scale at which the trend reaches the bar."""
    unit = AXIS_UNIT.get(sel.axis, sel.axis)
    what = f"{sel.metric} ≥ {sel.bar:g}" if metrics.METRICS[sel.metric].higher_is_better else \
        f"{sel.metric} ≤ {sel.bar:g}"
    if sel.chosen is not None:
        row = sel.table[sel.table["model"] == sel.chosen].iloc[0]
        line = (f"Select {sel.chosen}: the cheapest rung whose {sel.confidence:.0%} bound clears {what} on "
                f"{sel.task} ({sel.variant}) — mean {row['mean']:.3g}, bound {row['bound']:.3g}, cost "
                f"{row['cost']:.3g} {COST_UNIT[sel.cost]}.")
    elif np.isfinite(sel.forecast):
        line = (f"No rung clears {what} on {sel.task} ({sel.variant}) at {sel.confidence:.0%}; the trend reaches "
                f"the bar at {unit} {sel.forecast:.3g} (90 % interval {sel.forecast_lo:.3g}–{sel.forecast_hi:.3g}).")
    else:
        line = (f"No rung clears {what} on {sel.task} ({sel.variant}) at {sel.confidence:.0%}, and the trend does "
                "not reach the bar within the extrapolation range.")
    return line


def selection_sections(sel: Selection) -> list[Section]:
    """The selection: its one sentence, then the per-rung table."""
    return [Section(title="Model selection", summary=[selection_summary(sel)], tables=[Table(
        sel.table.rename(columns={"cost": f"cost ({COST_UNIT[sel.cost]})", "bound": f"{sel.confidence:.0%} bound"}),
        f"Per rung, cheapest first: {sel.metric}'s mean over examples and its one-sided {sel.confidence:.0%} "
        "bootstrap bound (metric unit); clears: the bound is past the bar.", key="selection")])]
