"""Crash anywhere: 20 seeded SIGKILLs across training, evaluation, store writes and report building, each followed by
a resume, end with the same checkpoints, records and report CSVs as a run that was never interrupted.

Each stage runs in a forked child (the parent has torch imported already, so a child starts in milliseconds) and
is killed with SIGKILL: at a seeded random time for training, evaluation and the report, and inside an open store
transaction (after the rows are sent, before the commit) for store writes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd
import pytest

from emergentlab.records import Record
from emergentlab.store import Store
from emergentlab.study import Study, parse_study
from emergentlab.train.ladder import LadderSpec, ladder_spec_from_dict, train_ladder

SEED = 20261202
KILLS_PER_STAGE = 5

LADDER = {"sizes": [{"n_layer": 1, "n_embd": 8, "n_head": 2}, {"n_layer": 1, "n_embd": 16, "n_head": 2},
                    {"n_layer": 1, "n_embd": 24, "n_head": 2}],
          "budgets": [3072], "tasks": ["add1"], "lines": 400, "seed": 0,
          "model": {"block_size": 32}, "train": {"batch_size": 4, "block_size": 16}}


def spec() -> LadderSpec:
    return ladder_spec_from_dict(LADDER, "<crash-test>")


def study(root: Path) -> Study:
    rungs = [{"name": p.name, "model": f"tiny:{p}"} for p in sorted((root / "ckpt").iterdir()) if p.is_dir()]
    return parse_study({"name": "crash", "seed": 3, "out": str(root / "run"), "batch_size": 2, "ladder": rungs,
                        "tasks": [{"generator": "add1", "n": 12, "shots": [0]},
                                  {"generator": "add1", "name": "add1mc", "n": 12, "choices": 3}]},
                       "<crash-test>", root)


def stage_train(root: Path) -> None:
    train_ladder(spec(), root / "ckpt")


def stage_eval(root: Path) -> None:
    from emergentlab.runner import run_study

    s = study(root)
    s.out.mkdir(parents=True, exist_ok=True)
    with Store(s.store_path) as store:
        run_study(s, store)


def stage_report(root: Path) -> None:
    from emergentlab.pipeline import build_report

    build_report(root / "run")


def die_in_a_write(after: int, steps: int) -> None:
    """Make this process SIGKILL itself inside its `after`-th `put_records`, `steps` SQLite VM instructions into
    the statements it runs (the cell look-up, the row inserts, the heartbeat), so the kill lands in a transaction."""
    original = Store.put_records
    calls = [0]

    def put(self: Store, records: Iterable[Record]) -> int:
        calls[0] += 1
        if calls[0] == after:
            self.db.set_progress_handler(lambda: os.kill(os.getpid(), signal.SIGKILL), steps)
        return original(self, records)

    Store.put_records = put  # type: ignore[method-assign]


def _child(stage: Callable[[Path], None], root: Path, write_kill: tuple[int, int] | None) -> None:
    import torch

    torch.set_num_threads(1)  # as DataLoader workers do: a forked child must not reuse the parent's thread pool
    if write_kill:
        die_in_a_write(*write_kill)
    stage(root)


def run(stage: Callable[[Path], None], root: Path, kill_after: float | None = None,
        write_kill: tuple[int, int] | None = None) -> bool:
    """Run a stage in a forked child; SIGKILL it after `kill_after` seconds (or from inside a store write, see
    `die_in_a_write`). True if the child was killed."""
    p = mp.get_context("fork").Process(target=_child, args=(stage, root, write_kill))
    p.start()
    p.join(kill_after)
    killed = False
    if p.is_alive():
        os.kill(p.pid, signal.SIGKILL)  # type: ignore[arg-type]
        killed = True
    p.join()
    if not killed:
        if write_kill and p.exitcode == -signal.SIGKILL:
            return True
        assert p.exitcode == 0, f"{stage.__name__} failed with exit code {p.exitcode}"
    return killed


def timed(stage: Callable[[Path], None], root: Path) -> float:
    t = time.perf_counter()
    assert not run(stage, root)
    return time.perf_counter() - t


def outputs(root: Path) -> dict[str, object]:
    ckpts = {p.parent.name: p.read_bytes() for p in sorted((root / "ckpt").glob("*/model.safetensors"))}
    with Store(root / "run" / "records.sqlite") as s:
        recs = s.records("crash")
        ok = s.db.execute("PRAGMA integrity_check").fetchone()[0]
    csvs = {p.name: p.read_bytes() for p in sorted((root / "run").glob("*.csv"))}
    return {"ckpts": ckpts, "records": recs, "integrity": ok, "csvs": csvs}


@pytest.mark.slow
def test_twenty_kills_anywhere_lose_duplicate_and_change_nothing(tmp_path: Path) -> None:
    ref, crash = tmp_path / "ref", tmp_path / "crash"
    durations = {st: timed(st, ref) for st in (stage_train, stage_eval, stage_report)}
    rng = random.Random(SEED)
    kills = {"training": 0, "evaluation": 0, "store writes": 0, "report": 0}

    # training: each kill loses the rung in flight; the next run retrains it (finished rungs are reused)
    for _ in range(KILLS_PER_STAGE):
        kills["training"] += run(stage_train, crash, kill_after=rng.uniform(0.02, 0.3) * durations[stage_train])
    assert not run(stage_train, crash)
    # evaluation: killed mid-batch at random times; each resume skips what the store holds
    for _ in range(KILLS_PER_STAGE):
        kills["evaluation"] += run(stage_eval, crash, kill_after=rng.uniform(0.02, 0.15) * durations[stage_eval])
    # store writes: killed inside a transaction, rows sent and not committed
    for _ in range(KILLS_PER_STAGE):
        kills["store writes"] += run(stage_eval, crash, write_kill=(rng.randint(1, 3), rng.randint(1, 100)))
    assert not run(stage_eval, crash)
    # report: killed part-way through building figures and CSVs; the rebuild starts over
    for _ in range(KILLS_PER_STAGE):
        kills["report"] += run(stage_report, crash, kill_after=rng.uniform(0.05, 0.6) * durations[stage_report])
    assert not run(stage_report, crash)

    assert kills == dict.fromkeys(kills, KILLS_PER_STAGE), kills
    a, b = outputs(ref), outputs(crash)
    assert a["ckpts"] == b["ckpts"] and len(a["ckpts"]) == 3  # type: ignore[arg-type]
    ra, rb = a["records"], b["records"]
    assert isinstance(ra, pd.DataFrame) and isinstance(rb, pd.DataFrame)
    assert len(ra) == len(rb) == 3 * (12 + 12)  # 0 lost
    assert not rb.duplicated(["model", "task", "example_id", "variant"]).any()  # 0 duplicated
    pd.testing.assert_frame_equal(ra, rb)  # 0 differing
    assert b["integrity"] == "ok"
    assert a["csvs"] == b["csvs"] and len(a["csvs"]) >= 3  # type: ignore[arg-type]
