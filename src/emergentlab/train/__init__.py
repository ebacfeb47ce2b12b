"""Training: the tiny GPT's loop, ladders of sizes × token budgets, and the demo ladder shipped with the package."""

from __future__ import annotations

from pathlib import Path

from emergentlab.train.ladder import (
    LadderProgress,
    LadderSpec,
    ladder_spec_from_dict,
    load_ladder_spec,
    rung_name,
    train_ladder,
)
from emergentlab.train.loop import Progress, TrainConfig, cpu_has_bf16, train

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
# Checkpoints of the demo ladder (one folder per rung) and ladder.toml, the spec and command that made them.
DEMO_LADDER_DIR = DATA_DIR / "demo_ladder"


def checkpoint_dirs(ladder: Path) -> list[Path]:
    """The rung folders of a trained ladder (those holding a config.json), by name; [] for none or no folder."""
    return sorted(p.parent for p in Path(ladder).glob("*/config.json"))


def demo_ladder_spec() -> LadderSpec:
    """The spec the shipped demo checkpoints were trained from (`DEMO_LADDER_DIR / "ladder.toml"`)."""
    return load_ladder_spec(DEMO_LADDER_DIR / "ladder.toml")


__all__ = [
    "DATA_DIR",
    "DEMO_LADDER_DIR",
    "checkpoint_dirs",
    "LadderProgress",
    "LadderSpec",
    "Progress",
    "TrainConfig",
    "cpu_has_bf16",
    "demo_ladder_spec",
    "ladder_spec_from_dict",
    "load_ladder_spec",
    "rung_name",
    "train",
    "train_ladder",
]
