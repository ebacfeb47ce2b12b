"""If-then capability thresholds (in the spirit of Anthropic's Responsible Scaling Policy and OpenAI's
Preparedness Framework): a policy declares, per task and metric, a *warning* and a *critical* level; checking a
ladder says which rungs cross which line and, from a trend fitted to the ladder, at what scale the next crossing
is expected — an early warning before the model exists.

The policy file (TOML):

    axis = "params"            # optional: the scale axis forecasts are made on (default: the run's primary axis)

    [[thresholds]]
    task = "add3"              # a task of the run
    metric = "exact_match"     # any metric in `metrics.METRICS`
    variant = "0shot"          # optional: every variant of the task when absent
    warning = 0.2              # in the metric's unit; for a lower-is-better metric (e.g. brier) warning > critical
    critical = 0.5
    name = "3-digit addition"  # optional label

A rung *crosses* a level when its mean (over the examples) is at or beyond it in the metric's better direction;
`interval_reaches` says which level the upper end of its 95 % interval reaches (a crossing the data cannot rule
out). The forecast of a level not yet crossed by the largest rung is `analysis.forecast.Forecaster`'s crossing of
the trend fitted to every rung, with its 90 % interval from bootstrap refits; none is given when fewer than half
of the refits cross inside the extrapolation range.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emergentlab import metrics
from emergentlab.analysis.curves import SCALE_AXES, CurveSet
from emergentlab.analysis.forecast import Forecaster
from emergentlab.errors import UserError, read_toml


class Level(IntEnum):
    """How far a curve has come, ordered: below both lines, past the warning line, past the critical line."""

    BELOW = 0
    WARNING = 1
    CRITICAL = 2


@dataclass(frozen=True)
class Threshold:
    task: str
    metric: str
    warning: float
    critical: float
    variant: str | None = None
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or f"{self.task} · {self.metric}"

    @property
    def higher_is_better(self) -> bool:
        return metrics.METRICS[self.metric].higher_is_better

    def level(self, value: float) -> Level:
        """The line `value` (metric unit) is at or beyond, in the metric's better direction."""
        s = 1.0 if self.higher_is_better else -1.0
        if not np.isfinite(value):
            return Level.BELOW
        if s * value >= s * self.critical:
            return Level.CRITICAL
        return Level.WARNING if s * value >= s * self.warning else Level.BELOW


@dataclass(frozen=True)
class Policy:
    thresholds: tuple[Threshold, ...]
    axis: str | None = None
    source: str = "<policy>"


_KEYS = {"task", "metric", "variant", "warning", "critical", "name"}


