"""`[[compare]]` in a study file: two prompt variants of one task on one metric, as a report section.

Built from the study's records alone: per-example scores of both variants at every rung (only examples scored in
both variants at every rung are kept, so the bootstrap stays paired), then `analysis.shift`'s threshold shift and
sign flip, a per-rung table of the paired difference and a figure of both curves and the difference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from emergentlab import metrics
from emergentlab.analysis.curves import AXIS_UNIT, axis_position, axis_value
from emergentlab.analysis.shift import Flip, Shift, sign_flip, threshold_shift
from emergentlab.sections import Figure, Line, Marker, Panel, Section, Table
from emergentlab.study import CompareSpec


def paired_scores(scores: pd.DataFrame, models: Sequence[str], a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
    """(E, R) scores of variants `a` and `b` for the examples scored in both at every rung in `models` (rung
    order). `scores`: the long frame of `metrics.compute` for one task and metric."""
    wide = scores.pivot_table(index="example_id", columns=["variant", "model"], values="value", aggfunc="first")
    cols = [(v, m) for v in (a, b) for m in models]
    wide = wide.reindex(columns=pd.MultiIndex.from_tuples(cols)).dropna()
    x = wide.to_numpy(dtype=float)
    return x[:, :len(models)], x[:, len(models):]


def level_of(spec: CompareSpec) -> float | None:
    """The emergence level: the stated one, else the middle of the metric's range (None when it is open)."""
    if spec.level is not None:
        return spec.level
    lo, hi = metrics.declared(spec.metric).bounds
    return (lo + hi) / 2 if math.isfinite(lo) and math.isfinite(hi) else None


def compare_stats(spec: CompareSpec, records: pd.DataFrame, rungs: pd.DataFrame, axis: str, seed: int = 0,
                  n_boot: int = 1000, alpha: float = 0.05
                  ) -> tuple[np.ndarray, np.ndarray, Shift | None, Flip | None]:
    """The paired (E, R) scores of both variants, the threshold shift (None when the metric's range is open and no
    level is stated) and the sign flip; shift and flip are None when fewer than 2 examples or rungs pair up."""
    sub = records[(records["task"] == spec.task) & records["variant"].isin([spec.a, spec.b])]
    models = list(rungs["model"])
    a, b = paired_scores(metrics.compute(sub, [spec.metric]), models, spec.a, spec.b) if len(sub) else (
        np.empty((0, len(models))),) * 2
    if a.shape[0] < 2 or len(models) < 2:
        return a, b, None, None
    t = axis_position(axis, rungs[axis].to_numpy(dtype=float))
    rng = np.random.default_rng(seed)
    level = level_of(spec)
    bounds = metrics.declared(spec.metric).bounds
    shift = threshold_shift(t, a, b, level, rng, bounds=bounds, n_boot=n_boot) if level is not None and all(
        map(math.isfinite, bounds)) else None
    return a, b, shift, sign_flip(t, a, b, rng, alpha=alpha, n_boot=n_boot)


def compare_section(spec: CompareSpec, records: pd.DataFrame, rungs: pd.DataFrame, axis: str, seed: int = 0,
                    n_boot: int = 1000, alpha: float = 0.05) -> Section:
    """One `[[compare]]` entry as a section. `rungs`: one row per rung with `model` and `axis`, sorted along it."""
    title = f"Compare {spec.a} vs {spec.b} — {spec.task} · {spec.metric}"
    models = list(rungs["model"])
    a, b, shift, flip = compare_stats(spec, records, rungs, axis, seed, n_boot, alpha)
    if flip is None:
        return Section(title, [f"{a.shape[0]} example(s) scored in both {spec.a} and {spec.b} at all {len(models)} "
                               "rungs: too few to compare (at least 2 examples and 2 rungs)."])
    unit = AXIS_UNIT.get(axis, axis)
    where = "−loss (nats)" if axis == "loss" else f"log10 {unit}"
    top = float(axis_position(axis, rungs[axis].to_numpy(dtype=float)).max())
    paragraphs = [f"{a.shape[0]} examples scored in both variants at every one of {len(models)} rungs; intervals "
                  f"are paired bootstraps over examples; scale positions are {where}.",
                  _shift_text(spec, shift, axis, top), f"Sign flip of {spec.a} − {spec.b}: {flip.text(where)}."]
    frame = pd.DataFrame({"model": models, axis: rungs[axis].to_numpy(dtype=float), f"mean {spec.a}": a.mean(0),
                          f"mean {spec.b}": b.mean(0), "difference": flip.mean, "lo": flip.lo, "hi": flip.hi,
                          "significant": [lo > 0 or hi < 0 for lo, hi in zip(flip.lo, flip.hi, strict=True)]})
    table = Table(frame, f"Per rung: {spec.metric} means ({metrics.declared(spec.metric).unit}) of each variant and "
                         f"their paired difference {spec.a} − {spec.b} with its simultaneous interval (each rung at "
                         f"{100 * (1 - alpha / len(models)):.2f} %, Bonferroni over rungs); {axis} in {unit}.",
                  key=f"compare-{spec.task}-{spec.a}-{spec.b}-{spec.metric}")
    return Section(title, paragraphs, [table], [_figure(spec, axis, rungs, a, b, shift, flip)],
                   summary=[f"{spec.task} ({spec.metric}): {_shift_text(spec, shift, axis, top)} Sign flip: "
                            f"{flip.text(where)}."])


