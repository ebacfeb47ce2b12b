from __future__ import annotations

import numpy as np

from emergentlab.analysis import emergence
from emergentlab.analysis.curves import bootstrap_means


def test_bigbench_scores_on_a_line_and_a_step() -> None:
    line = np.linspace(0.1, 0.8, 8)
    assert np.isclose(emergence.breakthroughness(line), 7) and np.isclose(emergence.linearity(line), 7)
    stepped = np.r_[np.zeros(5), np.ones(3)]
    assert emergence.breakthroughness(stepped) == 1e3  # zero median step: clipped
    assert np.isclose(emergence.linearity(stepped), 1 / np.sqrt(1 / 7))
    assert emergence.breakthroughness(line[::-1]) < 0  # I(y) carries the direction


def test_weights_match_explicit_fits() -> None:
    rng = np.random.default_rng(0)
    t, y = np.log10(np.logspace(6, 10, 7)), rng.random(7)
    k = emergence.split(7)
    b, a = np.polyfit(t[:k], y[:k], 1)
    assert np.isclose(y @ emergence.extrapolation_weights(t), np.mean(y[k:] - (a + b * t[k:])))
    assert np.isclose(y @ emergence.half_difference_weights(7), y[k:].mean() - y[:k].mean())


def test_hinge_beats_line_only_on_flat_then_rise() -> None:
    t = np.arange(8.0)
    kinked = np.r_[np.zeros(4), np.arange(1, 5) * 0.2]
    d_aic, cp = emergence.hinge_vs_line(np.stack([kinked, 0.1 * t]), t, np.array([0.01, 0.01]))
    assert d_aic[0] > 10 and cp[0] == 3 and d_aic[1] < 0


def test_bootstrap_means_exact_and_ragged() -> None:
    rng = np.random.default_rng(1)
    v = rng.random((3, 4, 50))
    v[0, 0, 40:] = np.nan
    mean, n, reps = bootstrap_means(v, 2000, seed=0)
    assert np.allclose(mean, np.nanmean(v, axis=-1)) and n[0, 0] == 40 and n[1, 1] == 50
    se = np.nanstd(v, axis=-1) / np.sqrt(n)
    assert np.allclose(reps.std(axis=0), se, rtol=0.15)
    assert np.allclose(reps.mean(axis=0), mean, atol=3 * se.max() / np.sqrt(2000) * 10)
