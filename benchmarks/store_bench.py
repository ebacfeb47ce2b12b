"""Write throughput of `Store.put_records` and the cost of resuming, on synthetic records.

Measures, in one process: rows/s writing N records in batches; rows/s of a naive baseline (one row per
transaction, the same SQL) on a subset, as a ratio; and resume costs: `done_ids` lookups for every
(model, task, variant) cell, and re-running `put_records` on keys already stored (all skipped).
Writes benchmarks/results/store.md.

    python benchmarks/store_bench.py [--n 1000000] [--batch 2000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from _machine import cpu_model

from emergentlab.records import Record
from emergentlab.store import Store

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
                    lp = tuple(round(-rng.random() * 3, 6) for _ in target)
                    yield Record(study="bench", model=f"m{m}", task=f"t{t}", example_id=f"test-{e:05d}",
                                 variant=f"{v}shot", kind="numeric", prompt=f"{rng.randint(100, 999)}+{e}=",
                                 target=target, generation=target[::-1], generation_tokens=tuple(target[::-1]),
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
    ap.add_argument("--naive", type=int, default=20000, help="rows for the one-row-per-transaction baseline")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "store.md")
    args = ap.parse_args()
    recs = list(records(args.n))  # built before any clock starts: only the store is timed
    with tempfile.TemporaryDirectory() as d:
        def timed_put(path: str, rows: list[Record], size: int) -> float:
            with Store(Path(d) / path) as st:
                t = time.perf_counter()
                for i in range(0, len(rows), size):
                    st.put_records(rows[i : i + size])
                return time.perf_counter() - t

        head = recs[: args.naive]
        naive_rps = len(head) / timed_put("naive.sqlite", head, 1)  # one put (one transaction) per record
        same_rps = len(head) / timed_put("same.sqlite", head, args.batch)

        store = Store(Path(d) / "bench.sqlite")
        t = time.perf_counter()
        added = sum(store.put_records(recs[i : i + args.batch]) for i in range(0, len(recs), args.batch))
        write_s = time.perf_counter() - t
        size_mb = (Path(d) / "bench.sqlite").stat().st_size / 1e6
        assert added == args.n == store.count()

        t = time.perf_counter()
        cells = [(f"m{m}", f"t{k}", f"{v}shot") for m in range(MODELS) for k in range(TASKS) for v in range(VARIANTS)]
        found = sum(len(store.done_ids("bench", m, k, v)) for m, k, v in cells)
        done_s = time.perf_counter() - t
        assert found == args.n

        sub = args.n // 10
        t = time.perf_counter()
        again = sum(store.put_records(recs[i : i + args.batch]) for i in range(0, sub, args.batch))
        rerun_s = time.perf_counter() - t
        assert again == 0
        store.close()

    rps = args.n / write_s
    md = [
        "# Store write and resume", "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {cpu_model()}, SQLite WAL, synchronous=NORMAL, on the local disk (tempdir)",
        f"- records: synthetic add3-like rows (4-token targets with log-probs), {MODELS} models × {TASKS} tasks × "
        f"{VARIANTS} variants; one run of `python benchmarks/store_bench.py --n {args.n} --batch {args.batch}`",
        "",
        "| measurement | value |", "|---|---|",
        f"| write {args.n:,} records, `put_records` in batches of {args.batch} | {write_s:.1f} s, "
        f"**{rps:,.0f} rows/s** ({size_mb:.0f} MB file) |",
        f"| naive baseline: `put_records` one record at a time (first {args.naive:,} rows, fresh file) | "
        f"{naive_rps:,.0f} rows/s |",
        f"| batched, the same {args.naive:,} rows into a fresh file | {same_rps:,.0f} rows/s |",
        f"| batched / naive (same rows) | **{same_rps / naive_rps:.1f}×** |",
        f"| resume: `done_ids` for all {len(cells)} cells ({args.n:,} ids) | {done_s:.2f} s "
        f"({1e6 * done_s / args.n:.2f} µs per stored id) |",
        f"| resume: re-put {sub:,} already-stored records (all skipped) | {rerun_s:.1f} s, {sub / rerun_s:,.0f} rows/s "
        f"({rerun_s / (write_s * sub / args.n):.2f}× the cost of writing them) |",
    ]
    args.out.write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
