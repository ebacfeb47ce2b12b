"""The records database: one SQLite file (WAL), write-once rows, resumable, queried into pandas.

Records live in *cells*, one per (study, model, task, variant). A cell carries the fingerprint of everything that
determines its records (model spec and weights, task data and settings, seed, shots, decoding), so a changed study
is refused instead of being silently mixed with old results; and a claim, so two runs on one store share the work
instead of both doing it. Inside a cell a record is keyed by its example id; inserting a key that is already
there is a no-op, so a killed run can simply run again. Each batch is one transaction: a crash loses at most the
batch in flight and never leaves half a batch.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import MISSING, Field, dataclass, fields
from operator import attrgetter
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd

from emergentlab.errors import UserError
from emergentlab.records import FACT_FIELDS, KEY_FIELDS, Record, ScaleFacts, gc_paused

# 3: records live in cells (integer key + example id), their list fields in one JSON array (one encoding per row
#    instead of nine); cells carry fingerprints, claims and skip reasons; records carry `truncated_tokens` and a
#    hash of their prompt, target and choices; typed Record.generated and Record.target_loglikelihood (were
#    metadata keys); records carry targets, stop_string, output_regex and declared metrics (BIG-bench)
SCHEMA_VERSION = 3

# The order of the fields in `payload`. A field added later goes at the end: a store written before it holds shorter
# arrays, read back with the field's default (`_JSON_DEFAULTS`), and a reader that predates it ignores the extra
# element, so such a field needs no new schema version (targets_loglikelihood came so).
_JSON_FIELDS = ("generation_tokens", "target_tokens", "target_logprobs", "target_greedy", "choices",
                "choice_logprobs", "choice_ntokens", "choice_scores", "targets", "metrics", "metadata",
                "targets_loglikelihood")
_RECORD_FIELDS = tuple(f.name for f in fields(Record))
_CELL_FIELDS = ("study", "model", "task", "variant")
# stored as columns: example_id first; the list and dict fields travel together in one JSON array, `payload`
_ROW_FIELDS = tuple(f for f in _RECORD_FIELDS if f not in _CELL_FIELDS and f not in _JSON_FIELDS)
_INT_FIELDS = ("correct", "truncated_tokens")
_SQL_TYPES = {**dict.fromkeys(_INT_FIELDS, "INTEGER"), "generated": "INTEGER", "target_loglikelihood": "REAL"}
_encoder = json.JSONEncoder(separators=(",", ":"))
_dumps = _encoder.encode
# CPython's C encoder made once: `JSONEncoder.encode` builds a new one per call, which was most of a write's cost
_make = getattr(json.encoder, "c_make_encoder", None)
_c_encoder = _make and _make(None, _encoder.default, json.encoder.encode_basestring_ascii, None, ":", ",", False,
                             False, True)


def _json(v: Any) -> str:
    return "".join(_c_encoder(v, 0)) if _c_encoder is not None else _dumps(v)


def _json_default(f: Field[Any]) -> Any:
    """A record field's default as JSON decodes it (a tuple as a list)."""
    v = f.default_factory() if f.default_factory is not MISSING else f.default
    return list(v) if isinstance(v, tuple) else v


_JSON_DEFAULTS = {f.name: _json_default(f) for f in fields(Record) if f.name in _JSON_FIELDS}
_get_row = attrgetter(*_ROW_FIELDS)
_get_json = attrgetter(*_JSON_FIELDS)

# A claim whose owner has not written for this long is taken over even if its process looks alive (seconds).
CLAIM_TIMEOUT_S = 600.0

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rungs (
    study TEXT NOT NULL, model TEXT NOT NULL, spec TEXT NOT NULL,
    {", ".join(f"{f} REAL" for f in FACT_FIELDS)}, extra TEXT NOT NULL DEFAULT '{{}}',
    PRIMARY KEY (study, model));