def _shift_text(spec: CompareSpec, s: Shift | None, axis: str, top: float) -> str:
    """The threshold shift in words; `top`: the largest rung's scale position (see `crossing_text`)."""
    if s is None:
        return "No threshold shift: the metric's range is open and no level was stated."
    where = "−loss (nats)" if axis == "loss" else f"log10 {AXIS_UNIT.get(axis, axis)}"
    pts = (f"{spec.a} crosses {s.level:g} at {crossing_text(s.point_a, top)}, {spec.b} at "
           f"{crossing_text(s.point_b, top)} ({where})")
    if not math.isfinite(s.shift):
        return f"{pts}: no shift can be given (a trend does not cross the level)."
    return (f"{pts}: shift {s.shift:+.2f} ({100 * s.confidence:.0f} % interval {s.lo:+.2f} to "
            f"{s.hi:+.2f}, from the {100 * s.share_crossed:.0f} % of replicates where both cross).")


def crossing_text(x: float, top: float) -> str:
    """A crossing's scale position `x` in words: "never" when the trend does not cross; past `top`, the largest
    rung's position, it is marked extrapolated, since no model was measured there and only the fitted curve's tail
    puts it there."""
    if not math.isfinite(x):
        return "never"
    return f"{x:.2f}" + (f" (past the largest rung, {top:.2f}: extrapolated)" if x > top else "")


def _figure(spec: CompareSpec, axis: str, rungs: pd.DataFrame, a: np.ndarray, b: np.ndarray, s: Shift | None,
            f: Flip) -> Figure:
    x = tuple(map(float, rungs[axis]))
    xlog = axis != "loss"
    marks = tuple(Marker(float(axis_value(axis, p)), f"{v} crosses {s.level:g}")
                  for v, p in ((spec.a, s.point_a), (spec.b, s.point_b)) if math.isfinite(p)) if s else ()
    lo, hi = metrics.declared(spec.metric).bounds
    curves = Panel(f"{spec.task}: {spec.metric}", f"{axis} ({AXIS_UNIT.get(axis, axis)})", spec.metric,
                   (Line(x, tuple(a.mean(0)), spec.a), Line(x, tuple(b.mean(0)), spec.b, style="dashed")), marks,
                   xlog=xlog, ylim=(lo, hi) if math.isfinite(lo) and math.isfinite(hi) else None)
    flip_mark = (Marker(float(axis_value(axis, f.at)), "sign flip"),) if f.found and math.isfinite(f.at) else ()
    diff = Panel(f"{spec.a} − {spec.b}", f"{axis} ({AXIS_UNIT.get(axis, axis)})", "paired difference",
                 (Line(x, f.mean, f"{spec.a} − {spec.b}", lo=f.lo, hi=f.hi), Line(x, (0.0,) * len(x), "0",
                                                                                   style="dotted", markers=False)),
                 flip_mark, xlog=xlog)
    return Figure((curves, diff), f"Left: each variant's mean {spec.metric} per rung. Right: the paired difference "
                                  "with its simultaneous interval band; markers at the emergence points and the flip.")


def sections(compares: Sequence[CompareSpec], records: pd.DataFrame, rungs: pd.DataFrame, axis: str,
             seed: int = 0) -> list[Section]:
    """A section per `[[compare]]` entry of the study."""
    return [compare_section(c, records, rungs, axis, seed) for c in compares]
