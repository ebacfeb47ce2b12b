"""The report: one self-contained HTML file (jinja2, autoescaped, PNGs embedded as base64), PNGs and CSVs beside it.

Entry points for the CLI: `build_report` (from a records store) and `analyze_scores` (from a published-scores CSV);
`verdict_table` (analysis.analyze) gives the table the CLI prints.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from emergentlab import metrics
from emergentlab.analysis import verdict as verdict_mod
from emergentlab.analysis.analyze import Analysis, verdict_table
from emergentlab.analysis.curves import usable_axes
from emergentlab.analysis.scores_csv import MIN_RUNGS, read_scores_csv, scores_to_sets
from emergentlab.errors import UserError
from emergentlab.report import plots
from emergentlab.report.sections import Section

REPORT_NAME = "report.html"
VERDICT_TABLE_NAME = "verdict_table.csv"
_TEMPLATES = Path(__file__).parent / "templates"


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("_") or "x"


def _cell(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return "–" if not np.isfinite(v) else f"{v:.4g}"
    if isinstance(v, list | tuple | np.ndarray):
        return ", ".join(_cell(x) for x in v)
    return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)


def _table(df: pd.DataFrame) -> dict[str, Any]:
    rows = [[_cell(v) for v in r] for r in df.itertuples(index=False)]
    return {"columns": [str(c) for c in df.columns], "rows": rows}


def _image(path: Path) -> dict[str, str]:
    return {"data": base64.b64encode(path.read_bytes()).decode("ascii"), "alt": path.stem}


def _task_sections(a: Analysis, out_dir: Path) -> list[Section]:
    out = []
    tab = a.table_
    pairs = a.verdicts_.pairs_
    for (task, variant), sub in tab.groupby(["task", "variant"], sort=True):
        paras = []
        for h in sub.itertuples(index=False):
            paras.append(f"{h.metric}: {h.verdict}" + (f" (confidence {h.confidence:.0%})" if np.isfinite(
                h.confidence) else "") + f"; excess e = {h.excess:.3g} [{h.excess_lo:.3g}, {h.excess_hi:.3g}], "
                f"change D = {h.change:.3g} [{h.change_lo:.3g}, {h.change_hi:.3g}] ({h.shape}).")
            mine = plots.rows_of(pairs, task, variant, h.metric)
            for r in mine.itertuples(index=False):
                partner = r.partner if isinstance(r.partner, str) else "no continuous partner"
                conf = f", confidence {r.confidence:.0%}" if np.isfinite(r.confidence) else ""
                detail = (f": {r.partner_shape}, change {r.partner_change:.3g}" if isinstance(r.partner, str)
                          else "")
                paras.append(f"  · with {partner}{detail} → {r.verdict}{conf}" + (f" ({r.note})" if r.note else ""))
        for w in plots.rows_of(a.verdicts_.wei_, task, variant).itertuples(index=False):
            paras.append(f"Wei et al. definition for {w.metric}: {'yes' if w.wei_emergent else 'no'} — smallest "
                         f"rung {w.smallest:.3g} vs chance {w.chance:.3g} (absent: {w.absent_small}); largest "
                         f"{w.largest:.3g} (present: {w.present_large}); excess over the small-model trend "
                         f"{w.excess:.3g}, lower bound {w.excess_lo:.3g} (unpredictable: {w.unpredictable}).")
        images = [plots.task_figure(a, task, variant, out_dir / f"{_slug(task)}__{_slug(variant)}.png")]
        lf = plots.loss_figure(a, task, variant, out_dir / f"{_slug(task)}__{_slug(variant)}__loss.png")
        if lf is not None:
            images.append(lf)
        tables = []
        m = plots.rows_of(a.verdicts_.mirage_, task, variant)
        if not m.empty:
            tables.append(m.rename(columns={"r2": "R²", "observed": "observed EM", "predicted": "p^k"}))
        for ax, fc in a.forecasts_.items():
            s = fc.summary_
            if s.empty:
                continue
            s = plots.rows_of(s, task, variant)
            if not s.empty:
                tables.append(s.drop(columns=["task", "variant"]).assign(axis=ax))
        if not a.passuntil_.empty:
            p = plots.rows_of(a.passuntil_, task, variant)
            if not p.empty:
                paras.append("PassUntil (Hu et al. 2023): log(−log PU) fitted linearly in log N, PU = mean "
                             "exp(Σ log p) of the greedy target.")
                tables.append(p.drop(columns=["task", "variant"]))
        out.append(Section(title=f"{task} — {variant}", paragraphs=paras, images=images, tables=tables))
    return out


def render_report(a: Analysis, out_dir: Path, title: str, subtitle: str = "",
                  extra_sections: Sequence[Section] = ()) -> Path:
    """Write report.html (self-contained), one PNG per task (and per task vs loss) and verdicts.csv into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    vt = verdict_table(a)
    vt.to_csv(out_dir / VERDICT_TABLE_NAME, index=False)
    a.table_.to_csv(out_dir / "verdicts.csv", index=False)
    a.verdicts_.pairs_.to_csv(out_dir / "verdict_pairs.csv", index=False)
    a.curves_.to_csv(out_dir / "curves.csv", index=False)
    return _write_html(out_dir, _task_sections(a, out_dir) + list(extra_sections), title=title, subtitle=subtitle,
                       threshold=a.threshold, verdict_columns=list(vt.columns), verdict_rows=vt.to_dict("records"),
                       rule=(verdict_mod.__doc__ or "").strip())


