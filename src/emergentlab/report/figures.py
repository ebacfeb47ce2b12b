"""Figure specs (`emergentlab.sections.Figure`) drawn as PNG with matplotlib's object API.

No `pyplot` and no `matplotlib.use`: a `Figure` with an Agg canvas needs no backend switch, so importing this
module changes nothing process-wide. Every string drawn goes through `plot_text` (mathtext off for user text).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as MplFigure

from emergentlab.report.text import plot_text
from emergentlab.sections import Figure, Panel

_STYLE = {"line": "-", "dashed": "--", "dotted": ":", "points": ""}
_PALETTE = ("#2c3e50", "#2980b9", "#c0392b", "#27ae60", "#8e44ad", "#d35400", "#16a085", "#7f8c8d")


def _draw(ax: object, panel: Panel) -> None:
    for k, line in enumerate(panel.lines):
        color = _PALETTE[k % len(_PALETTE)]
        x = np.asarray(line.x, dtype=float)
        if line.lo is not None and line.hi is not None:
            ax.fill_between(x, line.lo, line.hi, color=color, alpha=0.18, lw=0)  # type: ignore[attr-defined]
        marker = "o" if line.markers or line.style == "points" else ""
        ax.plot(x, line.y, _STYLE[line.style] + marker, color=color, ms=3.5,  # type: ignore[attr-defined]
                label=plot_text(line.label), lw=1.3)
    for k, m in enumerate(panel.markers):
        ax.axvline(m.x, color=_PALETTE[(k + 2) % len(_PALETTE)], ls="--", lw=1,  # type: ignore[attr-defined]
                   label=plot_text(m.label))
    if panel.xlog:
        ax.set_xscale("log")  # type: ignore[attr-defined]
    if panel.ylog:
        ax.set_yscale("log")  # type: ignore[attr-defined]
    if panel.ylim is not None:
        ax.set_ylim(*panel.ylim)  # type: ignore[attr-defined]
    ax.set_title(plot_text(panel.title), fontsize=9)  # type: ignore[attr-defined]
    ax.set_xlabel(plot_text(panel.xlabel), fontsize=8)  # type: ignore[attr-defined]
    ax.set_ylabel(plot_text(panel.ylabel), fontsize=8)  # type: ignore[attr-defined]
    ax.grid(alpha=0.3)  # type: ignore[attr-defined]
    ax.tick_params(labelsize=7)  # type: ignore[attr-defined]
    if panel.lines or panel.markers:
        ax.legend(fontsize=6, loc="best")  # type: ignore[attr-defined]


def render_figure(spec: Figure, path: Path, dpi: int = 110) -> Path:
    """Draw `spec` (panels side by side, up to 4 a row) to the PNG file `path` and return it."""
    n = len(spec.panels)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig = MplFigure(figsize=(3.1 * cols, 2.8 * rows))
    FigureCanvasAgg(fig)
    for i, panel in enumerate(spec.panels):
        _draw(fig.add_subplot(rows, cols, i + 1), panel)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return path
