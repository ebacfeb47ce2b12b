"""The cost estimate: a pure function of prompt lengths and parameters over a measured table."""

from __future__ import annotations

import math

import pytest

from emergentlab.models.cost import MEASURED, MEASURED_PARAMS, CostPoint, estimate_cost

TABLE = (CostPoint(10, 40.0, 1000), CostPoint(100, 8.0, 1100), CostPoint(1000, 0.5, 1500))


def test_reproduces_the_measured_rows() -> None:
    for p in TABLE:
        est = estimate_cost([int(p.prompt_tokens)] * 4, 100e6, TABLE, table_params=100e6)
        assert est.seconds == pytest.approx(4 / p.items_per_s)
        assert est.peak_rss_mb == pytest.approx(p.peak_rss_mb)


def test_interpolates_log_log_and_extrapolates() -> None:
    # 10 * 2**k tokens is k / log2(10) of the way from 10 to 100 on a log axis, so the time is that far along too
    for k in (1, 2, 3):
        mid = estimate_cost([10 * 2**k], 100e6, TABLE, 100e6).seconds
        assert mid == pytest.approx((1 / 40.0) * 5.0 ** (k / math.log2(10)))
    far = estimate_cost([10_000], 100e6, TABLE, 100e6).seconds
    assert far == pytest.approx(1 / 0.5 * 16)  # the last segment's slope (1000 → 10 000 = 100 → 1000)


def test_scales_with_items_and_parameters() -> None:
    one = estimate_cost([100], 100e6, TABLE, 100e6)
    many = estimate_cost([100, 100, 10], 400e6, TABLE, 100e6)
    assert many.seconds == pytest.approx(4 * (2 / 8.0 + 1 / 40.0))
    assert many.peak_rss_mb - one.peak_rss_mb == pytest.approx(4 * 300e6 / 2**20)
    assert estimate_cost([], 100e6, TABLE, 100e6).seconds == 0


def test_longer_prompts_cost_more_with_the_shipped_table() -> None:
    costs = [estimate_cost([n], MEASURED_PARAMS, MEASURED).seconds for n in (5, 10, 50, 100, 500, 1000, 4000)]
    assert costs == sorted(costs) and len(set(costs)) == len(costs)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        estimate_cost([10], 100e6, TABLE[:1])
    with pytest.raises(ValueError):
        estimate_cost([10], 0, TABLE)


def test_time_scales_with_non_embedding_parameters_when_known() -> None:
    # an embedding row is looked up, not multiplied: a model with 2x the parameters, all of them extra embedding
    # rows, costs the same time and 4 bytes more memory per extra parameter
    base = estimate_cost([100], 100e6, TABLE, 100e6, non_embedding_params=80e6, table_non_embedding_params=80e6)
    wide = estimate_cost([100], 200e6, TABLE, 100e6, non_embedding_params=80e6, table_non_embedding_params=80e6)
    assert wide.seconds == pytest.approx(base.seconds) == pytest.approx(1 / 8.0)
    assert wide.peak_rss_mb - base.peak_rss_mb == pytest.approx(4 * 100e6 / 2**20)
    deep = estimate_cost([100], 100e6, TABLE, 100e6, non_embedding_params=160e6, table_non_embedding_params=80e6)
    assert deep.seconds == pytest.approx(2 * base.seconds)
    with pytest.raises(ValueError):
        estimate_cost([10], 100e6, TABLE, non_embedding_params=0)
