"""BIG-bench JSON tasks (`task.json`, Srivastava et al. 2022) as `Task`s, prompted and scored as BIG-bench's own
`bigbench/api/json_task.py` (bigbench 1.0.0) prompts and scores them.

A `task.json` without `examples` is a container: its subtasks are the `task.json` files of its subfolders (in path
order), or the dicts in its `subtasks` list; each becomes a `Task` named `PARENT:SUBTASK` like BIG-bench names them.
A folder holding only a `task.py` is a programmatic task, which is refused.

Prompts (`BigBenchTask.prompt`) follow `default_format_fn` and `make_nshot_dataset`:
`task_prefix + [demo_1 + separator + … + demo_k + separator] + item`, where an item is
`example_input_prefix + input [+ choice_prefix + choices] + example_output_prefix` (choices appended whenever the
example has `target_scores` and `append_choices_to_input` is true, in BIG-bench's order: a `RandomState(42)`
permutation of the sorted choices) and a demonstration is an item followed by one of its targets. Demonstrations
are drawn as BIG-bench draws them, from one `RandomState(42)` walked over every example in order (so a study's
seed does not change them, and cutting a task to its first `n` examples keeps each one's demonstrations).
Exact-duplicate examples are dropped as BIG-bench drops them.

Every metric the task declares is computed: each example carries its choices when a multiple-choice metric is
declared, and the task is generative when a generative metric is (so a task declaring both, like `arithmetic`,
is generated and has its choices scored). `DECLARED` maps BIG-bench's metric names to ours; `bleurt` (needs its
checkpoint), `expected_calibration_error` and `macro_f1` (whole-task scores, not per example) are listed in
`metadata["unmapped_metrics"]`. Generations are kept raw; `stop_string` and `output_regex` travel to the records and
the metrics apply them as BIG-bench's models do (`metrics.response`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emergentlab.errors import UserError
from emergentlab.tasks.base import Example, Task

# BIG-bench metric → the metrics of ours that compute it per example (BIG-bench adds the Brier score to every task
# graded by multiple_choice_grade; its "rouge" reports three scores)
DECLARED: dict[str, tuple[str, ...]] = {
    "exact_str_match": ("exact_str_match",),
    "case_insensitive_str_match": ("case_insensitive_str_match",),
    "bleu": ("bleu",),
    "rouge": ("rouge1", "rouge2", "rougeLsum"),
    "sequence_f1": ("sequence_f1",),
    "numeric_match_with_0_1_relative_error": ("numeric_match_with_0_1_relative_error",),
    "log_likelihood": ("log_likelihood",),
    "multiple_choice_grade": ("multiple_choice_grade", "calibration_multiple_choice_brier_score"),
    "calibration_multiple_choice_brier_score": ("calibration_multiple_choice_brier_score",),
}
# BIG-bench's metric families (json_task.py)
_GENERATIVE = {"bleu", "bleurt", "exact_str_match", "case_insensitive_str_match", "sequence_f1",
               "numeric_match_with_0_1_relative_error", "rouge"}
_SCORING = {"log_likelihood"}
_CHOICE = {"multiple_choice_grade", "calibration_multiple_choice_brier_score", "expected_calibration_error",
           "weighted_log_probabilities", "weighted_probabilities", "macro_f1"}
_UNMAPPED_WHY = {"bleurt": "needs the BLEURT-20 checkpoint", "expected_calibration_error": "a whole-task score",
                 "macro_f1": "a whole-task score", "weighted_log_probabilities": "not implemented",
                 "weighted_probabilities": "not implemented"}
# BIG-bench's defaults (json_task.py)
_DEFAULTS = {"task_prefix": "", "example_input_prefix": "\nQ: ", "example_output_prefix": "\nA: ",
             "choice_prefix": "\n  choice: ", "append_choices_to_input": True, "few_shot_example_separator": "\n"}
_DEFAULT_REGEX = r"[^\.\?\!\;\n]+"
_SEED = 42  # JsonTask's random_seed: orders appended choices and draws demonstrations


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


def _canon(v: Any) -> Any:
    """A hashable value equal for two JSON values exactly when Python's `==` says they are (1 == 1.0 == True,
    dict order ignored): BIG-bench keeps a demonstration unless its formatted example `==` the test item."""
    if isinstance(v, dict):
        return ("dict", frozenset((k, _canon(x)) for k, x in v.items()))
    if isinstance(v, list):
        return ("list", tuple(_canon(x) for x in v))
    if isinstance(v, bool | int | float):
        return float(v)
    return v


@dataclass
class _Walk:
    """make_nshot_dataset's generator walked over the examples in order: demos[q] = (example index, target index)
    pairs of query q."""

    rng: np.random.RandomState
    demos: list[tuple[tuple[int, int], ...]] = field(default_factory=list)


@dataclass(frozen=True)
class BigBenchTask(Task):
    """A BIG-bench JSON task: prompts by BIG-bench's rule (see the module docstring); `shots_pool` holds every
    example in file order and `groups[i]` tells which of them BIG-bench treats as equal (never each other's
    demonstration)."""

    groups: tuple[int, ...] = ()
    _walks: dict[int, _Walk] = field(default_factory=dict, compare=False, repr=False)

    def prompt(self, example: Example, shots: int, seed: int = 0) -> str:
        """BIG-bench's prompt for `example` with `shots` demonstrations; `seed` is unused (BIG-bench fixes 42)."""
        if shots < 0:
            raise ValueError(f"shots must be >= 0, got {shots}")
        item = self.format(example)
        if shots == 0:
            return self.prefix + item
        pool = self.shots_pool
        if len(pool) < shots + 1:
            raise ValueError(f"task {self.name!r}: asked for {shots} shots but it holds {len(pool)} examples")
        demos = self._demos(shots, int(example.id))
        context = self.separator.join(self.format(pool[d]) + pool[d].targets[t] for d, t in demos)
        return self.prefix + context + self.separator + item

    def _demos(self, shots: int, q: int) -> tuple[tuple[int, int], ...]:
        walk = self._walks.setdefault(shots, _Walk(np.random.RandomState(seed=_SEED)))
        pool, n = self.shots_pool, len(self.shots_pool)
        members: dict[int, list[int]] = {}
        if len(walk.demos) <= q:
            for i, g in enumerate(self.groups):
                members.setdefault(g, []).append(i)
        while len(walk.demos) <= q:
            i = len(walk.demos)
            same = members[self.groups[i]]  # sorted: i itself and any example equal to it
            if n - len(same) < shots:
                raise ValueError(f"task {self.name!r}: asked for {shots} shots but example {i} has "
                                 f"{n - len(same)} others")
            # rng.choice(valid, shots, replace=False) is permutation(len(valid))[:shots]; then one target each
            picks = []
            for k in walk.rng.permutation(n - len(same))[:shots]:
                j = int(k)
                for m in same:  # the k-th example outside `same`
                    if m <= j:
                        j += 1
                picks.append((j, int(walk.rng.choice(len(pool[j].targets)))))
            walk.demos.append(tuple(picks))
        return walk.demos[q]


