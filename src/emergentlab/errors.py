"""The one exception type for user errors: the CLI prints it as one line and exits 2."""

from __future__ import annotations

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
    try:
        return tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise UserError("no such file", source=str(p)) from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"malformed TOML: {e}", source=str(p)) from None
