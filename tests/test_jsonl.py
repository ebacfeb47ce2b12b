from __future__ import annotations

import json
from pathlib import Path

import pytest

from emergentlab.errors import UserError
from emergentlab.tasks import build_prompt
from emergentlab.tasks.jsonl import load_jsonl


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_numeric_task_with_train_split_as_shot_pool(tmp_path: Path) -> None:
    p = _write(tmp_path / "add.jsonl", [
        {"id": "a", "input": "1+2=", "target": "3"},
        {"id": "b", "input": "2+2=", "target": "4"},
        "",
        {"id": "s", "input": "5+5=", "target": "10", "split": "train"},
    ])
    t = load_jsonl(p)
    assert t.name == "add" and t.kind == "numeric" and [ex.id for ex in t] == ["a", "b"]
    assert [ex.id for ex in t.shots_pool] == ["s"]
    assert build_prompt(t, t.examples[0], 1) == "5+5= 10\n1+2= "


def test_generative_and_ids_default_to_line_numbers(tmp_path: Path) -> None:
    t = load_jsonl(_write(tmp_path / "w.jsonl", [{"input": "cat", "target": "tac"}, {"input": "ab", "target": "ba"}]),
                   name="rev")
    assert t.name == "rev" and t.kind == "generative" and [ex.id for ex in t] == ["000001", "000002"]
    assert t.shots_pool == t.examples  # no train lines: demonstrations come from the other items


def test_multiple_choice_by_index_by_target_and_by_scores(tmp_path: Path) -> None:
    t = load_jsonl(_write(tmp_path / "mc.jsonl", [
        {"input": "q1", "choices": ["x", "y"], "correct": 1},
        {"input": "q2", "choices": ["x", "y"], "target": "x"},
        {"input": "q3", "target_scores": {"no": 0, "yes": 1}},
    ]))
    assert t.kind == "multiple_choice"
    assert [(ex.correct, ex.target) for ex in t] == [(1, "y"), (0, "x"), (1, "yes")]
    assert t.examples[2].choice_scores == (0.0, 1.0)


@pytest.mark.parametrize("row, line, field", [
    ('{"input": "a", "target": ', 2, None),
    ({"target": "b"}, 2, "input"),
    ({"input": "a"}, 2, "target"),
    ({"input": "a", "choices": ["x", "y"], "correct": 2}, 2, "correct"),
    ({"input": "a", "choices": ["x", "y"]}, 2, "correct"),
    ({"input": "a", "target": "b", "split": "dev"}, 2, "split"),
    ({"input": "a", "target": "b", "colour": 1}, 2, None),
    ({"id": "000001", "input": "a", "target": "b"}, 2, "id"),
])
def test_bad_lines_name_file_line_and_field(tmp_path: Path, row: object, line: int, field: str | None) -> None:
    p = _write(tmp_path / "bad.jsonl", [{"input": "ok", "target": "1"}, row])
    with pytest.raises(UserError) as e:
        load_jsonl(p)
    assert e.value.source == f"{p}:{line}" and e.value.field == field and "\n" not in str(e.value)


def test_missing_file_empty_file_and_mixed_kinds(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        load_jsonl(tmp_path / "none.jsonl")
    with pytest.raises(UserError, match="no test items"):
        load_jsonl(_write(tmp_path / "e.jsonl", [{"input": "a", "target": "b", "split": "train"}]))
    with pytest.raises(UserError, match="mixes"):
        load_jsonl(_write(tmp_path / "m.jsonl", [{"input": "a", "target": "b"},
                                                 {"input": "a", "choices": ["x", "y"], "correct": 0}]))
