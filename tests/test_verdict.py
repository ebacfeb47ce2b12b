"""Known-answer ladders (analysis.synthetic) → the verdict rule's answers."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from emergentlab import metrics
from emergentlab.analysis import curves, verdict
from emergentlab.analysis import synthetic as syn
from emergentlab.analysis.curves import curves_by_axis, rung_major
from emergentlab.analysis.verdict import Verdicts, curve_shapes


@pytest.fixture(scope="module")
def fitted() -> Verdicts:
    recs = pd.DataFrame([r.__dict__ for r in syn.records(syn.SHAPES, n_examples=200, seed=1)])
    scores = metrics.compute(recs, ["exact_match", "token_accuracy", "target_logprob"])
    cs = curves_by_axis(scores, syn.rungs_frame(), ["params"], n_boot=500, seed=0, records=recs)["params"]
    return Verdicts().fit(cs)


def _verdict(v: Verdicts, task: str, partner: str = "token_accuracy") -> pd.Series:
    t = v.pairs_
    return t[(t["task"] == task) & (t["partner"] == partner)].iloc[0]


def test_schaeffer_construction_is_a_mirage(fitted: Verdicts) -> None:
    row = _verdict(fitted, "schaeffer")
    assert row["verdict"] == "mirage"
    assert row["shape"] == "jump" and row["partner_shape"] == "rise"
    assert row["confidence"] > 0.8
    m = fitted.mirage_.set_index("task").loc["schaeffer"]
    assert m["k_tokens"] == 5 and m["explains"] and m["r2"] > 0.95


def test_genuine_step_in_both_is_emergent(fitted: Verdicts) -> None:
    row = _verdict(fitted, "step")
    assert row["verdict"] == "emergent"
    assert _verdict(fitted, "step", "target_logprob")["verdict"] == "emergent"
    wei = fitted.wei_.set_index("task").loc["step"]
    assert bool(wei["wei_emergent"]) and wei["absent_small"] and wei["present_large"]


def test_monotone_decline_is_inverse(fitted: Verdicts) -> None:
    row = _verdict(fitted, "inverse")
    assert row["verdict"] == "inverse" and row["change_hi"] < 0


def test_dip_then_rise_is_u_shaped(fitted: Verdicts) -> None:
    assert _verdict(fitted, "u_shaped")["verdict"] == "U-shaped"


def test_noise_around_chance_is_flat_or_inconclusive(fitted: Verdicts) -> None:
    for partner in ("token_accuracy", "target_logprob"):
        row = _verdict(fitted, "noise", partner)
        assert row["verdict"] in ("flat", "inconclusive")
        assert not bool(fitted.wei_.set_index("task").loc["noise", "wei_emergent"])


def test_headline_row_per_discontinuous_metric(fitted: Verdicts) -> None:
    t = fitted.table_.set_index("task")
    assert len(t) == 5 and t.loc["schaeffer", "verdict"] == "mirage" and t.loc["step", "verdict"] == "emergent"


def test_too_few_examples_is_inconclusive_with_a_resolution() -> None:
    recs = pd.DataFrame([r.__dict__ for r in syn.records({"s": syn.schaeffer}, n_examples=6, seed=3)])
    scores = metrics.compute(recs, ["exact_match", "token_accuracy"])
    cs = curves_by_axis(scores, syn.rungs_frame(), ["params"], n_boot=300, seed=0, records=recs)["params"]
    t = Verdicts().fit(cs).pairs_
    row = t.iloc[0]
    if row["verdict"] == "inconclusive":
        assert np.isfinite(row["extra_examples"]) and "examples per rung" in row["note"]
    else:  # 6 examples can still decide a large effect; then the CI must be wide
        assert row["excess_hi"] - row["excess_lo"] > 0.1


def test_verdicts_are_seeded() -> None:
    recs = pd.DataFrame([r.__dict__ for r in syn.records({"s": syn.schaeffer}, n_examples=40, seed=3)])
    scores = metrics.compute(recs, ["exact_match", "token_accuracy"])
    a = Verdicts().fit(curves_by_axis(scores, syn.rungs_frame(), ["params"], n_boot=200, seed=5)["params"]).table_
    b = Verdicts().fit(curves_by_axis(scores, syn.rungs_frame(), ["params"], n_boot=200, seed=5)["params"]).table_
    c = Verdicts().fit(curves_by_axis(scores, syn.rungs_frame(), ["params"], n_boot=200, seed=6)["params"]).table_
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["excess_lo"], c["excess_lo"])


def test_intervals_are_order_statistics_and_skip_nan() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 4, (50, 200)).astype(np.float32)  # many ties, some exactly 0
    x[3, :150] = np.nan
    x[4] = np.nan
    lo, hi = curves.percentile_interval(x.copy(), 0.95)
    for r in (0, 1, 3):
        f = np.sort(x[r][np.isfinite(x[r])])
        assert lo[r] == f[int(np.floor(0.025 * (len(f) - 1)))] and hi[r] == f[int(np.ceil(0.975 * (len(f) - 1)))]
    assert np.isnan(lo[4]) and np.isnan(hi[4])
    assert np.array_equal(verdict._lower_end_positive(x, 0.95), lo > 0)
    shifted = x + np.float32(2.5)  # most rows' lower ends now above 0
    assert np.array_equal(verdict._lower_end_positive(shifted, 0.95), curves.percentile_interval(shifted, 0.95)[0] > 0)


def test_verdicts_do_not_depend_on_blocks_layout_or_orientation(monkeypatch: pytest.MonkeyPatch) -> None:
    recs = pd.DataFrame([r.__dict__ for r in syn.records(syn.SHAPES, n_examples=60, seed=2)])
    scores = metrics.compute(recs, ["exact_match", "token_accuracy", "target_logprob"])
    cs = curves_by_axis(scores, syn.rungs_frame(), ["params"], n_boot=200, seed=0, records=recs)["params"]
    ref = Verdicts().fit(cs)
    monkeypatch.setattr(curves, "_BLOCK_ELEMS", 1)  # one curve per block
    pd.testing.assert_frame_equal(Verdicts().fit(cs).pairs_, ref.pairs_)
    monkeypatch.undo()
    c_order = replace(cs, boot=np.ascontiguousarray(cs.boot))  # (B, C, R) as a caller might build it
    pd.testing.assert_frame_equal(Verdicts().fit(c_order).pairs_, ref.pairs_)
    # the same curves stored lower-is-better (negated) must read the same once oriented
    keys = cs.keys.assign(higher_is_better=False)
    flipped = replace(cs, keys=keys, mean=-cs.mean, boot=rung_major(-cs.boot))
    st, st_ref = curve_shapes(flipped)[0], ref.curve_stats_
    assert (st["shape"] == st_ref["shape"]).all()
    assert np.allclose(st["breakthroughness_lo"], st_ref["breakthroughness_lo"])


def test_point_shapes_are_the_rule_with_each_interval_at_its_point() -> None:
    rng = np.random.default_rng(4)
    d, e, dl, dr = (rng.normal(0, 0.1, 5000) for _ in range(4))
    d[:50], e[:50] = np.nan, np.nan
    delta = np.full(5000, 0.05)
    point = verdict.shape_codes(d, e, dl, dr, delta)
    full = verdict.shape_codes(d, e, dl, dr, delta, (d, d, e, (dl > 0) & (dr > 0)))
    assert np.array_equal(point, full) and len(set(point.tolist())) == len(verdict.Shape)
    # an interval that straddles 0 keeps a point rise from being a rise
    assert verdict.shape_codes(np.array([0.2]), np.array([0.0]), np.zeros(1), np.zeros(1), np.array([0.05]),
                               (np.array([-0.01]), np.array([0.4]), np.array([-1.0]), np.array([False])))[0] \
        == verdict.Shape.UNCLEAR


def test_rule_table_spells_out_the_docstring() -> None:
    S, V, t = verdict.Shape, verdict.Verdict, verdict._TABLE
    assert t[S.JUMP, S.RISE] == V.MIRAGE and t[S.JUMP, S.JUMP] == V.EMERGENT
    assert t[S.JUMP, verdict.NO_PARTNER] == V.EMERGENT and t[S.JUMP, S.FLAT] == V.INCONCLUSIVE
    assert t[S.FLAT, verdict.NO_PARTNER] == V.FLAT and t[S.FLAT, S.RISE] == V.SMOOTH and t[S.FLAT, S.U] == V.U_SHAPED
    assert t[S.RISE, S.DECLINE] == V.INCONCLUSIVE and (np.delete(t[S.RISE], S.DECLINE) == V.SMOOTH).all()
    assert (t[S.DECLINE, [S.RISE, S.JUMP]] == V.INCONCLUSIVE).all() and t[S.DECLINE, S.FLAT] == V.INVERSE
    assert (t[S.U] == V.U_SHAPED).all() and (t[S.UNCLEAR] == V.INCONCLUSIVE).all()
    assert [v.label for v in V] == ["inconclusive", "flat", "smooth", "emergent", "mirage", "inverse", "U-shaped"]
    assert [s.label for s in S] == ["unclear", "flat", "rise", "jump", "decline", "U"]


def test_notes_are_columns_first() -> None:
    recs = pd.DataFrame([r.__dict__ for r in syn.records({"n": syn.noise, "s": syn.schaeffer, "u": syn.u_shaped},
                                                           n_examples=25, seed=0)])
    v = Verdicts().fit(curves_by_axis(metrics.compute(recs), syn.rungs_frame(), ["params"], n_boot=300,
                                      seed=0)["params"])
    for frame in (v.pairs_, v.table_):
        inc = frame["verdict"] == "inconclusive"
        assert inc.any() and all(abs(sum(s for _, s in r) - 1) < 1e-9 for r in frame.loc[inc, "replicate_verdicts"])
        assert frame.loc[inc, "undecided_metric"].isin(metrics.METRICS).all()
        assert (frame.loc[inc, "extra_examples"] >= 0).all() and frame.loc[~inc, "extra_examples"].isna().all()
        assert (frame.loc[~inc, "replicate_verdicts"].map(len) == 0).all()
        assert all(verdict.note(r) == r["note"] for r in frame.to_dict("records"))
    heads = v.table_.set_index("task")
    for task, head in heads.iterrows():
        mine = v.pairs_[(v.pairs_["task"] == task) & (v.pairs_["verdict"] != head["verdict"])]
        assert list(head["other_partners"]) == list(zip(mine["partner"], mine["verdict"], strict=True))
    assert heads.loc["s", "verdict"] == "mirage" and heads.loc["s", "other_partners"]  # a mirage outvotes emergents
    assert "other partners: expected_exact_match: emergent" in heads.loc["s", "note"]
