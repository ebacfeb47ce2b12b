"""Locating jumps in training curves: the one place the memorisation point, the generalisation jump and the
induction-head phase change are defined.

Training curves are logged on (roughly) log-spaced steps, and jumps in them are judged on a log-step axis (a jump
at step 10 000 that takes 2 000 steps is sudden; one at step 300 that takes 2 000 steps is not), so every
interpolation here is linear in log(step).

Definitions (used for grokking and for the induction-head phase change alike):

* **reach step** of a level: the first logged step whose value is ≥ the level (`first_step_at`); the
  *memorisation point* of grokking is the reach step of train accuracy `MEMORISED_ACC` (0.99).
* **jump** of a rising curve with floor ``lo = min(y)`` and ceiling ``hi = max(y)``: for q in (0.1, 0.5, 0.9) let
  t_q be the first step where y crosses ``lo + q·(hi − lo)`` (interpolated in log-step between the two logged
  points around the crossing). The jump's ``step`` is t_0.5, its ``width`` is t_0.9 − t_0.1 (steps), its
  ``sharpness`` is t_0.5 / width (dimensionless: ≫ 1 means the curve rises in a small fraction of the training
  time so far), and ``steepest_step`` is the midpoint (in log-step) of the logged interval where y rises fastest per
  unit of log-step. A falling curve (``direction="down"``, e.g. the in-context-learning score) is mirrored first.
  The *generalisation jump* of grokking is the jump of validation accuracy (when it rises by more than 0.5).
* The *in-context-learning onset* of a bursty-training run is the jump of its in-context accuracy on held-out
  classes (`ICL_MIN_RISE`: it must climb at least half-way from W-way chance to perfect; 0.25 for 2 ways).
  `jump_interval` gives a jump's t_0.5 an interval from the evaluation noise of a curve of proportions.
* The induction-head *phase change* is the jump of the induction score (best prefix-matching score of a head that
  can be an induction head) when it rises by more than 0.3; with it, the fall of the in-context-learning score (by
  more than 0.3 nats) and of the validation loss (by more than 0.1 nats).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

MEMORISED_ACC = 0.99  # train accuracy that marks grokking's memorisation point
ICL_MIN_RISE = 0.25  # rise of 2-way in-context accuracy (chance 0.5) that counts as in-context learning


@dataclass(frozen=True)
class Jump:
    """A located rise (or fall) of a curve; steps are optimizer steps, values in the curve's own unit."""

    step: float  # t_0.5: where the curve is halfway from floor to ceiling
    start: float  # t_0.1
    end: float  # t_0.9
    width: float  # end − start, in steps
    sharpness: float  # step / width (dimensionless; large = sudden)
    steepest_step: float  # log-step midpoint of the fastest-rising logged interval
    low: float  # floor of the curve (its minimum; its maximum for a falling curve)
    high: float  # ceiling of the curve
    rise: float  # |high − low|


def _arrays(steps: Sequence[float] | np.ndarray, values: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"steps and values must be 1-d and equally long, got {x.shape} and {y.shape}")
    keep = np.isfinite(y) & (x > 0)
    x, y = x[keep], y[keep]
    order = np.argsort(x, kind="stable")
    return x[order], y[order]


def first_step_at(steps: Sequence[float] | np.ndarray, values: Sequence[float] | np.ndarray,
                  level: float) -> float | None:
    """First logged step whose value is ≥ `level`; None when the curve never gets there."""
    x, y = _arrays(steps, values)
    hit = np.flatnonzero(y >= level)
    return float(x[hit[0]]) if hit.size else None


def _crossing(x: np.ndarray, y: np.ndarray, level: float) -> float:
    """First step where y reaches `level`, interpolated linearly in log-step (y[0] < level ≤ max(y) assumed)."""
    i = int(np.flatnonzero(y >= level)[0])
    if i == 0:
        return float(x[0])
    lx0, lx1 = math.log(x[i - 1]), math.log(x[i])
    frac = (level - y[i - 1]) / (y[i] - y[i - 1])
    return math.exp(lx0 + frac * (lx1 - lx0))


