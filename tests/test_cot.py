"""CoT vs direct on a few rungs of the shipped demo ladder: paired records, the extraction rule, the section."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import tiny_ladder_spec
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
    assert any("flip" in p for p in s.paragraphs)


def test_bad_config_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError):
        pipeline.cot({"ladder": str(tmp_path / "none")}, tmp_path / "out")
    with pytest.raises(UserError):
        pipeline.cot({"task": "mul2", "ladder": str(_ladder(tmp_path)), "n": 3}, tmp_path / "out")


TRACE_SPEC = tiny_ladder_spec("""tasks = ["add2"]
lines = 400
traces = 0.5
group = 2
budgets = [2048]""", 96)


def test_without_a_ladder_cot_trains_the_trace_ladder_then_resumes_it(tmp_path: Path) -> None:
    spec = tmp_path / "trace.toml"
    spec.write_text(TRACE_SPEC)
    stages: list[str] = []
    rep = pipeline.cot({"spec": str(spec), "task": "add2", "n": 6, "n_boot": 50}, tmp_path / "out",
                       lambda d, n, t: stages.append(d))
    ladder = tmp_path / "out" / "ladder"
    assert sorted(p.name for p in ladder.iterdir() if p.is_dir()) == ["L1-d12-t2.05k", "L1-d16-t2.05k", "L1-d8-t2.05k"]
    assert any("train L1-d8" in s for s in stages) and rep.path.is_file()
    with Store(tmp_path / "out" / "records.sqlite") as store:
        (s,) = cot.sections(store, None)
        assert set(store.records("cot")["variant"]) == {cot.COT, cot.DIRECT}
    assert "50 % of them written as worked traces in documents of 2" in s.paragraphs[0]
    assert "cot states an answer" in s.tables[0].frame and len(s.tables[0].frame) == 3
    before = (ladder / "L1-d8-t2.05k" / "model.safetensors").stat().st_mtime_ns
    stages.clear()
    with Store(tmp_path / "again.sqlite") as store:
        cot.run(cot.CotConfig(spec=str(spec), cache=str(ladder), task="add2", n=3), store,
                lambda d, n, t: stages.append(d))
    assert not any("train" in s for s in stages)  # the cached rungs are reused, not retrained
    assert (ladder / "L1-d8-t2.05k" / "model.safetensors").stat().st_mtime_ns == before
    spec.write_text(TRACE_SPEC.replace("traces = 0.5", "traces = 0.25"))
    with pytest.raises(UserError, match="corpus.traces"):  # a changed mixture never reuses the cache in silence
        pipeline.cot({"spec": str(spec), "task": "add2", "n": 6}, tmp_path / "out")
