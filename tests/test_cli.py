from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from emergentlab import metrics
from emergentlab.cli import app, base
from emergentlab.store import Store

runner = CliRunner()


def study(tmp_path: Path, ckpt: Path, extra: str = "", out: str = "run") -> Path:
    p = tmp_path / "s.toml"
    p.write_text(f'out = "{out}"\n{extra}\n[[ladder]]\nname = "a"\nmodel = "tiny:{ckpt}"\n'
                 '[[tasks]]\ngenerator = "add2"\nn = 6\n')
    return p


def test_run_prints_curves_and_writes_the_store(tmp_path: Path, tiny_ckpt: Path) -> None:
    res = runner.invoke(app, ["run", str(study(tmp_path, tiny_ckpt))])
    assert res.exit_code == 0, res.output
    assert f"csv: {tmp_path / 'run/means.csv'}" in res.stdout  # piped: where the tables are, not the tables
    means = pd.read_csv(tmp_path / "run/means.csv")
    assert {"exact_match", "token_accuracy"} <= set(means["metric"])
    js = runner.invoke(app, ["run", str(study(tmp_path, tiny_ckpt)), "--json"])
    assert js.exit_code == 0 and json.loads(js.stdout)["written"] == 0
    with Store(tmp_path / "run/records.sqlite") as s:
        assert s.count() == 6
    assert (tmp_path / "run/study.json").is_file()


