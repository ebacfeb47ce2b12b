from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emergentlab.analysis import forecast
from emergentlab.analysis import synthetic as syn
from emergentlab.analysis.curves import curves_by_axis
from emergentlab.analysis.forecast import Forecaster, crossing, fit_trend, predict_trend, target_string_law


def _sigmoid_scores(p: np.ndarray, n: int, seed: int, metric: str = "exact_match") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    hits = rng.random((len(p), n)) < p[:, None]
    return pd.DataFrame([("s", f"m{r}", "sig", f"e{e}", "plain", metric, float(hits[r, e]))
                         for r in range(len(p)) for e in range(n)],
                        columns=["study", "model", "task", "example_id", "variant", "metric", "value"])


def test_backtest_on_known_sigmoid_recovers_its_crossing() -> None:
    t = np.log10(syn.sizes())
    true_t0 = 8.3  # the sigmoid crosses 0.5 (midpoint of 0.02..0.98) at 10^8.3 parameters
    p = 0.02 + 0.96 / (1 + np.exp(-(t - true_t0) / 0.5))
    cs = curves_by_axis(_sigmoid_scores(p, 300, seed=2), syn.rungs_frame(), ["params"], n_boot=400, seed=0)["params"]
    f = Forecaster(threshold=0.5, n_boot=200, seed=0).fit(cs)
    s = f.summary_.iloc[0]
    assert s["crossing_lo"] <= 10**true_t0 <= s["crossing_hi"]
    assert s["crossing_hi"] / s["crossing_lo"] < 10  # an interval that says something
    bt = f.backtest_
    assert set(bt["origin"]) == {4, 5, 6, 7} and len(bt) == 4 + 3 + 2 + 1
    assert 0.5 <= s["backtest_coverage"] <= 1.0
    assert (bt["lo"] <= bt["predicted"]).all() and (bt["predicted"] <= bt["hi"]).all()


def test_trend_fit_many_agrees_with_single() -> None:
    t = np.linspace(6, 10, 8)
    y = 0.1 + 0.8 / (1 + np.exp(-(t - 8) / 0.4))
    one = fit_trend(t, y, bounds=(0.0, 1.0))
    many = fit_trend(t, np.stack([y, y]), bounds=(0.0, 1.0))
    assert abs(crossing(one, 0.5) - 8) < 1e-3 and abs(crossing(many[0], 0.5) - 8) < 0.1
    line = fit_trend(t, 2 + 0.5 * t, bounds=(-np.inf, np.inf))
    assert np.allclose(line, [2, 0.5]) and np.isclose(crossing(line, 6.0), 8.0)


def test_target_string_law_recovers_the_task_scaling_law() -> None:
    n = syn.sizes()
    alpha, c = 0.3, 40.0
    pu = np.exp(-c * n**-alpha)
    scores = _sigmoid_scores(np.zeros(8), 1, 0, "expected_exact_match")
    scores["value"] = pu
    cs = curves_by_axis(scores, syn.rungs_frame(), ["params"], n_boot=10, seed=0)["params"]
    row = target_string_law(cs).iloc[0]
    assert np.isclose(row["alpha"], alpha, rtol=1e-6) and np.isclose(row["c"], c, rtol=1e-6)
    assert row["r2"] > 0.999 and row["rungs_used"] == 8


def test_sigmoid_grid_fit_does_not_depend_on_grid_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    t = np.log10(syn.sizes(7))
    rng = np.random.default_rng(1)
    reps = np.clip(0.1 + 0.8 / (1 + np.exp(-(t - 8.5) / 0.4)) + rng.normal(0, 0.05, (30, 7)), 0, 1)
    reps[3] = reps[4]  # equal rows: equal fits
    whole = fit_trend(t, reps, bounds=(0.0, 1.0))
    monkeypatch.setattr(forecast, "_GRID_BLOCK", 1)  # one grid point per block: the running minimum decides
    assert np.array_equal(fit_trend(t, reps, bounds=(0.0, 1.0)), whole)
    assert np.array_equal(whole[3], whole[4])
    rows = np.stack([predict_trend(p, t) for p in whole])
    assert np.array_equal(predict_trend(whole, t), rows)
    assert np.abs(rows - reps).mean() < 0.06  # the fits follow their replicates


