"""`--level` (the crossing level) and `--at` (an axis value to predict at) on `emergentlab analyze`."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

import emergentlab
from emergentlab.cli import app

GPT3 = Path(emergentlab.__file__).parent / "data" / "published" / "gpt3_addition.csv"


def _forecast(tmp_path: Path, *flags: str) -> tuple[str, str]:
    out = tmp_path / "_".join(flags or ("plain",))
    res = CliRunner().invoke(app, ["analyze", str(GPT3), "--out", str(out), "--json", *flags])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)["verdicts"][0]["forecast"], (out / "report.html").read_text()


def test_level_and_at_flags_change_the_forecast(tmp_path: Path) -> None:
    half, html = _forecast(tmp_path)
    assert "at 1e+11" not in html and "crosses 0.5" in html
    # 0.05 lies between the 6.7B (0.01) and 13B (0.08) rungs: the bracket moves down the ladder with the level
    low, html = _forecast(tmp_path, "--level", "0.05", "--at", "1e11")
    assert low != half and "6.7e+09" in low and "1.3e+10" in low and "crosses 0.05" in html
    assert "at 1e+11 params" in html
