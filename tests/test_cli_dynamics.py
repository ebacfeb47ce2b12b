from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emergentlab.cli import app
from emergentlab.store import Store

runner = CliRunner()


@pytest.mark.slow
def test_grok_sweep_prints_events_and_writes_report(tmp_path: Path) -> None:
    out = tmp_path / "grok"
    res = runner.invoke(app, ["grok", "--p", "11", "--steps", "40", "--sweep-wd", "0,1", "--out", str(out)],
                        terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "p11-add-wd0-frac0.3-seed0" in res.output and "p11-add-wd1-frac0.3-seed0" in res.output
    assert (out / "report.html").is_file() and f"report: {out / 'report.html'}" in res.output.replace("\n", "")
    with Store(out / "records.sqlite") as store:
        assert set(store.series(study="grok")["run"]) == {"p11-add-wd0-frac0.3-seed0", "p11-add-wd1-frac0.3-seed0"}
    assert "weight decay and train fraction" in (out / "report.html").read_text()
    again = runner.invoke(app, ["report", str(out), "--json"])  # rebuilt from the series alone
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["report"] == str(out / "report.html")


@pytest.mark.slow
def test_induction_prints_phase_change_and_top_heads(tmp_path: Path) -> None:
    out = tmp_path / "ind"
    res = runner.invoke(app, ["induction", "--layers", "1,2", "--steps", "8", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    runs = {r["run"]: r for r in json.loads(res.stdout)["runs"]}
    assert set(runs) == {"L1-attn-only-seed0", "L2-attn-only-seed0"}
    assert re.fullmatch(r"blocks\.1\.attn\.head\d", runs["L2-attn-only-seed0"]["top_head"])
    assert 0 <= runs["L2-attn-only-seed0"]["prefix_matching"] <= 1 and "phase_change_step" in runs["L1-attn-only-seed0"]
    assert (out / "report.html").is_file()


@pytest.mark.parametrize(("args", "field"), [
    (["grok", "--p", "12"], "prime"),
    (["grok", "--op", "^"], "op"),
    (["grok", "--sweep-wd", "0,x"], "--sweep-wd"),
    (["grok", "--train-frac", "1.5"], "train_frac"),
    (["induction", "--layers", "0"], "n_layer"),
    (["induction", "--layers", "two"], "--layers"),
])
def test_bad_values_exit_2_with_one_line(tmp_path: Path, args: list[str], field: str) -> None:
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "x")])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and field in lines[0]
    assert not (tmp_path / "x").exists()  # refused before anything was written
