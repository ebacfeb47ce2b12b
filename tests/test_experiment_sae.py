"""SAE model diffing on the shipped demo ladder: a rung diffed against itself leaves fewer features unmatched than
a small rung against the top one, and the stored run becomes a report section."""

from __future__ import annotations

from pathlib import Path

import pytest

from emergentlab import pipeline
from emergentlab.errors import UserError
from emergentlab.experiments import EXPERIMENTS, sae
from emergentlab.experiments.base import torch_threads
from emergentlab.store import Store


def test_diffing_self_versus_across_the_jump(tmp_path: Path) -> None:
    base = dict(n=60, steps=400, expansion=2, k=4)
    with Store(tmp_path / "s.db") as store, torch_threads(1):
        same = sae.run(sae.Config(small="L3-d128-t4M", large="L3-d128-t4M", **base), store, study="d")
        across = sae.run(sae.Config(small="L1-d8-t4M", large="L3-d128-t4M", **base), store, study="d")
        assert same["tokens"] == across["tokens"] == sum(len(t) for t in sae.texts(sae.Config(n=60)))
        for r in (same, across):
            for s in r["stats"]:
                assert 0 <= s["fvu"] < 0.5 and s["l0"] <= 4 and 0 <= s["dead_share"] < 1
        # a rung against itself: what one SAE finds and a second finds again, the third finds too
        assert same["unmatched"] < across["unmatched"]
        assert all(f["best_corr"] < 0.5 <= f["again_corr"] and "[" in f["examples"][0]["text"]
                   for f in across["features"])
        # weak features (live on fewer than min_active tokens) are counted and never listed
        assert 0 <= across["weak_large"] <= across["alive_large"]
        assert all(f["frequency"] * across["tokens"] >= across["min_active"] - 1e-9 for f in across["features"])
        strict = sae.run(sae.Config(small="L1-d8-t4M", large="L3-d128-t4M", min_active=10**6, **{**base, "steps": 50}))
        assert strict["unmatched"] == 0 and strict["weak_large"] == strict["alive_large"]
        secs = EXPERIMENTS[sae.NAME].sections(store, "d")
        assert len(secs) == 2 and all(len(s.tables) == 2 and "Dead features" in s.summary[1] for s in secs)


def test_pipeline_refuses_an_unknown_rung(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no tiny checkpoint") as e:
        pipeline.sae_diff(tmp_path / "out", "L2-d64-t4M", "L9-nope")
    assert e.value.field == "--large" and not (tmp_path / "out").exists()
