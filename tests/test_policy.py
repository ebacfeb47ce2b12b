from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from emergentlab import metrics, pipeline
from emergentlab.analysis.curves import CurveSet, curves_by_axis
from emergentlab.analysis.policy import Level, Policy, Threshold, check, parse_policy
from emergentlab.analysis.simulator import Compositional, ladder_params, records_frame, rungs_frame, simulate
from emergentlab.cli import app
from emergentlab.errors import UserError
from emergentlab.records import ScaleFacts
from emergentlab.store import Store

# one sub-skill, a logistic in log10 params centred at 10^9, half a decade wide: at the 8 rungs (10^6 … 10^10)
# exact match ≈ 0.002, 0.008, 0.024, 0.071, 0.19, 0.43, 0.70, 0.88; it reaches 0.95 at 10^(9 + 0.5·ln 19) ≈ 3e10
PLANTED = Compositional(n_skills=1, midpoint=9.0, width=0.5, spread=0.0)
CROSS_95 = 10 ** (9 + 0.5 * np.log(19))


def planted_records(n: int = 400) -> list:
    return simulate(PLANTED, steps=(1,), n_examples=n, seed=0)


@pytest.fixture(scope="module")
def planted() -> CurveSet:
    frame = records_frame(planted_records())
    frame = frame[frame["task"] == "steps1"]
    return curves_by_axis(metrics.compute(frame, ["exact_match"]), rungs_frame(ladder_params()), ["params"],
                          n_boot=500, seed=0, records=frame)["params"]


def test_planted_curve_is_what_the_comment_says(planted: CurveSet) -> None:
    truth = PLANTED.task_probs(ladder_params(), 1)
    assert np.allclose(planted.mean[0], truth, atol=0.06)


def test_which_rungs_cross_which_line_and_the_forecast_of_the_next(planted: CurveSet) -> None:
    pol = Policy((Threshold("steps1", "exact_match", warning=0.3, critical=0.95),))
    res = check(pol, planted, n_boot=100, seed=0)
    assert res.level == Level.WARNING
    levels = list(res.rungs["level"])
    assert levels[:5] == [Level.BELOW] * 5 and levels[5:] == [Level.WARNING] * 3  # 0.43, 0.70, 0.88 pass 0.3
    fc = res.forecasts.set_index("line")
    assert fc.loc["warning", "crossed_by"] == "m5" and np.isnan(fc.loc["warning", "forecast"])
    crit = fc.loc["critical"]
    assert not isinstance(crit["crossed_by"], str)  # no rung crossed it
    # the early warning: the largest rung is 1e10, the critical line is forecast beyond it, near the planted 3e10
    assert 1e10 < crit["forecast"] < 2e11 and crit["forecast_lo"] <= CROSS_95 * 1.5
    assert crit["forecast_lo"] < crit["forecast"] < crit["forecast_hi"]


def test_critical_level_and_lower_is_better_metrics(planted: CurveSet) -> None:
    res = check(Policy((Threshold("steps1", "exact_match", 0.1, 0.5),)), planted)
    assert res.level == Level.CRITICAL and res.forecasts.set_index("line").loc["critical", "crossed_by"] == "m6"
    th = Threshold("t", "token_edit_distance", warning=2.0, critical=0.5)  # fewer edits is more capable
    assert [th.level(v) for v in (3.0, 1.0, 0.2)] == [Level.BELOW, Level.WARNING, Level.CRITICAL]


def test_policy_file_errors_name_the_field() -> None:
    ok = {"thresholds": [{"task": "a", "metric": "exact_match", "warning": 0.2, "critical": 0.5}]}
    assert parse_policy(ok, "p.toml").thresholds[0].variant is None
    cases = [({"thresholds": []}, "thresholds"),
             ({"thresholds": [{**ok["thresholds"][0], "metric": "nope"}]}, "thresholds[0].metric"),
             ({"thresholds": [{**ok["thresholds"][0], "warning": 0.9}]}, "thresholds[0].warning"),
             ({"thresholds": [{**ok["thresholds"][0], "critical": "high"}]}, "thresholds[0].critical"),
             ({**ok, "axis": "years"}, "axis")]
    for data, fld in cases:
        with pytest.raises(UserError) as e:
            parse_policy(data, "p.toml")
        assert e.value.field == fld


def test_unknown_task_is_a_user_error(planted: CurveSet) -> None:
    with pytest.raises(UserError, match="no task 'nope'"):
        check(Policy((Threshold("nope", "exact_match", 0.1, 0.5),)), planted)
    with pytest.raises(UserError, match="variant '3shot' .*variants plain"):
        check(Policy((Threshold("steps1", "exact_match", 0.1, 0.5, variant="3shot"),)), planted)


def planted_run(root: Path) -> Path:
    """A run folder holding the planted ladder's records, as `emergentlab run` would leave it."""
    with Store(root / "records.sqlite") as store:
        for model, p in zip(rungs_frame(ladder_params())["model"], ladder_params(), strict=True):
            store.put_rung("simulated", model, "simulated", ScaleFacts(params=float(p), tokens=20.0 * p))
        store.put_records(planted_records(200))
    return root


def test_check_command_exit_codes_and_report(tmp_path: Path) -> None:
    run = planted_run(tmp_path / "run")
    pol = tmp_path / "policy.toml"
    runner = CliRunner()
    for warning, critical, code in ((0.3, 0.95, 3), (0.1, 0.5, 4), (0.97, 0.99, 0)):
        pol.write_text(f'[[thresholds]]\ntask = "steps1"\nmetric = "exact_match"\nwarning = {warning}\n'
                       f'critical = {critical}\nname = "planted"\n')
        res = runner.invoke(app, ["check", str(pol), str(run)])
        assert res.exit_code == code, res.output
    assert pipeline.CHECK_EXIT == {Level.BELOW: 0, Level.WARNING: 3, Level.CRITICAL: 4}
    html = (run / "report.html").read_text()
    assert "Capability thresholds" in html and "Policy · planted (plain)" in html
    assert (run / "policy_forecasts.csv").is_file()