def _targets(raw: dict[str, Any], field_: str, where: str) -> list[str] | None:
    if "target" not in raw:
        return None
    t = raw["target"]
    given = t if isinstance(t, list) else [t]
    if not given or not all(isinstance(x, str | int | float) and not isinstance(x, bool) for x in given):
        raise UserError("must be a string or a non-empty list of strings", source=where, field=f"{field_}.target")
    return [str(x) for x in given]


def _example(raw: Any, i: int, kind: str, families: set[str], opt: dict[str, Any], where: str
             ) -> tuple[Example, Any]:
    """The example and BIG-bench's formatted form of it (compared with `==` when drawing demonstrations)."""
    field_ = f"examples[{i}]"
    if not isinstance(raw, dict) or not isinstance(raw.get("input"), str):
        raise UserError("needs a string `input`", source=where, field=field_)
    targets = _targets(raw, field_, where)
    text = raw["input"]
    formatted = dict(raw)
    choices = scores = correct = None
    ts = raw.get("target_scores")
    if ts is not None:
        if not isinstance(ts, dict) or not ts or not all(isinstance(v, int | float) for v in ts.values()):
            raise UserError("must map each choice to a number", source=where, field=f"{field_}.target_scores")
        best = max(ts.values())
        if opt["append_choices_to_input"]:
            text += opt["choice_prefix"] + opt["choice_prefix"].join(_choice_order(list(ts)))
        if targets is None:  # as BIG-bench, the best choice is the target then, and must be better than the rest
            if (len(ts) == 1 and best == 0) or (len(ts) > 1 and best <= min(ts.values())):
                raise UserError("no choice scores higher than another", source=where,
                                field=f"{field_}.target_scores")
            targets = [next(k for k, v in ts.items() if v == best)]
        formatted["choice"] = list(ts)
        if "choice" in families:
            choices = tuple(str(c) for c in ts)
            scores = tuple(float(v) for v in ts.values())
            correct = scores.index(max(scores))
    elif "choice" in families:
        raise UserError("a multiple-choice metric needs `target_scores` mapping each choice to a number",
                        source=where, field=f"{field_}.target_scores")
    if targets is None or ("target" not in raw and families - {"choice"}):
        raise UserError("missing `target` (the task declares a generative or log-likelihood metric)",
                        source=where, field=f"{field_}.target")
    formatted["input"] = opt["example_input_prefix"] + text + opt["example_output_prefix"]
    if "target" in raw:
        formatted["target"] = raw["target"] if isinstance(raw["target"], list) else [raw["target"]]
    else:
        formatted["target"] = targets
    reference = choices[correct] if kind == "multiple_choice" and choices and correct is not None else targets[0]
    meta = {"comment": raw["comment"]} if "comment" in raw else {}
    return Example(f"{i:05d}", text, reference, choices, correct, scores, meta, tuple(targets)), formatted


