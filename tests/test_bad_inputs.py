"""The bad-input corpus (tests/data/bad/cases.toml) through the real CLI: exit 2, one line naming the file and the
field, no traceback, nothing on disk changed. And property tests: loaders and metrics on arbitrary text either
work or raise UserError, never anything else."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import tomllib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from emergentlab import metrics
from emergentlab.cli import app
from emergentlab.errors import UserError
from emergentlab.records import Record

CORPUS = Path(__file__).parent / "data" / "bad"
CASES = tomllib.loads((CORPUS / "cases.toml").read_text())["case"]


def snapshot(root: Path) -> dict[str, str]:
    """Every path under `root` with a hash of its bytes (folders as "dir")."""
    return {str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in CASES])
def test_bad_input_exits_2_with_one_line_and_changes_nothing(case: dict[str, object], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "bad"
    shutil.copytree(CORPUS, work)
    monkeypatch.chdir(work)
    before = snapshot(work)
    res = CliRunner().invoke(app, list(case["argv"]))  # type: ignore[call-overload]
    err = res.stderr if res.stderr_bytes is not None else res.output
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in res.output
    assert str(case["expect"]) in lines[0] and str(case["also"]) in lines[0], lines[0]
    assert snapshot(work) == before


# --- properties: arbitrary text in every loader and metric ---------------------------------------------------

texts = st.text(max_size=300)
fast = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@fast
@given(texts)
def test_study_loader_on_any_text(tmp_path: Path, text: str) -> None:
    from emergentlab.study import load_study

    p = tmp_path / "s.toml"
    p.write_bytes(text.encode("utf-8", "surrogatepass"))
    with contextlib.suppress(UserError):
        load_study(p)


@fast
@given(st.lists(st.one_of(texts, st.dictionaries(st.sampled_from(["input", "target", "choices", "id", "x"]),
                                                 st.one_of(texts, st.integers(), st.lists(texts, max_size=3))),
                          st.binary(max_size=40).map(lambda b: b.decode("latin-1"))), max_size=5))
def test_jsonl_loader_on_any_lines(tmp_path: Path, lines: list[object]) -> None:
    from emergentlab.tasks.jsonl import load_jsonl

    p = tmp_path / "t.jsonl"
    p.write_bytes(b"\n".join(json.dumps(x).encode() if not isinstance(x, str) else x.encode("utf-8", "surrogatepass")
                             for x in lines))
    with contextlib.suppress(UserError):
        load_jsonl(p, "t")


@fast
@given(texts)
def test_bigbench_loader_on_any_text(tmp_path: Path, text: str) -> None:
    from emergentlab.tasks.bigbench import load_bigbench

    p = tmp_path / "task.json"
    p.write_bytes(text.encode("utf-8", "surrogatepass"))
    with contextlib.suppress(UserError):
        load_bigbench(p)


@fast
@given(texts)
def test_scores_csv_on_any_text(tmp_path: Path, text: str) -> None:
    from emergentlab.analysis.scores_csv import read_scores_csv

    p = tmp_path / "s.csv"
    p.write_bytes(("model,params,task,metric,value\n" + text).encode("utf-8", "surrogatepass"))
    with contextlib.suppress(UserError):
        read_scores_csv(p)


logprob = st.one_of(st.floats(max_value=0.0, allow_nan=False), st.just(float("nan")))  # log-probs are <= 0


@settings(max_examples=100, deadline=None)
@given(target=texts, generation=texts, logprobs=st.lists(logprob, max_size=5))
def test_metrics_on_any_strings(target: str, generation: str, logprobs: list[float]) -> None:
    rec = Record(study="s", model="m", task="t", example_id="e", variant="0shot", kind="numeric", prompt="p",
                 target=target, generation=generation, generation_tokens=tuple(generation),
                 target_tokens=tuple(target[: len(logprobs)]), target_logprobs=tuple(logprobs[: len(target)]),
                 target_greedy=tuple(True for _ in logprobs[: len(target)]))
    frame = pd.DataFrame([rec.__dict__])
    out = metrics.compute(frame)
    assert len(out) > 0


values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
                      lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                      max_leaves=8)
rungs = st.dictionaries(st.sampled_from(["name", "model", "params", "tokens", "trust_remote_code", "x"]),
                        values | st.just("tiny:nowhere") | st.just("openai:m"), max_size=4)
task_specs = st.dictionaries(st.sampled_from(["generator", "n", "choices", "shots", "name", "params", "jsonl"]),
                             values | st.sampled_from(["add1", "add2", "copy"]) | st.integers(-2, 40), max_size=5)
studies = st.fixed_dictionaries({}, optional={
    "name": values, "seed": values, "out": values, "shots": values | st.lists(st.integers(-1, 3), max_size=3),
    "ladder": values | st.lists(rungs, max_size=2), "tasks": values | st.lists(task_specs, max_size=2),
    "batch_size": values, "metrics": values})


@fast
@given(studies)
def test_study_validation_on_any_structure(tmp_path: Path, data: dict[str, object]) -> None:
    """Arbitrary values in every study field: `parse_study` and `prepare` give a Plan or a UserError."""
    from emergentlab.runner import prepare
    from emergentlab.study import parse_study

    with contextlib.suppress(UserError):
        prepare(parse_study(data, "s.toml", tmp_path))
