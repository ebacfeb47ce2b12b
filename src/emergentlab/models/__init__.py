"""Models behind one `Backend` protocol, loaded from a spec string such as `tiny:PATH` or `hf:ORG/NAME`."""

from __future__ import annotations

from pathlib import Path

from emergentlab.models.base import Backend, Generation, ScaleFacts, TokenScores

__all__ = ["Backend", "Generation", "ScaleFacts", "TokenScores", "load_backend"]


def load_backend(spec: str, name: str | None = None) -> Backend:
    """A backend from a spec: `tiny:PATH` (a checkpoint folder written by `emergentlab train`).

    Raises FileNotFoundError / ValueError with a message fit to show the user.
    """
    kind, _, rest = spec.partition(":")
    if kind == "tiny":
        from emergentlab.models.tiny import TinyBackend

        return TinyBackend.from_path(Path(rest), name)
    raise ValueError(f"unknown backend {kind!r} in model spec {spec!r} (known: tiny)")
