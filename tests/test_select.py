from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from emergentlab.analysis.curves import CurveSet
from emergentlab.analysis.select import select
from emergentlab.cli import app
from emergentlab.errors import UserError
from test_policy import CROSS_95, planted, planted_run  # noqa: F401  (planted is a fixture)


def test_the_cheapest_rung_that_clears_the_bar(planted: CurveSet) -> None:  # noqa: F811
    s = select(planted, "steps1", "exact_match", bar=0.8)
    assert s.chosen == "m7"  # 0.88 with 400 examples: its 95 % lower bound clears 0.8; m6 (0.70) does not
    assert list(s.table["model"]) == [f"m{i}" for i in range(8)]  # cheapest first
    assert s.table.set_index("model").loc["m7", "bound"] >= 0.8


def test_the_bound_not_the_mean_decides(planted: CurveSet) -> None:  # noqa: F811
    mean6 = float(planted.mean[0, 6])
    s = select(planted, "steps1", "exact_match", bar=mean6 - 0.01)  # m6's mean clears, its lower bound does not
    assert s.chosen == "m7"
    loose = select(planted, "steps1", "exact_match", bar=mean6 - 0.01, confidence=0.51)
    assert loose.chosen == "m6"


def test_costs_change_the_choice(planted: CurveSet) -> None:  # noqa: F811
    prices = {f"m{i}": float(10 - i) for i in range(8)}  # bigger rungs cheaper: the largest clears first
    s = select(planted, "steps1", "exact_match", bar=0.1, cost="price", prices=prices)
    assert s.chosen == "m7"
    f = select(planted, "steps1", "exact_match", bar=0.8, cost="flops_per_token")
    assert np.allclose(f.table["cost"], 2 * f.table["params"])
    with pytest.raises(UserError, match="no price"):
        select(planted, "steps1", "exact_match", bar=0.1, cost="price", prices={"m0": 1.0})


def test_when_no_rung_clears_the_forecast_says_at_what_scale(planted: CurveSet) -> None:  # noqa: F811
    s = select(planted, "steps1", "exact_match", bar=0.95)
    assert s.chosen is None
    assert 1e10 < s.forecast < 2e11 and s.forecast_lo < CROSS_95 * 1.5 and s.forecast_lo < s.forecast_hi


def test_select_command(tmp_path: Path) -> None:
    run = planted_run(tmp_path / "run")
    res = CliRunner().invoke(app, ["select", str(run), "--task", "steps1", "--metric", "exact_match",
                                   "--bar", "0.8"])
    assert res.exit_code == 0, res.output
    assert "Select m7" in res.stdout
    bad = CliRunner().invoke(app, ["select", str(run), "--task", "steps1", "--metric", "nope", "--bar", "0.8"])
    assert bad.exit_code == 2 and "unknown metric" in bad.stderr
