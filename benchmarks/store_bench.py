"""Write throughput of `Store.put_records` and the cost of resuming, against the previous store (schema 2) in the
same process, on the same synthetic records.

Measures: rows/s writing N records in batches, for this store and for `StoreV2` (schema 2 as it was: one
five-text-column key, nine JSON columns each encoded by `JSONEncoder.encode`, `executemany` in autocommit); the
resume look-up (`done_ids` for every (model, task, variant) cell, per stored id) for both; this store's `done`
(ids with their input hashes, what a run checks its prompts against); and re-putting stored records (all skipped).
Writes benchmarks/results/store.md.

    python benchmarks/store_bench.py [--n 1000000] [--batch 2000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import pandas as pd
from _machine import cpu_model

from emergentlab import metrics
from emergentlab.analysis.analyze import Analysis
from emergentlab.experiments import study as study_exp
from emergentlab.records import KEY_FIELDS, Record, ScaleFacts
from emergentlab.store import Store


class StoreV2:
    """The records part of the store before schema 3 (git: store.py at e64a1be), kept here as the baseline."""

    _JSON = ("generation_tokens", "target_tokens", "target_logprobs", "target_greedy", "choices",
             "choice_logprobs", "choice_ntokens", "choice_scores", "metadata")
    # the Record fields schema 2 stored (later fields did not exist then)
    _FIELDS = tuple(f.name for f in fields(Record))[: [f.name for f in fields(Record)].index("choice_scores") + 1] \
        + ("metadata",)
    _dumps = json.JSONEncoder(separators=(",", ":")).encode

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        cols = ", ".join(f"{f} {'INTEGER' if f == 'correct' else 'TEXT'}" for f in self._FIELDS)
        self.db.execute(f"CREATE TABLE records ({cols}, PRIMARY KEY ({', '.join(KEY_FIELDS)})) WITHOUT ROWID")

    def put_records(self, records: list[Record]) -> int:
        rows = []
        for r in records:
            out = []
            for f in self._FIELDS:
                v = getattr(r, f)
                if v is not None and f in self._JSON:
                    v = self._dumps(list(v) if isinstance(v, tuple) else v)
                out.append(v)
            rows.append(tuple(out))
        with self.db:
            before = self.db.total_changes
            self.db.executemany(f"INSERT OR IGNORE INTO records VALUES ({', '.join('?' * len(self._FIELDS))})", rows)
            return self.db.total_changes - before

    def done_ids(self, study: str, model: str, task: str, variant: str) -> set[str]:
        cur = self.db.execute("SELECT example_id FROM records WHERE study=? AND model=? AND task=? AND variant=?",
                              (study, model, task, variant))
        return {r[0] for r in cur}

    def close(self) -> None:
        self.db.close()


MODELS, TASKS, VARIANTS = 10, 10, 2


def records(n: int, seed: int = 0) -> Iterator[Record]:
    """`n` records shaped like a real add3 run: 4-token targets, a few-shot prompt, per-token log-probs."""
    rng = random.Random(seed)
    per_cell = -(-n // (MODELS * TASKS * VARIANTS))
    i = 0
    for m in range(MODELS):
        for t in range(TASKS):
            for v in range(VARIANTS):
                for e in range(per_cell):
                    if i == n:
                        return
                    i += 1
                    target = str(rng.randint(200, 1998))
                    lp = tuple(round(-rng.random() * 3 / (m + 1), 6) for _ in target)
                    # larger rungs answer more items right, so the report path has real curves to judge
                    gen = target if rng.random() < m / (MODELS - 1) else str(rng.randint(0, 1998))
                    yield Record(study="bench", model=f"m{m}", task=f"t{t}", example_id=f"test-{e:05d}",
                                 variant=f"{v}shot", kind="numeric", prompt=f"{rng.randint(100, 999)}+{e}=",
                                 target=target, generation=gen, generation_tokens=tuple(gen),
                                 target_tokens=tuple(target), target_logprobs=lp,
                                 target_greedy=tuple(x > -0.7 for x in lp))


def batched(it: Iterator[Record], size: int) -> Iterator[list[Record]]:
    buf: list[Record] = []
    for r in it:
        buf.append(r)
        if len(buf) == size:
            yield buf
            buf = []
    if buf:
        yield buf


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "store.md")
    args = ap.parse_args()
    recs = list(records(args.n))  # built before any clock starts: only the store is timed
    cells = [(f"m{m}", f"t{k}", f"{v}shot") for m in range(MODELS) for k in range(TASKS) for v in range(VARIANTS)]
    res: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as d:
        stores = (("v2", lambda: StoreV2(Path(d) / "v2.sqlite")), ("v3", lambda: Store(Path(d) / "v3.sqlite")))
        for name, make in stores:
            store = make()
            t = time.perf_counter()
            added = sum(store.put_records(recs[i : i + args.batch]) for i in range(0, len(recs), args.batch))
            res[f"{name}_write"] = time.perf_counter() - t
            assert added == args.n
            res[f"{name}_mb"] = sum(p.stat().st_size for p in Path(d).glob(f"{name}.sqlite*")) / 1e6
            t = time.perf_counter()
            found = sum(len(store.done_ids("bench", m, k, v)) for m, k, v in cells)
            res[f"{name}_ids"] = time.perf_counter() - t
            assert found == args.n
            if isinstance(store, Store):
                t = time.perf_counter()
                found = sum(len(store.done("bench", m, k, v)) for m, k, v in cells)
                res["v3_done"] = time.perf_counter() - t
                sub = args.n // 10
                t = time.perf_counter()
                again = sum(store.put_records(recs[i : i + args.batch]) for i in range(0, sub, args.batch))
                res["v3_rerun"] = time.perf_counter() - t
                assert again == 0
                for m in range(MODELS):
                    store.put_rung("bench", f"m{m}", "tiny:bench", ScaleFacts(params=1e6 * 2 ** m))
                t = time.perf_counter()
                base = pd.read_sql_query("SELECT cell, example_id FROM records", store.db).groupby("cell").size()
                res["floor"] = time.perf_counter() - t
                assert base.sum() == args.n
                t = time.perf_counter()
                a, _ = study_exp.fit(store, "bench")
                res["report"] = time.perf_counter() - t
                res["verdicts"] = len(a.table_)
                # the same path again, in its three parts
                t0 = time.perf_counter()
                recs_, rungs = study_exp.study_records(store, "bench", "")
                t1 = time.perf_counter()
                scores = metrics.compute(recs_)
                t2 = time.perf_counter()
                Analysis(seed=0).fit(scores, rungs, recs_, None)
                res["part_read"], res["part_metrics"] = t1 - t0, t2 - t1
                res["part_analysis"] = time.perf_counter() - t2
                res["scores"] = len(scores)
            store.close()

    n = args.n
    rps = {k: n / res[f"{k}_write"] for k in ("v2", "v3")}
    us = {k: 1e6 * res[f"{k}_ids"] / n for k in ("v2", "v3")}
    md = [
        "# Store write and resume", "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {cpu_model()}, SQLite WAL, synchronous=NORMAL, on the local disk (tempdir); the machine is",
        "  shared with other jobs, so compare the ratios (both stores measured back to back in one process)",
        f"- records: synthetic add3-like rows (4-token targets with log-probs), {MODELS} models × {TASKS} tasks × "
        f"{VARIANTS} variants; `python benchmarks/store_bench.py --n {n} --batch {args.batch}`",
        "- baseline: `StoreV2` in the script, the schema-2 store as it was before this change",
        "",
        "| measurement | schema 2 (before) | schema 3 (now) | ratio |", "|---|---|---|---|",
        f"| write {n:,} records, batches of {args.batch} | {rps['v2']:,.0f} rows/s ({res['v2_mb']:.0f} MB) | "
        f"**{rps['v3']:,.0f} rows/s** ({res['v3_mb']:.0f} MB) | **{rps['v3'] / rps['v2']:.2f}×** |",
        f"| resume look-up: `done_ids` for all {len(cells)} cells, per stored id | {us['v2']:.2f} µs | "
        f"**{us['v3']:.2f} µs** | {us['v2'] / us['v3']:.2f}× |",
        f"| `done` (ids with input hashes, checked once per run), per stored id | – | "
        f"{1e6 * res['v3_done'] / n:.2f} µs | |",
        f"| re-put {n // 10:,} stored records (all skipped) | – | {n // 10 / res['v3_rerun']:,.0f} rows/s | |",
        "", "## From the store to the verdict table", "",
        f"`experiments.study.fit` on the {n:,} records (read, every metric per record, curves, verdicts and "
        f"forecasts: {res['verdicts']:.0f} rows in the verdict table): **{res['report']:.1f} s** (target ≤ 30 s). "
        f"Baseline in the same process: reading only the records' keys with pandas and counting them per cell, "
        f"{res['floor']:.1f} s; the whole path costs {res['report'] / res['floor']:.1f}× that floor.", "",
        f"Where the time goes (the same path run again in its parts): reading and decoding the records "
        f"{res['part_read']:.1f} s; every metric of every record ({res['scores']:,} values, in "
        f"{metrics.scoring_processes(n)} process(es)) {res['part_metrics']:.1f} s; curves, bootstrap, verdicts and "
        f"forecasts {res['part_analysis']:.1f} s.",
    ]
    args.out.write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
