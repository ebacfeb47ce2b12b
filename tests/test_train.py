from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from emergentlab import metrics
from emergentlab.errors import UserError
from emergentlab.models.tiny import PAD, CharTokenizer, GPTConfig, TinyBackend, load_checkpoint
from emergentlab.runner import evaluate
from emergentlab.tasks import make_task, train_lines
from emergentlab.train import (
    DEMO_LADDER_DIR,
    LadderSpec,
    TrainConfig,
    demo_ladder_spec,
    ladder_spec_from_dict,
    load_ladder_spec,
    rung_name,
    train,
    train_ladder,
)
from emergentlab.train.loop import log_steps, lr_at, pack_rows

TINY = GPTConfig(block_size=32, n_layer=1, n_head=2, n_embd=32)


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return train_lines(["add1"], 3000, seed=0)


def test_pack_rows_start_with_pad_and_keep_lines_whole() -> None:
    tok = CharTokenizer()
    rows = pack_rows([tok.encode("1+2=3"), tok.encode("4+4=8"), tok.encode("9+9=18")], block=9)
    assert rows.shape == (2, 10)
    assert tok.decode(rows[0].tolist()) == "\x001+2=3\n4+4"  # PAD first, as TinyBackend prepends it
    assert rows[1, 0] == PAD and tok.decode(rows[1, 1:8].tolist()) == "9+9=18\n"
    assert (rows[1, 8:] == -1).all()  # padding is outside the loss


def test_lr_schedule_warms_up_then_decays_to_floor() -> None:
    cfg = TrainConfig(tokens=100 * 32 * 64, warmup_steps=10, lr=1e-3, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(55, cfg) < lr_at(20, cfg)
    assert lr_at(cfg.steps, cfg) == pytest.approx(1e-4)


def test_log_steps_are_log_spaced_and_end_at_total() -> None:
    assert log_steps(1000, 4) == [1, 10, 100, 1000]
    assert log_steps(5, 0) == [5]  # the last step is always logged
    assert log_steps(1000, 4, every=300) == [1, 10, 100, 300, 600, 900, 1000]


def test_short_run_lowers_loss_and_writes_facts(tmp_path: Path, lines: list[str]) -> None:
    cfg = TrainConfig(tokens=120 * 16 * 32, batch_size=16, block_size=32, lr=3e-3, warmup_steps=10, seed=1)
    losses: list[float] = []
    meta = train(TINY, cfg, lines, tmp_path / "m", progress=lambda s, t, i: losses.append(i["loss"]))
    assert len(losses) == cfg.steps == 120
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 1.0
    assert meta["val_loss"] < 0.5 * math.log(128)  # well below a uniform guess, in nats/token
    model, stored = load_checkpoint(tmp_path / "m")
    assert stored["params"] == meta["params"] == model.num_params()
    assert stored["non_embedding_params"] == model.num_params(non_embedding=True)
    assert stored["tokens"] == 120 * 16 * 32
    assert stored["flops"] == pytest.approx(6 * stored["params"] * stored["tokens"])
    assert stored["step"] == 120 and stored["seed"] == 1 and stored["train"]["lr"] == 3e-3
    assert TinyBackend(model, meta=stored).facts().loss == stored["val_loss"]


def test_same_seed_gives_identical_weights(tmp_path: Path, lines: list[str]) -> None:
    cfg = TrainConfig(tokens=8 * 8 * 32, batch_size=8, block_size=32, warmup_steps=2)
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        train(TINY, TrainConfig(**{**cfg.__dict__, "seed": seed}), lines, tmp_path / name)
    a, b, c = (load_file(str(tmp_path / n / "model.safetensors")) for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_log_spaced_checkpoints_form_a_step_ladder(tmp_path: Path, lines: list[str]) -> None:
    cfg = TrainConfig(tokens=16 * 8 * 32, batch_size=8, block_size=32, warmup_steps=2, checkpoints=3)
    train(TINY, cfg, lines, tmp_path)
    steps = sorted(int(p.name.split("-")[1]) for p in tmp_path.glob("step-*"))
    assert steps == [1, 4]  # the last of log_steps(16, 3) is the final checkpoint in tmp_path itself
    for s in steps:
        be = TinyBackend.from_path(tmp_path / f"step-{s:06d}")
        assert be.facts().step == s and be.facts().tokens == s * 8 * 32


def _spec(**over: object) -> dict[str, object]:
    d: dict[str, object] = {
        "sizes": [{"n_layer": 1, "n_embd": 16, "n_head": 2}, {"n_layer": 1, "n_embd": 32, "n_head": 2}],
        "budgets": [4 * 8 * 32], "tasks": ["add1"], "lines": 500, "seed": 3,
        "model": {"block_size": 32}, "train": {"batch_size": 8, "block_size": 32, "warmup_steps": 1},
    }
    d.update(over)
    return d


def test_ladder_trains_each_rung_once_then_skips(tmp_path: Path) -> None:
    spec = ladder_spec_from_dict(_spec())
    seen: list[str] = []
    first = train_ladder(spec, tmp_path, progress=lambda r, s, t, i: seen.append(r))
    assert [r["name"] for r in first] == ["L1-d16-t1.02k", "L1-d32-t1.02k"]
    assert sorted(set(seen)) == ["L1-d16-t1.02k", "L1-d32-t1.02k"] and not any(r["skipped"] for r in first)
    seen.clear()
    again = train_ladder(spec, tmp_path, progress=lambda r, s, t, i: seen.append(r))
    assert seen == [] and all(r["skipped"] for r in again)
    assert [r["val_loss"] for r in again] == [r["val_loss"] for r in first]
    assert json.loads((tmp_path / "ladder.json").read_text())[1]["params"] == first[1]["params"]


def test_rung_name() -> None:
    assert rung_name(GPTConfig(n_layer=2, n_embd=128), 2_000_000) == "L2-d128-t2M"
    assert rung_name(GPTConfig(n_layer=3, n_embd=64, n_head=4), 1_500_000) == "L3-d64-t1.5M"


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"sizes": [{"n_embd": 30, "n_head": 4}]}, "sizes[0].n_embd"),
        ({"sizes": [{"width": 30}]}, "sizes[0].width"),
        ({"sizes": [{"n_layer": "2"}]}, "sizes[0].n_layer"),
        ({"budget": [100]}, "budget"),
        ({"budgets": [0]}, "budgets[0]"),
        ({"tasks": ["add9"]}, "tasks[0]"),
        ({"train": {"lr": "fast"}}, "train.lr"),
        ({"train": {"tokens": 5}}, "train.tokens"),
        ({"train": {"block_size": 64}}, "sizes[0].block_size"),
        ({"sizes": []}, "sizes"),
    ],
)
def test_bad_ladder_spec_names_the_field(over: dict[str, object], field: str) -> None:
    with pytest.raises(UserError) as e:
        ladder_spec_from_dict(_spec(**over), source="ladder.toml")
    assert e.value.field == field and e.value.source == "ladder.toml"


