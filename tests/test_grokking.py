from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from emergentlab.experiments import grokking
from emergentlab.experiments.base import store_run
from emergentlab.sections import Section
from emergentlab.store import Store
from emergentlab.train.grokking import (
    GrokConfig,
    Op,
    fourier_norms,
    fourier_sparsity,
    modular_dataset,
    split_indices,
    train_grokking,
)


@pytest.mark.parametrize(("op", "fn"), [("+", lambda a, b, p: (a + b) % p), ("-", lambda a, b, p: (a - b) % p),
                                        ("*", lambda a, b, p: (a * b) % p)])
def test_dataset_is_the_complete_table(op: Op, fn: Callable[[int, int, int], int]) -> None:
    p = 11
    x, y = modular_dataset(p, op)
    assert x.shape == (p * p, 3) and y.shape == (p * p,)
    assert len({(int(a), int(b)) for a, b, _ in x}) == p * p  # every pair exactly once
    assert (x[:, 2] == p).all()  # the "=" token sits outside 0 … p − 1
    assert all(int(t) == fn(int(a), int(b), p) for (a, b, _), t in zip(x, y, strict=True))


def test_division_leaves_out_zero_divisor_and_inverts_multiplication() -> None:
    p = 13
    x, y = modular_dataset(p, "/")
    assert x.shape == (p * (p - 1), 3)
    assert (x[:, 1] != 0).all()
    assert len({(int(a), int(b)) for a, b, _ in x}) == p * (p - 1)
    assert ((y * x[:, 1]) % p == x[:, 0]).all()  # (a ÷ b) · b = a


def test_split_is_deterministic_disjoint_and_sized() -> None:
    n = 97 * 97
    tr, va = split_indices(n, 0.3, seed=0)
    tr2, va2 = split_indices(n, 0.3, seed=0)
    tr3, _ = split_indices(n, 0.3, seed=1)
    assert torch.equal(tr, tr2) and torch.equal(va, va2)
    assert not torch.equal(tr, tr3)
    assert len(tr) == round(0.3 * n) and len(tr) + len(va) == n
    assert not set(tr.tolist()) & set(va.tolist())
    assert sorted(tr.tolist() + va.tolist()) == list(range(n))


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError, match="prime"):
        GrokConfig(p=91)
    with pytest.raises(ValueError, match="op"):
        GrokConfig(op="^")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="train_frac"):
        GrokConfig(train_frac=1.0)


