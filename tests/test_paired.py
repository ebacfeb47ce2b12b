from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from emergentlab.analysis.paired import (
    adjust,
    benjamini_hochberg,
    compare_scores,
    holm,
    mcnemar,
    paired_bootstrap,
)

SEEDS = 200
ALPHA = 0.05


def _upper(rate: float, n: int = SEEDS) -> float:
    """The largest rejection share over `n` null runs that a test with true rate `rate` reaches in 99.9 % of
    batches (binomial tolerance for a test that should flag at most `rate`)."""
    return float(binom.ppf(0.999, n, rate)) / n


def test_mcnemar_counts_discordant_pairs_and_matches_the_binomial_test() -> None:
    old = np.array([1, 1, 1, 1, 1, 0, 0, 1, 1, 1], dtype=float)
    new = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1], dtype=float)
    r = mcnemar(old, new)
    assert (r.regressed, r.improved, r.n) == (5, 1, 10)
    # two-sided exact binomial: P(X <= 1 or X >= 5 | 6, 1/2) = 14/64
    assert r.p == pytest.approx(14 / 64)
    assert r.delta == pytest.approx(-0.4)
    assert r.lo < r.delta < r.hi


def test_mcnemar_without_change_and_with_bad_scores() -> None:
    same = np.array([1.0, 0.0, 1.0])
    assert mcnemar(same, same).p == 1.0
    with pytest.raises(ValueError, match="pass/fail"):
        mcnemar(np.array([0.5, 1.0]), np.array([1.0, 1.0]))


def test_a_planted_regression_is_caught_by_both_tests() -> None:
    rng = np.random.default_rng(1)
    old = (rng.random(200) < 0.8).astype(float)
    new = old * (rng.random(200) > 0.25)  # NEW loses a quarter of what OLD solved
    assert mcnemar(old, new).p < 1e-6
    x = rng.normal(0.0, 1.0, 150)
    r = paired_bootstrap(x, x - 0.4 + rng.normal(0, 0.3, 150), np.random.default_rng(0))
    assert r.p < 0.01 and r.hi < 0


@pytest.mark.parametrize("p_old", [0.3, 0.7])
def test_mcnemar_false_positive_rate_on_planted_non_differences(p_old: float) -> None:
    """Two models with the same per-item pass probability (items differ in difficulty, answers are noisy):
    McNemar at α = 0.05 rejects in at most α of the seeds (it is exact, so conservative)."""
    flagged = 0
    for seed in range(SEEDS):
        rng = np.random.default_rng(seed)
        difficulty = np.clip(rng.normal(p_old, 0.25, 120), 0.02, 0.98)
        old = (rng.random(120) < difficulty).astype(float)
        new = (rng.random(120) < difficulty).astype(float)
        flagged += mcnemar(old, new).p < ALPHA
    assert flagged / SEEDS <= _upper(ALPHA)


def test_paired_bootstrap_false_positive_rate_is_the_stated_alpha() -> None:
    """The bootstrap is calibrated, not merely conservative: over 200 null seeds its rejection share is within a
    binomial tolerance of α on both sides."""
    flagged = 0
    for seed in range(SEEDS):
        rng = np.random.default_rng(seed)
        item = rng.normal(-1.0, 0.5, 100)  # shared item difficulty: the pairing matters
        old, new = item + rng.normal(0, 0.3, 100), item + rng.normal(0, 0.3, 100)
        flagged += paired_bootstrap(old, new, rng, n_boot=1000).p < ALPHA
    lo, hi = binom.ppf([0.0005, 0.9995], SEEDS, ALPHA) / SEEDS
    assert lo <= flagged / SEEDS <= hi


def test_holm_and_bh_by_hand() -> None:
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.5])
    # Holm: sorted 0.01·4, 0.03·3, 0.04·2, 0.5·1 with a running max
    assert np.allclose(holm(p), [0.04, 0.09, 0.09, np.nan, 0.5], equal_nan=True)
    # BH: 0.01·4/1, 0.03·4/2, 0.04·4/3, 0.5·4/4 with a running min from the top
    assert np.allclose(benjamini_hochberg(p), [0.04, 0.16 / 3, 0.16 / 3, np.nan, 0.5], equal_nan=True)
    assert np.allclose(adjust(p, "none"), p, equal_nan=True)
    with pytest.raises(ValueError, match="unknown correction"):
        adjust(p, "bonferroni")


def _null_categories(seed: int, k: int = 5, n: int = 80) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(k):
        diff = rng.random(n)
        old, new = rng.random(n) < diff, rng.random(n) < diff
        lp = rng.normal(-1, 0.5, n)
        for i in range(n):
            rows.append((f"cat{c}", "0shot", "exact_match", f"{i:03d}", float(old[i]), float(new[i])))
            rows.append((f"cat{c}", "0shot", "target_logprob", f"{i:03d}", lp[i] + rng.normal(0, .2),
                         lp[i] + rng.normal(0, .2)))
    return pd.DataFrame(rows, columns=["task", "variant", "metric", "example_id", "old", "new"])


@pytest.mark.parametrize("correction", ["holm", "bh"])
def test_corrected_family_of_categories_flags_a_null_upgrade_at_most_alpha(correction: str) -> None:
    """Five unchanged categories: any category called improved or regressed (per metric) in at most α of the
    seeds; without a correction the same data would be flagged far more often."""
    fam, raw = 0, 0
    seeds = 100
    for seed in range(seeds):
        df = _null_categories(seed)
        t = compare_scores(df, ALPHA, correction, n_boot=400, seed=seed)
        fam += (t[t["metric"] == "target_logprob"]["status"] != "unchanged").any()
        raw += (t[t["metric"] == "target_logprob"]["p"] < ALPHA).any()
    assert fam / seeds <= _upper(ALPHA, seeds)
    assert raw > fam


def test_compare_scores_orients_lower_is_better_metrics() -> None:
    rng = np.random.default_rng(3)
    n = 100
    base = rng.integers(1, 5, n).astype(float)
    rows = [("t", "0shot", "token_edit_distance", f"{i:03d}", base[i], base[i] + 2.0 + rng.normal(0, .5))
            for i in range(n)]
    t = compare_scores(pd.DataFrame(rows, columns=["task", "variant", "metric", "example_id", "old", "new"]))
    assert t["status"].iat[0] == "regressed"  # more edits is worse
    assert t["regressed_items"].iat[0] > 90
