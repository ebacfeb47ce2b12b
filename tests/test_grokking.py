from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from emergentlab.store import Store
from emergentlab.train.grokking import (
    GrokConfig,
    Op,
    build_model,
    fourier_norms,
    fourier_sparsity,
    grok_logits,
    logged_steps,
    modular_dataset,
    run_grokking,
    split_indices,
    sweep_grokking,
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


def test_fast_logits_equal_the_full_forward() -> None:
    cfg = GrokConfig(p=23, n_embd=32, n_head=4, d_mlp=64, seed=3)
    model = build_model(cfg)
    torch.nn.init.normal_(model.wpe.weight, 0, 0.5)  # make positions matter, so a mix-up would show
    x, _ = modular_dataset(23, "+")
    with torch.no_grad():
        assert torch.allclose(grok_logits(model, x), model(x)[:, -1], atol=1e-5)


def test_logged_steps_are_log_spaced_plus_linear_and_end_at_last() -> None:
    steps = logged_steps(GrokConfig(steps=1000, log_points=4, log_every=300))
    assert steps == [1, 10, 100, 300, 600, 900, 1000]


def test_short_run_memorises_and_stores_its_curve(tmp_path: Path) -> None:
    cfg = GrokConfig(p=23, train_frac=0.5, steps=300, lr=2e-3, weight_decay=0.0, n_embd=128, d_mlp=256,
                     log_points=20, log_every=50, threads=1, bf16=False)  # fp32: same on every CPU
    with Store(tmp_path / "records.sqlite") as store:
        res = run_grokking(cfg, store=store, study="g")
        back = store.series(study="g", experiment="grokking")
    assert res.final["train_acc"] == 1.0
    assert res.memorisation_step is not None and res.memorisation_step <= 300
    assert res.history["train_loss"].iloc[-1] < res.history["train_loss"].iloc[0] / 10
    assert set(back["run"]) == {cfg.run_name}
    wide = back.pivot(index="step", columns="metric", values="value")
    assert {"train_loss", "val_loss", "train_acc", "val_acc", "weight_norm", "fourier_sparsity"} <= set(wide.columns)
    assert wide["train_acc"].to_numpy() == pytest.approx(res.history["train_acc"].to_numpy())
    assert list(wide.index) == res.history["step"].tolist()


def test_sweep_has_a_row_per_setting_and_stops_early() -> None:
    base = GrokConfig(p=11, steps=40, n_embd=32, d_mlp=32, log_points=5, log_every=0, threads=1,
                      stop_val_acc=0.0)  # every run stops at its first logged step
    seen: list[GrokConfig] = []
    table = sweep_grokking(base, weight_decays=(0.0, 1.0), train_fracs=(0.3, 0.5),
                           progress=lambda c, r: seen.append(c))
    assert len(table) == 4 and len(seen) == 4
    assert set(zip(table["weight_decay"], table["train_frac"], strict=True)) == {
        (0.0, 0.3), (0.0, 0.5), (1.0, 0.3), (1.0, 0.5)}
    assert table["jump_step"].isna().all()  # one logged step: no jump can be located
