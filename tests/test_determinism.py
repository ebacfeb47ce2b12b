"""The same study run twice, into two folders, gives identical records and byte-identical report CSVs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from conftest import make_tiny_checkpoint
from emergentlab.pipeline import build_report
from emergentlab.runner import run_study
from emergentlab.store import Store
from emergentlab.study import load_study


@pytest.mark.slow
def test_same_study_twice_gives_identical_records_and_csvs(tmp_path: Path) -> None:
    ckpts = [make_tiny_checkpoint(tmp_path / f"r{i}", seed=i, n_embd=8 * (i + 1)) for i in range(3)]
    rungs = "".join(f'[[ladder]]\nname = "r{i}"\nmodel = "tiny:{c}"\n' for i, c in enumerate(ckpts))
    frames, csvs = [], []
    for out in ("a", "b"):
        p = tmp_path / f"{out}.toml"
        p.write_text(f'name = "det"\nseed = 5\nout = "{out}"\nbatch_size = 4\n{rungs}'
                     '[[tasks]]\ngenerator = "add1"\nn = 10\nshots = [0, 1]\n'
                     '[[tasks]]\nname = "add1mc"\ngenerator = "add1"\nn = 10\nchoices = 3\n')
        study = load_study(p)
        with Store(study.store_path) as store:
            summary = run_study(study, store)
            frames.append(store.records("det"))
        assert summary.written == summary.total == 3 * 10 * 3
        build_report(study.out)
        csvs.append({f.name: f.read_bytes() for f in sorted(study.out.glob("*.csv"))})
    pd.testing.assert_frame_equal(frames[0], frames[1])
    assert len(csvs[0]) >= 3 and csvs[0] == csvs[1]
