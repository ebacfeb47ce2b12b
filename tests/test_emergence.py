from __future__ import annotations

import numpy as np
import pandas as pd

from emergentlab.analysis import emergence
from emergentlab.analysis.curves import CurveSet, bootstrap_means


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


def _breakthroughness_reference(y: np.ndarray) -> float:
    """BIG-bench's definition for one curve, straight from the formula (first argmax / argmin)."""
    i = np.sign(np.argmax(y) - np.argmin(y)) or 1.0
    rms = np.sqrt(np.median(np.diff(y) ** 2))
    return float(np.clip(i * (y.max() - y.min()) / rms, -1e3, 1e3)) if rms > 0 else (
        0.0 if y.max() == y.min() else float(np.copysign(1e3, i)))


def test_median_network_is_exact_for_every_count() -> None:
    rng = np.random.default_rng(0)
    for m in range(1, 16):
        # 0-1 principle: a comparator network that is right on every 0/1 input is right on every input
        zero_one = ((np.arange(2**m)[None] >> np.arange(m)[:, None]) & 1).astype(float) if m <= 12 else None
        for x in (zero_one, rng.random((m, 500)).astype(np.float32), rng.integers(0, 3, (m, 500)).astype(float)):
            if x is None:
                continue
            assert np.array_equal(emergence._median([r.copy() for r in x]), np.median(x, axis=0).astype(x.dtype)), m


def test_vectorised_scores_match_the_formula_with_ties() -> None:
    # replicate means of a few examples are coarse: ties at the max and min are common and decide I(y)'s sign
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, (2000, 8)) / 4
    y[0] = [0.5, 0.0, 0.5, 0.25, 0.0, 0.5, 0.25, 0.5]
    slabbed = np.ascontiguousarray(y.T).T  # rung slabs contiguous, as the bootstrap blocks are
    got = emergence.breakthroughness(slabbed)
    assert np.allclose(got, [_breakthroughness_reference(r) for r in y])
    assert got[0] < 0  # first max (rung 0) before first min (rung 1)
    total = np.where(np.argmax(y, 1) >= np.argmin(y, 1), 1, -1) * np.ptp(y, axis=1)
    assert np.allclose(emergence.linearity(y), np.nan_to_num(total / np.sqrt(np.mean(np.diff(y) ** 2, axis=1))))


def test_bootstrap_is_paired_across_curves_and_rungs() -> None:
    rng = np.random.default_rng(2)
    v = rng.random((2, 3, 40))
    v[1] = v[0]  # two metrics with the same per-example values
    v[:, 2] = v[:, 0]  # a rung that answers exactly like the first
    mean, _, reps = bootstrap_means(v, 300, seed=4)
    assert np.array_equal(reps[:, 0], reps[:, 1]) and np.array_equal(reps[..., 0], reps[..., 2])
    assert reps.transpose(2, 1, 0).flags.c_contiguous  # rung-major: what the statistics read block by block
    counts = np.random.default_rng(4).multinomial(40, np.full(40, 1 / 40), size=300)
    assert np.allclose(reps, np.einsum("bn,crn->bcr", counts, v) / 40, atol=1e-6)
    again = bootstrap_means(v, 300, seed=4)[2]
    assert np.array_equal(reps, again) and not np.array_equal(reps, bootstrap_means(v, 300, seed=5)[2])


def test_rung_intervals_are_order_statistics_computed_once() -> None:
    rng = np.random.default_rng(5)
    v = rng.random((4, 3, 30))
    v[1, 2, :] = np.nan  # a rung without examples: no interval
    mean, n, reps = bootstrap_means(v, 400, seed=1)
    cs = CurveSet(pd.DataFrame({"task": ["t"] * 4, "metric": list("abcd"), "variant": "v"}), pd.DataFrame(),
                  "params", mean, n, reps, np.zeros(4), np.full(4, np.nan))
    lo, hi = cs.interval(0.9)
    s = np.sort(reps[:, 0, 1])
    assert lo[0, 1] == s[int(np.floor(0.05 * 399))] and hi[0, 1] == s[int(np.ceil(0.95 * 399))]
    assert np.isnan(lo[1, 2]) and (lo[~np.isnan(lo)] <= mean[~np.isnan(lo)]).all()
    lo[:] = 0  # callers get copies of the stored interval
    assert np.array_equal(cs.interval(0.9)[1], hi, equal_nan=True) and not np.array_equal(cs.interval(0.9)[0], lo)
    assert (np.nan_to_num(cs.interval(0.5)[1]) <= np.nan_to_num(hi)).all()  # a narrower level, its own entry