def test_fourier_sparsity_of_one_frequency_and_of_noise() -> None:
    p, k = 97, 14
    xs = torch.arange(p, dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    u, v = torch.randn(2, 128, generator=gen)
    one = torch.outer(torch.cos(2 * math.pi * k * xs / p), u) + torch.outer(torch.sin(2 * math.pi * k * xs / p), v)
    share, freqs = fourier_sparsity(one, p, top_k=1)
    assert share == pytest.approx(1.0, abs=1e-4) and freqs == [k]
    noise = torch.randn(p, 128, generator=gen)
    share_noise, _ = fourier_sparsity(noise, p, top_k=5)
    assert share_noise < 0.2  # 5 of 48 frequencies hold ≈ 5/48 of white noise
    # the basis is orthonormal: the frequencies together hold the whole non-constant norm
    centred = noise - noise.mean(0)
    assert float(fourier_norms(noise, p).sum()) == pytest.approx(float((centred**2).sum()), rel=1e-4)


def test_logged_steps_are_log_spaced_plus_linear_and_end_at_last() -> None:
    assert GrokConfig(steps=1000, log_points=4, log_every=300).logged_steps() == [1, 10, 100, 300, 600, 900, 1000]


def test_model_is_nandas_shape_and_a_run_depends_on_its_seed_only() -> None:
    cfg = GrokConfig(p=11, n_embd=32, d_mlp=64, steps=20, log_points=3, log_every=0, bf16=False)
    mc = cfg.model_config()
    assert (mc.vocab_size, mc.block_size, mc.layernorm, mc.tie_weights, mc.init) == (12, 3, False, False, "nanda")
    torch.manual_seed(123)  # the global RNG plays no part: the split and the weights come from cfg.seed
    a = train_grokking(cfg).history.drop(columns="wall_s")
    torch.manual_seed(456)
    b = train_grokking(cfg).history.drop(columns="wall_s")
    c = train_grokking(GrokConfig(**{**cfg.__dict__, "seed": 1})).history.drop(columns="wall_s")
    assert a["step"].tolist() == [1, 4, 20]
    assert a.equals(b) and not a.equals(c)


def test_short_run_memorises_and_stores_its_curve_and_config(tmp_path: Path) -> None:
    cfg = GrokConfig(p=23, train_frac=0.5, steps=300, lr=2e-3, weight_decay=0.0, n_embd=128, d_mlp=256,
                     log_points=20, log_every=50, bf16=False)  # fp32: same on every CPU
    seen: list[tuple[str, int, int | None]] = []
    with Store(tmp_path / "records.sqlite") as store:
        res = grokking.run(cfg, store, lambda *a: seen.append(a), study="g")
        back = store.series(study="g", experiment="grokking")
        configs = store.runs("grokking", "g")
    assert res.final["train_acc"] == 1.0
    assert res.memorisation_step is not None and res.memorisation_step <= 300
    assert res.history["train_loss"].iloc[-1] < res.history["train_loss"].iloc[0] / 10
    assert set(back["run"]) == {cfg.run_name}
    assert configs[("g", cfg.run_name)]["weight_decay"] == 0.0 and configs[("g", cfg.run_name)]["train_frac"] == 0.5
    wide = back.pivot(index="step", columns="metric", values="value")
    assert {"train_loss", "val_loss", "train_acc", "val_acc", "weight_norm", "fourier_sparsity"} <= set(wide.columns)
    assert wide["train_acc"].to_numpy() == pytest.approx(res.history["train_acc"].to_numpy())
    assert list(wide.index) == res.history["step"].tolist()
    assert len(seen) == len(res.history) and seen[-1][1:] == (300, 300) and cfg.run_name in seen[-1][0]


def test_sweep_has_a_row_per_setting_and_stops_early() -> None:
    base = GrokConfig(p=11, steps=40, n_embd=32, d_mlp=32, log_points=5, log_every=0,
                      stop_val_acc=0.0)  # every run stops at its first logged step
    configs = grokking.sweep_configs(base, weight_decays=(0.0, 1.0), train_fracs=(0.3, 0.5))
    table = grokking.sweep_table([grokking.run(c) for c in configs])
    assert len(table) == 4
    assert list(zip(table["weight_decay"], table["train_frac"], strict=True)) == [
        (0.0, 0.3), (0.0, 0.5), (1.0, 0.3), (1.0, 0.5)]
    assert table["jump_step"].isna().all() and (table["steps"] == 1).all()  # one logged step: no jump


def planted(jump_at: float) -> pd.DataFrame:
    """A grokking history with train accuracy at 1 from step ~100 and validation accuracy jumping at `jump_at`."""
    steps = np.unique(np.round(np.logspace(0, 4, 80)))
    z = np.log10(steps)
    return pd.DataFrame({"step": steps, "train_acc": 1 / (1 + np.exp(-8 * (z - 1.7))),
                         "val_acc": 0.01 + 0.98 / (1 + np.exp(-30 * (z - np.log10(jump_at)))),
                         "train_loss": np.exp(-z), "val_loss": 5 - 4 * (z > np.log10(jump_at)),
                         "weight_norm": 50 - z, "fourier_sparsity": 0.1 + 0.2 * z})


@pytest.fixture(scope="module")
def grok_sections(tmp_path_factory: pytest.TempPathFactory) -> list[Section]:
    with Store(tmp_path_factory.mktemp("grok") / "records.sqlite") as store:
        grokking.run(GrokConfig(p=11, steps=30, n_embd=32, d_mlp=32, log_points=10, log_every=0), store, study="dyn")
        # the planted run's values live in its config, not its name (nothing parses "frac" or "wd" out of a name)
        store_run(store, "dyn", "grokking", "planted", {"weight_decay": 0.1, "train_frac": 0.5}, planted(3000.0))
        assert grokking.sections(store, "other-study") == []
        return grokking.sections(store, "dyn")


def test_sections_show_each_run_and_the_sweep(grok_sections: list[Section]) -> None:
    by_title = {s.title: s for s in grok_sections}
    assert list(by_title) == ["Grokking — p11-add-wd1-frac0.3-seed0", "Grokking — planted",
                              "Grokking — weight decay and train fraction"]
    planted_section = by_title["Grokking — planted"]
    row = planted_section.tables[0].frame.iloc[0]
    assert row["jump_step"] == pytest.approx(3000, rel=0.1) and row["memorisation_step"] < 1000
    assert any("halfway (t₀.₅) at step" in p for p in planted_section.paragraphs)
    assert f"generalised at step {row['jump_step']:,.0f}" in planted_section.summary[0]
    fig = planted_section.figures[0]
    acc = fig.panels[0]
    assert [ln.label for ln in acc.lines] == ["train", "validation"] and acc.xlog and acc.ylim == (0.0, 1.0)
    assert any(m.label.startswith("jump t₀.₅") and m.x == pytest.approx(3000, rel=0.1) for m in acc.markers)
    assert min(acc.lines[0].x) >= 1  # step 0 is left out of a log axis
    sweep = by_title["Grokking — weight decay and train fraction"].tables[0].frame
    assert sweep.set_index("run").loc["planted", ["weight_decay", "train_frac"]].tolist() == [0.1, 0.5]
    assert sweep.set_index("run").loc["p11-add-wd1-frac0.3-seed0", "weight_decay"] == 1.0
    for s in grok_sections:
        assert all(t.caption and "step" in t.caption for t in s.tables)
