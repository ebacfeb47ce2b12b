from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from scipy.special import logsumexp

from conftest import make_tiny_checkpoint
from emergentlab import metrics as M
from emergentlab.errors import UserError
from emergentlab.models.base import Generation, TokenScores
from emergentlab.models.tiny import TinyBackend
from emergentlab.records import ScaleFacts
from emergentlab.runner import evaluate
from emergentlab.store import Store
from emergentlab.tasks import Example, Task, build_prompt
from emergentlab.tasks.bigbench import DECLARED, load_bigbench

DATA = Path(__file__).parent / "data" / "bigbench"
LD_PREFIX = ("The following paragraphs each describe a set of three objects arranged in a fixed order. The statements "
             "are logically consistent within each paragraph.\n\n")
LD_1 = ("On a shelf, there are three books: a black book, an orange book, and a blue book. The blue book is to the "
        "right of the orange book. The orange book is to the right of the black book.")
IPA_PREFIX = "Transliterate the following sentences between the International Phonetic Alphabet (IPA) and English.\n"


def _one(name: str):  # type: ignore[no-untyped-def]
    (t,) = load_bigbench(DATA / name)
    return t


# Expected prompts below follow BIG-bench's rules (json_task.py: default_format_fn, make_nshot_dataset,
# evaluate_fixed_shot); the 2-shot demonstrations are the ones BIG-bench's own make_nshot_dataset draws for these
# files (RandomState(42) walked over the examples), checked once against it.

def test_zero_shot_prompts_are_bigbenchs() -> None:
    ar = _one("arithmetic_1_digit_addition")
    # choices appended although the task is generative (it has target_scores), in RandomState(42) order
    assert build_prompt(ar, ar.examples[1], 0) == ("\nQ: What is 0 plus 1?\n  choice: 1\n  choice: 328\n  choice: house"
                                                   "\n  choice: 4\n  choice: banana\n  choice: 5\nA: ")
    ld = _one("logical_deduction_three_objects")
    # task_prefix then the item, no separator between them; choices not appended (append_choices_to_input false)
    assert build_prompt(ld, ld.examples[1], 0) == LD_PREFIX + LD_1 + " "
    ipa = _one("ipa_transliterate")
    assert build_prompt(ipa, ipa.examples[1], 0) == IPA_PREFIX + "\n\nEnglish: The 1931 Malay census was an alarm bell."
    wu = _one("word_unscrambling")
    assert build_prompt(wu, wu.examples[1], 0) == "\nQ: The word nad is a scrambled version of the English word \nA: "


def test_two_shot_prompts_are_bigbenchs() -> None:
    ar = _one("arithmetic_1_digit_addition")
    assert build_prompt(ar, ar.examples[1], 2, seed=7) == (
        "\nQ: What is 0 plus 4?\n  choice: 2\n  choice: 4\n  choice: house\n  choice: 716\n  choice: banana\n"
        "  choice: 9\nA: 4\n\nQ: What is 0 plus 2?\n  choice: 189\n  choice: 2\n  choice: house\n  choice: 3\n"
        "  choice: banana\n  choice: 9\nA: 2\n\nQ: What is 0 plus 1?\n  choice: 1\n  choice: 328\n  choice: house\n"
        "  choice: 4\n  choice: banana\n  choice: 5\nA: ")
    ld = _one("logical_deduction_three_objects")
    assert build_prompt(ld, ld.examples[1], 2) == (
        LD_PREFIX + LD_1 + " The blue book is the rightmost.\n\nOn a shelf, there are three books: a purple book, a "
        "red book, and a yellow book. The purple book is to the right of the yellow book. The yellow book is to the "
        "right of the red book. The yellow book is the second from the left.\n\n" + LD_1 + " ")
    wu = _one("word_unscrambling")
    # a demonstration shows one of its targets, drawn by the same generator ("hits" of five)
    assert build_prompt(wu, wu.examples[1], 2) == (
        "\nQ: The word ofr is a scrambled version of the English word \nA: for\n\n"
        "Q: The word ihst is a scrambled version of the English word \nA: hits\n\n"
        "Q: The word nad is a scrambled version of the English word \nA: ")
    # the same demonstrations whichever examples are asked for first, and after cutting the task short
    (again,) = load_bigbench(DATA / "word_unscrambling")
    assert build_prompt(again, again.examples[4], 2) and build_prompt(again, again.examples[1], 2) == \
        build_prompt(wu, wu.examples[1], 2)


