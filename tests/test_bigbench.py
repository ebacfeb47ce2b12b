from __future__ import annotations

import json
from pathlib import Path

import pytest

from emergentlab.errors import UserError
from emergentlab.tasks import build_prompt
from emergentlab.tasks.bigbench import METRIC_MAP, load_bigbench

DATA = Path(__file__).parent / "data" / "bigbench"


def test_subtask_folders_give_one_task_each_named_like_bigbench() -> None:
    tasks = load_bigbench(DATA / "simple_arithmetic_json_subtasks")
    assert [t.name for t in tasks] == [f"simple_arithmetic_json_subtasks:{s}"
                                       for s in ("one_digit", "three_digit", "two_digit")]
    one = tasks[0]
    assert one.kind == "generative" and len(one) == 10
    assert all(int(ex.target) == sum(int(x) for x in ex.input.rstrip(" =").split(" + ")) for ex in one)
    assert one.metadata["metrics"] == ["exact_match"] and one.metadata["output_regex"] == "[-+]?\\d+"
    # example_output_prefix " " from the file; input prefix is BIG-bench's default
    assert build_prompt(one, one.examples[0], 0) == "\nQ: 1 + 4 = "


def test_multiple_choice_appends_choices_in_bigbench_order_and_marks_the_best() -> None:
    (t,) = load_bigbench(DATA / "simple_arithmetic_json_multiple_choice" / "task.json")
    ex = t.examples[0]
    assert t.kind == "multiple_choice" and t.metadata["preferred_metric"] == "mc_grade"
    assert ex.choices == ("5", "4", "6", "3") and ex.correct == 0 and ex.target == "5"
    assert ex.choice_scores == (1.0, 0.0, 0.0, 0.0)
    # the order BIG-bench's default_format_fn gives: RandomState(42).permutation(sorted(choices))
    assert ex.input == "1 + 4 = option: 4 option: 6 option: 3 option: 5"


def test_append_choices_false_and_task_prefix() -> None:
    (kv,) = load_bigbench(DATA / "key_value_maps_extends")
    assert kv.kind == "multiple_choice" and "choice" not in kv.examples[0].input
    assert kv.prefix.startswith("Let us consider maps")
    (c8,) = load_bigbench(DATA / "list_functions_c008")
    assert set(c8.metadata["unmapped_metrics"]) == {"bleu", "rouge"}
    (pl,) = load_bigbench(DATA / "plural_irregular_json")
    assert pl.separator == ". " and pl.output_prefix.endswith("There are two ")


def test_metric_map_names_our_metrics() -> None:
    from emergentlab.metrics import METRICS

    assert set(METRIC_MAP.values()) <= set(METRICS)


def _write(tmp: Path, data: object) -> Path:
    p = tmp / "task.json"
    p.write_text(json.dumps(data))
    return p


@pytest.mark.parametrize("data, field", [
    ({"name": "x", "metrics": ["exact_str_match"], "preferred_score": "exact_str_match"}, "examples"),
    ({"name": "x", "examples": [{"input": "a", "target": "b"}], "preferred_score": "exact_str_match"}, "metrics"),
    ({"name": "x", "metrics": ["multiple_choice_grade"], "preferred_score": "multiple_choice_grade",
      "examples": [{"input": "a", "target": "b"}]}, "examples[0].target_scores"),
    ({"name": "x", "metrics": ["exact_str_match"], "preferred_score": "exact_str_match",
      "examples": [{"input": "a"}]}, "examples[0].target"),
    ({"name": "x", "metrics": ["exact_str_match"], "preferred_score": "exact_str_match",
      "examples": [{"target": "b"}]}, "examples[0]"),
])
def test_missing_fields_are_user_errors_naming_file_and_field(tmp_path: Path, data: dict, field: str) -> None:
    p = _write(tmp_path, data)
    with pytest.raises(UserError) as e:
        load_bigbench(p)
    assert e.value.field == field and e.value.source == str(p) and "\n" not in str(e.value)


def test_bad_paths_and_json(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        load_bigbench(tmp_path / "nope.json")
    with pytest.raises(UserError, match="no task.json"):
        load_bigbench(tmp_path)
    (tmp_path / "task.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_bigbench(tmp_path)
    _write(tmp_path, {"name": "empty"})
    with pytest.raises(UserError, match="neither `examples` nor subtasks"):
        load_bigbench(tmp_path)


def test_inline_subtasks_and_duplicates_dropped(tmp_path: Path) -> None:
    sub = {"name": "s", "metrics": ["exact_str_match"], "preferred_score": "exact_str_match",
           "examples": [{"input": "a", "target": ["b", "c"]}, {"input": "a", "target": ["b", "c"]},
                        {"input": "d", "target": "e"}]}
    (t,) = load_bigbench(_write(tmp_path, {"name": "p", "subtasks": [sub]}))
    assert t.name == "p:s" and len(t) == 2
    assert t.examples[0].target == "b" and t.examples[0].metadata["targets"] == ["b", "c"]
