from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from emergentlab import pipeline
from emergentlab.cli import app
from emergentlab.errors import UserError
from emergentlab.experiments import upgrade
from emergentlab.store import Store
from emergentlab.tasks.jsonl import load_jsonl
from emergentlab.train import DEMO_LADDER_DIR

GOOD = f"tiny:{DEMO_LADDER_DIR / 'L3-d128-t4M'}"  # 43 % exact match on add3
BAD = f"tiny:{DEMO_LADDER_DIR / 'L1-d8-t4M'}"  # 0 % exact match on add3
STARTER = upgrade.SUITES_DIR / "starter"
CATEGORIES = {"multistep_reasoning", "instruction_following", "refusal_boundary", "factual_recall",
              "format_compliance"}


@pytest.fixture(scope="module")
def add3_suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("suite") / "add3.toml"
    p.write_text('[[tasks]]\ngenerator = "add3"\nn = 60\n')
    return p


@pytest.fixture(scope="module")
def regression(add3_suite: Path, tmp_path_factory: pytest.TempPathFactory) -> pipeline.Compared:
    """A planted regression: the demo ladder's largest rung replaced by its smallest."""
    return pipeline.compare(GOOD, BAD, str(add3_suite), tmp_path_factory.mktemp("cmp") / "out")


def test_starter_suite_has_every_category_in_checkable_form() -> None:
    tasks, base = upgrade.suite_tasks("starter")
    assert base == STARTER and {Path(t["jsonl"]).stem for t in tasks} == CATEGORIES
    for t in tasks:
        task = load_jsonl(base / t["jsonl"])
        assert 20 <= len(task) <= 40
        assert all(len(ex.input) <= 160 and len(ex.target) <= 40 for ex in task)  # short: tiny models score them
        if task.kind == "multiple_choice":
            assert {ex.metadata["should"] for ex in task} == {"comply", "refuse"}
        else:  # exact match compares trimmed text: a target with outer spaces could never match
            assert all(ex.target == ex.target.strip() and ex.target for ex in task)


def test_suite_forms_and_errors(tmp_path: Path) -> None:
    one = tmp_path / "cat.jsonl"
    one.write_text('{"input": "Q: 1+1? A:", "target": "2"}\n')
    assert upgrade.suite_tasks(str(one)) == ([{"jsonl": "cat.jsonl"}], tmp_path)
    assert upgrade.suite_tasks(str(tmp_path))[0] == [{"jsonl": "cat.jsonl"}]
    # a BIG-bench task folder beside it is one more category, loaded by the BIG-bench reader
    shutil.copytree(Path(__file__).parent / "data/bigbench/plural_irregular_json", tmp_path / "plural")
    assert upgrade.suite_tasks(str(tmp_path))[0] == [{"jsonl": "cat.jsonl"}, {"bigbench": "plural"}]
    study = upgrade.make_study(upgrade.UpgradeConfig(GOOD, BAD, str(tmp_path), tmp_path / "out"))
    assert [t.name for t in study.tasks] == ["cat", "plural"] and [r.name for r in study.ladder] == ["old", "new"]
    with pytest.raises(UserError, match="not a shipped suite"):
        upgrade.suite_tasks(str(tmp_path / "nope"))
    bad = tmp_path / "s.toml"
    bad.write_text('ladder = 1\n[[tasks]]\ngenerator = "add2"\n')
    with pytest.raises(UserError, match="unknown field"):
        upgrade.suite_tasks(str(bad))
    with pytest.raises(UserError, match="correction"):
        upgrade.make_study(upgrade.UpgradeConfig(GOOD, BAD, correction="bonferroni"))
    with pytest.raises(UserError, match="does not exist"):
        upgrade.make_study(upgrade.UpgradeConfig(f"tiny:{tmp_path / 'missing'}", BAD))


def test_a_planted_regression_fails_the_gate_with_json_junit_and_report(regression: pipeline.Compared) -> None:
    c = regression.comparison
    assert c.failed
    row = c.tests[c.tests["metric"] == "numeric_exact"].iloc[0]
    assert row["test"] == "mcnemar" and row["status"] == "regressed" and row["improved_items"] == 0
    assert row["p_adjusted"] < 1e-4 and row["old"] > 0.25 and row["new"] == 0
    assert len(c.regressed_items) == row["regressed_items"] and c.new_capabilities.empty
    js = json.loads(regression.json.read_text())
    assert js["gate"] == "failed" and js["tests"][0]["status"] == "regressed"
    suite = ET.parse(regression.junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1"
    failed = [tc.get("name") for tc in suite.iter("testcase") if tc.find("failure") is not None]
    assert failed == ["numeric_exact [0shot]"]
    html = regression.report.read_text()
    assert "Upgrade gate FAILED" in html and html.index("Upgrade gate FAILED") < html.index("<table")
    items = pd.read_csv(regression.csvs[1])
    assert len(items) == 60 and set(items["change"]) <= {"regressed", "unchanged"}


def test_the_reverse_upgrade_lists_new_capabilities_and_passes(regression: pipeline.Compared, add3_suite: Path,
                                                               tmp_path: Path) -> None:
    r = pipeline.compare(BAD, GOOD, str(add3_suite), tmp_path / "out")
    c = r.comparison
    assert not c.failed and (c.tests["status"] == "improved").all()
    # the new-capability rule: OLD failed with p(right answer) <= 0.05, NEW passes with p >= 0.5
    nc = c.new_capabilities
    assert len(nc) > 0 and (nc["old_p"] <= 0.05).all() and (nc["new_p"] >= 0.5).all() and (nc["new_pass"] == 1).all()
    # the same items, mirrored: what regressed one way improved the other way
    assert (c.items["change"] == "improved").sum() == len(regression.comparison.regressed_items)


def test_cli_exit_status_gates_a_pipeline(add3_suite: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["compare", GOOD, BAD, "--suite", str(add3_suite), "--out", str(tmp_path / "a")])
    assert res.exit_code == 1, res.output
    assert "Upgrade gate FAILED" in res.stderr
    same = runner.invoke(app, ["compare", GOOD, GOOD, "--suite", str(add3_suite), "--out", str(tmp_path / "b"),
                               "--json"])
    assert same.exit_code == 0, same.output
    out = json.loads(same.stdout)
    assert out["gate"].startswith("Upgrade gate passed") and all(t["delta"] == 0 for t in out["tests"])
    # the same folder holds OLD = GOOD: comparing another OLD there would reuse stale records
    again = runner.invoke(app, ["compare", BAD, GOOD, "--suite", str(add3_suite), "--out", str(tmp_path / "b")])
    assert again.exit_code == 2 and "use another --out" in again.stderr


def test_starter_suite_runs_on_a_tiny_model(tmp_path: Path) -> None:
    """Every starter category scores on a character-level model with a 64-token window (prompts are cut)."""
    cfg = upgrade.UpgradeConfig(BAD, BAD, "starter", tmp_path, n=3, n_boot=200)
    with Store(tmp_path / "records.sqlite") as store:
        upgrade.run(cfg, store, lambda *_: None)
        c = upgrade.compare(store, cfg)
    assert set(c.tests["task"]) == CATEGORIES and len(c.items) == 15
    assert set(c.tests["metric"]) == {"exact_match", "numeric_exact", "mc_grade", "target_logprob",
                                      "correct_choice_prob"}
    assert not c.failed and (c.items["change"] == "unchanged").all()  # one model against itself
