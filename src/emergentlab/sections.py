"""What an experiment hands the report: `Section`s of prose, captioned tables and figure *specs*.

This sits at the bottom layer, beside `records`, so that `experiments/` can build sections without importing
`report/` (which sits above them), and `report/` can render them without computing anything. A figure is data
(lines, bands, markers), not a matplotlib object: the report decides how to draw it, and a section can be
compared, serialised or tested without a plotting backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pandas as pd


@dataclass(frozen=True)
class Line:
    """One series on a panel. `lo`/`hi` (same length as `x`) draw a shaded band, e.g. a 95 % interval."""

    x: tuple[float, ...]
    y: tuple[float, ...]
    label: str
    lo: tuple[float, ...] | None = None
    hi: tuple[float, ...] | None = None
    style: Literal["line", "dashed", "dotted", "points"] = "line"
    markers: bool = True


@dataclass(frozen=True)
class Marker:
    """A vertical line at `x` (an event: a located jump, a threshold crossing), with a legend label."""

    x: float
    label: str


@dataclass(frozen=True)
class Panel:
    """One set of axes. `ylim` clips the view to the metric's range (e.g. (0, 1) for a fraction)."""

    title: str
    xlabel: str
    ylabel: str
    lines: tuple[Line, ...]
    markers: tuple[Marker, ...] = ()
    xlog: bool = False
    ylog: bool = False
    ylim: tuple[float, float] | None = None


@dataclass(frozen=True)
class Figure:
    """Panels side by side, with a caption saying what the figure shows."""

    panels: tuple[Panel, ...]
    caption: str = ""


@dataclass
class Table:
    """A table with a caption that says what it is and the unit of each column. Cells are rendered as text."""

    frame: pd.DataFrame
    caption: str
    key: str = ""  # a stable id for the HTML anchor (set by code, never from user text)


@dataclass
class Section:
    """A titled block of the report: paragraphs (plain text, autoescaped), tables and figures, in that order.

    `summary` lines are lifted to the top of the report, before any table: one sentence a reader can act on."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
