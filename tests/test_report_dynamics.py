from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emergentlab.report.dynamics import dynamics_sections, head_score_matrix, runs_frame
from emergentlab.report.html import build_report
from emergentlab.report.sections import Section
from emergentlab.store import Store
from emergentlab.train.grokking import GrokConfig, put_history, run_grokking
from emergentlab.train.induction import InductionConfig, run_induction


def planted_grokking(jump_at: float) -> pd.DataFrame:
    """A grokking history with train accuracy at 1 from step ~100 and validation accuracy jumping at `jump_at`."""
    steps = np.unique(np.round(np.logspace(0, 4, 80)))
    z = np.log10(steps)
    return pd.DataFrame({"step": steps, "train_acc": 1 / (1 + np.exp(-8 * (z - 1.7))),
                         "val_acc": 0.01 + 0.98 / (1 + np.exp(-30 * (z - np.log10(jump_at)))),
                         "train_loss": np.exp(-z), "val_loss": 5 - 4 * (z > np.log10(jump_at)),
                         "weight_norm": 50 - z, "fourier_sparsity": 0.1 + 0.2 * z})


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dyn") / "records.sqlite"
    with Store(path) as store:
        run_grokking(GrokConfig(p=11, steps=30, n_embd=32, d_mlp=32, log_points=10, log_every=0, threads=1),
                     store=store, study="dyn")
        put_history(store, "dyn", "grokking", "planted-wd0.1-frac0.5", planted_grokking(3000.0))
        run_induction(InductionConfig(n_layer=2, n_head=2, n_embd=16, vocab_size=16, seq_len=16, batch_size=8,
                                      steps=20, checkpoints=5, eval_rows=16, threads=1), store=store, study="dyn")
    return path


@pytest.fixture(scope="module")
def sections(store_path: Path) -> list[Section]:
    with Store(store_path) as store:
        return dynamics_sections(store, "dyn", store_path.parent / "plots")


def test_sections_have_pngs_for_every_run(store_path: Path, sections: list[Section], tmp_path: Path) -> None:
    with Store(store_path) as store:
        assert dynamics_sections(store, "other-study", tmp_path) == []
    titles = [s.title for s in sections]
    assert "Grokking — p11-add-wd1-frac0.3-seed0" in titles
    assert "Grokking — planted-wd0.1-frac0.5" in titles
    assert "Grokking — weight decay and train fraction" in titles  # two runs: a sweep section
    assert "Induction heads — L2-attn-only-seed0" in titles
    for s in sections:
        for img in s.images:
            assert Path(img).is_file() and Path(img).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sum(len(s.images) for s in sections) == 4


def test_planted_jump_is_reported(sections: list[Section]) -> None:
    by_title = {s.title: s for s in sections}
    planted = by_title["Grokking — planted-wd0.1-frac0.5"]
    row = planted.tables[0].iloc[0]
    assert row["jump_step"] == pytest.approx(3000, rel=0.1)
    assert row["memorisation_step"] < 1000
    assert any("halfway (t₀.₅) at step" in p for p in planted.paragraphs)
    sweep = by_title["Grokking — weight decay and train fraction"].tables[0]
    assert set(sweep["weight_decay"]) == {0.1, 1.0} and set(sweep["train_frac"]) == {0.3, 0.5}


def test_head_score_matrix_names_heads_and_steps(store_path: Path) -> None:
    with Store(store_path) as store:
        h = runs_frame(store, "dyn", "induction")["L2-attn-only-seed0"]
    mat = head_score_matrix(h, "prefix_matching")
    assert list(mat.index) == [f"blocks.{i}.attn.head{j}" for i in range(2) for j in range(2)]
    assert list(mat.columns) == h["step"].tolist()
    assert ((mat >= 0) & (mat <= 1)).all().all()


def test_report_from_a_store_holding_only_series(store_path: Path, sections: list[Section], tmp_path: Path) -> None:
    path = build_report(store_path, "dyn", tmp_path, extra_sections=sections)
    html = path.read_text()
    assert "Induction heads — L2-attn-only-seed0" in html and "data:image/png;base64," in html
    assert "verdict-table" not in html  # no ladder was run: no verdicts to show