def test_a_task_declaring_both_kinds_of_metric_gets_both() -> None:
    ar = _one("arithmetic_1_digit_addition")
    assert ar.kind == "generative" and ar.examples[0].choices is not None and ar.examples[0].correct is not None
    assert set(ar.metrics) == {"exact_str_match", "multiple_choice_grade", "calibration_multiple_choice_brier_score",
                               "correct_choice_prob"}
    assert ar.output_regex == "[-+]?\\d+" and ar.stop == () and ar.stop_string is None
    ld = _one("logical_deduction_three_objects")
    assert ld.kind == "multiple_choice" and ld.examples[1].target == "The orange book is the second from the left."
    ipa = _one("ipa_transliterate")
    assert ipa.stop_string == "\n" and ipa.output_regex is None
    assert set(ipa.metrics) == {"bleu", "rouge1", "rouge2", "rougeLsum", "exact_str_match"}
    wu = _one("word_unscrambling")
    assert wu.output_regex == "[^\\.\\?\\!\\;\\n]+"  # BIG-bench's default when neither rule is given
    assert wu.examples[3].targets == ("this", "hits", "hist", "shit", "sith") and wu.examples[3].target == "this"


def test_declared_metrics_name_ours() -> None:
    assert {m for ours in DECLARED.values() for m in ours} <= set(M.DECLARED_ONLY)


def _rec(gen: str, target: str = "5", **kw: object) -> dict:
    return {"kind": "generative", "generation": gen, "generated": True, "target": target, "targets": (),
            "stop_string": None, "output_regex": None, "metadata": {}, **kw}


@pytest.mark.parametrize("gen, stop, regex, want", [
    ("ab\ncd", "\n", None, "ab\n"),            # cut just after the stop string ...
    ("\nab\ncd", "\n", None, "\nab\ncd"),      # ... only when it occurs past position 0
    ("0 + 0 = 0", None, "[-+]?\\d+", "0"),     # the first match of the regex
    ("= 42. 7*7", None, "([-+]?\\d+)[.]", "42"),  # its group, when it has one
    ("no digits", None, "\\d+", ""),           # empty when nothing matches
    (" 5\nQ: 6", None, "[^\\.\\?\\!\\;\\n]+", " 5"),  # the default regex keeps a leading space
    ("five. 5", ".", "\\d+", ""),              # the cut comes first: the 5 lies past it
])
def test_response_follows_bigbench_postprocessing(gen: str, stop: str | None, regex: str | None, want: str) -> None:
    assert M.response(_rec(gen, stop_string=stop, output_regex=regex)) == want


def test_generative_scores_every_target_and_apply_the_regex() -> None:
    r = _rec(" hits\nQ:", "this", targets=("this", "hits"), output_regex="[^\\.\\?\\!\\;\\n]+")
    assert M.exact_str_match(r) == 0.0  # BIG-bench does not trim: " hits" is no target
    assert M.exact_match(r) == 1.0 and M.case_insensitive_str_match(r) == 1.0  # any target counts
    r = _rec("0 + 0 = 0", "0", output_regex="[-+]?\\d+")
    assert M.exact_str_match(r) == 1.0 and M.exact_match(r) == 1.0 and M.numeric_exact(r) == 1.0


def test_text_similarity_known_answers() -> None:
    # values of BIG-bench's bleu_fn / rouge_fn (t5.evaluation.metrics) on the same example
    r = _rec("the cat sat on a mat", "the cat sat on the mat", targets=("the cat sat on the mat", "a dog"))
    assert M.bleu(_rec("the cat sat on a mat", "the cat sat on the mat")) == pytest.approx(53.7284965911771, abs=1e-9)
    assert M.rouge1(r) == pytest.approx(83.33333333333334) and M.rouge2(r) == pytest.approx(60.0)
    assert M.rougeLsum(r) == pytest.approx(83.33333333333334)
    same = _rec("the cat sat on the mat", "the cat sat on the mat")
    assert M.bleu(same) == pytest.approx(100.0) and M.rouge2(same) == pytest.approx(100.0)
    assert M.sequence_f1(_rec("B-PER O X", "B-PER O O")) == pytest.approx(200 / 3)
    assert M.sequence_f1(_rec("B-PER", "B-PER O O")) == pytest.approx(100.0)  # padded with "O"


