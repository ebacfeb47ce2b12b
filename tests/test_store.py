from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from emergentlab.records import Record, ScaleFacts
from emergentlab.store import Store, StoreError


def rec(i: int, **kw: object) -> Record:
    base = dict(study="s", model="m", task="t", example_id=f"e{i}", variant="0shot", kind="numeric",
                prompt="1+1=", target="2", generation="2", generation_tokens=("2",), target_tokens=("2",),
                target_logprobs=(-0.25,), target_greedy=(True,), metadata={"k": i})
    return Record(**{**base, **kw})  # type: ignore[arg-type]


def test_inserts_are_idempotent(tmp_path: Path) -> None:
    with Store(tmp_path / "r.sqlite") as s:
        assert s.put_records([rec(i) for i in range(5)]) == 5
        assert s.put_records([rec(i) for i in range(3, 8)]) == 3
        assert s.count() == 8
        assert s.done_ids("s", "m", "t", "0shot") == {f"e{i}" for i in range(8)}


def test_records_round_trip(tmp_path: Path) -> None:
    r = rec(1, kind="multiple_choice", choices=("1", "2"), correct=1, choice_logprobs=(-2.0, -0.1),
            choice_ntokens=(1, 1))
    with Store(tmp_path / "r.sqlite") as s:
        s.put_records([r])
        row = s.records().iloc[0]
    assert row.choices == ["1", "2"] and row.correct == 1 and row.choice_logprobs == [-2.0, -0.1]
    assert row.target_greedy == [True] and row.metadata == {"k": 1}


def test_rungs_and_series(tmp_path: Path) -> None:
    with Store(tmp_path / "r.sqlite") as s:
        s.put_rung("s", "m", "tiny:x", ScaleFacts(params=10.0).merged({"tokens": 5.0}))
        s.put_series([("s", "grokking", "run", 1.0, "val_acc", 0.5), ("s", "grokking", "run", 1.0, "val_acc", 0.7)])
        rungs, series = s.rungs("s"), s.series("s")
    assert rungs.flops.iloc[0] == 300.0  # 6·N·D filled in when not given
    assert list(series.value) == [0.7]


def test_schema_version_mismatch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(StoreError, match="schema version 99"):
        Store(path)
