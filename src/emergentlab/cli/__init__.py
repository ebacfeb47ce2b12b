"""The `emergentlab` command (see `cli.base`): importing the command modules registers their commands."""

from __future__ import annotations

from emergentlab.cli import core, experiments, production
from emergentlab.cli.base import app

__all__ = ["app", "core", "experiments", "main", "production"]


def main() -> None:
    app()