def test_numeric_match_is_bigbenchs_rule() -> None:
    assert M.numeric_match_with_0_1_relative_error(_rec("105", "100")) == 1.0
    assert M.numeric_match_with_0_1_relative_error(_rec("111", "100")) == 0.0
    assert M.numeric_match_with_0_1_relative_error(_rec("100 apples", "100")) == 0.0  # the whole response must parse
    assert M.numeric_match_with_0_1_relative_error(_rec("999", "-5")) == 1.0  # BIG-bench divides by the signed target


def test_choice_metrics_known_answers() -> None:
    # BIG-bench's measure_multiple_choice_grade / brier on the same log-probs: its tie between choices 0 and 1 goes
    # to 1 (hash of the values), and graded target scores count as given
    r = {"choice_logprobs": [-1.0, -1.0, -3.0], "choice_scores": [0.0, 1.0, 0.0], "correct": 1}
    assert M.multiple_choice_grade(r) == 1.0
    assert M.calibration_multiple_choice_brier_score(r) == pytest.approx(0.16867511157877815, abs=1e-12)
    r = {"choice_logprobs": [-2.0, -0.5, -2.0, -1.0], "choice_scores": [0.0, 0.5, 1.0, 0.0], "correct": 2}
    assert M.multiple_choice_grade(r) == 0.5
    assert M.calibration_multiple_choice_brier_score(r) == pytest.approx(0.21963697456220077, abs=1e-12)


def test_log_likelihood_sums_nats_and_needs_one_target() -> None:
    assert M.log_likelihood(_rec("", target_logprobs=[-1.0, -0.5])) == -1.5
    # several targets but only the first scored (a record from before every target was): unknown
    assert math.isnan(M.log_likelihood(_rec("", target_logprobs=[-1.0], targets=("a", "b"))))
    # every target scored: log Σ_t p(t | prompt), by hand
    r = _rec("", target_logprobs=[-1.0], targets=("a", "b"), targets_loglikelihood=(-1.0, -2.0))
    assert M.log_likelihood(r) == pytest.approx(math.log(math.exp(-1.0) + math.exp(-2.0)), abs=1e-12)
    assert M.expected_exact_match(r) == pytest.approx(math.exp(-1.0) + math.exp(-2.0), abs=1e-12)
    assert M.expected_exact_match({**r, "targets_loglikelihood": (-0.01, -0.02)}) == 1.0  # a probability


class _PerChar:
    """Scores every character -0.5 nats (a continuation of k characters: -k/2) and generates nothing."""

    name = "per-char"

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[TokenScores]:
        return [TokenScores((-0.5,) * len(c), (False,) * len(c), tuple(c)) for c in continuations]

    def generate(self, prompts: Sequence[str], max_new_tokens: int, stop: Sequence[str] = ()) -> list[Generation]:
        return [Generation("", ()) for _ in prompts]

    def facts(self) -> ScaleFacts:
        return ScaleFacts()


def test_evaluate_scores_every_target_hand_computed() -> None:
    ex = (Example("a", "x", "ab", targets=("ab", "abc", "ab")), Example("b", "y", "q"),
          Example("c", "z", "pq", targets=("pq",)))
    recs = evaluate(_PerChar(), Task("t", ex, metrics=("log_likelihood",)), ex, 0, "s", "m", 0)
    assert recs[0].target_logprobs == (-0.5, -0.5)  # the per-token fields stay the first target's
    assert recs[0].targets_loglikelihood == (-1.0, -1.5, -1.0)  # each target in order, duplicates as BIG-bench
    assert recs[1].targets_loglikelihood == recs[2].targets_loglikelihood == ()  # one target: target_logprobs
    ll = [M.log_likelihood(asdict(r)) for r in recs]
    assert ll == pytest.approx([math.log(2 * math.exp(-1.0) + math.exp(-1.5)), -0.5, -1.0], abs=1e-12)


