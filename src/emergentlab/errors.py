"""The one exception type for user errors (the CLI prints it as one line and exits 2), and the readers of user
files that raise it naming the file, and the line where there is one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import tomllib


class UserError(Exception):
    """Bad input from the user: a file, a field, a value. Message names the file and the field."""

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None) -> None:
        self.source = source
        self.field = field
        where = ": ".join(p for p in (source, field) if p)
        super().__init__(f"{where}: {message}" if where else message)


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file as a dict; a missing or malformed file is a UserError naming it."""
    p = Path(path)
    if p.is_dir():
        raise UserError("is a folder, not a TOML file", source=str(p))
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError("no such file", source=str(p)) from None
    except UnicodeDecodeError as e:
        raise UserError(f"not UTF-8 text (byte {e.start})", source=str(p)) from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"malformed TOML: {e}", source=str(p)) from None


def read_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line of a JSONL file; a missing file or a line that is not
    JSON is a UserError naming the file (and line)."""
    p = Path(path)
    if not p.is_file():
        raise UserError("no such file", source=str(p))
    with p.open("rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise UserError(f"not UTF-8 text (byte {e.start} of the line)", source=f"{p}:{n}") from None
            if not text.strip():
                continue
            try:
                yield n, json.loads(text)
            except json.JSONDecodeError as e:
                raise UserError(f"not valid JSON ({e.msg}, column {e.colno})", source=f"{p}:{n}") from None
