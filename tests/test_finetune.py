"""Predicting emergence by fine-tuning: mixtures in the ladder spec, the fine-tuning entry of the training loop (tiny
and hf), the experiment's records and sections, the study-file table and the CLI's bad input."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from conftest import make_tiny_checkpoint
from emergentlab import pipeline
from emergentlab.cli import app
from emergentlab.errors import UserError
from emergentlab.experiments import finetune as ft
from emergentlab.experiments.base import torch_threads
from emergentlab.models.tiny import TinyBackend, load_checkpoint
from emergentlab.store import Store
from emergentlab.study import load_study, parse_study
from emergentlab.tasks import make_task, split_of, train_lines
from emergentlab.train import ladder_spec_from_dict, load_ladder_spec
from emergentlab.train.loop import TrainConfig, finetune, finetune_hf

runner = CliRunner()


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """One torch thread, as the experiment runs (two OpenMP threads on a shared machine can wait on each other)."""
    with torch_threads(1):
        yield


def test_mixture_weights_set_each_tasks_share_of_the_lines() -> None:
    lines = train_lines(["add2", "copy"], 2000, seed=0, weights=[0.1, 0.9])
    share = Counter("copy" if s.startswith("copy") else "add2" for s in lines)
    assert len(lines) == 2000 and share["add2"] == pytest.approx(200, abs=2)
    assert train_lines(["add1", "copy"], 50, seed=0) == train_lines(["add1", "copy"], 50, seed=0, weights=None)
    with pytest.raises(ValueError):
        train_lines(["add2", "copy"], 10, seed=0, weights=[1.0])


def test_ladder_spec_checks_weights_and_the_default_spec_is_a_rare_task_mixture() -> None:
    base = {"sizes": [{"n_layer": 1, "n_embd": 16, "n_head": 2}], "budgets": [1000], "tasks": ["add2", "copy"]}
    for bad in ([1.0], [-1.0, 2.0], [0, 0], "0.1,0.9"):
        with pytest.raises(UserError) as e:
            ladder_spec_from_dict({**base, "weights": bad}, source="l.toml")
        assert e.value.field == "weights"
    spec = load_ladder_spec(ft.DEFAULT_SPEC)
    assert spec.weights is not None and spec.tasks[0] == ft.FinetuneConfig().task
    assert spec.weights[0] / sum(spec.weights) <= 0.2  # the task under study is a small share of pre-training


def test_finetune_examples_come_from_the_train_split_and_never_from_eval_items() -> None:
    task = make_task("add2", n=200, seed=0, shots_pool=512)
    lines = ft.finetune_lines(task, 512)
    assert len(set(lines)) == 512 and ft.finetune_lines(task, 32) == lines[:32]  # nested subsets
    inputs = {s.rsplit("=", 1)[0] for s in lines}
    assert inputs.isdisjoint(ex.input for ex in task.examples)
    assert all(split_of("add2", i) == "train" for i in inputs)
    with pytest.raises(ValueError):
        ft.finetune_lines(task, 513)


def _target_logprob(backend: TinyBackend, task_name: str) -> float:
    task = make_task(task_name, n=40, seed=0)
    scores = backend.score([task.format(ex) for ex in task.examples], [ex.target for ex in task.examples])
    return sum(s.total for s in scores) / len(scores)


def test_a_tiny_finetune_lowers_the_loss_on_held_out_items(tmp_path: Path) -> None:
    model, meta = load_checkpoint(make_tiny_checkpoint(tmp_path / "c", block_size=64))
    backend = TinyBackend(model, "c", meta)
    before = _target_logprob(backend, "add1")
    lines = ft.finetune_lines(make_task("add1", n=10, seed=0, shots_pool=64), 64)
    done = finetune(model, TrainConfig(tokens=40 * 8 * 32, batch_size=8, block_size=32, lr=3e-3, warmup_steps=4),
                    lines)
    assert len(done.losses) == 40 and done.lines == 64 and done.tokens == 40 * 8 * 32
    assert sum(done.losses[-5:]) < sum(done.losses[:5])
    assert _target_logprob(backend, "add1") > before + 0.5  # nats per item, on test items it never saw
    assert not model.training


def _tiny_llama() -> object:
    """A 2-layer Llama with a character vocabulary, built in-process (no hub), behind an HFBackend."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from emergentlab.models.hf import HFBackend

    chars = "0123456789+=-*% abcdefghijklmnopqrstuvwxyz\n"
    vocab = {"<s>": 0, "</s>": 1, "<unk>": 2, **{c: i + 3 for i, c in enumerate(chars)}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex("[\\s\\S]"), behavior="isolated")
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128, bos_token_id=0,
                      eos_token_id=1, tie_word_embeddings=True)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = LlamaForCausalLM(cfg).eval()
    return HFBackend(model, tok, "tiny-llama")


