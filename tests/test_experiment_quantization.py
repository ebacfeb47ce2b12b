"""The quantization sweep on the shipped demo ladder: 2-bit weights erase the largest rung's exact match."""

from __future__ import annotations

from pathlib import Path

import pytest

from emergentlab import pipeline
from emergentlab.errors import UserError
from emergentlab.experiments import EXPERIMENTS, quantization
from emergentlab.store import Store
from emergentlab.train import checkpoint_dirs


def test_sweep_stores_judges_and_reports(tmp_path: Path) -> None:
    ladder = tmp_path / "ladder"
    ladder.mkdir()
    for rung in ("L1-d8-t4M", "L1-d32-t4M", "L2-d64-t4M", "L3-d128-t4M"):  # four rungs keep the test fast
        (ladder / rung).symlink_to(Path(quantization.Config().ladder) / rung)
    with Store(tmp_path / "q.db") as store:
        runs = quantization.run(quantization.Config(ladder=str(ladder), n=16, formats=("fp32", "int2-g64")), store,
                                study="q")
        assert [r.study for r in runs] == ["q@fp32", "q@int2-g64"]
        assert all(r.score_tokens_per_s > 0 for r in runs)
        assert len(store.rungs("q@int2-g64")) == len(checkpoint_dirs(ladder)) == 4
        [sweep] = quantization.fit(store, "q", n_boot=100)
        surv = quantization.survives(sweep).set_index("format")
        assert bool(surv.loc["fp32", "survives"])
        # the fp32 top rung solves some items; at 2 bits per weight none are left
        assert surv.loc["fp32", "exact_match"] > 0.1 and surv.loc["int2-g64", "exact_match"] == 0.0
        assert not bool(surv.loc["int2-g64", "survives"])
        assert surv.loc["int2-g64", "token_accuracy"] < surv.loc["fp32", "token_accuracy"]
        assert set(quantization.verdicts(sweep)["format"]) == {"fp32", "int2-g64"}
        [section] = EXPERIMENTS[quantization.NAME].sections(store, "q")
        assert len(section.tables) == 3 and any("int2-g64" in s and "falls outside" in s for s in section.summary)
        assert EXPERIMENTS[quantization.NAME].sections(store, "other") == []


def test_pipeline_refuses_a_bad_format_and_an_empty_ladder(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="weight format") as e:
        pipeline.quantize(tmp_path / "out", formats="fp32,int9-g64")
    assert e.value.field == "--formats"
    with pytest.raises(UserError, match="no tiny checkpoints"):
        pipeline.quantize(tmp_path / "out", ladder=tmp_path)
    assert not (tmp_path / "out").exists()
