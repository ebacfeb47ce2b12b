"""The one exception type for user errors: the CLI prints it as one line and exits 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user: a file, a field, a value. Message names the file and the field."""

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None) -> None:
        self.source = source
        self.field = field
        where = ": ".join(p for p in (source, field) if p)
        super().__init__(f"{where}: {message}" if where else message)
