"""`Analysis`: everything the report shows, fitted from per-example scores or from curves of published scores."""

from __future__ import annotations

import pandas as pd

from emergentlab.analysis.curves import CURVE_KEYS, SCALE_AXES, CurveSet, curves_by_axis, primary_axis
from emergentlab.analysis.forecast import Forecaster, target_string_law
from emergentlab.analysis.strata import COLUMNS as STRATA_COLUMNS
from emergentlab.analysis.strata import strata_verdicts
from emergentlab.analysis.verdict import Verdicts, curve_shapes
from emergentlab.errors import UserError

FORECAST_AXES = ("params", "flops", "loss")
"""Axes on which a threshold crossing is forecast when the ladder has them (parameters, FLOPs, loss in nats)."""


def no_axis_error(rungs: pd.DataFrame, source: str) -> UserError:
    """The one-line error for a ladder on which no scale axis varies (the same model at several quantization
    levels, say): what each known fact is, and which fact to set (`field`) so the report has an axis."""
    said = []
    for a in SCALE_AXES:
        v = pd.to_numeric(rungs[a], errors="coerce") if a in rungs else pd.Series(dtype=float)
        if v.notna().all() and v.nunique() == 1:
            said.append(f"{a} is {v.iat[0]:.3g} on every rung")
        elif v.notna().any() and not v.notna().all():
            said.append(f"{a} is unknown on {int(v.isna().sum())} rung(s)")
    fact = "loss"  # what sets rungs apart when size does not: each one's loss (nats/token) on held-out text
    return UserError(f"no scale axis varies across the {len(rungs)} rungs ({'; '.join(said) or 'no scale known'}); "
                     f"set {fact} (nats/token) or another fact ({', '.join(SCALE_AXES)}) that differs per rung",
                     source=source, field=fact)


class Analysis:
    """sklearn-like: `Analysis(n_boot, seed, threshold).fit(scores, rungs)` or `.fit_sets({axis: CurveSet})`.

    Results (all DataFrames unless said): `curves_` every curve on every axis; `verdicts_` (a `Verdicts`) on the
    primary axis; `table_` the verdict table with threshold forecasts and backtest numbers; `forecasts_`
    {axis: `Forecaster`} on the primary axis (predicting at `at`, a value in its unit, when given) and on
    parameters, FLOPs and loss where the ladder has them; `target_law_` (the task scaling law fitted to the
    teacher-forced target-string probability, `forecast.target_string_law`); `loss_view_` (Du et al. 2024: per curve,
    the loss in nats below which the flat-then-rise fit starts rising, with its ΔAIC over a straight line);
    `sets_` {axis: `CurveSet`}; `strata_` (per-difficulty verdicts, `fit` with `strata` only).
    """

    def __init__(self, n_boot: int = 1000, seed: int = 0, threshold: float = 0.5, axis: str | None = None,
                 forecast_boot: int = 100, at: float | None = None) -> None:
        self.n_boot, self.seed, self.threshold = n_boot, seed, threshold
        self.axis, self.forecast_boot, self.at = axis, forecast_boot, at

    def fit(self, scores: pd.DataFrame, rungs: pd.DataFrame, records: pd.DataFrame | None = None,
            strata: str | None = None) -> Analysis:
        """Fit from per-example scores; `strata` names the example metadata key (e.g. "digits") whose values
        split the examples into difficulty strata, each judged on its own (`strata_`; needs `records`)."""
        fitted = self.fit_sets(curves_by_axis(scores, rungs, n_boot=self.n_boot, seed=self.seed, records=records))
        if strata is not None and records is not None:
            self.strata_ = strata_verdicts(scores, rungs, records, strata, fitted.axis_, self.n_boot, self.seed)
        return self

    def fit_sets(self, sets: dict[str, CurveSet]) -> Analysis:
        if not sets:
            raise ValueError("no scale axis is known for every rung")
        self.sets_ = sets
        self.strata_ = pd.DataFrame(columns=STRATA_COLUMNS)
        first = next(iter(sets.values()))
        self.axis_: str = primary_axis(first.rungs, self.axis)
        frames = []
        for ax, cs in sets.items():
            f = cs.frame()
            frames.append(f.assign(axis=ax, x=f[ax])[[*CURVE_KEYS, "axis", "model", "x", "mean", "lo", "hi", "n"]])
        self.curves_ = pd.concat(frames, ignore_index=True)
        cs = sets[self.axis_]
        self.verdicts_ = Verdicts().fit(cs)
        # `at` is a value on the primary axis; the other axes forecast their crossing only
        self.forecasts_ = {ax: Forecaster(self.threshold, self.forecast_boot, self.seed,
                                          at=self.at if ax == self.axis_ else None).fit(sets[ax])
                           for ax in dict.fromkeys([self.axis_, *FORECAST_AXES]) if ax in sets}
        self.target_law_ = target_string_law(cs)
        if "loss" in sets:
            st, _ = curve_shapes(sets["loss"])
            self.loss_view_ = st[[*CURVE_KEYS, "shape", "changepoint", "hinge_delta_aic"]].rename(
                columns={"shape": "shape_vs_loss", "changepoint": "loss_threshold"})
        else:
            self.loss_view_ = pd.DataFrame(columns=[*CURVE_KEYS, "shape_vs_loss", "loss_threshold", "hinge_delta_aic"])
        tab = self.verdicts_.table_.copy()
        for ax, fc in self.forecasts_.items():
            s = fc.summary_
            if s.empty:
                continue
            cols = {"crossing": f"cross_{ax}", "crossing_lo": f"cross_{ax}_lo", "crossing_hi": f"cross_{ax}_hi"}
            if ax == self.axis_:
                cols.update(backtest_mae="backtest_mae", backtest_coverage="backtest_coverage")
            tab = tab.merge(s[[*CURVE_KEYS, *cols]].rename(columns=cols), on=CURVE_KEYS, how="left")
        if not tab.empty and not self.loss_view_.empty:
            lv = self.loss_view_[[*CURVE_KEYS, "loss_threshold", "shape_vs_loss"]]
            tab = tab.merge(lv, on=CURVE_KEYS, how="left")
        self.table_ = tab
        return self
