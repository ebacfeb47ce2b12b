"""Bursty training (Chan et al. 2022) on tiny GPTs: a short run stores what the report reads, seeded; the onset
section and the ICL-gain verdict come from the store alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emergentlab import pipeline
from emergentlab.errors import UserError
from emergentlab.experiments import bursty
from emergentlab.experiments.base import torch_threads
from emergentlab.store import Store
from emergentlab.train.bursty import BurstyConfig, episode_scores, train_bursty


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    with torch_threads(bursty.THREADS):  # models this small run fastest on one thread, and fight nothing else
        yield


TINY = dict(n_classes=48, n_holdout=16, alphabet=16, context=4, burstiness=2, ways=2, batch_size=32, steps=40,
            checkpoints=6, eval_episodes=32, final_episodes=40, final_shots=(0, 1, 2), warmup_steps=5)


def test_short_run_stores_series_rung_records_and_sections(tmp_path: Path) -> None:
    cfg = bursty.BurstyExperimentConfig(sizes=((1, 16), (2, 16)), train=BurstyConfig(**TINY), n_boot=50)
    with Store(tmp_path / "s.sqlite") as store:
        trained = bursty.run(cfg, store)
        secs = bursty.sections(store, None)
        recs = store.records("bursty")
        rungs = store.rungs("bursty")
    assert [t.history["step"].iloc[-1] for t in trained] == [40, 40]
    h = trained[1].history
    for col in ("icl_acc", "icl_exact", "control_acc", "iwl_acc", "val_loss", "icl_score", "induction_score",
                "blocks.1.attn.head0.prefix_matching", "blocks.0.attn.head0.copying"):
        assert col in h and h[col].notna().all()
    assert h[["icl_acc", "control_acc", "iwl_acc"]].stack().between(0, 1).all()
    assert sorted(rungs["model"]) == ["L1-d16-seed0", "L2-d16-seed0"] and (rungs["params"] > 0).all()
    assert len(recs) == 2 * 3 * 40 and set(recs["variant"]) == {"0shot", "1shot", "2shot"}
    onset, gain = secs
    table = onset.tables[0].frame
    assert list(table["run"]) == ["L1-d16-seed0", "L2-d16-seed0"] and "icl_onset_step" in table
    assert onset.summary and gain.title.startswith("Does in-context learning itself emerge?")
    assert gain.tables[0].frame["shots"].tolist() == [1, 2]


def test_same_seed_same_history() -> None:
    cfg = BurstyConfig(**{**TINY, "steps": 12, "checkpoints": 3, "final_episodes": 10})
    a, b = train_bursty(cfg), train_bursty(cfg)
    pd.testing.assert_frame_equal(a.history.drop(columns="wall_s"), b.history.drop(columns="wall_s"))
    pd.testing.assert_frame_equal(a.final, b.final)
    c = train_bursty(BurstyConfig(**{**TINY, "steps": 12, "checkpoints": 3, "final_episodes": 10, "seed": 1}))
    assert not np.allclose(a.history["val_loss"], c.history["val_loss"])


def test_weights_learn_a_few_classes() -> None:
    """A known answer for the in-weights measure: 8 classes seen thousands of times are learned, so a query whose
    class is absent from its context is still labelled right."""
    cfg = BurstyConfig(**{**TINY, "n_classes": 8, "n_holdout": 8, "steps": 150, "lr": 3e-3, "checkpoints": 3,
                          "final_episodes": 10, "p_symbols": 0.0})
    last = train_bursty(cfg).history.iloc[-1]
    assert last["iwl_acc"] > 0.9 and last["val_loss"] < 0.5


def test_episode_scores_read_the_answer_at_the_last_position() -> None:
    """`way_right` is the target beating the episode's other symbols; predicted is the argmax over all labels."""
    cfg = BurstyConfig(**TINY)
    trained = train_bursty(BurstyConfig(**{**TINY, "steps": 2, "checkpoints": 1, "final_episodes": 5}))
    space = cfg.space
    from emergentlab.tasks.symbols import draw_episodes

    eps = draw_episodes(space.holdout, space.n_labels, 20, 2, 4, seed=3)
    s = episode_scores(trained.model, space, eps, 2, 4)
    assert len(s) == 20 and (s["logprob"] <= 0).all()
    assert ((s["predicted"] == s["target"]) <= s["way_right"]).all()  # right over all labels ⇒ right among 2


@pytest.mark.parametrize(("sizes", "train", "field"), [
    ("2x", {}, "--sizes"), ("2x64,abc", {}, "--sizes"), ("2x60", {}, None), ("", {"polysemy": 0}, None),
    ("", {"final_shots": (0, 9)}, None), ("", {"nonsense": 1}, None)])
def test_bad_config_is_a_user_error(tmp_path: Path, sizes: str, train: dict[str, object], field: str | None) -> None:
    with pytest.raises(UserError) as e:
        pipeline.bursty(sizes, train, tmp_path / "out")
    assert e.value.field == field


def test_cli_bad_sizes_exit_2_with_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from emergentlab.cli import app

    res = CliRunner().invoke(app, ["bursty", "--sizes", "2x", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "--sizes" in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_pipeline_reports_a_single_size(tmp_path: Path) -> None:
    """One size is too few rungs for a curve: the report holds the experiment's own sections, no error; with
    Chan et al.'s query-only loss the ICL score is NaN throughout (so never stored) and the onset still reads."""
    d = pipeline.bursty("1x16", {**TINY, "interim_weight": 0.0}, tmp_path / "out")
    assert d.table["run"].tolist() == ["L1-d16-seed0"] and d.report.path.is_file()
    html = d.report.path.read_text()
    assert "onset by size" in html and "No gain curve" in html
