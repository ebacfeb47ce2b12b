"""What every `emergentlab` command shares: the app, the consoles, the exit codes, the common options.

The commands live in `core` (studies and reports), `experiments` (one per experiment kind) and `production` (the
tools a team ships models with); each parses, calls one `pipeline` function and prints (`report.terminal`: tables
on a terminal, CSV paths when piped, one JSON object with --json). Exit 0 ok, 1 failure, 2 user error.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from emergentlab.errors import UserError
from emergentlab.report.terminal import print_line, show

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="A laboratory for emergent capabilities of language models.")
console = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
JSON = Annotated[bool, typer.Option("--json", help="print one JSON object on stdout instead of tables")]
LEVEL = Annotated[float, typer.Option("--level", help="metric value whose crossing is forecast (e.g. 0.5)")]
AT = Annotated[float | None, typer.Option("--at", help="also predict each metric at this primary-axis value")]
OUT = Annotated[Path, typer.Option(help="run folder: records.sqlite, figures, report")]
LADDER = Annotated[Path | None, typer.Option(help="folder of tiny checkpoints (default: the shipped demo ladder)")]


def _show_warning(message: Warning | str, *_: Any, **__: Any) -> None:
    """A warning as one line on stderr, without the file and source line Python adds."""
    print_line(err, f"warning: {message}")


def _guard(fn: F) -> F:
    """User errors → one line on stderr, exit 2; anything else → one line, exit 1 (EMERGENTLAB_DEBUG=1 re-raises)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                return fn(*args, **kwargs)
        except UserError as e:  # StoreError is one: a file that is not a usable store
            print_line(err, f"error: {e}")
            raise typer.Exit(2) from None
        except (typer.Exit, KeyboardInterrupt):
            raise
        except Exception as e:
            if os.environ.get("EMERGENTLAB_DEBUG"):
                raise
            print_line(err, f"failed: {type(e).__name__}: {e}")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def command(name: str | None = None) -> Callable[[F], F]:
    """`app.command` with `_guard`'s exit codes."""
    return lambda fn: app.command(name)(_guard(fn))  # type: ignore[return-value]


@app.callback()
def _root() -> None:
    """A laboratory for emergent capabilities of language models."""


def output(tables: list[tuple[str, Any]], csvs: list[Path], as_json: bool, payload: dict[str, Any],
           paths: dict[str, Path]) -> None:
    """`report.terminal.show` on this module's console (tests swap it for a terminal of their own)."""
    show(console, tables, csvs, as_json, payload, paths)
