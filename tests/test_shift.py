"""Threshold shift and sign flip against planted answers."""

from __future__ import annotations

import numpy as np
import pytest

from emergentlab.analysis.shift import sign_flip, threshold_shift

T = np.linspace(6.0, 10.0, 9)  # log10 parameters of a 9-rung ladder


def _draw(p: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, R) Bernoulli scores with rung success probabilities p (R,)."""
    return (rng.random((n, len(p))) < p).astype(float)


def test_threshold_shift_recovers_planted_sigmoids() -> None:
    rng = np.random.default_rng(0)
    a = _draw(1 / (1 + np.exp(-(T - 7.5) / 0.6)), 300, rng)
    b = _draw(1 / (1 + np.exp(-(T - 8.5) / 0.6)), 300, rng)
    s = threshold_shift(T, a, b, 0.5, np.random.default_rng(1), n_boot=400)
    assert s.point_a == pytest.approx(7.5, abs=0.15)
    assert s.point_b == pytest.approx(8.5, abs=0.15)
    assert s.lo < -1.0 < s.hi and s.hi < 0  # covers the planted shift, excludes none
    assert s.lo <= s.shift <= s.hi and s.share_crossed > 0.95


def test_same_condition_gives_no_shift() -> None:
    rng = np.random.default_rng(2)
    a = _draw(1 / (1 + np.exp(-(T - 8.0) / 0.4)), 300, rng)
    s = threshold_shift(T, a, a.copy(), 0.5, np.random.default_rng(3), n_boot=200)
    assert s.shift == 0 and s.lo == 0 and s.hi == 0  # pairing: identical conditions shift in no replicate


def test_planted_flip_is_found_at_planted_scale() -> None:
    rng = np.random.default_rng(4)
    planted = 8.3
    pa = np.clip(0.5 + 0.12 * (T - planted), 0, 1)  # A − B linear in t, zero at the planted scale
    a, b = _draw(pa, 600, rng), _draw(np.full(len(T), 0.5), 600, rng)
    f = sign_flip(T, a, b, np.random.default_rng(5), n_boot=1000)
    assert f.found and f.direction == 1
    assert f.at == pytest.approx(planted, abs=0.35)
    assert f.at_lo < planted < f.at_hi and f.at_hi - f.at_lo < 1.5
    assert "negative to positive" in f.text()


def test_reversed_flip_has_negative_direction() -> None:
    rng = np.random.default_rng(6)
    pa = np.clip(0.5 + 0.12 * (T - 8.0), 0, 1)
    b, a = _draw(pa, 600, rng), _draw(np.full(len(T), 0.5), 600, rng)
    f = sign_flip(T, a, b, np.random.default_rng(7), n_boot=1000)
    assert f.found and f.direction == -1 and f.at == pytest.approx(8.0, abs=0.4)


def test_flat_difference_flips_at_most_at_the_stated_rate() -> None:
    alpha, seeds = 0.1, 150
    flips = 0
    for seed in range(seeds):
        rng = np.random.default_rng(100 + seed)
        p = rng.uniform(0.2, 0.8, size=len(T))  # any curve, the same for both conditions: d = 0 at every rung
        f = sign_flip(T, _draw(p, 80, rng), _draw(p, 80, rng), rng, alpha=alpha, n_boot=400)
        flips += f.found
        if not f.found:
            assert "no flip within the ladder" in f.text()
    assert flips / seeds <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / seeds)


def test_unpaired_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="paired"):
        sign_flip(T, np.zeros((5, 9)), np.zeros((4, 9)), np.random.default_rng(0))
