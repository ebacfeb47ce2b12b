from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emergentlab import metrics
from emergentlab.analysis import synthetic as syn
from emergentlab.analysis.curves import axis_position, axis_value, chance_levels, curve_keys, curves_by_axis


def test_axes_share_one_paired_bootstrap() -> None:
    recs = pd.DataFrame([r.__dict__ for r in syn.records({"s": syn.schaeffer}, n_examples=30, rungs=5, seed=0)])
    scores = metrics.compute(recs, ["exact_match", "token_accuracy"])
    rungs = syn.rungs_frame(rungs=5)
    rungs["loss"] = [3.0, 2.0, 2.5, 1.5, 1.0]  # loss orders rungs 1 and 2 the other way round from params
    sets = curves_by_axis(scores, rungs, n_boot=50, seed=3, records=recs)
    assert list(sets) == ["params", "flops", "tokens", "loss"]
    p, lo = sets["params"], sets["loss"]
    assert sets["flops"].boot is p.boot  # same rung order: one replicate array
    assert list(lo.rungs["model"]) == ["m0", "m2", "m1", "m3", "m4"]
    assert np.array_equal(lo.boot, p.boot[..., [0, 2, 1, 3, 4]]) and np.array_equal(lo.mean, p.mean[:, [0, 2, 1, 3, 4]])
    assert lo.boot.transpose(2, 1, 0).flags.c_contiguous
    alone = curves_by_axis(scores, rungs, ["loss"], n_boot=50, seed=3, records=recs)["loss"]
    assert np.array_equal(alone.boot, lo.boot) and alone.k_tokens[0] == 5
    long = lo.frame()
    row = long[(long["model"] == "m2") & (long["metric"] == "exact_match")].iloc[0]
    assert row["loss"] == 2.5 and row["lo"] <= row["mean"] <= row["hi"]


def test_axis_value_inverts_axis_position() -> None:
    v = np.array([1e6, 3.5e8, 2e11])
    for axis, values in (("params", v), ("loss", np.array([3.2, 2.0, 1.1]))):
        t = axis_position(axis, values)
        assert np.allclose(axis_value(axis, t), values, rtol=1e-12)
        assert np.all(np.diff(t) != 0) and axis_value(axis, float(t[0])) == pytest.approx(values[0])


def test_curve_keys_carry_each_metrics_declared_properties() -> None:
    keys = curve_keys(pd.DataFrame({"task": ["t"] * 4, "metric": ["exact_match", "target_logprob", "brier", "acc"],
                                    "variant": ["v"] * 4}))
    assert list(keys["kind"]) == ["discontinuous", "continuous", "continuous", "discontinuous"]
    assert list(keys["bound_lo"]) == [0.0, -np.inf, 0.0, 0.0] and list(keys["bound_hi"]) == [1.0, 0.0, 2.0, 1.0]
    assert list(keys["higher_is_better"]) == [True, True, False, True]  # "acc": a published accuracy


def test_chance_levels_come_from_the_metrics_declarations() -> None:
    mc = [{"task": "q", "variant": "v", "kind": "multiple_choice", "choice_logprobs": [-1.0] * k, "correct": 0,
           "choice_scores": scores} for k, scores in ((4, None), (2, None), (4, [1, 0, 1, 0]))]
    records = pd.DataFrame(mc)
    keys = pd.DataFrame({"task": ["q", "q", "q", "g", "g"], "variant": "v",
                         "metric": ["mc_grade", "brier", "correct_choice_prob", "exact_match", "token_accuracy"]})
    got = chance_levels(keys, records)
    grade = np.mean([1 / 4, 1 / 2, 2 / 4])  # right choices / choices, per example
    brier = np.mean([(3 / 4) ** 2 + 3 * (1 / 4) ** 2, 2 * (1 / 2) ** 2, 2 * (3 / 4) ** 2 + 2 * (1 / 4) ** 2])
    assert got[0] == pytest.approx(grade) and got[2] == pytest.approx(grade) and got[1] == pytest.approx(brier)
    assert got[3] == 0.0 and np.isnan(got[4])  # exact match: 0 by declaration; token accuracy: none declared
    without = chance_levels(keys, None)  # a per-example chance needs the examples
    assert np.isnan(without[:3]).all() and without[3] == 0.0