def test_ladder_spec_from_toml_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "l.toml"
    p.write_text('tasks = ["add1"]\nbudgets = [1000]\n[[sizes]]\nn_embd = 30\nn_head = 4\n')
    with pytest.raises(UserError, match=r"l\.toml: sizes\[0\]\.n_embd"):
        load_ladder_spec(p)
    p.write_text("tasks = [")
    with pytest.raises(UserError, match="malformed TOML"):
        load_ladder_spec(p)


def rung_means(path: Path, task: str, n: int, seed: int) -> dict[str, float]:
    t = make_task(task, n=n, seed=seed)
    recs = evaluate(TinyBackend.from_path(path), t, list(t.examples), 0, "check", path.name, seed)
    vals = metrics.compute(pd.DataFrame([asdict(r) for r in recs]), ["exact_match", "token_accuracy",
                                                                       "target_logprob"])
    return vals.groupby("metric").value.mean().to_dict()


def test_demo_ladder_checkpoints_reproduce_recorded_numbers() -> None:
    spec = demo_ladder_spec()
    assert isinstance(spec, LadderSpec)
    recorded = json.loads((DEMO_LADDER_DIR / "results.json").read_text())
    names = [n for n, _, _ in spec.rungs()]
    assert names == [r["rung"] for r in recorded["rungs"]] and len(names) >= 5
    total = sum((DEMO_LADDER_DIR / n / "model.safetensors").stat().st_size for n in names)
    assert total <= 20 * 2**20
    ev = recorded["eval"]
    for rung in recorded["rungs"]:
        got = rung_means(DEMO_LADDER_DIR / rung["rung"], ev["task"], n=ev["check_n"], seed=ev["seed"])
        want = rung["check"]
        assert got["exact_match"] == pytest.approx(want["exact_match"], abs=1e-9)
        assert got["token_accuracy"] == pytest.approx(want["token_accuracy"], abs=1e-9)
        assert got["target_logprob"] == pytest.approx(want["target_logprob"], abs=1e-4)