CREATE TABLE IF NOT EXISTS cells (
    cell INTEGER PRIMARY KEY, study TEXT NOT NULL, model TEXT NOT NULL, task TEXT NOT NULL, variant TEXT NOT NULL,
    fingerprint TEXT, parts TEXT, status TEXT NOT NULL DEFAULT 'open', reason TEXT, owner TEXT, heartbeat REAL,
    UNIQUE (study, model, task, variant));
CREATE TABLE IF NOT EXISTS records (
    cell INTEGER NOT NULL, {", ".join(f"{f} {_SQL_TYPES.get(f, 'TEXT')}" for f in _ROW_FIELDS)},
    payload TEXT NOT NULL, input_hash INTEGER NOT NULL,
    PRIMARY KEY (cell, example_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS series (
    study TEXT NOT NULL, experiment TEXT NOT NULL, run TEXT NOT NULL, step REAL NOT NULL,
    metric TEXT NOT NULL, value REAL,
    PRIMARY KEY (study, experiment, run, step, metric));
CREATE TABLE IF NOT EXISTS runs (
    study TEXT NOT NULL, experiment TEXT NOT NULL, run TEXT NOT NULL, config TEXT NOT NULL,
    PRIMARY KEY (study, experiment, run));
"""


class StoreError(UserError):
    """A file that is not a store this emergentlab can use (empty, not SQLite, truncated, another schema)."""


@dataclass(frozen=True)
class CellState:
    """What the store holds about one (study, model, task, variant): the fingerprint its records were made
    under and the settings behind it (`parts`), its status (open / done / skipped), a skip's reason, and whether
    it holds any record."""

    fingerprint: str | None
    parts: dict[str, Any] | None
    status: str
    reason: str | None
    has_records: bool


def input_hash(prompt: str, target: str, choices: Sequence[str] | None) -> int:
    """A 64-bit check of what a record was asked (its length and CRC-32): a resumed run compares it with its own
    prompts, so an input that changed is noticed. Not cryptographic; it guards against accidents, not attacks."""
    data = "\x00".join((prompt, target, *(choices or ("\x01",)))).encode("utf-8", "surrogatepass")
    return (len(data) << 32) | zlib.crc32(data)


def owner_id() -> str:
    """Who holds a claim: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _create(path: Path) -> None:
    """A new, empty store at `path`, made whole in a temporary file and linked into place, so a crash never
    leaves a half-made store behind and two runs creating the same store at once both end up with one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    db = sqlite3.connect(tmp, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(f"BEGIN; {_SCHEMA} INSERT INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}'); COMMIT;")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    try:
        os.link(tmp, path)  # unlike a rename, never replaces a store another run made meanwhile
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
        for side in ("-wal", "-shm"):
            Path(f"{tmp}{side}").unlink(missing_ok=True)


def _check_file(path: Path) -> None:
    """Refuse, before SQLite touches it, a file that is not a whole SQLite database: SQLite would turn an empty
    file into a fresh store and only notice a truncated one at the first missing page."""
    size = path.stat().st_size
    if size == 0:
        raise StoreError("empty file, not a records store (delete it to start afresh)", source=str(path))
    with path.open("rb") as f:
        head = f.read(100)
    if not head.startswith(b"SQLite format 3\x00") or len(head) < 100:
        raise StoreError("not a records store (not an SQLite database)", source=str(path))
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    pages = int.from_bytes(head[28:32], "big")
    # the header's page count is valid only when its change counter matches (SQLite file format, section 1.3.7)
    if head[24:28] == head[92:96] and pages * page > size:
        raise StoreError(f"truncated: {size} bytes where the database needs {pages * page}", source=str(path))


class Store:
    """`Store(path)` opens a store or creates a new one where no file is; use as a context manager or `close()`.

    Raises StoreError (a UserError) for a file that is not a whole store of this schema; nothing is written then.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._cells: dict[tuple[str, str, str, str], int] = {}
        if str(path) == ":memory:":  # a throwaway store (tests, previews)
            self.db = sqlite3.connect(":memory:", isolation_level=None)
            self.db.executescript(_SCHEMA)
            self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            return
        if self.path.is_dir():
            raise StoreError("is a folder, not a records store", source=str(self.path))
        if not self.path.exists():
            _create(self.path)
        _check_file(self.path)
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=60)
        try:
            self._open()
        except sqlite3.DatabaseError as e:
            self.db.close()
            raise StoreError(f"not a usable records store ({e})", source=str(self.path)) from None
        except BaseException:
            self.db.close()
            raise

    def _open(self) -> None:
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "meta" not in tables:
            raise StoreError("an SQLite database, but not a records store (no meta table)", source=str(self.path))
        row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = row[0] if row else "none"
        if version != str(SCHEMA_VERSION):
            raise StoreError(f"schema version {version}, this emergentlab reads {SCHEMA_VERSION}: the store was "
                             "written by another release; run the study into a new `out` folder",
                             source=str(self.path))
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")

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

    # --- cells: fingerprints, claims, skips -----------------------------------------------------------
    def _cell(self, key: tuple[str, str, str, str]) -> int:
        """The cell id of (study, model, task, variant), created if new (outside any transaction of ours)."""
        cell = self._cells.get(key)
        if cell is None:
            row = self.db.execute("SELECT cell FROM cells WHERE study=? AND model=? AND task=? AND variant=?",
                                  key).fetchone()
            if row is None:
                self.db.execute("INSERT OR IGNORE INTO cells (study, model, task, variant) VALUES (?, ?, ?, ?)", key)
                row = self.db.execute("SELECT cell FROM cells WHERE study=? AND model=? AND task=? AND variant=?",
                                      key).fetchone()
            cell = self._cells[key] = int(row[0])
        return cell

    def cell_state(self, study: str, model: str, task: str, variant: str) -> CellState | None:
        """What the store holds for this cell, or None if it has never been seen."""
        row = self.db.execute(
            "SELECT cell, fingerprint, parts, status, reason FROM cells WHERE study=? AND model=? AND task=? "
            "AND variant=?", (study, model, task, variant)).fetchone()
        if row is None:
            return None
        n = self.db.execute("SELECT EXISTS (SELECT 1 FROM records WHERE cell=?)", (row[0],)).fetchone()[0]
        return CellState(row[1], json.loads(row[2]) if row[2] else None, row[3], row[4], bool(n))

    def bind(self, study: str, model: str, task: str, variant: str, fingerprint: str, parts: dict[str, Any]) -> None:
        """Set the fingerprint of a cell. The caller checks `cell_state` first: binding a cell that holds records
        made under another fingerprint is refused (StoreError), so old and new results never mix."""
        key = (study, model, task, variant)
        cell = self._cell(key)
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            fp, n = self.db.execute(
                "SELECT fingerprint, EXISTS (SELECT 1 FROM records WHERE cell=?1) FROM cells WHERE cell=?1",
                (cell,)).fetchone()
            if fp == fingerprint:
                return
            if fp is not None and n:
                raise StoreError(f"{model} × {task} · {variant} holds records made under other settings",
                                 source=str(self.path))
            self.db.execute("UPDATE cells SET fingerprint=?, parts=?, status='open', reason=NULL WHERE cell=?",
                            (fingerprint, json.dumps(parts, sort_keys=True), cell))

    def claim(self, study: str, model: str, task: str, variant: str, owner: str | None = None) -> bool:
        """Take the cell for `owner` (default: this process) unless a live run holds it; True when taken (or
        already ours). A claim is stale when its process is gone (same host) or silent for CLAIM_TIMEOUT_S."""
        me = owner or owner_id()
        cell = self._cell((study, model, task, variant))
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            held, beat = self.db.execute("SELECT owner, heartbeat FROM cells WHERE cell=?", (cell,)).fetchone()
            if held is not None and held != me and _alive(held, beat):
                return False
            self.db.execute("UPDATE cells SET owner=?, heartbeat=? WHERE cell=?", (me, time.time(), cell))
        return True

    def release(self, study: str, model: str, task: str, variant: str, status: str = "done",
                reason: str | None = None) -> None:
        """Give up a claim, marking the cell done or skipped (with the reason, shown in the run and the report)."""
        if status not in ("open", "done", "skipped"):
            raise ValueError(f"unknown cell status {status!r}")
        cell = self._cell((study, model, task, variant))
        with self.db:
            self.db.execute("UPDATE cells SET owner=NULL, heartbeat=NULL, status=?, reason=? WHERE cell=?",
                            (status, reason, cell))

    def holder(self, study: str, model: str, task: str, variant: str) -> str | None:
        """The live run holding this cell, if any."""
        row = self.db.execute("SELECT owner, heartbeat FROM cells WHERE study=? AND model=? AND task=? AND "
                              "variant=?", (study, model, task, variant)).fetchone()
        return row[0] if row is not None and row[0] is not None and _alive(row[0], row[1]) else None

    def skips(self, study: str | None = None) -> pd.DataFrame:
        """Cells a run skipped: study, model, task, variant and the reason (e.g. the task needs more context)."""
        q, args = "SELECT study, model, task, variant, reason FROM cells WHERE status='skipped'", []
        if study is not None:
            q, args = q + " AND study = ?", [study]
        return pd.read_sql_query(q + " ORDER BY study, model, task, variant", self.db, params=args)

    # --- records ---------------------------------------------------------------------------------------
    def put_records(self, records: Iterable[Record]) -> int:
        """Insert records in one transaction; keys already stored are skipped. Returns rows added.

        Also refreshes the heartbeat of the cells written, so a claim stays live while its run makes progress."""
        rows = []
        cells = set()
        last: tuple[str, str, str, str] | None = None
        cell = 0
        for r in records:
            key = (r.study, r.model, r.task, r.variant)
            if key != last:
                cell, last = self._cell(key), key
                cells.add(cell)
            rows.append((cell, *_get_row(r), _json(_get_json(r)), input_hash(r.prompt, r.target, r.choices)))
        if not rows:
            return 0
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")  # autocommit otherwise: one transaction per row
            before = self.db.total_changes
            self.db.executemany(f"INSERT OR IGNORE INTO records VALUES ({', '.join('?' * len(rows[0]))})", rows)
            added = self.db.total_changes - before
            self.db.executemany("UPDATE cells SET heartbeat=? WHERE cell=? AND owner IS NOT NULL",
                                [(time.time(), c) for c in cells])
            return added

    def _known(self, key: tuple[str, str, str, str]) -> int | None:
        """The cell id of a key the store has seen, without creating it."""
        cell = self._cells.get(key)
        if cell is None:
            row = self.db.execute("SELECT cell FROM cells WHERE study=? AND model=? AND task=? AND variant=?",
                                  key).fetchone()
            if row is None:
                return None
            cell = self._cells[key] = int(row[0])
        return cell

    def done(self, study: str, model: str, task: str, variant: str) -> dict[str, int]:
        """Example id → `input_hash` of the records stored for this cell: what a run checks its prompts against."""
        cell = self._known((study, model, task, variant))
        if cell is None:
            return {}
        return dict(self.db.execute("SELECT example_id, input_hash FROM records WHERE cell=?", (cell,)))

    def done_ids(self, study: str, model: str, task: str, variant: str) -> set[str]:
        """Example ids already stored for this (study, model, task, variant): what a resumed run skips."""
        cell = self._known((study, model, task, variant))
        if cell is None:
            return set()
        return {r[0] for r in self.db.execute("SELECT example_id FROM records WHERE cell=?", (cell,))}

    def count(self, study: str | None = None) -> int:
        if study is None:
            return int(self.db.execute("SELECT COUNT(*) FROM records").fetchone()[0])
        return int(self.db.execute("SELECT COUNT(*) FROM records JOIN cells USING (cell) WHERE study = ?",
                                   (study,)).fetchone()[0])

    def records(self, study: str | None = None, tasks: Sequence[str] | None = None) -> pd.DataFrame:
        """Records as a frame, list fields decoded, sorted by key (so equal stores give equal frames)."""
        where, args = [], []
        if study is not None:
            where.append("c.study = ?")
            args.append(study)
        if tasks:
            where.append(f"c.task IN ({', '.join('?' * len(tasks))})")
            args.extend(tasks)
        # the cell's texts are looked up per cell, not read per record: a million rows made four million strings
        cols = ", ".join(["r.cell", *(f"r.{f}" for f in _ROW_FIELDS), "r.payload"])
        q = f"SELECT {cols} FROM records r JOIN cells c USING (cell)" + (f" WHERE {' AND '.join(where)}"
                                                                        if where else "")
        order = ", ".join(f"c.{f}" if f in _CELL_FIELDS else f"r.{f}" for f in KEY_FIELDS)
        with gc_paused():
            df = pd.read_sql_query(q + f" ORDER BY {order}", self.db, params=args)
            # read after the records: cells are never deleted or renamed, so each one a record names is there
            # even if another run adds cells meanwhile
            cells = pd.read_sql_query(f"SELECT cell, {', '.join(_CELL_FIELDS)} FROM cells", self.db,
                                      index_col="cell")
            at = cells.index.get_indexer(df.pop("cell"))
            for f in _CELL_FIELDS:
                df[f] = cells[f].to_numpy(dtype=object)[at]
            return self._frame(df)

    @staticmethod
    def _frame(df: pd.DataFrame) -> pd.DataFrame:
        """The records frame from the rows as stored: `payload` decoded into its fields, the columns typed."""
        # one parse of one JSON array: one json.loads call per row took 1.4x as long (3.9 vs 2.7 s per 300 k rows);
        # rows written before a field existed are shorter and get its default
        payload = json.loads(f"[{','.join(df.pop('payload').tolist())}]")  # tolist: iterating the column boxes
        n = len(_JSON_FIELDS)
        defaults = [_JSON_DEFAULTS[f] for f in _JSON_FIELDS]
        padded = (p if len(p) == n else [*p, *defaults[len(p):]][:n] for p in payload)
        columns = list(zip(*padded, strict=True)) if payload else [()] * n
        for f, col in zip(_JSON_FIELDS, columns, strict=True):
            df[f] = list(col)
        df = df[list(_RECORD_FIELDS)]
        for f in _INT_FIELDS:
            df[f] = df[f].astype("Int64")
        df["generated"] = df["generated"].astype(bool)
        df["target_loglikelihood"] = df["target_loglikelihood"].astype(float)  # NaN where unknown
        return df

    # --- series (training dynamics: step → value) -------------------------------------------------------
    def put_series(self, rows: Iterable[tuple[str, str, str, float, str, float]]) -> None:
        """Rows of (study, experiment, run, step, metric, value); re-putting a key replaces its value."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT OR REPLACE INTO series VALUES (?, ?, ?, ?, ?, ?)", list(rows))

    def series(self, study: str | None = None, experiment: str | None = None) -> pd.DataFrame:
        where, args = [], []
        for col, val in (("study", study), ("experiment", experiment)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        q = "SELECT * FROM series" + (f" WHERE {' AND '.join(where)}" if where else "")
        return pd.read_sql_query(q + " ORDER BY study, experiment, run, metric, step", self.db, params=args)

    # --- runs (an experiment's typed config per run, beside its series) ---------------------------------
    def put_run(self, study: str, experiment: str, run: str, config: dict[str, Any]) -> None:
        """Record (or replace) the config a run was made with, as JSON."""
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?)",
                            (study, experiment, run, json.dumps(config, sort_keys=True)))

    def runs(self, experiment: str, study: str | None = None) -> dict[tuple[str, str], dict[str, Any]]:
        """(study, run) → config of every run of `experiment` under `study` (every study if None)."""
        q = "SELECT study, run, config FROM runs WHERE experiment = ? AND (? IS NULL OR study = ?) ORDER BY study, run"
        rows = self.db.execute(q, (experiment, study, study)).fetchall()
        return {(st, run): json.loads(cfg) for st, run, cfg in rows}


def _alive(owner: str, heartbeat: float | None) -> bool:
    """Whether the run named by `owner` (host:pid) may still be working on its claim."""
    if heartbeat is None or time.time() - heartbeat > CLAIM_TIMEOUT_S:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine: only its silence tells
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
