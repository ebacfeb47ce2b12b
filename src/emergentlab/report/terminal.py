"""Tables for a terminal (rich), with every cell inert: user text never acts as markup or control bytes.

Columns fold instead of truncating to `exact…`, so two metrics never print as the same word at 80 columns.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from emergentlab.records import Progress as ProgressFn
from emergentlab.report.text import inert


def _fmt(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return "–" if not math.isfinite(v) else f"{v:.3g}"
    return "–" if v is None else str(v)


def print_table(console: Console, df: pd.DataFrame, title: str, caption: str = "",
                left: tuple[str, ...] = ()) -> None:
    """`df` as a rich table; text columns (and those named in `left`) left-aligned, numbers right-aligned."""
    table = Table(title=Text(inert(title)), title_justify="left", caption=Text(inert(caption)) if caption else None,
                  caption_justify="left")
    for col in df.columns:
        is_text = not pd.api.types.is_numeric_dtype(df[col]) or col in left
        longest = max([len(str(col)), *(len(_fmt(v)) for v in df[col])]) if is_text else None
        table.add_column(Text(inert(col)), justify="left" if is_text else "right", overflow="fold",
                         min_width=min(longest or 0, 24) or None)
    for row in df.itertuples(index=False):
        table.add_row(*(Text(inert(_fmt(v))) for v in row))
    console.print(table)


def print_line(console: Console, text: str) -> None:
    """One line of plain text: no markup, no highlighting, control bytes escaped."""
    console.print(inert(text), markup=False, highlight=False, soft_wrap=True)


def to_json(obj: Any) -> str:
    """JSON for scripts: DataFrames as lists of records, paths as strings, NaN and infinities as null."""
    def default(o: Any) -> Any:
        if isinstance(o, pd.DataFrame):
            return json.loads(o.to_json(orient="records"))
        if isinstance(o, np.generic):
            return _finite(o.item())
        return str(o)

    return json.dumps(_finite(obj), default=default, indent=2, allow_nan=False)


def _finite(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


@contextmanager
def progress(err: Console) -> Iterator[ProgressFn]:
    """A progress bar on a terminal; piped, one line on stderr each time the stage (description) changes."""
    if err.is_terminal:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err) as bar:
            job = bar.add_task("starting", total=None)
            yield lambda d, n, t: bar.update(job, description=d, completed=n, total=t)
        return
    last = [""]

    def line(d: str, n: int, t: int | None) -> None:
        if d != last[0]:
            last[0] = d
            print_line(err, f"{d} ({n}/{t if t is not None else '?'})")

    yield line


def show(console: Console, tables: list[tuple[str, pd.DataFrame]], csvs: list[Path], as_json: bool,
         payload: dict[str, Any], paths: dict[str, Path]) -> None:
    """Tables on a terminal, CSV paths when piped, `payload` as JSON with --json; then the output paths."""
    if as_json:
        console.print_json(to_json({**payload, **{k: str(v) for k, v in paths.items()}}))
        return
    if console.is_terminal or not csvs:  # piped, the CSVs are the tables; without CSVs, print them
        for title, df in tables:
            if len(df):
                print_table(console, df, title)
    else:
        for p in csvs:
            print_line(console, f"csv: {p}")
    for k, v in paths.items():
        print_line(console, f"{k}: {v}")