def _bigbench_log_likelihood_fn(log_probs_gen: list[list[float]], targets: list[list[str]]) -> float:
    """bigbench/api/task_metrics.py `log_likelihood_fn` (bigbench 1.0.0, Apache-2.0), its `log_likelihood` value."""
    multiple_targets = len([1 for target in targets if len(target) > 1]) > 0
    if multiple_targets:
        return float(np.mean([logsumexp(el) for el in log_probs_gen]))
    return float(np.mean([lp[0] for lp in log_probs_gen]))


def test_log_likelihood_over_several_targets_is_bigbenchs(tmp_path: Path) -> None:
    """rephrase (BIG-bench, cut to 4 examples, 3 with several targets) declares log_likelihood: our per-example value
    through the store, averaged, is BIG-bench's task score from each target's conditional log-prob."""
    (task,) = load_bigbench(DATA / "rephrase")
    assert "log_likelihood" in task.metrics and sum(len(ex.targets) > 1 for ex in task) == 3
    backend = TinyBackend.from_path(make_tiny_checkpoint(tmp_path / "m", block_size=512))
    recs = evaluate(backend, task, task.examples, 0, "s", "m", 0)
    with Store(":memory:") as store:
        store.put_records(recs)
        got = M.compute(store.records(), ["log_likelihood"])["value"].to_numpy()
    prompts = [build_prompt(task, ex, 0) for ex in task]
    # BIG-bench's cond_log_prob: log p(target | input) of each target of each example
    gen = [[s.total for s in backend.score([p] * len(ex.targets), list(ex.targets))]
           for p, ex in zip(prompts, task, strict=True)]
    # fp32 logits: batched with other rows, a sum of ~300 log-probs moves by ~1e-6 nats
    assert got == pytest.approx([logsumexp(g) for g in gen], abs=1e-4)
    assert float(np.mean(got)) == pytest.approx(_bigbench_log_likelihood_fn(gen, [list(ex.targets) for ex in task]),
                                                abs=1e-4)


def test_compute_gives_declared_metrics_only_to_their_tasks() -> None:
    import pandas as pd

    keys = {"study": "s", "model": "m", "example_id": "0", "variant": "0shot", "target_tokens": ["5"],
            "target_logprobs": [-0.1], "target_greedy": [True], "generation_tokens": ["5"]}
    rows = [{**_rec("5"), **keys, "task": "bb", "metrics": ["exact_str_match"]},
            {**_rec("5"), **keys, "task": "plain", "metrics": []}]
    got = M.compute(pd.DataFrame(rows))
    assert set(got[got.task == "bb"].metric) - set(got[got.task == "plain"].metric) == {"exact_str_match"}


def test_programmatic_task_is_refused_at_load(tmp_path: Path) -> None:
    (tmp_path / "multistep_arithmetic").mkdir()
    (tmp_path / "multistep_arithmetic" / "task.py").write_text("# a programmatic task\n")
    with pytest.raises(UserError, match="programmatic BIG-bench tasks \\(task.py\\) are not supported") as e:
        load_bigbench(tmp_path / "multistep_arithmetic")
    assert e.value.source == str(tmp_path / "multistep_arithmetic")


def test_subtask_folders_give_one_task_each_named_like_bigbench() -> None:
    tasks = load_bigbench(DATA / "simple_arithmetic_json_subtasks")
    assert [t.name for t in tasks] == [f"simple_arithmetic_json_subtasks:{s}"
                                       for s in ("one_digit", "three_digit", "two_digit")]
    one = tasks[0]
    assert one.kind == "generative" and len(one) == 10 and one.output_regex == "[-+]?\\d+"
    assert all(int(ex.target) == sum(int(x) for x in ex.input.rstrip(" =").split(" + ")) for ex in one)
    assert build_prompt(one, one.examples[0], 0) == "\nQ: 1 + 4 = "


def test_multiple_choice_appends_choices_in_bigbench_order_and_marks_the_best() -> None:
    t = _one("simple_arithmetic_json_multiple_choice")
    ex = t.examples[0]
    assert t.kind == "multiple_choice"
    assert ex.choices == ("5", "4", "6", "3") and ex.correct == 0 and ex.target == "5"
    assert ex.choice_scores == (1.0, 0.0, 0.0, 0.0)
    assert ex.input == "1 + 4 = option: 4 option: 6 option: 3 option: 5"