def test_terminal_tables_fit_80_columns_without_truncating_names(tmp_path: Path, tiny_ckpt: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.StringIO()
    monkeypatch.setattr(base, "console", Console(file=buf, force_terminal=True, color_system=None, width=80))
    res = runner.invoke(app, ["run", str(study(tmp_path, tiny_ckpt))])
    assert res.exit_code == 0, res.output
    lines = buf.getvalue().splitlines()
    table = [ln for ln in lines if ln[:1] in "┏┃┡│└"]
    assert table and max(map(len, table)) <= 80 and "…" not in buf.getvalue()
    assert any("expected_exact_match" in ln for ln in lines) and any(" exact_match " in ln for ln in lines)


@pytest.mark.parametrize(("extra", "needle"), [
    ("metrics = ['nope']", "metrics"),
    ("seed = 'x'", "seed"),
    ("[broken", "malformed TOML"),
])
def test_bad_study_exits_2_with_one_line_and_touches_nothing(tmp_path: Path, tiny_ckpt: Path, extra: str,
                                                            needle: str) -> None:
    p = study(tmp_path, tiny_ckpt, extra)
    proc = subprocess.run([sys.executable, "-m", "emergentlab.cli", "run", str(p)], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(p) in lines[0] and needle in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


def test_missing_checkpoint_and_impossible_model(tmp_path: Path, tiny_ckpt: Path) -> None:
    p = tmp_path / "s.toml"
    p.write_text('[[ladder]]\nmodel = "tiny:gone"\n[[tasks]]\ngenerator = "add2"\n')
    res = runner.invoke(app, ["run", str(p)])
    assert res.exit_code == 2 and "ladder[0].model" in res.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_folder(tmp_path: Path, tiny_ckpt: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    res = runner.invoke(app, ["run", str(study(tmp_path, tiny_ckpt, out=str(ro / "x")))])
    assert res.exit_code == 2 and "out" in res.output


def test_output_path_that_is_a_file_is_a_user_error(tmp_path: Path, tiny_ckpt: Path) -> None:
    (tmp_path / "afile").write_text("")
    res = runner.invoke(app, ["run", str(study(tmp_path, tiny_ckpt, out="afile/sub"))])
    assert res.exit_code == 2
    assert "out" in res.output and "not writable" in res.output


def test_impossible_model_config_exits_2(tmp_path: Path, tiny_ckpt: Path) -> None:
    import json
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_ckpt, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["model"]["n_head"] = 3
    (bad / "config.json").write_text(json.dumps(cfg))
    res = runner.invoke(app, ["run", str(study(tmp_path, bad))])
    assert res.exit_code == 2
    assert "config.json" in res.output and "divisible by n_head" in res.output


@pytest.mark.slow
def test_demo_end_to_end_shows_a_jump_beside_a_smooth_partner_then_resumes(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    res = runner.invoke(app, ["demo", "--out", str(out), "--n", "60", "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["written"] > 0 and {"mirage", "emergent"} & {v["verdict"] for v in payload["verdicts"]}
    assert (out / "report.html").is_file() and list(out.glob("**/*.png"))
    with Store(out / "records.sqlite") as s:
        records, rungs = s.records("demo"), s.rungs("demo")
    scores = metrics.compute(records, ["exact_match", "token_accuracy"])
    zero = scores[(scores.task == "add3") & (scores.variant == "0shot")]
    means = zero.groupby(["metric", "model"]).value.mean().unstack("model")[list(rungs.sort_values("params").model)]
    em, acc = means.loc["exact_match"].to_numpy(), means.loc["token_accuracy"].to_numpy()
    assert len(em) >= 5
    assert em[0] <= 0.05 and em[-1] >= em[0] + 0.2  # exact match: ~0 on the small rungs, clearly above at the top
    assert acc[0] >= em[0] + 0.15  # ...while per-token accuracy is well above zero from the start
    again = runner.invoke(app, ["demo", "--out", str(out), "--n", "60"])  # piped: CSV paths, not tables
    assert again.exit_code == 0 and "0 written" in again.output
    assert f"csv: {out / 'verdict_table.csv'}" in again.stdout and "report:" in again.stdout


def test_import_lmeval_writes_records_once_and_bad_paths_exit_2(tmp_path: Path) -> None:
    samples = Path(__file__).parent / "data" / "lmeval"
    first = runner.invoke(app, ["import-lmeval", str(samples), "--out", str(tmp_path / "imp")])
    assert first.exit_code == 0, first.output
    with Store(tmp_path / "imp/records.sqlite") as s:
        n = s.count()
    assert n > 0 and f"{n} records written" in first.output
    again = runner.invoke(app, ["import-lmeval", str(samples), "--out", str(tmp_path / "imp")])
    assert again.exit_code == 0 and "0 records written" in again.output
    bad = runner.invoke(app, ["import-lmeval", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "imp2")])
    assert bad.exit_code == 2 and "nope.jsonl" in bad.output


@pytest.mark.parametrize(("csv", "needle"), [
    ("model,task,metric,value\na,t,exact_match,0.1\n", "params"),
    ("model,params,task,metric,value\na,big,t,exact_match,0.1\nb,2e9,t,exact_match,0.5\n", "params"),
    ("model,params,task,metric,value\na,1e9,t,exact_match,0.1\n", "rung"),
])
def test_analyze_bad_scores_exit_2_with_one_line(tmp_path: Path, csv: str, needle: str) -> None:
    path = tmp_path / "scores.csv"
    path.write_text(csv)
    res = runner.invoke(app, ["analyze", str(path), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and needle in lines[0], res.output
    assert not (tmp_path / "r" / "report.html").exists()


def test_dry_run_estimates_cost_and_runs_nothing(tmp_path: Path, tiny_ckpt: Path) -> None:
    res = runner.invoke(app, ["run", str(study(tmp_path, tiny_ckpt)), "--dry-run", "--json"])
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.stdout)["estimate"]
    assert row["rung"] == "a" and row["items scored"] == 6 and row["params"] > 0 and row["scoring s (est.)"] > 0
    assert not (tmp_path / "run").exists()
    bad = runner.invoke(app, ["run", str(study(tmp_path, tiny_ckpt)), "--precision", "fp8"])
    assert bad.exit_code == 2 and "--precision" in bad.output and not (tmp_path / "run").exists()
