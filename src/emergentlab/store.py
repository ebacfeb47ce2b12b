"""The records database: one SQLite file (WAL), write-once rows, resumable, queried into pandas.

Rows are keyed by (study, model, task, example_id, variant); inserting a key that is already there is a no-op,
so a run that was killed can simply run again: it skips what was written and never duplicates a row. Each
batch is one transaction, so a crash loses at most the batch in flight and never leaves half a batch.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import fields
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd

from emergentlab.records import FACT_FIELDS, KEY_FIELDS, Record, ScaleFacts

SCHEMA_VERSION = 4  # 2: records WITHOUT ROWID (the key is the table's only B-tree: ~1.8x faster writes);
# 3: typed Record.generated and Record.target_loglikelihood (were metadata keys); 4: targets, stop_string,
# output_regex, metrics

_JSON_FIELDS = ("generation_tokens", "target_tokens", "target_logprobs", "target_greedy", "choices",
                "choice_logprobs", "choice_ntokens", "choice_scores", "targets", "metrics", "metadata")
_RECORD_FIELDS = tuple(f.name for f in fields(Record))
_SQL_TYPES = {"correct": "INTEGER", "generated": "INTEGER", "target_loglikelihood": "REAL"}  # the rest: TEXT
_dumps = json.JSONEncoder(separators=(",", ":")).encode

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rungs (
    study TEXT NOT NULL, model TEXT NOT NULL, spec TEXT NOT NULL,
    {", ".join(f"{f} REAL" for f in FACT_FIELDS)}, extra TEXT NOT NULL DEFAULT '{{}}',
    PRIMARY KEY (study, model));
CREATE TABLE IF NOT EXISTS records (
    {", ".join(f"{f} {_SQL_TYPES.get(f, 'TEXT')}" for f in _RECORD_FIELDS)},
    PRIMARY KEY ({", ".join(KEY_FIELDS)})) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS series (
    study TEXT NOT NULL, experiment TEXT NOT NULL, run TEXT NOT NULL, step REAL NOT NULL,
    metric TEXT NOT NULL, value REAL,
    PRIMARY KEY (study, experiment, run, step, metric));
"""


class StoreError(RuntimeError):
    pass


class Store:
    """`Store(path)` opens or creates the database; use as a context manager or call `close()`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) != SCHEMA_VERSION:
            raise StoreError(f"{self.path}: schema version {row[0]}, this emergentlab reads {SCHEMA_VERSION}")

    def __enter__(self) -> Store:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    # --- rungs -----------------------------------------------------------------------------------------
    def put_rung(self, study: str, model: str, spec: str, facts: ScaleFacts) -> None:
        """Record (or update) where `model` sits on each scale axis."""
        vals = [getattr(facts, f) for f in FACT_FIELDS]
        with self.db:
            self.db.execute(
                f"INSERT OR REPLACE INTO rungs VALUES (?, ?, ?, {', '.join('?' * len(vals))}, ?)",
                (study, model, spec, *vals, json.dumps(facts.extra)),
            )

    def rungs(self, study: str | None = None) -> pd.DataFrame:
        """One row per model: spec and scale facts (params, non_embedding_params, tokens, flops, loss, step)."""
        q, args = "SELECT * FROM rungs", []
        if study is not None:
            q, args = q + " WHERE study = ?", [study]
        return pd.read_sql_query(q, self.db, params=args)

    # --- records ---------------------------------------------------------------------------------------
    def put_records(self, records: Iterable[Record]) -> int:
        """Insert records in one transaction; keys already stored are skipped. Returns rows added."""
        rows = [_encode(r) for r in records]
        if not rows:
            return 0
        with self.db:
            before = self.db.total_changes
            self.db.executemany(
                f"INSERT OR IGNORE INTO records VALUES ({', '.join('?' * len(_RECORD_FIELDS))})", rows
            )
            return self.db.total_changes - before

    def done_ids(self, study: str, model: str, task: str, variant: str) -> set[str]:
        """Example ids already stored for this (study, model, task, variant): what a resumed run skips."""
        cur = self.db.execute(
            "SELECT example_id FROM records WHERE study=? AND model=? AND task=? AND variant=?",
            (study, model, task, variant),
        )
        return {r[0] for r in cur}

    def count(self, study: str | None = None) -> int:
        q, args = "SELECT COUNT(*) FROM records", []
        if study is not None:
            q, args = q + " WHERE study = ?", [study]
        return int(self.db.execute(q, args).fetchone()[0])

    def records(self, study: str | None = None, tasks: Sequence[str] | None = None) -> pd.DataFrame:
        """Records as a frame, list fields decoded, sorted by key (so equal stores give equal frames)."""
        where, args = [], []
        if study is not None:
            where.append("study = ?")
            args.append(study)
        if tasks:
            where.append(f"task IN ({', '.join('?' * len(tasks))})")
            args.extend(tasks)
        q = "SELECT * FROM records" + (f" WHERE {' AND '.join(where)}" if where else "")
        df = pd.read_sql_query(q + f" ORDER BY {', '.join(KEY_FIELDS)}", self.db, params=args)
        for f in _JSON_FIELDS:
            df[f] = [json.loads(v) if isinstance(v, str) else None for v in df[f]]
        df["correct"] = df["correct"].astype("Int64")
        df["generated"] = df["generated"].astype(bool)
        return df

    # --- series (training dynamics: step → value) -------------------------------------------------------
    def put_series(self, rows: Iterable[tuple[str, str, str, float, str, float]]) -> None:
        """Rows of (study, experiment, run, step, metric, value); re-putting a key replaces its value."""
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO series VALUES (?, ?, ?, ?, ?, ?)", list(rows))

    def series(self, study: str | None = None, experiment: str | None = None) -> pd.DataFrame:
        where, args = [], []
        for col, val in (("study", study), ("experiment", experiment)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        q = "SELECT * FROM series" + (f" WHERE {' AND '.join(where)}" if where else "")
        return pd.read_sql_query(q + " ORDER BY study, experiment, run, metric, step", self.db, params=args)


def _encode(r: Record) -> tuple[Any, ...]:
    # getattr rather than dataclasses.asdict: asdict deep-copies every tuple and was most of the cost of a write
    out = []
    for f in _RECORD_FIELDS:
        v = getattr(r, f)
        if v is not None and f in _JSON_FIELDS:
            v = _dumps(list(v) if isinstance(v, tuple) else v)
        out.append(v)
    return tuple(out)
