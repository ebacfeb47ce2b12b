from __future__ import annotations

import math

import pandas as pd
import pytest

from emergentlab import metrics as M

GEN = {"kind": "numeric", "generation": "123", "target": "124", "generation_tokens": ["1", "2", "3"],
       "target_tokens": ["1", "2", "4"], "target_logprobs": [-0.1, -0.2, -2.0], "target_greedy": [True, True, False],
       "generated": True, "target_loglikelihood": None}
MC = {"kind": "multiple_choice", "choice_logprobs": [math.log(0.2), math.log(0.5), math.log(0.3)], "correct": 2,
      "choice_scores": None}


def test_generative_metrics_by_hand() -> None:
    assert M.exact_match(GEN) == 0.0
    assert M.exact_match({**GEN, "generation": " 124 "}) == 1.0
    assert M.token_accuracy(GEN) == pytest.approx(2 / 3)
    assert M.token_edit_distance(GEN) == 1.0
    assert M.token_edit_distance({**GEN, "generation_tokens": ["1", "2", "4", "5"]}) == 1.0
    assert M.expected_exact_match(GEN) == pytest.approx(math.exp(-2.3))
    assert M.target_logprob(GEN) == pytest.approx(-2.3 / 3)


def test_numeric_metrics_by_hand() -> None:
    assert M.numeric_exact(GEN) == 0.0
    assert M.numeric_exact({**GEN, "generation": "124 apples"}) == 1.0
    assert M.abs_distance(GEN) == 1.0
    assert M.rel_distance(GEN) == pytest.approx(1 / 124)
    assert math.isnan(M.abs_distance({**GEN, "generation": "no idea"}))
    assert M.rel_distance({**GEN, "generation": "-3", "target": "0"}) == 3.0


def test_multiple_choice_metrics_by_hand() -> None:
    assert M.mc_grade(MC) == 0.0
    assert M.mc_grade({**MC, "correct": 1}) == 1.0
    assert M.correct_choice_prob(MC) == pytest.approx(0.3)
    assert M.brier(MC) == pytest.approx(0.2**2 + 0.5**2 + 0.7**2)
    # BIG-bench target_scores: any positively scored choice counts as right
    assert M.mc_grade({**MC, "choice_scores": [0, 1, 1]}) == 1.0
    assert M.correct_choice_prob({**MC, "choice_scores": [0, 1, 1]}) == pytest.approx(0.8)


def test_every_discontinuous_metric_has_continuous_partners() -> None:
    disc = {n for n, m in M.METRICS.items() if m.kind == "discontinuous"}
    assert disc == set(M.PAIRS)
    for d, partners in M.PAIRS.items():
        assert all(M.METRICS[p].kind == "continuous" and M.METRICS[p].applies >= M.METRICS[d].applies
                   for p in partners)


def test_compute_applies_metrics_by_task_kind() -> None:
    key = {"study": "s", "model": "m", "task": "t", "variant": "0shot"}
    df = pd.DataFrame([{**key, "example_id": "a", **GEN}, {**key, "example_id": "b", **MC, "task": "mc"}])
    out = M.compute(df)
    assert set(out[out.task == "mc"].metric) == {"mc_grade", "brier", "correct_choice_prob"}
    assert "numeric_exact" in set(out[out.task == "t"].metric)
    with pytest.raises(KeyError, match="unknown metric"):
        M.compute(df, ["bogus"])


def _mixed_records(n: int) -> pd.DataFrame:
    rows = []
    for i in range(n):
        kind = [GEN, MC, {**GEN, "kind": "generative", "generation": f"{i % 7}"}][i % 3]
        rows.append({"study": "s", "model": f"m{i % 4}", "task": f"t{i % 3}", "example_id": f"e{i:04d}",
                     "variant": f"{i % 2}shot", **kind})
    return pd.DataFrame(rows)


def test_forked_scoring_gives_the_serial_table(monkeypatch: pytest.MonkeyPatch) -> None:
    df = _mixed_records(600)
    monkeypatch.setattr(M, "PARALLEL_MIN_RECORDS", 10**9)
    serial = M.compute(df)
    monkeypatch.setattr(M, "PARALLEL_MIN_RECORDS", 100)
    if M.scoring_processes(len(df)) == 1:
        pytest.skip("one core or no fork here: scoring never forks")
    pd.testing.assert_frame_equal(M.compute(df), serial)
    # key columns are categoricals that sort as their text does
    assert list(serial.sort_values(["model", "example_id"]).model) == sorted(serial.model.astype(str))
    assert len(serial) == 600 // 3 * (8 + 3 + 5)


def test_an_error_in_the_forked_half_is_raised_here(monkeypatch: pytest.MonkeyPatch) -> None:
    df = _mixed_records(300)
    monkeypatch.setattr(M, "PARALLEL_MIN_RECORDS", 100)
    if M.scoring_processes(len(df)) == 1:
        pytest.skip("one core or no fork here: scoring never forks")

    df.loc[299, "generation"] = "boom"  # a generative record in the second half, which the forked process scores

    def fails_late(r: M.Row) -> float:
        if r["generation"] == "boom":
            raise ZeroDivisionError("planted")
        return 0.0

    monkeypatch.setitem(M.METRICS, "exact_match", M.Metric("discontinuous", "fraction", True, (0.0, 1.0), 0.0,
                                                          fn=fails_late, applies=frozenset({"generative"})))
    with pytest.raises(ZeroDivisionError, match="planted"):
        M.compute(df)


def test_imported_records_use_their_typed_fields() -> None:
    # lm-eval loglikelihood request: only the summed log-prob, no generation
    only_sum = {**GEN, "generation": "", "generation_tokens": [], "target_tokens": [], "target_logprobs": [],
                "target_greedy": [], "generated": False, "target_loglikelihood": -0.5}
    assert M.expected_exact_match(only_sum) == pytest.approx(math.exp(-0.5))
    for f in (M.exact_match, M.numeric_exact, M.token_edit_distance, M.token_accuracy, M.target_logprob):
        assert math.isnan(f(only_sum)), f.__name__
    assert M.exact_match({**only_sum, "generated": True, "generation": "124"}) == 1.0  # an empty-token generation


def test_values_and_chance_stay_inside_the_declared_bounds() -> None:
    rows = {"generative": [GEN, {**GEN, "generation": "124", "generation_tokens": ["1", "2", "4"]},
                           {**GEN, "generation": "", "generation_tokens": [], "target_logprobs": [-30.0] * 3}],
            "multiple_choice": [MC, {**MC, "correct": 1}, {**MC, "choice_scores": [1, 1, 0]}]}
    rows["numeric"] = rows["generative"]
    for m in M.METRICS.values():
        lo, hi = m.bounds
        for kind in m.applies:
            for r in rows[kind]:
                v = m.fn({**r, "kind": kind})
                assert math.isnan(v) or lo <= v <= hi, (m.name, v)
                if callable(m.chance):
                    assert lo <= m.chance(r) <= hi
        if isinstance(m.chance, float):
            assert lo <= m.chance <= hi
    assert M.uniform_guess_grade(MC) == pytest.approx(1 / 3)
    assert M.uniform_guess_brier(MC) == pytest.approx((2 / 3) ** 2 + 2 * (1 / 3) ** 2)
    assert M.declared("accuracy_published_by_someone") is M.PUBLISHED and M.declared("brier") is M.METRICS["brier"]
