"""`run --executor ray`: a real local Ray (2 CPUs, one session for the module) gives exactly the records a local
run gives, resumes a run interrupted mid-cell, and without Ray installed fails with one line."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from emergentlab.cli import app
from emergentlab.errors import UserError
from emergentlab.runner import LocalExecutor, RayExecutor, prepare, run_study
from emergentlab.store import Store
from emergentlab.study import load_study
from test_runner import study_file

pytestmark = pytest.mark.slow  # starting Ray and its workers takes seconds

cli = CliRunner()


@pytest.fixture(scope="module")
def ray_exe() -> Iterator[RayExecutor]:
    pytest.importorskip("ray")
    with RayExecutor(num_cpus=2) as exe:  # starts the module's one Ray session, stopped at the end
        yield exe


def frame(path: Path) -> pd.DataFrame:
    with Store(path) as s:
        return s.records().drop(columns="study")


def rungs(path: Path) -> pd.DataFrame:
    with Store(path) as s:
        return s.rungs().drop(columns="study")


def test_ray_records_are_the_local_records(tmp_path: Path, tiny_ladder: list[Path], ray_exe: RayExecutor,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Every field of every record, shard by shard and in the store."""
    local, ray = (load_study(study_file(tmp_path, tiny_ladder, out, n=12, batch=4)) for out in ("local", "ray"))
    with Store(local.store_path) as store:
        run_study(local, store)
    # a shard of two batches and one of one batch (12 examples): the batches stay those of a local run
    monkeypatch.setattr(ray_exe, "shard_size", 8)
    with Store(ray.store_path) as store:
        summary = run_study(ray, store, None, ray_exe)
    assert summary.written == summary.total == 2 * 2 * 2 * 12
    pd.testing.assert_frame_equal(frame(local.store_path), frame(ray.store_path), check_exact=True)
    pd.testing.assert_frame_equal(rungs(local.store_path), rungs(ray.store_path), check_exact=True)
    # the Records themselves (dataclass equality: all fields, floats bit for bit), generative and multiple choice
    loc, loaded = LocalExecutor(), None
    for cell in (c for c in prepare(local).cells if c.shots == 2):
        shards = [list(zip(cell.task, cell.prompts, strict=True))[i : i + 8] for i in range(0, 12, 8)]
        if cell.rung is not loaded:
            assert loc.load(cell.rung) == ray_exe.load(cell.rung)
            loaded = cell.rung
            assert loc.cannot(cell) is None and ray_exe.cannot(cell) is None
        mine = [r for batch in loc.map(cell, shards, local) for r in batch]
        theirs = [r for batch in ray_exe.map(cell, shards, local) for r in batch]
        assert len(mine) == 12 and mine == theirs


def test_the_cli_runs_on_ray(tmp_path: Path, tiny_ckpt: Path, ray_exe: RayExecutor) -> None:
    """`run --executor ray` as a user types it (attaching to the module's Ray, as to a cluster's)."""
    local, ray = (study_file(tmp_path, [tiny_ckpt], out, n=6, batch=2) for out in ("local", "ray"))
    assert cli.invoke(app, ["run", str(local)]).exit_code == 0
    res = cli.invoke(app, ["run", str(ray), "--executor", "ray", "--shard-size", "4"])
    assert res.exit_code == 0, res.output
    pd.testing.assert_frame_equal(frame(tmp_path / "local/records.sqlite"), frame(tmp_path / "ray/records.sqlite"),
                                  check_exact=True)


def test_an_interrupted_ray_run_resumes_to_the_local_records(tmp_path: Path, tiny_ladder: list[Path],
                                                             ray_exe: RayExecutor) -> None:
    local = load_study(study_file(tmp_path, tiny_ladder, "local", n=12, batch=4))
    with Store(local.store_path) as store:
        run_study(local, store)
    s = load_study(study_file(tmp_path, tiny_ladder, "ray", n=12, batch=4))

    def stop(desc: str, done: int, total: int | None) -> None:
        if done >= 20:  # mid-way through the second cell, shards still queued on the workers
            raise KeyboardInterrupt

    with Store(s.store_path) as store, pytest.raises(KeyboardInterrupt):
        run_study(s, store, stop, ray_exe)
    with Store(s.store_path) as store:
        kept = store.count()
        assert kept == 20  # whole batches, written as they came, up to the interrupt
        again = run_study(s, store, None, ray_exe)
    assert again.written == again.total - kept and again.skipped == kept
    pd.testing.assert_frame_equal(frame(local.store_path), frame(s.store_path), check_exact=True)


def test_a_shard_size_that_splits_a_batch_is_refused(tmp_path: Path, tiny_ladder: list[Path],
                                                     ray_exe: RayExecutor, monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_study(study_file(tmp_path, tiny_ladder[:1], "odd", n=4, batch=4))
    monkeypatch.setattr(ray_exe, "shard_size", 6)
    with Store(s.store_path) as store, pytest.raises(UserError, match="--shard-size: 6 is not a multiple of the "
                                                     "study's batch_size 4"):
        run_study(s, store, None, ray_exe)
    with Store(s.store_path) as store:
        assert store.count() == 0


def test_without_ray_the_cli_says_so_in_one_line(tmp_path: Path, tiny_ckpt: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError, as when not installed
    res = cli.invoke(app, ["run", str(study_file(tmp_path, [tiny_ckpt], "x", n=2)), "--executor", "ray"])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "pip install 'emergentlab[ray]'" in lines[0], res.output
    assert not (tmp_path / "x/records.sqlite").exists()


def test_an_unreachable_cluster_is_one_line(tmp_path: Path, tiny_ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class NoCluster:  # what `ray` does when nothing answers at the address (after a 30 s timeout)
        @staticmethod
        def is_initialized() -> bool:
            return False

        @staticmethod
        def init(address: str) -> None:
            raise ConnectionError("ray client connection timeout")

    monkeypatch.setitem(sys.modules, "ray", NoCluster)
    res = cli.invoke(app, ["run", str(study_file(tmp_path, [tiny_ckpt], "x", n=2)), "--executor", "ray",
                           "--ray-address", "ray://nowhere:10001"])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output
    assert "--ray-address: no Ray cluster answers at 'ray://nowhere:10001'" in res.output


@pytest.mark.parametrize(("args", "field"), [(["--executor", "dask"], "--executor"),
                                             (["--shard-size", "8"], "--shard-size"),
                                             (["--ray-address", "ray://h:10001"], "--ray-address")])
def test_executor_options_are_checked(tmp_path: Path, tiny_ckpt: Path, args: list[str], field: str) -> None:
    res = cli.invoke(app, ["run", str(study_file(tmp_path, [tiny_ckpt], "x", n=2)), *args])
    assert res.exit_code == 2 and field in res.output, res.output
