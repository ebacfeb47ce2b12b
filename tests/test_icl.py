"""ICL gain on a few rungs of the shipped demo ladder: one variant per shot count, the gain table is n − 0 shot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emergentlab import metrics, pipeline
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
        gain, one, two = icl.sections(store, None)
    assert set(recs["variant"]) == {"0shot", "1shot", "2shot"}
    em = metrics.compute(recs, ["exact_match"]).pivot_table(index="model", columns="variant", values="value")
    frame = gain.tables[0].frame.set_index("model")
    for n in (1, 2):
        want = (em[f"{n}shot"] - em["0shot"]).reindex(frame.index).to_numpy()
        assert np.allclose(frame[f"gain {n}-shot"].to_numpy(), want)
    assert one.title.startswith("Compare 1shot vs 0shot") and two.title.startswith("Compare 2shot vs 0shot")


def test_bad_config_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="shot"):
        pipeline.icl({"shots": [0], "ladder": str(_ladder(tmp_path))}, tmp_path / "out")
