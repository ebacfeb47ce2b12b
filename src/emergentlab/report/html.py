"""The report: one self-contained HTML file (jinja2, autoescaped, PNGs embedded as base64) from `Section`s.

It renders and computes nothing: experiments build the sections, `pipeline` decides which. The summary lines of
every section come first, so a reader sees the verdicts in words before any table. Figures are written beside the
report as `plots/fig-NN.png` — numbered, never named after user text.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from emergentlab.report.figures import render_figure
from emergentlab.sections import Section

REPORT_NAME = "report.html"
_TEMPLATES = Path(__file__).parent / "templates"


def _cell(v: Any) -> str:
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if isinstance(v, float | np.floating):
        return "–" if not np.isfinite(v) else f"{v:.4g}"
    if isinstance(v, list | tuple | np.ndarray):
        return ", ".join(_cell(x) for x in v)
    return "–" if v is None or v is pd.NA else str(v)


def _table(frame: pd.DataFrame) -> dict[str, Any]:
    return {"columns": [str(c) for c in frame.columns],
            "rows": [[_cell(v) for v in r] for r in frame.itertuples(index=False)]}


def write_report(out_dir: Path, title: str, subtitle: str, sections: Sequence[Section], appendix: str = "") -> Path:
    """Write `out_dir/report.html` (and its figures under `out_dir/plots/`) and return the report's path.

    `appendix` is preformatted text shown last (e.g. the verdict rule)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = out_dir / "plots"
    plots.mkdir(exist_ok=True)
    rendered, n_fig = [], 0
    for s in sections:
        figs = []
        for f in s.figures:
            n_fig += 1
            png = render_figure(f, plots / f"fig-{n_fig:02d}.png")
            figs.append({"data": base64.b64encode(png.read_bytes()).decode("ascii"), "caption": f.caption})
        rendered.append({"title": s.title, "paragraphs": s.paragraphs, "figures": figs,
                         "tables": [{**_table(t.frame), "caption": t.caption, "key": t.key} for t in s.tables]})
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    html = env.get_template("report.html.j2").render(
        title=title, subtitle=subtitle, summary=[line for s in sections for line in s.summary], sections=rendered,
        appendix=appendix)
    path = out_dir / REPORT_NAME
    path.write_text(html, encoding="utf-8")
    return path
