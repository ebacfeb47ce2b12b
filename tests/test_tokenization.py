"""The tokenization experiment on a very small ladder: each condition trains with its own tokenizer and corpus,
the checkpoints reload with theirs, and the report compares every condition with the baseline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import tiny_ladder_spec
from emergentlab import pipeline
from emergentlab.cli import app
from emergentlab.errors import UserError
from emergentlab.experiments import tokenization as tok
from emergentlab.store import Store

SPEC = tiny_ladder_spec("""tasks = ["add2"]
lines = 400
budgets = [1536]""", 64)


def test_conditions_parse_and_refuse_other_names() -> None:
    assert tok.condition("digit") == ({"kind": "char"}, False)
    assert tok.condition("chunk3+scratchpad") == ({"kind": "chunk", "k": 3}, True)
    assert tok.condition("bpe256") == ({"kind": "bpe", "merges": 256}, False)
    for bad in ("chunk9", "bpe", "bpe0", "digit+cot", "Digit"):
        with pytest.raises(ValueError, match="condition"):
            tok.condition(bad)


def test_each_condition_trains_its_own_ladder_and_is_compared_with_the_baseline(tmp_path: Path) -> None:
    spec = tmp_path / "l.toml"
    spec.write_text(SPEC)
    conds = ["digit", "chunk2", "bpe40+scratchpad"]
    d = pipeline.tokenization({"spec": str(spec), "conditions": conds, "task": "add2", "n": 8, "n_boot": 50},
                              tmp_path / "out")
    ladders = tmp_path / "out" / "ladders"
    for c, want in (("digit", {"kind": "char"}), ("chunk2", {"kind": "chunk", "k": 2})):
        meta = json.loads((ladders / c / "L1-d8-t1.54k" / "config.json").read_text())
        assert meta["tokenizer"] == want and meta["ladder"]["traces"] == 0.0
    bpe = json.loads((ladders / "bpe40+scratchpad" / "L1-d8-t1.54k" / "config.json").read_text())
    assert bpe["ladder"]["traces"] == 1.0 and bpe["model"]["vocab_size"] == 168
    assert bpe["tokenizer"]["kind"] == "bpe" and len(bpe["tokenizer"]["merges"]) == 40  # learned, and kept
    assert list(d.table["condition"]) == ["chunk2", "bpe40+scratchpad"] and d.report.path.is_file()
    with Store(tmp_path / "out" / "records.sqlite") as store:
        recs = store.records("tokenization")
        secs = tok.sections(store, None)
        rungs = store.rungs("tokenization")
    assert recs.groupby(["variant", "model"])["example_id"].apply(frozenset).nunique() == 1  # same items everywhere
    pad = recs[recs["variant"] == "bpe40+scratchpad"]
    assert pad["output_regex"].notna().all() and recs.loc[recs["variant"] == "digit", "output_regex"].isna().all()
    assert rungs["params"].isna().all() and rungs["non_embedding_params"].notna().all()  # only shared axes
    main, *pairs = secs
    assert [c for c in main.tables[0].frame if c.startswith("EM ")] == [f"EM {c}" for c in conds]
    assert len(main.figures[0].panels[0].lines) == 3 and len(main.summary) == 2
    facts = main.tables[2].frame
    chunk_params = facts.loc[facts["condition"] == "chunk2", "params"].to_numpy()
    digit_params = facts.loc[facts["condition"] == "digit", "params"].to_numpy()
    assert (chunk_params > digit_params).all()  # 100 more embedding rows, the same transformer
    assert [s.title.split(" — ")[0] for s in pairs] == ["Tokenization: Compare chunk2 vs digit",
                                                        "Tokenization: Compare bpe40+scratchpad vs digit"]


def test_bad_tokenization_input_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="condition"):
        pipeline.tokenization({"conditions": ["digit", "words"]}, tmp_path / "o")
    with pytest.raises(UserError, match="distinct"):
        pipeline.tokenization({"conditions": ["digit"]}, tmp_path / "o")
    r = CliRunner().invoke(app, ["tokenization", "--out", str(tmp_path / "o"), "--task", "mul2"])
    assert r.exit_code == 2 and "addition" in r.output


def test_a_crossing_past_the_largest_rung_is_called_extrapolated() -> None:
    row = {"shift": -1.0, "lo": -1.8, "hi": -0.7, "share crossed": 0.24, "level": 0.2, "point": 4.4,
           "baseline point": 5.4, "flip": "no flip within the ladder"}
    text = tok._shift_sentence(row, top=5.0)
    assert "baseline at 5.40 (past the largest rung, 5.00: extrapolated)" in text and "24 %" in text
    assert "4.40 (" not in text  # inside the ladder: a plain number
    none = tok._shift_sentence({**row, "shift": float("nan"), "point": float("nan")}, top=5.0)
    assert "crosses at never, the baseline at 5.40 (past the largest rung, 5.00: extrapolated)" in none
