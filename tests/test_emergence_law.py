"""Emergence laws (analysis.emergence_law): a planted law is recovered, and the backtest passes on a consistent law
and fails when the held-out rungs follow another one."""

from __future__ import annotations

import numpy as np
import pytest

from emergentlab.analysis.emergence_law import EmergenceLaw, backtest, elbow_curve, fit_elbow, law_point

T = np.linspace(-2.0, -1.3, 8)  # −pre-training loss (nats) of 8 rungs
DS = np.array([0.0, 32.0, 128.0, 512.0])
C, K, ALPHA, SLOPE = -1.45, 0.4 / np.log(512), 1.0, 3.5  # un-finetuned elbow at loss 1.45; 0.4 nats earlier at D=512


def planted(seed: int, n: int = 200, held: int = 0, held_shift: float = 0.0, k: float = K) -> np.ndarray:
    """Per-example pass/fail (D, examples, rungs) drawn from the planted law; the `held` largest rungs are not
    fine-tuned (NaN), and their un-finetuned elbow sits `held_shift` (t units) away from the law's."""
    rng = np.random.default_rng(seed)
    y = np.full((len(DS), n, len(T)), np.nan)
    for i, d in enumerate(DS):
        e = float(law_point(max(d, 1.0), C, k, ALPHA))
        p = elbow_curve(T, e, SLOPE, 0.0, 0.02)
        if d == 0 and held:
            p[-held:] = elbow_curve(T[-held:], e + held_shift, SLOPE, 0.0, 0.02)
        for j in range(len(T) if d == 0 else len(T) - held):
            y[i, :, j] = rng.random(n) < p[j]
    return y


def test_softplus_elbow_is_a_relu_near_its_elbow_and_saturates() -> None:
    t = np.array([-1.0, 0.0, 0.001, 0.011, 10.0])
    y = elbow_curve(t, 0.0, 2.0, 0.1, 1e-4)
    assert y[0] == pytest.approx(0.1) and y[1] == pytest.approx(0.1, abs=1e-3)
    assert y[3] - y[2] == pytest.approx(0.9 * 2.0 * 0.01, rel=0.05)  # slope (hi − lo)·A just past the elbow
    assert y[4] == pytest.approx(1.0)  # never past the metric's upper bound


def test_planted_law_is_recovered_within_its_interval() -> None:
    law = EmergenceLaw(n_boot=40, seed=0).fit(T, DS, planted(0))
    lo, hi = law.interval_
    assert lo <= C <= hi and hi - lo < 0.2
    assert law.point_ == pytest.approx(C, abs=0.05)
    truth = law_point(np.maximum(DS, 1.0), C, K, ALPHA)
    assert np.abs(law.emergence_point(DS) - truth).max() < 0.05
    assert np.abs(law.free_points_[1:] - truth[1:]).max() < 0.05  # each fine-tuned D's own elbow too
    assert law.params_["k"] == pytest.approx(K, rel=0.3)
    same = EmergenceLaw(n_boot=40, seed=0).fit(T, DS, planted(0))
    # same seed, same numbers (to the last bits that numpy's SIMD loops may round differently by memory alignment)
    assert np.allclose(same.interval_, law.interval_, rtol=1e-12, atol=0)


def test_no_shift_planted_gives_no_shift() -> None:
    law = EmergenceLaw(n_boot=30, seed=1).fit(T, DS, planted(1, k=0.0))
    assert law.params_["k"] < 0.01  # fine-tuning moves nothing: the law says so
    assert law.point_ == pytest.approx(C, abs=0.05)


def test_backtest_passes_on_a_consistent_law() -> None:
    bt, law = backtest(T, DS, planted(2, held=3), 3, EmergenceLaw(n_boot=40, seed=0))
    assert bt.emerged and bt.success and bt.covered
    assert bt.error < 0.05 and bt.actual == pytest.approx(C, abs=0.05)
    assert np.isnan(law.means_[1:, -3:]).all()  # the held-out rungs were never fine-tuned nor fitted
    assert all(lo <= a <= hi or abs(a - p) < 0.1 for a, p, lo, hi in
               zip(bt.held_actual, bt.held_pred, bt.held_lo, bt.held_hi, strict=True))


def test_backtest_fails_when_the_held_out_rungs_follow_another_law() -> None:
    bt, _ = backtest(T, DS, planted(2, held=3, held_shift=-0.2), 3, EmergenceLaw(n_boot=40, seed=0))
    assert bt.emerged and not bt.success and not bt.covered
    assert bt.error > 0.1


def test_a_curve_that_never_leaves_its_floor_is_not_called_emerged() -> None:
    y = planted(3, held=2)
    y[0] = 0.0  # the un-finetuned model never scores
    bt, _ = backtest(T, DS, y, 2, EmergenceLaw(n_boot=30, seed=0))
    assert not bt.emerged and np.isnan(bt.error) and not bt.success


def test_fit_elbow_finds_a_single_curves_elbow() -> None:
    y = elbow_curve(T, -1.6, 4.0, 0.05, 0.02)
    e, slope, lo = fit_elbow(T, y, 0.02)
    assert e == pytest.approx(-1.6, abs=0.01) and lo == pytest.approx(0.05, abs=0.01)


@pytest.mark.parametrize(("kw", "msg"), [({"d0": 0.5}, "d0"), ({"alpha": 9.0}, "alpha"),
                                         ({"bounds": (0.0, float("inf"))}, "bounds")])
def test_bad_settings_are_refused(kw: dict[str, object], msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        EmergenceLaw(**kw)  # type: ignore[arg-type]


def test_too_little_fine_tuning_is_refused() -> None:
    y = planted(0)
    with pytest.raises(ValueError, match="two fine-tuned"):
        EmergenceLaw(n_boot=5).fit(T, DS[:2], y[:2])
    with pytest.raises(ValueError, match="holdout"):
        backtest(T, DS, y, 6, EmergenceLaw(n_boot=5))