def test_bands_and_trends_stay_inside_the_metrics_range() -> None:
    # few examples per rung near 0 and 1: the noise term alone would carry a band below 0 and above 1
    t = np.log10(syn.sizes())
    p = 0.01 + 0.98 / (1 + np.exp(-(t - 8.5) / 0.3))
    cs = curves_by_axis(_sigmoid_scores(p, 12, seed=3), syn.rungs_frame(), ["params"], n_boot=300, seed=0)["params"]
    f = Forecaster(n_boot=100, seed=0).fit(cs)
    bt = f.backtest_
    assert bt["lo"].min() == 0.0 and bt["hi"].max() == 1.0  # cut at the range, where the interval would leave it
    assert (bt["lo"] <= bt["predicted"]).all() and (bt["predicted"] <= bt["hi"]).all()
    fit = next(iter(f.fits_.values()))
    assert ((fit["y"] >= 0) & (fit["y"] <= 1)).all() and np.allclose(np.log10(fit["x"]), fit["t"])
    # a line through a falling distance (tokens, never below 0) is cut at 0 past the ladder
    dist = _sigmoid_scores(np.zeros(8), 1, 0, "token_edit_distance").assign(value=np.linspace(3.0, 0.2, 8))
    line = Forecaster(metrics=("token_edit_distance",), n_boot=10).fit(
        curves_by_axis(dist, syn.rungs_frame(), ["params"], n_boot=10, seed=0)["params"])
    y = next(iter(line.fits_.values()))["y"]
    assert line.summary_["model"].iat[0] == "line" and y.min() == 0.0 and (np.diff(y) <= 0).all()


def test_sigmoid_fits_any_finite_range() -> None:
    t = np.linspace(6, 10, 8)
    y = 0.2 + 1.6 / (1 + np.exp(-(t - 8) / 0.4))  # Brier-like, inside (0, 2)
    p = fit_trend(t, y, bounds=(0.0, 2.0))
    assert 0 <= p[0] <= 2 and 0 <= p[1] <= 2 and abs(crossing(p, 1.0) - 8) < 0.05
    assert np.abs(predict_trend(p, t, (0.0, 2.0)) - y).max() < 0.02
    unit = fit_trend(t, y / 2, bounds=(0.0, 1.0))  # the same curve rescaled: the same fit, rescaled
    assert np.allclose(p[:2], 2 * unit[:2]) and np.allclose(p[2:], unit[2:])


def _gpt3_forecaster(**kw: object) -> Forecaster:
    from pathlib import Path

    from emergentlab.analysis.scores_csv import read_scores_csv, scores_to_sets

    csv = Path(forecast.__file__).parents[1] / "data" / "published" / "gpt3_addition.csv"
    return Forecaster(**kw).fit(scores_to_sets(read_scores_csv(csv))["params"])  # type: ignore[arg-type]


def test_gpt3_crossing_interval_holds_every_equally_good_fit() -> None:
    # three informative rungs for a four-parameter sigmoid: sigmoids within binomial noise cross anywhere from
    # 3.5e10 to 7e10 (issue 13), so the interval must hold that whole range and no single crossing is the answer
    s = _gpt3_forecaster(at=1e11).summary_.iloc[0]
    assert s["crossing_lo"] <= 3.5e10 and s["crossing_hi"] >= 7e10
    assert np.isnan(s["crossing"]) and "3 rungs" in s["interval_note"]
    # between the 13B (0.08) and 175B (0.802) rungs a monotone curve can be anywhere between them
    assert s["at_lo"] <= 0.1 and s["at_hi"] >= 0.79 and np.isnan(s["at_pred"])