def test_append_choices_false_task_prefix_and_unmapped() -> None:
    kv = _one("key_value_maps_extends")
    assert kv.kind == "multiple_choice" and "choice" not in kv.examples[0].input
    assert kv.prefix.startswith("Let us consider maps")
    pl = _one("plural_irregular_json")
    assert pl.separator == ". " and pl.output_prefix.endswith("There are two ")


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
      "examples": [{"input": "a", "target_scores": {"b": 1, "c": 0}}]}, "examples[0].target"),
    ({"name": "x", "metrics": ["exact_str_match"], "preferred_score": "exact_str_match",
      "examples": [{"target": "b"}]}, "examples[0]"),
    ({"name": "x", "metrics": ["accuracy"], "preferred_score": "accuracy",
      "examples": [{"input": "a", "target": "b"}]}, "metrics"),
    ({"name": "x", "metrics": ["exact_str_match"], "preferred_score": "exact_str_match", "output_regex": "(a)(b)",
      "examples": [{"input": "a", "target": "b"}]}, "output_regex"),
])
def test_missing_fields_are_user_errors_naming_file_and_field(tmp_path: Path, data: dict, field: str) -> None:
    p = _write(tmp_path, data)
    with pytest.raises(UserError) as e:
        load_bigbench(p)
    assert e.value.field == field and e.value.source == str(p) and "\n" not in str(e.value)


def test_append_choices_to_input_is_tested_for_truth_as_bigbench_does(tmp_path: Path) -> None:
    (t,) = load_bigbench(_write(tmp_path, {
        "name": "x", "metrics": ["multiple_choice_grade"], "preferred_score": "multiple_choice_grade",
        "append_choices_to_input": "false", "examples": [{"input": "a", "target_scores": {"b": 1, "c": 0}}]}))
    assert t.examples[0].input == "a\n  choice: c\n  choice: b"  # a non-empty string is true, even "false"


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
                        {"target": ["b", "c"], "input": "a"}, {"input": "d", "target": "e"}]}
    (t,) = load_bigbench(_write(tmp_path, {"name": "p", "subtasks": [sub]}))
    # BIG-bench compares JSON text: the reordered copy stays, but is never the other's demonstration
    assert t.name == "p:s" and len(t) == 3
    assert t.examples[0].target == "b" and t.examples[0].targets == ("b", "c")
    assert build_prompt(t, t.examples[0], 1).startswith("\nQ: d\nA: e\n")


class _Echo:
    """A backend that answers every prompt with a fixed text and likes continuations made of the answer's
    characters (-0.1 nats each, -1 for any other)."""

    name = "echo"

    def __init__(self, answer: str) -> None:
        self.answer = answer

    def score(self, prompts: list[str], continuations: list[str]) -> list:
        from emergentlab.models.base import TokenScores

        return [TokenScores(tuple(-0.1 if ch in self.answer else -1.0 for ch in c), tuple(True for _ in c), tuple(c))
                for c in continuations]

    def generate(self, prompts: list[str], max_new_tokens: int, stop: tuple[str, ...] = ()) -> list:
        from emergentlab.models.base import Generation

        return [Generation(self.answer, tuple(self.answer)) for _ in prompts]


def test_runner_records_carry_what_every_declared_metric_needs() -> None:
    import pandas as pd

    from emergentlab.runner import evaluate

    ar = _one("arithmetic_1_digit_addition")
    recs = evaluate(_Echo("0 + 0 = 0\nQ: What"), ar, ar.examples[:2], 0, "s", "m", 0)  # type: ignore[arg-type]
    assert recs[0].choices == ar.examples[0].choices and recs[0].choice_logprobs is not None
    assert recs[0].generation.startswith("0 + 0") and recs[0].output_regex == "[-+]?\\d+"
    got = M.compute(pd.DataFrame([r.__dict__ for r in recs]))
    by = got.groupby("metric")["value"].apply(list).to_dict()
    assert by["exact_str_match"] == [1.0, 0.0]  # the regex picks "0": right for 0 + 0, wrong for 0 + 1
    # "0" is the likeliest choice of 0 + 0 (the others hold characters the answer lacks)
    assert by["multiple_choice_grade"][0] == 1.0 and len(by["calibration_multiple_choice_brier_score"]) == 2
    assert {"token_accuracy", "correct_choice_prob"} <= set(by) and "mc_grade" not in by
