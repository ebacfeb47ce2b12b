from __future__ import annotations

from pathlib import Path

import pytest
import torch

from emergentlab.models.tiny import GPT, GPTConfig, save_checkpoint


def tiny_ladder_spec(head: str, block_size: int) -> str:
    """A ladder spec (TOML) of three 1-layer rungs (d 8, 12, 16) that trains in seconds: `head` holds the data and
    budget keys."""
    return f"""{head.strip()}
[model]
block_size = {block_size}
[train]
batch_size = 4
block_size = {block_size}
warmup_steps = 1
[[sizes]]
n_layer = 1
n_embd = 8
n_head = 2
[[sizes]]
n_layer = 1
n_embd = 12
n_head = 2
[[sizes]]
n_layer = 1
n_embd = 16
n_head = 2
"""


def make_tiny_checkpoint(path: Path, seed: int = 0, **cfg: int) -> Path:
    """An untrained tiny GPT saved as a checkpoint: enough to exercise every code path that runs a model."""
    model = GPT(GPTConfig(**{"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 128, **cfg}),
                torch.Generator().manual_seed(seed))
    save_checkpoint(model, path, {"tokens": 1e5, "flops": 6.0 * model.num_params() * 1e5, "val_loss": 4.0,
                                  "step": 100})
    return path


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-a")


@pytest.fixture(scope="session")
def tiny_ladder(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("ladder")
    return [make_tiny_checkpoint(root / f"r{i}", seed=i, n_embd=16 * (i + 1)) for i in range(2)]