def _ladder(p: np.ndarray, n: int, rng: np.random.Generator) -> tuple[object, np.ndarray]:
    from emergentlab.analysis.curves import CurveSet, bootstrap_means, curve_keys

    values = (rng.random((1, len(p), n)) < p[None, :, None]).astype(float)
    mean, cnt, boot = bootstrap_means(values, 200, int(rng.integers(1 << 31)))
    keys = curve_keys(pd.DataFrame({"task": ["t"], "metric": ["exact_match"], "variant": ["plain"]}))
    t = np.linspace(6.0, 10.0, len(p))
    rg = pd.DataFrame({"model": [f"m{i}" for i in range(len(p))], "params": 10.0**t})
    return CurveSet(keys, rg, "params", mean, cnt, boot, np.zeros(1), np.full(1, np.nan)), t


def test_crossing_intervals_are_calibrated_on_known_sigmoids() -> None:
    # the fast version of benchmarks/forecast_calibration.py: nominal 90 % must cover the true crossing ~90 %
    rng = np.random.default_rng(5)
    fc = Forecaster(threshold=0.5, level=0.9)
    hits, trials = 0, 80
    for _ in range(trials):
        c_true, s = rng.uniform(6.8, 9.4), 0.5
        t = np.linspace(6.0, 10.0, 7)
        cs, _ = _ladder(0.02 + 0.93 / (1 + np.exp(-(t - (c_true + s * np.log(0.93 / 0.48 - 1))) / s)), 300, rng)
        _, lo, hi, note = fc.crossing_interval(cs, 0, forecast.rung_noise(cs, 0))  # type: ignore[arg-type]
        hits += int(lo <= c_true <= hi)
        assert note == ""
    assert 0.8 <= hits / trials <= 0.98


def test_partner_forecast_is_backtested_beside_the_direct_one() -> None:
    # Schaeffer's mirage: p smooth, exact match = p^k sharp. Raising p's fit to k tracks exact match at least as
    # well as fitting exact match directly, and both are backtested on the same held-out rungs
    recs = syn.records({"m": syn.schaeffer}, n_examples=300, rungs=8, seed=1)
    from emergentlab import metrics

    rec_df = pd.DataFrame([r.__dict__ for r in recs])
    cs = curves_by_axis(metrics.compute(rec_df), syn.rungs_frame(rungs=8), ["params"], n_boot=200, seed=0,
                        records=rec_df)["params"]
    f = Forecaster(n_boot=50, at=1e11).fit(cs)
    row = f.partner_.iloc[0]
    assert row["k_tokens"] == 5 and row["backtest_n"] == 10 and row["at"] == pytest.approx(1e11)
    assert row["from_partner_lo"] <= row["from_partner"] <= row["from_partner_hi"]
    assert row["direct_lo"] <= row["direct"] <= row["direct_hi"]
    assert row["mae_partner"] <= row["mae_direct"] and row["better"] == "p^k"


def test_a_ladder_whose_scale_does_not_vary_names_the_fact_to_set(tmp_path: object) -> None:
    from pathlib import Path

    from emergentlab.analysis.scores_csv import read_scores_csv, scores_to_sets
    from emergentlab.errors import UserError

    # one model at three quantization levels: the same parameter count on every rung
    csv = Path(str(tmp_path)) / "quant.csv"
    csv.write_text("model,params,task,metric,value,n\n" + "".join(
        f"q{b},1.35e8,add,exact_match,{v},500\n" for b, v in ((4, 0.2), (8, 0.3), (16, 0.31))))
    with pytest.raises(UserError) as e:
        scores_to_sets(read_scores_csv(csv), source=str(csv))
    assert e.value.field == "loss" and "params is 1.35e+08 on every rung" in str(e.value)
    assert "\n" not in str(e.value)
    # with the fact set, the report's axis is the one that varies
    csv.write_text("model,params,loss,task,metric,value,n\n" + "".join(
        f"q{b},1.35e8,{lo},add,exact_match,{v},500\n" for b, lo, v in ((4, 2.9, 0.2), (8, 2.7, 0.3), (16, 2.6, 0.31))))
    assert list(scores_to_sets(read_scores_csv(csv))) == ["loss"]
