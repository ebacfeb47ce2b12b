"""BIG-bench JSON tasks (`task.json`, Srivastava et al. 2022) as `Task`s, formatted as `bigbench/api/json_task.py`
formats them.

A `task.json` without `examples` is a container: its subtasks are the `task.json` files of its subfolders, or
the dicts in its `subtasks` list; each becomes a `Task` named `PARENT:SUBTASK` like BIG-bench names them.
Prompts follow BIG-bench: `example_input_prefix + input [+ choice_prefix + choices] + example_output_prefix`,
choices appended in BIG-bench's own order (a `RandomState(42)` permutation of the sorted choices), exact-duplicate
examples dropped. The preferred score picks the task kind: a choice metric makes it multiple choice (choices
scored by log-prob), `numeric_match_with_0_1_relative_error` makes it numeric, anything else generative (the
first target is the reference; all targets are kept in `metadata["targets"]`). BIG-bench metrics map to ours
through `METRIC_MAP`; the rest (bleu, rouge, …) are listed in `metadata["unmapped_metrics"]`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from emergentlab.errors import UserError
from emergentlab.tasks.base import Example, Task

# BIG-bench metric → emergentlab metric
METRIC_MAP = {
    "exact_str_match": "exact_match",
    "multiple_choice_grade": "mc_grade",
    "calibration_multiple_choice_brier_score": "brier",
    "log_likelihood": "target_logprob",
    "numeric_match_with_0_1_relative_error": "numeric_exact",
}
_CHOICE_METRICS = {"multiple_choice_grade", "calibration_multiple_choice_brier_score", "expected_calibration_error",
                   "weighted_log_probabilities", "macro_f1"}
# BIG-bench's defaults (bigbench/api/json_task.py)
_DEFAULTS = {"task_prefix": "", "example_input_prefix": "\nQ: ", "example_output_prefix": "\nA: ",
             "choice_prefix": "\n  choice: ", "append_choices_to_input": True, "few_shot_example_separator": "\n"}
_DEFAULT_REGEX = r"[^\.\?\!\;\n]+"
_SEED = 42  # JsonTask's default random_seed, which orders the appended choices


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"not valid JSON ({e})", source=str(path)) from None
    if not isinstance(data, dict):
        raise UserError("expected a JSON object", source=str(path))
    return data


def _choice_order(choices: list[str]) -> list[str]:
    return [str(c) for c in np.random.RandomState(seed=_SEED).permutation(sorted(choices))]


def _example(raw: Any, i: int, kind: str, opt: dict[str, Any], where: str) -> Example:
    field = f"examples[{i}]"
    if not isinstance(raw, dict) or not isinstance(raw.get("input"), str):
        raise UserError("needs a string `input`", source=where, field=field)
    t = raw.get("target", [])
    given = [t] if isinstance(t, str | int | float) else t
    if not isinstance(given, list) or not all(isinstance(x, str | int | float) for x in given):
        raise UserError("must be a string or a list of strings", source=where, field=f"{field}.target")
    targets = [str(x) for x in given]
    text = raw["input"]
    choices = scores = correct = None
    if kind == "multiple_choice":
        ts = raw.get("target_scores")
        if not isinstance(ts, dict) or not ts or not all(isinstance(v, int | float) for v in ts.values()):
            raise UserError("a multiple-choice task needs `target_scores` mapping each choice to a number",
                            source=where, field=f"{field}.target_scores")
        choices = tuple(str(c) for c in ts)
        scores = tuple(float(v) for v in ts.values())
        if len(scores) > 1 and max(scores) <= min(scores):
            raise UserError("no choice scores higher than another", source=where, field=f"{field}.target_scores")
        correct = scores.index(max(scores))
        if opt["append_choices_to_input"]:
            text += opt["choice_prefix"] + opt["choice_prefix"].join(_choice_order(list(choices)))
        targets = [choices[correct]]
    if not targets:
        raise UserError("missing `target`", source=where, field=f"{field}.target")
    meta: dict[str, Any] = {"targets": targets} if len(targets) > 1 else {}
    if "comment" in raw:
        meta["comment"] = raw["comment"]
    return Example(f"{i:05d}", text, targets[0], choices, correct, scores, meta)


def _task(data: dict[str, Any], name: str, where: str) -> Task:
    for key in ("examples", "metrics", "preferred_score"):
        if key not in data:
            raise UserError("missing (BIG-bench requires it in every task with examples)", source=where, field=key)
    metrics, preferred = data["metrics"], data["preferred_score"]
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        raise UserError("must be a list of metric names", source=where, field="metrics")
    if not isinstance(data["examples"], list) or not data["examples"]:
        raise UserError("must be a non-empty list", source=where, field="examples")
    opt = {k: data.get(k, v) for k, v in _DEFAULTS.items()}
    for k, v in opt.items():
        if not isinstance(v, type(_DEFAULTS[k])):
            raise UserError(f"must be a {type(_DEFAULTS[k]).__name__}", source=where, field=k)
    if preferred in _CHOICE_METRICS:
        kind = "multiple_choice"
    elif preferred == "numeric_match_with_0_1_relative_error":
        kind = "numeric"
    else:
        kind = "generative"
    seen: set[str] = set()
    unique = []
    for raw in data["examples"]:  # BIG-bench drops exact duplicates, keeping the first
        key = json.dumps(raw, sort_keys=True)
        if key not in seen:
            seen.add(key)
            unique.append(raw)
    examples = tuple(_example(raw, i, kind, opt, where) for i, raw in enumerate(unique))
    stop = data.get("stop_string")
    regex = data.get("output_regex") or (None if stop else _DEFAULT_REGEX)
    return Task(
        name=name,
        examples=examples,
        shots_pool=examples,  # BIG-bench draws demonstrations from the task's other examples
        kind=kind,
        prefix=opt["task_prefix"],
        input_prefix=opt["example_input_prefix"],
        output_prefix=opt["example_output_prefix"],
        separator=opt["few_shot_example_separator"],
        max_new_tokens=max(max(len(ex.target) for ex in examples) + 2, 8),
        stop=(stop,) if isinstance(stop, str) and stop else ("\n",),
        metadata={
            "source": where,
            "description": data.get("description", ""),
            "metrics": [METRIC_MAP[m] for m in metrics if m in METRIC_MAP],
            "unmapped_metrics": [m for m in metrics if m not in METRIC_MAP],
            "preferred_metric": METRIC_MAP.get(preferred),
            "bigbench_preferred_score": preferred,
            "output_regex": regex,
        },
    )


def _load(data: dict[str, Any], name: str, folder: Path | None, where: str) -> list[Task]:
    if "examples" in data:
        return [_task(data, name, where)]
    subs: list[tuple[dict[str, Any], str]] = []
    if folder is not None:
        subs = [(_read(p), str(p)) for p in sorted(folder.glob("*/task.json"))]
    if not subs and isinstance(data.get("subtasks"), list):
        subs = [(s, f"{where}:subtasks[{i}]") for i, s in enumerate(data["subtasks"])]
    if not subs:
        raise UserError("has neither `examples` nor subtasks (subfolders with a task.json, or a `subtasks` list)",
                        source=where, field="examples")
    out: list[Task] = []
    for sub, sub_where in subs:
        if not isinstance(sub, dict):
            raise UserError("a subtask must be a JSON object", source=sub_where)
        sub_name = str(sub.get("name") or Path(sub_where).parent.name)
        out += _load(sub, f"{name}:{sub_name}", None, sub_where)
    return out


def load_bigbench(path: str | Path) -> list[Task]:
    """The tasks of a BIG-bench `task.json` (or of a folder holding one): one, or one per subtask.

    Raises UserError naming the file and the field for a missing file, invalid JSON, a missing `examples` /
    `metrics` / `preferred_score`, or an example without the target its task's metric needs.
    """
    path = Path(path)
    file = path / "task.json" if path.is_dir() else path
    if not file.is_file():
        raise UserError("no such file" if not path.is_dir() else "folder holds no task.json", source=str(file))
    data = _read(file)
    name = str(data.get("name") or file.parent.name)
    return _load(data, name, file.parent, str(file))
