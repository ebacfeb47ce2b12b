"""A training-step ladder in one line: `[[ladder]] checkpoints = "train/step-*"` → a report against training."""

from __future__ import annotations

from pathlib import Path

import pytest

from emergentlab import pipeline
from emergentlab.errors import UserError
from emergentlab.models.tiny import GPTConfig
from emergentlab.study import load_study
from emergentlab.tasks import train_lines
from emergentlab.train.loop import TrainConfig, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ckpts")
    cfg = TrainConfig(tokens=120 * 8 * 32, batch_size=8, block_size=32, warmup_steps=10, checkpoints=5, bf16=False)
    train(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=32), cfg, train_lines(["add2"], 2000, 0),
          root / "train")
    return root


def test_checkpoint_glob_expands_to_a_step_ladder_and_a_report(trained: Path) -> None:
    study = trained / "study.toml"
    study.write_text('out = "run"\n[[ladder]]\ncheckpoints = "train/step-*"\n'
                     '[[tasks]]\ngenerator = "add2"\nn = 30\n')
    s = load_study(study)
    steps = [r.facts["step"] for r in s.ladder]
    assert len(s.ladder) == 4 and steps == sorted(steps) and len(set(steps)) == 4  # the final one is train/ itself
    assert all(r.name.startswith("step-") and r.facts["tokens"] == r.facts["step"] * 8 * 32 for r in s.ladder)
    pipeline.run_study(study)
    rep = pipeline.build_report(trained / "run")
    html = rep.path.read_text()
    # every checkpoint has the same parameter count: the report's axis is one that grows with training
    assert "primary axis flops" in html and len(rep.verdicts) >= 1


def test_checkpoint_glob_that_matches_nothing_is_a_user_error(trained: Path) -> None:
    study = trained / "bad.toml"
    study.write_text('[[ladder]]\ncheckpoints = "nope/step-*"\n[[tasks]]\ngenerator = "add1"\n')
    with pytest.raises(UserError) as e:
        load_study(study)
    assert e.value.field == "ladder[0].checkpoints" and "matches no checkpoint" in str(e.value)
