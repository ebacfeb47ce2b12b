"""ICL gain on a few rungs of the shipped demo ladder: one variant per shot count, the gain table is n − 0 shot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emergentlab import metrics, pipeline
from emergentlab.analysis import synthetic as syn
from emergentlab.analysis.verdict import gain_scores
from emergentlab.errors import UserError
from emergentlab.experiments import icl
from emergentlab.store import Store
from emergentlab.train import DEMO_LADDER_DIR


def _ladder(tmp_path: Path) -> Path:
    d = tmp_path / "ladder"
    d.mkdir()
    for name in ("L1-d8-t4M", "L2-d96-t4M"):
        (d / name).symlink_to(DEMO_LADDER_DIR / name)
    return d


def test_gain_table_is_the_paired_difference(tmp_path: Path) -> None:
    cfg = icl.IclConfig(ladder=str(_ladder(tmp_path)), n=4, shots=(1, 2), n_boot=50)
    with Store(tmp_path / "s.sqlite") as store:
        icl.run(cfg, store)
        recs = store.records("icl")
        gain, one, two, verdict = icl.sections(store, None)
    assert set(recs["variant"]) == {"0shot", "1shot", "2shot"}
    em = metrics.compute(recs, ["exact_match"]).pivot_table(index="model", columns="variant", values="value")
    frame = gain.tables[0].frame.set_index("model")
    for n in (1, 2):
        want = (em[f"{n}shot"] - em["0shot"]).reindex(frame.index).to_numpy()
        assert np.allclose(frame[f"gain {n}-shot"].to_numpy(), want)
    assert one.title.startswith("Compare 1shot vs 0shot") and two.title.startswith("Compare 2shot vs 0shot")
    assert verdict.title.startswith("Does in-context learning itself emerge?")
    assert verdict.tables[0].frame["shots"].tolist() == [1, 2]


def test_symbol_task_runs_on_the_ladder(tmp_path: Path) -> None:
    cfg = icl.IclConfig(ladder=str(_ladder(tmp_path)), task="symbols", n=3, shots=(1,), n_boot=20)
    with Store(tmp_path / "s.sqlite") as store:
        icl.run(cfg, store)
        recs = store.records("icl")
    assert set(recs["variant"]) == {"0shot", "1shot"} and set(recs["task"]) == {"symbols"}
    zero = recs[recs["variant"] == "0shot"]
    assert all("\n" not in p for p in zero["prompt"])  # the query alone: no symbol shown


def test_bad_config_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="shot"):
        pipeline.icl({"shots": [0], "ladder": str(_ladder(tmp_path))}, tmp_path / "out")


def _variant(shape: str, variant: str, seed: int) -> pd.DataFrame:
    recs = syn.records({shape: syn.SHAPES[shape]}, n_examples=200, seed=seed)
    return pd.DataFrame([{**r.__dict__, "task": "t", "variant": variant} for r in recs])


@pytest.mark.parametrize(("n_shot", "zero_shot", "want"), [
    ("step", "noise", "emergent"),  # the gain jumps under exact match and per token alike
    ("schaeffer", "noise", "mirage"),  # it jumps under exact match only: per-token gain rises smoothly
    ("noise", "noise", "flat"),  # demonstrations add nothing at any size
])
def test_gain_verdict_recovers_a_planted_gain_curve(n_shot: str, zero_shot: str, want: str) -> None:
    records = pd.concat([_variant(zero_shot, "0shot", 1), _variant(n_shot, "4shot", 2)], ignore_index=True)
    section = icl.gain_section(records, syn.rungs_frame(), "t", [4], seed=0, n_boot=300)
    row = section.tables[0].frame.iloc[0]
    assert row["shots"] == 4 and row["verdict"] == want
    if want != "flat":
        assert row["confidence"] > 0.5 and row["change_lo"] > 0
    assert section.summary and want in section.summary[0]


def test_gain_scores_are_per_example_differences() -> None:
    scores = pd.DataFrame({"model": ["m"] * 4, "task": ["t"] * 4, "example_id": ["a", "b", "a", "b"],
                           "variant": ["0shot", "0shot", "2shot", "2shot"], "metric": ["exact_match"] * 4,
                           "value": [0.0, 1.0, 1.0, 1.0]})
    g = gain_scores(scores, "0shot").sort_values("example_id")
    assert g["value"].tolist() == [1.0, 0.0] and set(g["variant"]) == {"2shot − 0shot"}
