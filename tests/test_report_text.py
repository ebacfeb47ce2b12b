"""Hostile text stays inert on every channel it leaves by: terminal, CSV, plot, file name (HTML: test_report_html)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pandas as pd
from rich.console import Console
from typer.testing import CliRunner

from emergentlab.cli import app
from emergentlab.report.figures import render_figure
from emergentlab.report.terminal import print_line, print_table
from emergentlab.report.text import csv_safe, inert, write_csv
from emergentlab.sections import Figure, Line, Panel
from emergentlab.train import DEMO_LADDER_DIR

HOSTILE = "\x1b]8;;http://evil\x07[link=http://x]click[/link] [/]oops \x1b[2J $\\notacommand{x}$ =1+1 " + "n" * 300


def test_inert_escapes_control_bytes_and_keeps_text() -> None:
    assert inert("a\x1b[31mb\x07c\x9bd\te\nf") == "a\\x1b[31mb\\x07c\\x9bd\te\nf"


def test_terminal_tables_and_lines_show_markup_and_escapes_as_text() -> None:
    buf = io.StringIO()
    con = Console(file=buf, force_terminal=True, color_system=None, width=80)
    print_table(con, pd.DataFrame({"task": [HOSTILE], "exact_match": [0.5], "expected_exact_match": [0.25]}),
                HOSTILE)
    print_line(con, HOSTILE)
    out = buf.getvalue()
    assert "\x07" not in out and "\x1b]8" not in out and "\x1b[2J" not in out
    assert "[link=http://x]" in out.replace("\n", "").replace("│", "") or "[link=" in out
    assert "[/]oops" in out
    flat = re.sub(r"[\s│┃]", "", out)
    assert "exact_match" in flat and "expected_exact_match" in flat and "…" not in out  # folded, not truncated


def test_csv_cells_never_start_a_formula(tmp_path: Path) -> None:
    df = pd.DataFrame({"task": ["=1+1", "+A1", "-2+3", "@SUM(A1)", "plain"], "value": [-0.5, 1.0, 2.0, 3.0, 4.0]})
    write_csv(df, tmp_path / "t.csv")
    back = pd.read_csv(tmp_path / "t.csv")
    assert back["task"].tolist() == ["'=1+1", "'+A1", "'-2+3", "'@SUM(A1)", "plain"]
    assert back["value"].tolist() == [-0.5, 1.0, 2.0, 3.0, 4.0]  # numbers stay numbers
    assert csv_safe(pd.DataFrame({"=x": [1]})).columns.tolist() == ["'=x"]


def test_plot_text_is_never_mathtext_and_long_names_draw(tmp_path: Path) -> None:
    panel = Panel(title=HOSTILE, xlabel="$x$", ylabel="$\\frac{", lines=(Line((1.0, 2.0), (0.1, 0.2), HOSTILE),))
    png = render_figure(Figure((panel,), caption=HOSTILE), tmp_path / "f.png")
    assert png.stat().st_size > 1000


def test_hostile_task_name_through_run_and_report(tmp_path: Path) -> None:
    rungs = sorted(p for p in DEMO_LADDER_DIR.iterdir() if (p / "config.json").is_file())[:3]
    ladder = "".join(f'[[ladder]]\nname = "{p.name}"\nmodel = "tiny:{p}"\n' for p in rungs)
    study = tmp_path / "s.toml"
    study.write_text(f'out = "run"\n{ladder}[[tasks]]\ngenerator = "add2"\nn = 8\nname = {json.dumps(HOSTILE)}\n')
    runner = CliRunner()
    res = runner.invoke(app, ["run", str(study)])
    assert res.exit_code == 0, res.output
    rep = runner.invoke(app, ["report", str(tmp_path / "run"), "--json"])
    assert rep.exit_code == 0, rep.output
    for out in (res.output, rep.output):
        assert "\x07" not in out and "\x1b" not in out
    payload = json.loads(rep.output)
    assert Path(payload["report"]).is_file() and payload["verdicts"][0]["task"].startswith("\x1b")  # data as is
    cells = pd.read_csv(tmp_path / "run" / "verdict_table.csv")["task"]
    assert all(not str(c).startswith(("=", "+", "-", "@")) for c in cells)
    assert all(re.fullmatch(r"fig-\d\d\.png", p.name) for p in (tmp_path / "run" / "plots").iterdir())