def render_sections(out_dir: Path, title: str, subtitle: str, sections: Sequence[Section]) -> Path:
    """report.html holding only `sections` (no verdicts: nothing was run across a ladder). Returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return _write_html(out_dir, sections, title=title, subtitle=subtitle, threshold=None, verdict_columns=[],
                       verdict_rows=[], rule="")


def _write_html(out_dir: Path, sections: Sequence[Section], **fields: Any) -> Path:
    """Render the template with `sections` (images embedded, tables as cells) and `fields`; write report.html."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    html = env.get_template("report.html.j2").render(
        sections=[{"title": s.title, "paragraphs": s.paragraphs, "images": [_image(Path(p)) for p in s.images],
                   "tables": [_table(t) for t in s.tables]} for s in sections],
        **fields,
    )
    path = out_dir / REPORT_NAME
    path.write_text(html, encoding="utf-8")
    return path


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def build_report(store_path: Path, study: str | None, out_dir: Path, extra_sections: Sequence[Section] = (),
                 seed: int = 0) -> Path:
    """Rebuild everything from a records store (a records.sqlite file or the run folder holding one): scores,
    curves, verdicts, forecasts, figures, report.html. Never runs a model. Returns the report's path."""
    from emergentlab.store import Store

    path = Path(store_path)
    if path.is_dir():
        path = path / "records.sqlite"
    if not path.exists():
        raise UserError("no records store here", source=str(store_path))
    with Store(path) as store:
        rungs = store.rungs(study)
        studies = sorted(set(rungs["study"])) if not rungs.empty else []
        if study is None and len(studies) > 1:
            raise UserError(f"holds several studies ({', '.join(studies)}); name one", source=str(path),
                            field="study")
        name = study if study is not None else (studies[0] if studies else None)
        records = store.records(name)
        rungs = store.rungs(name)
    if records.empty and extra_sections:
        # only training-dynamics series (emergentlab grok / induction): no ladder to judge, just their sections
        return render_sections(Path(out_dir), title=f"emergentlab report — {name or path.parent.name}",
                               subtitle=f"training dynamics; built {_stamp()} from {path}", sections=extra_sections)
    if records.empty:
        raise UserError("no records for this study" if name else "no records", source=str(path), field="study")
    if len(rungs) < MIN_RUNGS or not usable_axes(rungs):
        raise UserError(f"{len(rungs)} rung(s) with a known scale; a curve needs at least {MIN_RUNGS}",
                        source=str(path), field="rungs")
    scores = metrics.compute(records)
    a = Analysis(seed=seed).fit(scores, rungs, records)
    return render_report(a, Path(out_dir), title=f"emergentlab report — {name}",
                         subtitle=f"{len(rungs)} rungs × {records['task'].nunique()} task(s), "
                                  f"{len(records)} records, primary axis {a.axis_}; built {_stamp()} from {path}",
                         extra_sections=extra_sections)


def analysis_from_csv(csv_path: Path, seed: int = 0) -> Analysis:
    """The fitted `Analysis` of a published-scores CSV; bad input raises `UserError` naming the file and column."""
    df = read_scores_csv(Path(csv_path))
    return Analysis(seed=seed).fit_sets(scores_to_sets(df, seed=seed, source=str(csv_path)))


def analyze_scores(csv_path: Path, out_dir: Path, seed: int = 0) -> Path:
    """Verdicts, forecasts and the report from a table of published scores (columns: analysis.scores_csv).
    Returns the report's path."""
    a = analysis_from_csv(csv_path, seed)
    cs = a.sets_[a.axis_]
    return render_report(a, Path(out_dir), title=f"emergentlab — {Path(csv_path).name}",
                         subtitle=f"published scores: {len(cs.rungs)} models, {cs.keys['task'].nunique()} task(s); "
                                  f"primary axis {a.axis_}; built {_stamp()}")


def load_verdict_table(report_path: Path) -> pd.DataFrame:
    """The printable verdict table (`verdict_table`) written beside a report, for the CLI to show with rich."""
    path = Path(report_path).parent / VERDICT_TABLE_NAME
    if not path.is_file():  # a report of training dynamics alone judges no ladder
        return pd.DataFrame()
    return pd.read_csv(path, keep_default_na=False, dtype=str)