def locate_jump(steps: Sequence[float] | np.ndarray, values: Sequence[float] | np.ndarray,
                direction: Literal["up", "down"] = "up", min_rise: float = 0.0) -> Jump | None:
    """The jump of a curve logged at `steps` (> 0; other points are ignored), as defined in the module docstring.

    Returns None when fewer than 3 points are left or the rise (|max − min|) is ≤ `min_rise`, in the curve's unit
    (e.g. 0.5 for an accuracy that must climb at least 50 points to count as a jump).
    """
    x, y = _arrays(steps, values)
    if direction not in ("up", "down"):
        raise ValueError(f"direction must be 'up' or 'down', got {direction!r}")
    if x.size < 3:
        return None
    s = y if direction == "up" else -y
    lo, hi = float(s.min()), float(s.max())
    if hi - lo <= min_rise or hi == lo:
        return None
    t = {q: _crossing(x, s, lo + q * (hi - lo)) for q in (0.1, 0.5, 0.9)}
    lx = np.log(x)
    slope = np.diff(s) / np.maximum(np.diff(lx), 1e-12)
    k = int(np.argmax(slope))
    width = t[0.9] - t[0.1]
    sign = 1.0 if direction == "up" else -1.0
    return Jump(step=t[0.5], start=t[0.1], end=t[0.9], width=width,
                sharpness=t[0.5] / width if width > 0 else math.inf,
                steepest_step=math.exp(0.5 * (lx[k] + lx[k + 1])),
                low=sign * lo, high=sign * hi, rise=hi - lo)


@dataclass(frozen=True)
class GrokkingEvents:
    """Where a grokking run memorised and where it generalised (steps are optimizer steps)."""

    memorisation_step: float | None  # first logged step with train accuracy ≥ MEMORISED_ACC
    jump: Jump | None  # generalisation jump of validation accuracy (None if it rose ≤ 0.5)


def locate_grokking(history: pd.DataFrame) -> GrokkingEvents:
    """Memorisation point and generalisation jump of a history with step, train_acc and val_acc (0–1) columns."""
    return GrokkingEvents(memorisation_step=first_step_at(history["step"], history["train_acc"], MEMORISED_ACC),
                          jump=locate_jump(history["step"], history["val_acc"], min_rise=0.5))


@dataclass(frozen=True)
class PhaseChange:
    """The induction-head phase change and the falls that come with it (None where the curve did not move)."""

    phase_change: Jump | None  # rise of induction_score (0–1) by > 0.3
    icl_drop: Jump | None  # fall of icl_score by > 0.3 nats
    loss_drop: Jump | None  # fall of val_loss by > 0.1 nats


def locate_phase_change(history: pd.DataFrame) -> PhaseChange:
    """Events of a history with step, induction_score, icl_score and val_loss columns."""
    s = history["step"]
    return PhaseChange(phase_change=locate_jump(s, history["induction_score"], min_rise=0.3),
                       icl_drop=locate_jump(s, history["icl_score"], direction="down", min_rise=0.3),
                       loss_drop=locate_jump(s, history["val_loss"], direction="down", min_rise=0.1))


@dataclass(frozen=True)
class JumpInterval:
    """A jump located on a curve of proportions, with an interval for its step from the curve's evaluation noise.

    `lo`, `hi`: percentile interval (steps) of t_0.5 over the replicates that have a jump (NaN when none has);
    `found`: the share of replicates with a jump (0–1): low when the jump itself is in doubt."""

    jump: Jump | None
    lo: float
    hi: float
    found: float


def jump_interval(steps: Sequence[float] | np.ndarray, values: Sequence[float] | np.ndarray, n: int,
                  min_rise: float, direction: Literal["up", "down"] = "up", n_boot: int = 1000, seed: int = 0,
                  level: float = 0.95) -> JumpInterval:
    """`locate_jump` on a curve whose every point is a proportion of `n` independent trials (fresh items at each
    step), with a parametric bootstrap: each replicate redraws every point as Binomial(n, value) / n and locates
    its jump again. The interval covers evaluation noise only, not the spread between training seeds."""
    x, y = _arrays(steps, values)
    jump = locate_jump(x, y, direction, min_rise)
    rng = np.random.default_rng(seed)
    reps = rng.binomial(n, np.clip(y, 0.0, 1.0), size=(n_boot, y.size)) / n
    found = [j.step for r in reps if (j := locate_jump(x, r, direction, min_rise)) is not None]
    if not found:
        return JumpInterval(jump, math.nan, math.nan, 0.0)
    a = (1 - level) / 2
    lo, hi = np.quantile(np.log(found), [a, 1 - a])  # in log-step, the axis jumps are judged on
    return JumpInterval(jump, float(np.exp(lo)), float(np.exp(hi)), len(found) / n_boot)