def test_hf_full_finetune_runs_the_same_loop_and_lowers_the_loss() -> None:
    backend = _tiny_llama()
    task = make_task("add1", n=10, seed=0, shots_pool=32)
    lines = ft.finetune_lines(task, 32)
    prompts, targets = [task.format(ex) for ex in task.shots_pool], [ex.target for ex in task.shots_pool]
    before = sum(s.total for s in backend.score(prompts, targets))  # type: ignore[attr-defined]
    done = finetune_hf(backend, TrainConfig(tokens=30 * 8 * 32, batch_size=8, block_size=32, lr=1e-2,  # type: ignore[arg-type]
                                            warmup_steps=3), lines)
    assert len(done.losses) == 30 and sum(done.losses[-5:]) < sum(done.losses[:5])
    assert sum(s.total for s in backend.score(prompts, targets)) > before  # type: ignore[attr-defined]


def _ladder(tmp_path: Path) -> Path:
    d = tmp_path / "ladder"
    for i, w in enumerate((8, 12, 16, 24, 32)):
        make_tiny_checkpoint(d / f"r{i}-d{w}", seed=i, n_embd=w, n_head=4 if w % 4 == 0 else 2, block_size=64)
    return d


def test_run_fine_tunes_only_the_smaller_rungs_and_builds_its_section(tmp_path: Path) -> None:
    cfg = ft.FinetuneConfig(ladder=str(_ladder(tmp_path)), task="add1", ks=(0, 4, 16), steps=3, n=8, holdout=2,
                            n_boot=10)
    with Store(tmp_path / "s.sqlite") as store:
        stored = ft.run(cfg, store)
        recs = store.records("finetune")
        (sec,) = ft.sections(store, None)
        table = ft.backtest_table(ft.fit(store, "finetune"))
    assert stored["axis"] == "params"  # every untrained checkpoint records the same loss: not an axis
    per = recs.groupby("variant")["model"].apply(set)
    assert per["base"] == {f"r{i}-d{w}" for i, w in enumerate((8, 12, 16, 24, 32))}
    assert per["ft4"] == per["ft16"] == {"r0-d8", "r1-d12", "r2-d16"} == set(stored["fit_rungs"])
    assert recs.groupby(["model", "variant"])["example_id"].apply(frozenset).nunique() == 1  # same items everywhere
    assert sec.title.startswith("Predicting emergence by fine-tuning — add1") and sec.summary
    assert [t.key for t in sec.tables] == ["finetune-means-add1", "finetune-points-add1", "finetune-backtest-add1",
                                           "finetune-heldout-add1"]
    assert list(table["task"]) == ["add1"] and len(sec.figures[0].panels) == 2


def test_study_file_finetune_table_is_checked(tmp_path: Path) -> None:
    lad = _ladder(tmp_path)
    base = {"ladder": [{"name": p.name, "model": f"tiny:{p}"} for p in sorted(lad.iterdir())],
            "tasks": [{"generator": "add1", "n": 8}]}
    s = parse_study({**base, "finetune": {"task": "add1", "ks": [0, 4, 16], "steps": 2}}, "s.toml", tmp_path)
    assert s.finetune == {"n": 8, "task": "add1", "ks": [0, 4, 16], "steps": 2}
    for bad, field in (({"task": "nope"}, "finetune.task"), ({"task": "add1", "epochs": 3}, "finetune"),
                       ([1], "finetune")):
        with pytest.raises(UserError) as e:
            parse_study({**base, "finetune": bad}, "s.toml", tmp_path)
        assert e.value.field == field and e.value.source == "s.toml"
    study = tmp_path / "study.toml"
    study.write_text(f'out = "out"\n[[ladder]]\nname = "a"\nmodel = "tiny:{sorted(lad.iterdir())[0]}"\n'
                     '[[tasks]]\ngenerator = "add1"\nn = 4\n[finetune]\ntask = "add1"\nks = [0, 4]\n')
    with pytest.raises(UserError) as e:  # one fine-tuned k: refused before any model runs
        pipeline.run_study(study)
    assert e.value.field == "finetune" and not (tmp_path / "out" / "records.sqlite").exists()
    assert load_study(study).finetune is not None


@pytest.mark.parametrize(("args", "field"), [(["--ks", "0,32"], "options"), (["--ks", "0,a"], "--ks"),
                                             (["--task", "nope"], "options"), (["--holdout", "0"], "options")])
def test_bad_options_exit_2_with_one_line(tmp_path: Path, args: list[str], field: str) -> None:
    res = runner.invoke(app, ["finetune", "--out", str(tmp_path / "o"), *args])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1 and field in res.output, res.output
    assert not (tmp_path / "o" / "ladder").exists()


@pytest.mark.slow
def test_cli_runs_on_a_given_ladder_and_prints_the_backtest(tmp_path: Path) -> None:
    out = tmp_path / "o"
    res = runner.invoke(app, ["finetune", "--out", str(out), "--ladder", str(_ladder(tmp_path)), "--task", "add1",
                              "--ks", "0,4,16", "--steps", "3", "--n", "8", "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["backtest"][0]["task"] == "add1" and payload["report"] == str(out / "report.html")
    assert "Predicting emergence by fine-tuning" in (out / "report.html").read_text()