def parse_policy(data: dict[str, Any], src: str) -> Policy:
    """Validate a policy given as a dict (as read from TOML); every error names the source and the field."""
    extra = sorted(set(data) - {"axis", "thresholds"})
    if extra:
        raise UserError(f"unknown field(s) {', '.join(extra)}; allowed: axis, thresholds", source=src)
    axis = data.get("axis")
    if axis is not None and axis not in SCALE_AXES:
        raise UserError(f"unknown axis {axis!r}; known: {', '.join(SCALE_AXES)}", source=src, field="axis")
    raw = data.get("thresholds")
    if not isinstance(raw, list) or not raw:
        raise UserError("needs at least one [[thresholds]] entry", source=src, field="thresholds")
    out = []
    for i, t in enumerate(raw):
        where = f"thresholds[{i}]"
        if not isinstance(t, dict):
            raise UserError("must be a table", source=src, field=where)
        bad = sorted(set(t) - _KEYS)
        if bad:
            raise UserError(f"unknown field(s) {', '.join(bad)}; allowed: {', '.join(sorted(_KEYS))}", source=src,
                            field=where)
        for k in ("task", "metric"):
            if not isinstance(t.get(k), str):
                raise UserError("needs a string", source=src, field=f"{where}.{k}")
        if t["metric"] not in metrics.METRICS:
            raise UserError(f"unknown metric {t['metric']!r}; known: {', '.join(metrics.METRICS)}", source=src,
                            field=f"{where}.metric")
        for k in ("warning", "critical"):
            if isinstance(t.get(k), bool) or not isinstance(t.get(k), int | float):
                raise UserError("needs a number (the metric's unit)", source=src, field=f"{where}.{k}")
        th = Threshold(t["task"], t["metric"], float(t["warning"]), float(t["critical"]),
                       str(t["variant"]) if "variant" in t else None, str(t.get("name", "")))
        s = 1.0 if th.higher_is_better else -1.0
        if s * th.warning > s * th.critical:
            raise UserError(f"the warning level must come before the critical one ({th.metric} is "
                            f"{'higher' if s > 0 else 'lower'}-is-better)", source=src, field=f"{where}.warning")
        out.append(th)
    return Policy(tuple(out), axis, src)


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file. Raises UserError naming the file and the field."""
    return parse_policy(read_toml(path), str(path))


@dataclass
class PolicyCheck:
    """`rungs`: one row per (threshold, curve, rung): the rung's mean and 95 % interval (metric unit), the level it
    crosses and the level its interval reaches (`Level` codes). `forecasts`: one row per (threshold, curve, line):
    the first rung that crossed it, or the forecast scale (axis unit) of the crossing with its 90 % interval.
    `level`: the highest level any rung crossed."""

    rungs: pd.DataFrame
    forecasts: pd.DataFrame
    level: Level
    axis: str


def _curves(cs: CurveSet, th: Threshold, src: str, where: str) -> list[int]:
    k = cs.keys
    hit = (k["task"] == th.task) & (k["metric"] == th.metric)
    if th.variant is not None:
        hit &= k["variant"] == th.variant
    if not hit.any():
        if not (k["task"] == th.task).any():
            raise UserError(f"the run has no task {th.task!r} (tasks: {', '.join(sorted(set(k['task'])))})",
                            source=src, field=where)
        have = k[k["task"] == th.task]
        raise UserError(f"no {th.metric} curve for task {th.task!r}"
                        + (f" and variant {th.variant!r}" if th.variant is not None else "")
                        + f" (it has {', '.join(sorted(set(have['metric'])))} for variants "
                        f"{', '.join(sorted(set(have['variant'])))})", source=src, field=where)
    return [int(i) for i in np.flatnonzero(hit.to_numpy())]


def check(policy: Policy, cs: CurveSet, n_boot: int = 100, seed: int = 0) -> PolicyCheck:
    """Every threshold of `policy` against the curves of `cs` (one scale axis)."""
    lo95, hi95 = cs.interval(0.95)
    x = cs.rungs[cs.axis].to_numpy(dtype=float)
    rows, fc_rows = [], []
    for n, th in enumerate(policy.thresholds):
        s = 1.0 if th.higher_is_better else -1.0
        for i in _curves(cs, th, policy.source, f"thresholds[{n}]"):
            variant = str(cs.keys["variant"].iat[i])
            key = {"threshold": th.label, "task": th.task, "metric": th.metric, "variant": variant}
            levels = [th.level(v) for v in cs.mean[i]]
            best_end = hi95[i] if s > 0 else lo95[i]  # the interval's end on the metric's better side
            for r in range(len(x)):
                rows.append({**key, "model": cs.rungs["model"].iat[r], cs.axis: x[r], "mean": cs.mean[i, r],
                             "lo": lo95[i, r], "hi": hi95[i, r], "level": levels[r],
                             "interval_reaches": th.level(best_end[r])})
            for lv, value in ((Level.WARNING, th.warning), (Level.CRITICAL, th.critical)):
                first = next((r for r, got in enumerate(levels) if got >= lv), None)
                row = {**key, "line": lv.name.lower(), "value": value, "crossed_by": None, "forecast": np.nan,
                       "forecast_lo": np.nan, "forecast_hi": np.nan}
                if first is not None:
                    row["crossed_by"] = cs.rungs["model"].iat[first]
                else:
                    fc = Forecaster(value, n_boot, seed, metrics=(th.metric,)).fit(cs).summary_
                    hit = fc[(fc["task"] == th.task) & (fc["variant"] == variant)]
                    if not hit.empty:
                        row.update(forecast=hit["crossing"].iat[0], forecast_lo=hit["crossing_lo"].iat[0],
                                   forecast_hi=hit["crossing_hi"].iat[0])
                fc_rows.append(row)
    rung_df = pd.DataFrame(rows)
    level = Level(int(max(rung_df["level"], default=Level.BELOW)))  # pandas stores the codes as plain ints
    return PolicyCheck(rung_df, pd.DataFrame(fc_rows), level, cs.axis)
