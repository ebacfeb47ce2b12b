"""Models behind one `Backend` protocol, loaded from a spec string such as `tiny:PATH` or `hf:ORG/NAME`."""

from __future__ import annotations

from pathlib import Path

from emergentlab.errors import UserError
from emergentlab.models.base import Backend, Generation, ScaleFacts, TokenScores

__all__ = ["Backend", "Generation", "ScaleFacts", "TokenScores", "load_backend"]


def load_backend(spec: str, name: str | None = None) -> Backend:
    """A backend from a spec: `tiny:PATH` (a checkpoint folder written by `emergentlab train`).

    Raises UserError naming the checkpoint when it is missing or its config is impossible.
    """
    kind, _, rest = spec.partition(":")
    if kind == "tiny":
        from emergentlab.models.tiny import TinyBackend

        try:
            return TinyBackend.from_path(Path(rest), name)
        except (FileNotFoundError, ValueError, KeyError) as e:
            raise UserError(str(e).strip("'\""), source=f"{rest}/config.json", field="model") from None
    raise UserError(f"unknown backend {kind!r} (known: tiny)", source=spec)
