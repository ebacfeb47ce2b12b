from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
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


def test_typed_import_fields_round_trip(tmp_path: Path) -> None:
    only_sum = rec(2, generation="", generation_tokens=(), target_logprobs=(), generated=False,
                   target_loglikelihood=-1.25)
    with Store(tmp_path / "r.sqlite") as s:
        s.put_records([rec(1), only_sum])
        rows = s.records().set_index("example_id")
    assert rows["generated"].dtype == bool and rows["generated"].tolist() == [True, False]
    assert rows.loc["e2", "target_loglikelihood"] == -1.25 and np.isnan(rows.loc["e1", "target_loglikelihood"])


def test_per_target_scores_round_trip_and_older_payloads_read_as_unscored(tmp_path: Path) -> None:
    with Store(tmp_path / "r.sqlite") as s:
        s.put_records([rec(1, targets=("a", "b"), targets_loglikelihood=(-1.5, -2.25)), rec(2)])
        # a record written before `targets_loglikelihood` existed: its payload array lacks the last element
        s.db.execute("UPDATE records SET payload = json_remove(payload, '$[#-1]') WHERE example_id = 'e2'")
        rows = s.records().set_index("example_id")
    assert rows.loc["e1", "targets_loglikelihood"] == [-1.5, -2.25] and rows.loc["e2", "targets_loglikelihood"] == []
    assert rows.loc["e2", "metadata"] == {"k": 2} and rows.loc["e2", "targets"] == []


def test_empty_garbage_and_truncated_files_are_refused_and_left_alone(tmp_path: Path) -> None:
    full = tmp_path / "full.sqlite"
    with Store(full) as s:
        s.put_records([rec(i, prompt="x" * 500) for i in range(300)])
        s.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = full.read_bytes()
    for name, content, needle in (("empty", b"", "empty file"), ("garbage", b"hello\n" * 50, "not a records store"),
                                  ("half", data[: len(data) // 2], "truncated")):
        p = tmp_path / f"{name}.sqlite"
        p.write_bytes(content)
        with pytest.raises(StoreError, match=needle):
            Store(p)
        assert p.read_bytes() == content and not (tmp_path / f"{name}.sqlite-wal").exists()


def test_an_older_schema_gets_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    with pytest.raises(StoreError, match="schema version 2.*new `out` folder"):
        Store(path)


def test_bind_refuses_another_fingerprint_once_records_exist(tmp_path: Path) -> None:
    with Store(tmp_path / "r.sqlite") as s:
        s.bind("s", "m", "t", "0shot", "aaa", {"seed": 1})
        s.bind("s", "m", "t", "0shot", "bbb", {"seed": 2})  # nothing stored yet: the new settings win
        s.put_records([rec(0)])
        state = s.cell_state("s", "m", "t", "0shot")
        assert state is not None and state.fingerprint == "bbb" and state.parts == {"seed": 2} and state.has_records
        with pytest.raises(StoreError, match="other settings"):
            s.bind("s", "m", "t", "0shot", "ccc", {"seed": 3})


def test_claims_exclude_a_live_owner_and_expire_with_a_dead_one(tmp_path: Path) -> None:
    with Store(tmp_path / "r.sqlite") as a, Store(tmp_path / "r.sqlite") as b:
        assert a.claim("s", "m", "t", "0shot")
        assert not b.claim("s", "m", "t", "0shot", owner="other:1")  # this process is alive
        assert b.holder("s", "m", "t", "0shot") is not None
        a.release("s", "m", "t", "0shot", status="skipped", reason="too long")
        assert b.claim("s", "m", "t", "0shot", owner="other:1")
        dead = f"{owner_host()}:999999999"  # no such process
        b.db.execute("UPDATE cells SET owner=?", (dead,))
        assert a.claim("s", "m", "t", "0shot")
        assert list(a.skips("s").reason) == ["too long"]


def owner_host() -> str:
    import socket

    return socket.gethostname()
