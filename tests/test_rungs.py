"""A rung list of backend specs (experiments.base): names, checks, and one code path through cot and icl."""

from __future__ import annotations

from pathlib import Path

import pytest

from emergentlab import pipeline
from emergentlab.errors import UserError
from emergentlab.experiments import cot, icl
from emergentlab.experiments.base import Rung, ladder_rungs, parse_rung, spec_name
from emergentlab.store import Store
from emergentlab.train import DEMO_LADDER_DIR


@pytest.mark.parametrize(("spec", "name"), [
    ("tiny:/a/b/L1-d8-t4M", "L1-d8-t4M"),
    ("tiny:/a/b/L1-d8-t4M/", "L1-d8-t4M"),
    ("gguf:/x/SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct.Q4_1"),
    ("hf:/x/model.gguf", "model"),
    ("hf:EleutherAI/pythia-70m@step1000", "EleutherAI/pythia-70m@step1000"),
    ("hf:./models/local", "local"),
    ("openai:smol@http://127.0.0.1:8000/v1#KEY", "smol"),
])
def test_spec_names(spec: str, name: str) -> None:
    assert spec_name(spec) == name


def test_parse_rung_with_and_without_a_name() -> None:
    assert parse_rung("small=tiny:/a/b") == Rung("small", "tiny:/a/b")
    assert parse_rung("tiny:/a=b/c") == Rung("c", "tiny:/a=b/c")  # '=' after the kind is part of the path
    for bad in ("nope:/x", "/just/a/path", "x=", "x=/a/b"):
        with pytest.raises(ValueError, match="not a backend spec"):
            parse_rung(bad)


def test_ladder_rungs_from_a_folder_or_a_list(tmp_path: Path) -> None:
    folder = ladder_rungs(DEMO_LADDER_DIR)
    assert [r.name for r in folder][:2] == ["L1-d16-t4M", "L1-d32-t4M"] and len(folder) == 7
    assert folder[0].spec == f"tiny:{DEMO_LADDER_DIR / 'L1-d16-t4M'}"
    listed = ladder_rungs(tmp_path, ["b=tiny:/x", "tiny:/y/a"])  # the list wins over the (empty) folder
    assert listed == [Rung("b", "tiny:/x"), Rung("a", "tiny:/y/a")]
    with pytest.raises(ValueError, match="no tiny checkpoints"):
        ladder_rungs(tmp_path)
    with pytest.raises(ValueError, match="two rungs are named 'a'"):
        ladder_rungs(tmp_path, ["tiny:/x/a", "tiny:/y/a"])


def test_cot_and_icl_run_on_a_rung_list(tmp_path: Path, tiny_ladder: list[Path]) -> None:
    models = tuple(f"m{i}=tiny:{p}" for i, p in enumerate(tiny_ladder))
    with Store(tmp_path / "s.sqlite") as store:
        cot.run(cot.CotConfig(models=models, task="add1", n=3, n_boot=20), store, study="c")
        icl.run(icl.IclConfig(models=models, task="add1", n=3, shots=(1,), n_boot=20), store, study="i")
        for study, variants in (("c", {"direct", "cot"}), ("i", {"0shot", "1shot"})):
            recs = store.records(study)
            assert set(recs["model"]) == {"m0", "m1"} and set(recs["variant"]) == variants
            assert dict(zip(store.rungs(study)["model"], store.rungs(study)["spec"], strict=True)) == {
                f"m{i}": f"tiny:{p}" for i, p in enumerate(tiny_ladder)}


def test_a_bad_rung_list_is_a_user_error(tmp_path: Path) -> None:
    for run in (pipeline.cot, pipeline.icl):
        with pytest.raises(UserError, match="not a backend spec"):
            run({"models": ("nope:/x",)}, tmp_path / "out")
    with pytest.raises(UserError, match="not a backend spec") as e:
        pipeline.quantize(tmp_path / "out", models=("nope:/x",))
    assert e.value.field == "--model"
    with pytest.raises(UserError, match="GGUF file") as e:
        pipeline.quantize(tmp_path / "out", formats="none", levels=(f"tiny:{tmp_path}",))
    assert e.value.field == "--level"
