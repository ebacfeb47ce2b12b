from __future__ import annotations

import numpy as np
import pandas as pd

from emergentlab import metrics
from emergentlab.analysis import synthetic as syn
from emergentlab.analysis.curves import Curves, curves_by_axis, curves_from_scores


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
    alone = curves_from_scores(scores, rungs, axis="loss", n_boot=50, seed=3, records=recs)
    assert np.array_equal(alone.boot, lo.boot) and alone.k_tokens[0] == 5
    long = Curves(n_boot=50, seed=3).fit(scores, rungs, recs).curves_
    row = long[(long["axis"] == "loss") & (long["model"] == "m2") & (long["metric"] == "exact_match")].iloc[0]
    assert row["x"] == 2.5 and row["lo"] <= row["mean"] <= row["hi"]
