"""CoT vs direct on a few rungs of the shipped demo ladder: paired records, the extraction rule, the section."""

from __future__ import annotations

from pathlib import Path

import pytest

from emergentlab import metrics, pipeline
from emergentlab.errors import UserError
from emergentlab.experiments import cot
from emergentlab.store import Store
from emergentlab.tasks.answers import extract
from emergentlab.train import DEMO_LADDER_DIR


def _ladder(tmp_path: Path) -> Path:
    d = tmp_path / "ladder"
    d.mkdir()
    for name in ("L1-d8-t4M", "L1-d16-t4M", "L1-d32-t4M"):
        (d / name).symlink_to(DEMO_LADDER_DIR / name)
    return d


def test_cot_pairs_items_and_reports_the_flip_question(tmp_path: Path) -> None:
    cfg = cot.CotConfig(ladder=str(_ladder(tmp_path)), n=6, n_boot=100)
    with Store(tmp_path / "s.sqlite") as store:
        cot.run(cfg, store)
        recs = store.records("cot")
        secs = cot.sections(store, None)
    ids = recs.groupby(["model", "variant"])["example_id"].apply(frozenset)
    assert len(ids) == 6 and len(set(ids)) == 1  # every rung, both variants, the same items
    c = recs[recs["variant"] == cot.COT]
    assert c["prompt"].str.contains(" answer ").all() and not recs.loc[recs["variant"] == cot.DIRECT,
                                                                       "output_regex"].notna().any()
    em = metrics.compute(c, ["exact_match"])["value"].to_numpy()
    assert list(em) == [float(extract(g, r) == t) for g, r, t in zip(c["generation"], c["output_regex"],
                                                                      c["target"], strict=True)]
    (s,) = secs
    assert s.title.startswith("Chain of thought vs direct (1-shot)") and len(s.tables[0].frame) == 3
    assert "flip" in s.paragraphs[2]


def test_bad_config_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError):
        pipeline.cot({"ladder": str(tmp_path / "none")}, tmp_path / "out")
    with pytest.raises(UserError):
        pipeline.cot({"task": "mul2", "ladder": str(_ladder(tmp_path)), "n": 3}, tmp_path / "out")
