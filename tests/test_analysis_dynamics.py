import math

import numpy as np
import pandas as pd
import pytest

from emergentlab.analysis.dynamics import (
    first_step_at,
    jump_interval,
    locate_grokking,
    locate_jump,
    locate_phase_change,
)


def _sigmoid_curve(center: float, width_decades: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    steps = np.unique(np.round(np.logspace(0, 5, 200)))
    z = (np.log10(steps) - math.log10(center)) / width_decades
    noise = np.random.default_rng(seed).normal(0, 0.005, steps.size)
    return steps, 0.01 + 0.98 / (1 + np.exp(-z)) + noise


@pytest.mark.parametrize("center", [300.0, 7000.0, 40000.0])
def test_locate_jump_finds_planted_step(center: float) -> None:
    steps, acc = _sigmoid_curve(center, 0.05)
    jump = locate_jump(steps, acc, min_rise=0.5)
    assert jump is not None
    assert jump.step == pytest.approx(center, rel=0.05)
    assert jump.steepest_step == pytest.approx(center, rel=0.1)
    assert jump.start < jump.step < jump.end
    assert jump.width == pytest.approx(jump.end - jump.start)


def test_sharpness_separates_sudden_from_gradual() -> None:
    sudden = locate_jump(*_sigmoid_curve(5000, 0.03), min_rise=0.5)
    gradual = locate_jump(*_sigmoid_curve(5000, 0.6), min_rise=0.5)
    assert sudden is not None and gradual is not None
    assert sudden.sharpness > 5 * gradual.sharpness


def test_falling_curve_and_min_rise() -> None:
    steps, acc = _sigmoid_curve(2000, 0.05)
    loss = 4.0 - 3.0 * acc
    down = locate_jump(steps, loss, direction="down")
    assert down is not None and down.step == pytest.approx(2000, rel=0.05)
    assert down.high < down.low  # mirrored back into the curve's own unit
    flat = np.full(steps.size, 0.3) + np.random.default_rng(1).normal(0, 0.01, steps.size)
    assert locate_jump(steps, flat, min_rise=0.5) is None


def test_first_step_at_ignores_non_positive_steps_and_nan() -> None:
    steps = np.array([0, 1, 10, 100, 1000])
    vals = np.array([1.0, 0.2, np.nan, 0.995, 1.0])
    assert first_step_at(steps, vals, 0.99) == 100
    assert first_step_at(steps, vals, 2.0) is None


def test_locate_grokking_finds_memorisation_and_jump() -> None:
    steps, val = _sigmoid_curve(3000, 0.05)
    train = np.where(steps >= 80, 1.0, 0.5)
    ev = locate_grokking(pd.DataFrame({"step": steps, "train_acc": train, "val_acc": val}))
    assert ev.memorisation_step == steps[steps >= 80][0]
    assert ev.jump is not None and ev.jump.step == pytest.approx(3000, rel=0.05)
    flat = locate_grokking(pd.DataFrame({"step": steps, "train_acc": train * 0.9, "val_acc": val * 0.4}))
    assert flat.memorisation_step is None and flat.jump is None  # 0.9 < MEMORISED_ACC; a rise of 0.4 ≤ 0.5


def test_locate_phase_change_and_the_falls_with_it() -> None:
    steps, score = _sigmoid_curve(450, 0.05)
    h = pd.DataFrame({"step": steps, "induction_score": score, "icl_score": -0.6 * score,
                      "val_loss": 4.0 - 0.05 * score})
    ev = locate_phase_change(h)
    assert ev.phase_change is not None and ev.phase_change.step == pytest.approx(450, rel=0.05)
    assert ev.icl_drop is not None and ev.icl_drop.step == pytest.approx(450, rel=0.05)
    assert ev.loss_drop is None  # a fall of 0.05 nats is under the 0.1 threshold


def test_jump_interval_covers_a_planted_onset_and_doubts_a_flat_curve() -> None:
    """A 2-way accuracy measured on 256 fresh episodes per step, rising 0.5 → 0.95 around step 800: the interval
    holds 800 and narrows with more episodes; a curve at chance finds a jump in few replicates."""
    steps = np.unique(np.round(np.logspace(0, 4, 30)))
    p = 0.5 + 0.45 / (1 + np.exp(-(np.log10(steps) - math.log10(800)) / 0.08))
    rng = np.random.default_rng(0)
    wide = jump_interval(steps, rng.binomial(256, p) / 256, 256, min_rise=0.25, n_boot=300, seed=1)
    narrow = jump_interval(steps, rng.binomial(4096, p) / 4096, 4096, min_rise=0.25, n_boot=300, seed=1)
    for ji in (wide, narrow):
        assert ji.jump is not None and ji.lo <= 800 <= ji.hi and ji.found > 0.95
    assert narrow.hi / narrow.lo < wide.hi / wide.lo
    flat = jump_interval(steps, rng.binomial(256, np.full(steps.size, 0.5)) / 256, 256, min_rise=0.25, n_boot=300)
    assert flat.jump is None and flat.found < 0.05