def _regex(data: dict[str, Any], where: str) -> str | None:
    regex = data.get("output_regex")
    if regex is None:
        return None if data.get("stop_string") is not None else _DEFAULT_REGEX
    if not isinstance(regex, str):
        raise UserError("must be a string", source=where, field="output_regex")
    try:
        groups = re.compile(regex).groups
    except re.error as e:
        raise UserError(f"not a valid regular expression ({e})", source=where, field="output_regex") from None
    if groups > 1:  # BIG-bench refuses such a regex when it applies it
        raise UserError("has more than one capturing group (use (?:...))", source=where, field="output_regex")
    return regex or None  # BIG-bench applies no regex when it is ""


def _task(data: dict[str, Any], name: str, where: str) -> BigBenchTask:
    for key in ("examples", "metrics", "preferred_score"):
        if key not in data:
            raise UserError("missing (BIG-bench requires it in every task with examples)", source=where, field=key)
    metrics, preferred = data["metrics"], data["preferred_score"]
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics):
        raise UserError("must be a non-empty list of metric names", source=where, field="metrics")
    unknown = [m for m in metrics if m not in _GENERATIVE | _SCORING | _CHOICE]
    if unknown:
        raise UserError(f"metric {unknown[0]!r} is not a BIG-bench metric", source=where, field="metrics")
    if preferred == "rouge":
        raise UserError("BIG-bench asks for rouge1, rouge2 or rougeLsum here, not rouge", source=where,
                        field="preferred_score")
    if not isinstance(data["examples"], list) or not data["examples"]:
        raise UserError("must be a non-empty list", source=where, field="examples")
    opt = {k: data.get(k, v) for k, v in _DEFAULTS.items()}
    for k, v in opt.items():
        if isinstance(_DEFAULTS[k], str) and not isinstance(v, str):
            raise UserError("must be a string", source=where, field=k)
    # BIG-bench tests it for truth: the string "false" (three tasks of 1.0.0 have it) appends the choices
    opt["append_choices_to_input"] = bool(opt["append_choices_to_input"])
    families = {"generative" for m in metrics if m in _GENERATIVE} | {"scoring" for m in metrics if m in _SCORING}
    families |= {"choice" for m in metrics if m in _CHOICE}
    if "numeric_match_with_0_1_relative_error" in metrics:
        kind = "numeric"
    elif families - {"choice"}:
        kind = "generative"
    else:
        kind = "multiple_choice"
    seen: set[str] = set()
    unique = []
    for raw in data["examples"]:  # BIG-bench drops exact duplicates (same JSON text), keeping the first
        key = json.dumps(raw)
        if key not in seen:
            seen.add(key)
            unique.append(raw)
    pairs = [_example(raw, i, kind, families, opt, where) for i, raw in enumerate(unique)]
    examples = tuple(ex for ex, _ in pairs)
    group_of: dict[Any, int] = {}
    groups = tuple(group_of.setdefault(_canon(f), len(group_of)) for _, f in pairs)
    stop = data.get("stop_string")
    if stop is not None and not isinstance(stop, str):
        raise UserError("must be a string", source=where, field="stop_string")
    declared = tuple(dict.fromkeys(ours for m in metrics for ours in DECLARED.get(m, ())))
    if "choice" in families and kind != "multiple_choice":  # the partner its kind does not bring
        declared += ("correct_choice_prob",)
    return BigBenchTask(
        name=name,
        examples=examples,
        shots_pool=examples,
        kind=kind,
        prefix=str(data.get("task_prefix", "")),
        input_prefix=opt["example_input_prefix"],
        output_prefix=opt["example_output_prefix"],
        separator=opt["few_shot_example_separator"],
        max_new_tokens=max(max(len(t) for ex in examples for t in ex.targets) + 2, 8),
        stop=(),  # BIG-bench generates to its length limit, then applies stop_string / output_regex
        metadata={
            "source": where,
            "description": data.get("description", ""),
            "unmapped_metrics": {m: _UNMAPPED_WHY[m] for m in metrics if m not in DECLARED},
            "bigbench_preferred_score": preferred,
        },
        metrics=declared,
        stop_string=stop or None,
        output_regex=_regex(data, where),
        groups=groups,
    )


def _load(data: dict[str, Any], name: str, folder: Path | None, where: str) -> list[Task]:
    if "examples" in data:
        return [_task(data, name, where)]
    subs: list[tuple[dict[str, Any], str]] = []
    if folder is not None:
        subs = [(_read(p), str(p)) for p in sorted(folder.glob("*/task.json"), key=str)]
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

    Raises UserError naming the file and the field for a missing file, a programmatic task (`task.py` only),
    invalid JSON, a missing `examples` / `metrics` / `preferred_score`, an unknown metric, or an example without
    what its task's metrics need.
    """
    path = Path(path)
    file = path / "task.json" if path.is_dir() else path
    if not file.is_file():
        if (file.parent / "task.py").is_file():
            raise UserError("programmatic BIG-bench tasks (task.py) are not supported, only JSON tasks (task.json)",
                            source=str(file.parent))
        raise UserError("no such file" if not path.is_dir() else "folder holds no task.json", source=str(file))
    data = _read(file)
    name = str(data.get("name") or file.parent.name)
    return _load(data, name, file.parent, str(file))
