"""The ladder study: every rung × task × example × variant → records → every metric → verdicts, forecasts.

`run` evaluates a `Study` into the store (resumable) and saves the study beside it; `fit` turns what a store holds
into an `Analysis`; `sections` turns an `Analysis` into the report: a one-sentence summary per curve, the verdict
table, then per task and variant the figure, what each test concluded, the forecasts and the examples behind the
numbers. Published scores (no records) go through the same `sections`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from emergentlab import metrics
from emergentlab.analysis.analyze import Analysis, no_axis_error
from emergentlab.analysis.curves import AXIS_UNIT, CurveSet, usable_axes
from emergentlab.analysis.scores_csv import MIN_RUNGS
from emergentlab.errors import UserError
from emergentlab.records import Progress
from emergentlab.runner import Executor, Plan, RunSummary, run_study
from emergentlab.sections import Figure, Line, Marker, Panel, Section, Table
from emergentlab.store import Store
from emergentlab.study import save_study

NAME = "study"
AXIS_LABEL = {"params": "parameters", "non_embedding_params": "non-embedding parameters", "flops": "training FLOPs",
              "tokens": "training tokens", "step": "training step", "loss": "pre-training loss (nats/token)"}
_BOUNDED_UNITS = {"fraction": (0.0, 1.0), "probability": (0.0, 1.0)}
EXAMPLES_SHOWN = 3


def run(plan: Plan, store: Store, progress: Progress, executor: Executor | None = None) -> RunSummary:
    """Evaluate a prepared study (`runner.prepare`) into `store` — what is stored already is skipped, a changed
    study is refused — and save it as `study.json` beside it. `executor`: where the models run (default here)."""
    summary = run_study(plan, store, progress, executor)
    save_study(plan.study)
    return summary


def study_records(store: Store, study: str | None, source: str = "") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The records and rungs `store` holds for `study` (the only study when None); UserError when there are none
    or several studies and none named."""
    rungs = store.rungs(study)
    studies = sorted(set(rungs["study"])) if not rungs.empty else []
    if study is None and len(studies) > 1:
        raise UserError(f"holds several studies ({', '.join(studies)}); name one", source=source, field="study")
    name = study if study is not None else (studies[0] if studies else None)
    records = store.records(name)
    if records.empty:
        raise UserError("no records for this study" if name else "no records", source=source, field="study")
    return records, store.rungs(name)


def fit(store: Store, study: str | None, seed: int = 0, source: str = "", threshold: float = 0.5,
        at: float | None = None, strata: str | None = None) -> tuple[Analysis, pd.DataFrame]:
    """The fitted `Analysis` of the records `store` holds for `study` (the only study when None), and the records.

    Raises UserError when there is nothing to judge: no records, or fewer than `MIN_RUNGS` rungs on a scale axis."""
    records, rungs = study_records(store, study, source)
    if len(rungs) < MIN_RUNGS:
        raise UserError(f"{len(rungs)} rung(s) with a known scale that varies; a curve needs at least {MIN_RUNGS}",
                        source=source, field="rungs")
    if not usable_axes(rungs):
        raise no_axis_error(rungs, source)
    a = Analysis(seed=seed, threshold=threshold, at=at).fit(metrics.compute(records), rungs, records, strata)
    return a, records


def sections(a: Analysis, records: pd.DataFrame | None = None, skips: pd.DataFrame | None = None) -> list[Section]:
    """The report's sections for a fitted analysis: verdicts first, then what the ladder could not do (skipped
    cells, prompts cut to fit a context), then one section per (task, variant)."""
    out = [_verdict_section(a)]
    if not a.strata_.empty:
        out.append(_strata_section(a))
    coverage = _coverage_section(records, skips)
    if coverage is not None:
        out.append(coverage)
    for (task, variant), sub in a.table_.groupby(["task", "variant"], sort=True):
        out.append(_task_section(a, str(task), str(variant), sub, records))
    return out


def _coverage_section(records: pd.DataFrame | None, skips: pd.DataFrame | None) -> Section | None:
    """Rung × task cells a run skipped (with the reason) and records whose prompt lost tokens to the context."""
    tables, summary = [], []
    if skips is not None and not skips.empty:
        tables.append(Table(skips[["model", "task", "variant", "reason"]],
                            "Cells not evaluated: the rung cannot do the task as asked (e.g. the answer or the "
                            "generation budget does not fit its context), so its curve point is missing."))
        summary.append(f"{len(skips)} rung × task cell(s) were skipped; see 'Coverage'.")
    if records is not None and "truncated_tokens" in records:
        cut = records[records["truncated_tokens"].fillna(0) > 0]
        if not cut.empty:
            t = cut.groupby(["model", "task", "variant"]).truncated_tokens.agg(["size", "mean"]).reset_index()
            tables.append(Table(t.rename(columns={"size": "records cut", "mean": "mean tokens dropped"}),
                                "Records whose prompt was cut from the left to fit the rung's context (count, and "
                                "the mean number of prompt tokens dropped): few-shot variants may then equal fewer "
                                "shots."))
            summary.append(f"{len(cut)} record(s) had prompts cut to fit a rung's context; see 'Coverage'.")
    return Section(title="Coverage", tables=tables, summary=summary) if tables else None


# --- the verdict table and the summary ---------------------------------------------------------------------------
def _interval(v: float, lo: float, hi: float) -> str:
    if not np.isfinite(v):
        return f"– [{lo:.3g}, {hi:.3g}]" if np.isfinite(lo) or np.isfinite(hi) else "–"
    return f"{v:.3g} [{lo:.3g}, {hi:.3g}]" if np.isfinite(lo) and np.isfinite(hi) else f"{v:.3g}"


def verdict_table(a: Analysis) -> pd.DataFrame:
    """One row per (task, variant, discontinuous metric): the headline verdict and its evidence, as text cells.

    Columns: change D and excess e are in the metric's unit with 95 % intervals; B is BIG-bench breakthroughness;
    forecast is the primary-axis value where the metric crosses the analysis threshold, with its 90 % interval."""
    t = a.table_
    ax = a.axis_
    cross = [f"cross_{ax}", f"cross_{ax}_lo", f"cross_{ax}_hi"]
    rows = []
    for r in t.itertuples(index=False):
        d = r._asdict()
        rows.append({
            "task": d["task"], "variant": d["variant"], "metric": d["metric"],
            "partner": d["partner"] if isinstance(d["partner"], str) else "–",
            "verdict": d["verdict"],
            "confidence": f"{d['confidence']:.0%}" if np.isfinite(d["confidence"]) else "–",
            "change D": _interval(d["change"], d["change_lo"], d["change_hi"]),
            "excess e": _interval(d["excess"], d["excess_lo"], d["excess_hi"]),
            "B": f"{d['breakthroughness']:.3g}",
            "Wei": "yes" if d["wei_emergent"] is True else "no",
            "forecast": _interval(*(float(d[c]) for c in cross)) if cross[0] in d else "–",
            "note": d["note"] if isinstance(d["note"], str) else "",
        })
    return pd.DataFrame(rows, columns=["task", "variant", "metric", "partner", "verdict", "confidence", "change D",
                                       "excess e", "B", "Wei", "forecast", "note"])


def summary_line(a: Analysis, row: pd.Series) -> str:
    """One sentence a reader can act on: the verdict, the evidence from both curves, and the forecast."""
    ax = a.axis_
    unit = AXIS_UNIT.get(ax, ax)
    conf = f", confidence {row['confidence']:.0%}" if np.isfinite(row["confidence"]) else ""
    s = (f"{row['task']} ({row['variant']}): {row['metric']} is {row['verdict']}{conf} — it changed by "
         f"{row['change']:.3g} [{row['change_lo']:.3g}, {row['change_hi']:.3g}] across the ladder ({row['shape']})")
    if isinstance(row["partner"], str):
        s += f", while {row['partner']} changed by {row['partner_change']:.3g} ({row['partner_shape']})"
    c = row.get(f"cross_{ax}", np.nan)
    lo, hi = row.get(f"cross_{ax}_lo", np.nan), row.get(f"cross_{ax}_hi", np.nan)
    if np.isfinite(c):
        s += f"; it crosses {a.threshold:g} at {unit} {c:.3g} (90 % interval {lo:.3g}–{hi:.3g})"
    elif np.isfinite(lo) or np.isfinite(hi):
        s += f"; too few rungs to pin where it crosses {a.threshold:g}: somewhere in {unit} {lo:.3g}–{hi:.3g}"
    return s + "."


def _verdict_section(a: Analysis) -> Section:
    ax = a.axis_
    caption = (f"Verdict per task, variant and discontinuous metric, judged on {AXIS_LABEL.get(ax, ax)}. "
               "partner: the continuous metric it is judged with. change D: mean of the larger half of the ladder "
               "minus the smaller half; excess e: how far the larger half sits above the straight-line trend of the "
               "smaller half — both in the metric's unit, 95 % bootstrap interval over examples. B: BIG-bench "
               "breakthroughness (unitless). Wei: absent near chance at the smallest rung, clearly present at the "
               f"largest, not predictable from the small rungs. forecast: the {AXIS_UNIT.get(ax, ax)} at which the "
               f"metric crosses {a.threshold:g} (90 % interval). confidence: share of bootstrap replicates giving "
               "the same verdict.")
    return Section(title="Verdicts", tables=[Table(verdict_table(a), caption, key="verdict-table")],
                   summary=[summary_line(a, r) for _, r in a.table_.iterrows()])


def _strata_section(a: Analysis) -> Section:
    """Verdicts per difficulty stratum, side by side: one row per (task, variant, metric, stratum)."""
    st = a.strata_
    key = str(st["stratum_key"].iat[0])
    tab = st.assign(
        confidence=[f"{c:.0%}" if np.isfinite(c) else "–" for c in st["confidence"].astype(float)],
        change=[_interval(*v) for v in st[["change", "change_lo", "change_hi"]].to_numpy(dtype=float)],
        partner=st["partner"].fillna("–"))[["task", "variant", "metric", "stratum", "examples", "first", "last",
                                            "change", "verdict", "confidence", "shape", "partner", "partner_shape"]]
    caption = (f"Verdicts per difficulty: examples split by their '{key}' and each stratum judged on its own by the "
               f"same rule, on {AXIS_LABEL.get(a.axis_, a.axis_)}. examples: per rung; first / last: the smallest "
               "and largest rung's mean in the metric's unit; change: D with its 95 % bootstrap interval; shape and "
               "partner_shape: the stratum's own curve shapes. Strata that move in opposite directions can cancel "
               "in the whole-task curve until they surge together.")
    return Section(title=f"Verdicts per {key}", tables=[Table(tab.rename(columns={"stratum": key}), caption,
                                                                key="strata-table")])


# --- one section per (task, variant) -----------------------------------------------------------------------------
def _rows(df: pd.DataFrame, task: str, variant: str, metric: str | None = None) -> pd.DataFrame:
    keep = (df["task"] == task) & (df["variant"] == variant)
    return df[keep & (df["metric"] == metric)] if metric is not None else df[keep]


def _curve_line(cs: CurveSet, i: int, label: str) -> Line:
    lo, hi = cs.interval()
    return Line(x=tuple(cs.rungs[cs.axis].astype(float)), y=tuple(cs.mean[i]), label=label, lo=tuple(lo[i]),
                hi=tuple(hi[i]))


def _panel(cs: CurveSet, i: int, title: str, lines: Sequence[Line], markers: Sequence[Marker] = ()) -> Panel:
    unit = str(cs.keys["unit"].iat[i])
    return Panel(title=title, xlabel=AXIS_LABEL.get(cs.axis, cs.axis), ylabel=unit, lines=tuple(lines),
                 markers=tuple(markers), xlog=cs.axis != "loss", ylim=_BOUNDED_UNITS.get(unit))


def task_figure(a: Analysis, task: str, variant: str) -> Figure:
    """Each discontinuous metric of (task, variant) with its forecast trend and the p^k prediction, beside its
    continuous partners, on the primary axis; 95 % bootstrap bands over examples."""
    cs = a.sets_[a.axis_]
    idx = {k: i for i, k in enumerate(cs.keys[["task", "metric", "variant"]].itertuples(index=False, name=None))}
    x = tuple(cs.rungs[cs.axis].astype(float))
    panels = []
    pairs = _rows(a.verdicts_.pairs_, task, variant)
    fc = a.forecasts_.get(a.axis_)
    for h in _rows(a.table_, task, variant).itertuples(index=False):
        i = idx[(task, h.metric, variant)]
        lines = [_curve_line(cs, i, str(h.metric))]
        if fc is not None and (task, h.metric, variant) in fc.fits_:
            fit_ = fc.fits_[(task, h.metric, variant)]
            lines.append(Line(x=tuple(np.asarray(fit_["x"], dtype=float)), y=tuple(np.asarray(fit_["y"], dtype=float)),
                              label="forecast trend", style="dashed",
                              markers=False))
        mir = _rows(a.verdicts_.mirage_, task, variant) if not a.verdicts_.mirage_.empty else pd.DataFrame()
        if h.metric == "exact_match" and not mir.empty:
            lines.append(Line(x=x, y=tuple(mir["predicted"].iat[0]), label=f"p^k, k={mir['k_tokens'].iat[0]:.1f}",
                              style="dotted", markers=False))
        panels.append(_panel(cs, i, f"{h.metric}: {h.verdict}", lines))
        for p in pairs[(pairs["metric"] == h.metric) & pairs["partner"].notna()].itertuples(index=False):
            j = idx[(task, p.partner, variant)]
            panels.append(_panel(cs, j, f"{p.partner} (pair: {p.verdict})", [_curve_line(cs, j, str(p.partner))]))
    return Figure(panels=tuple(panels), caption=f"{task} ({variant}) against {AXIS_LABEL.get(cs.axis, cs.axis)}: "
                  "each discontinuous metric (first panel of its group) beside its continuous partners; bands are "
                  "95 % bootstrap intervals over examples.")


def loss_figure(a: Analysis, task: str, variant: str) -> Figure | None:
    """Du et al. 2024's view: each metric against pre-training loss, with the flat-then-rise changepoint marked
    where the hinge beats a straight line by ΔAIC > 2. None without a loss axis."""
    if "loss" not in a.sets_:
        return None
    cs = a.sets_["loss"]
    rows = np.flatnonzero((cs.keys["task"] == task).to_numpy() & (cs.keys["variant"] == variant).to_numpy())
    panels = []
    for i in rows:
        metric = str(cs.keys["metric"].iat[i])
        m = _rows(a.loss_view_, task, variant, metric)
        marks = ([Marker(float(m["loss_threshold"].iat[0]), "loss threshold")]
                 if not m.empty and m["hinge_delta_aic"].iat[0] > 2 else [])
        p = _panel(cs, int(i), metric, [_curve_line(cs, int(i), metric)], marks)
        panels.append(Panel(**{**p.__dict__, "xlog": False}))
    return Figure(panels=tuple(panels), caption=f"{task} ({variant}) against pre-training loss (nats/token; "
                  "lower is more capable); dashed: the loss below which the metric starts rising.")


def _tests_paragraphs(a: Analysis, task: str, variant: str) -> list[str]:
    """What each test concluded, and why the headline verdict stands when two tests seem to disagree."""
    out = []
    mir = _rows(a.verdicts_.mirage_, task, variant) if not a.verdicts_.mirage_.empty else pd.DataFrame()
    for h in _rows(a.table_, task, variant).itertuples(index=False):
        out.append(f"{h.metric}: {h.verdict}. The metric's own shape is '{h.shape}'"
                   + (f", its continuous partner {h.partner}'s is '{h.partner_shape}'" if isinstance(h.partner, str)
                      else "; it has no continuous partner") + "." + (f" {h.note}." if h.note else ""))
        if h.metric == "exact_match" and not mir.empty:
            r = mir.iloc[0]
            why = ("so the jump is what a smoothly improving per-token probability produces"
                   if r["explains"] else "so the per-token probability alone does not reproduce the curve")
            stands = ""
            if h.verdict == "mirage" and not r["explains"]:
                stands = (" The headline stays 'mirage' because it rests on a continuous partner rising smoothly "
                          "across the same rungs; the p^k test asks a narrower question (one length k for every "
                          "example).")
            elif h.verdict == "emergent" and r["explains"]:
                stands = (" The headline stays 'emergent' because the continuous partners jump too: the per-token "
                          "probability itself rises sharply, which p^k then compounds.")
            out.append(f"p^k test (Schaeffer et al. 2023): exact match predicted as the mean per-token probability "
                       f"raised to the answer length k = {r['k_tokens']:.1f} tokens fits with R² = {r['r2']:.2f}, "
                       f"{why}.{stands}")
    for w in _rows(a.verdicts_.wei_, task, variant).itertuples(index=False):
        out.append(f"Wei et al. 2022 definition for {w.metric}: {'met' if w.wei_emergent else 'not met'} — smallest "
                   f"rung {w.smallest:.3g} against chance {w.chance:.3g}, largest {w.largest:.3g}; the larger rungs "
                   f"sit {w.excess:.3g} (lower bound {w.excess_lo:.3g}) above the small-rung trend.")
    return out


def _forecast_tables(a: Analysis, task: str, variant: str) -> list[Table]:
    out = []
    for ax, fc in a.forecasts_.items():
        s = _rows(fc.summary_, task, variant) if not fc.summary_.empty else pd.DataFrame()
        if s.empty:
            continue
        unit = AXIS_UNIT.get(ax, ax)
        tab = pd.DataFrame({"metric": s["metric"], "trend model": s["model"],
                            f"crossing ({unit}), 90 % interval": [_interval(*v) for v in s[
                                ["crossing", "crossing_lo", "crossing_hi"]].to_numpy(dtype=float)]})
        at = ""
        if "at_pred" in s:
            tab[f"at {s['at'].iat[0]:.3g} {unit}"] = [_interval(*v) for v in s[["at_pred", "at_lo", "at_hi"]]
                                                      .to_numpy(dtype=float)]
            at = (f" 'at': the metric the trend predicts at {s['at'].iat[0]:.3g} {unit} (metric unit), with its "
                  "90 % interval.")
        for c, name in (("backtest_mae", "backtest MAE (metric unit)"), ("backtest_coverage", "backtest coverage"),
                        ("backtest_n", "backtest points")):
            if c in s:
                tab[name] = s[c].to_numpy()
        tab["interval note"] = s["interval_note"].to_numpy()
        out.append(Table(
            tab, f"Forecast on {AXIS_LABEL.get(ax, ax)}: where the trend fitted to every rung crosses "
            f"{a.threshold:g}. The 90 % interval spans every trend that fits the rungs within their noise (standard "
            "errors from the bootstrap over examples, or binomial from n for published scores); with no more rungs "
            "than the sigmoid's four parameters it is what any monotone curve through the rungs allows, and inf "
            "marks an end no plausible trend reaches. Backtest: rolling-origin forecasts of held-out larger rungs, "
            "mean absolute error and the share of held-out rungs inside their 90 % band." + at))
    return out


def _partner_table(a: Analysis, task: str, variant: str) -> tuple[Table | None, str]:
    """Exact match forecast directly and as p^k from the per-token accuracy, both backtested; and which won."""
    fc = a.forecasts_.get(a.axis_)
    s = _rows(fc.partner_, task, variant) if fc is not None and not fc.partner_.empty else pd.DataFrame()
    if s.empty:
        return None, ""
    unit = AXIS_UNIT.get(a.axis_, a.axis_)
    r = s.iloc[0]
    tab = pd.DataFrame({
        "metric": s["metric"], "k (tokens)": s["k_tokens"],
        "direct fit, 90 % interval": [_interval(*v) for v in s[["direct", "direct_lo", "direct_hi"]]
                                      .to_numpy(dtype=float)],
        f"{r['partner']}^k, 90 % interval": [_interval(*v) for v in s[["from_partner", "from_partner_lo",
                                                                       "from_partner_hi"]].to_numpy(dtype=float)],
        "backtest MAE direct": s["mae_direct"], "backtest MAE p^k": s["mae_partner"],
        "backtest points": s["backtest_n"], "better in backtest": s["better"]})
    winner = {"p^k": "the forecast from the continuous partner (p^k) was closer",
              "direct": "the direct fit of exact match was closer", "tie": "both were equally close"}[r["better"]]
    line = (f"Forecast of {r['metric']} at {r['at']:.3g} {unit}: direct fit {r['direct']:.3g}, from the per-token "
            f"accuracy raised to k = {r['k_tokens']:.1f}: {r['from_partner']:.3g}; on {int(r['backtest_n'])} "
            f"held-out rungs {winner} (mean absolute error {r['mae_direct']:.3g} direct, {r['mae_partner']:.3g} p^k).")
    return Table(tab, f"Exact match at {r['at']:.3g} {unit} forecast two ways (fractions): the sigmoid fitted to exact "
                 "match itself, and Schaeffer et al.'s construction — the per-token accuracy p fitted and "
                 "extrapolated, raised to the answer length k (tokens). Both are backtested on the same rolling "
                 "origins (fit the smallest rungs, predict the larger); MAE in the metric's unit (fraction)."), line


def _examples_table(records: pd.DataFrame, rungs: Sequence[str], task: str, variant: str) -> Table | None:
    """A few stored prompts with the smallest, middle and largest rung's generation and target log-prob."""
    sub = records[(records["task"] == task) & (records["variant"] == variant)]
    if sub.empty:
        return None
    present = [m for m in rungs if m in set(sub["model"])]
    shown = list(dict.fromkeys([present[0], present[len(present) // 2], present[-1]]))
    ids = sorted(set(sub["example_id"]))[:EXAMPLES_SHOWN]
    rows = []
    for ex in ids:
        one = sub[sub["example_id"] == ex].set_index("model")
        row = {"example": ex, "prompt": one["prompt"].iat[0][-200:], "target": one["target"].iat[0]}
        for m in shown:
            if m in one.index:
                r = one.loc[m]
                lp = float(np.sum(r["target_logprobs"])) if len(r["target_logprobs"]) else float("nan")
                row[f"{m}: output"] = r["generation"] if r["kind"] != "multiple_choice" else (
                    r["choices"][int(np.argmax(r["choice_logprobs"]))] if r["choice_logprobs"] else "")
                row[f"{m}: log p(target)"] = lp
        rows.append(row)
    return Table(pd.DataFrame(rows), f"Examples behind the numbers: {len(ids)} stored prompts (last 200 characters) "
                 f"with the smallest, middle and largest rung's greedy output (the chosen option for multiple "
                 f"choice) and the target's total log-probability in nats under teacher forcing.")


def _task_section(a: Analysis, task: str, variant: str, sub: pd.DataFrame, records: pd.DataFrame | None) -> Section:
    figures = [task_figure(a, task, variant)]
    lf = loss_figure(a, task, variant)
    if lf is not None:
        figures.append(lf)
    tables = []
    mir = _rows(a.verdicts_.mirage_, task, variant) if not a.verdicts_.mirage_.empty else pd.DataFrame()
    if not mir.empty:
        tables.append(Table(mir[["k_tokens", "r2", "rmse", "explains"]].rename(columns={
            "k_tokens": "k (tokens)", "r2": "R²", "rmse": "RMSE (fraction)", "explains": "p^k explains it"}),
            "The p^k test: exact match predicted from the mean per-token probability p of the target raised to its "
            "length k (tokens), compared with the observed exact match across rungs."))
    tables += _forecast_tables(a, task, variant)
    partner, partner_line = _partner_table(a, task, variant)
    if partner is not None:
        tables.append(partner)
    pu = _rows(a.target_law_, task, variant) if not a.target_law_.empty else pd.DataFrame()
    if not pu.empty:
        tables.append(Table(pu.drop(columns=["task", "variant"]),
                            "Target-string probability (teacher-forced), fitted with Hu et al. 2023's task law: PU = "
                            "mean over items of p(reference answer | prompt), a probability, and log(−log PU) fitted "
                            "linearly in ln N; alpha is the slope (unitless), c the scale, pu_at_10x the fitted PU at "
                            "10× the largest rung. Not their sampled PassUntil rate (`emergentlab passuntil`): it "
                            "counts the reference spellings only and not whether generation stops after them."))
    if records is not None:
        order = list(a.sets_[a.axis_].rungs["model"])
        ex = _examples_table(records, order, task, variant)
        if ex is not None:
            tables.append(ex)
    paragraphs = _tests_paragraphs(a, task, variant) + ([partner_line] if partner_line else [])
    return Section(title=f"{task} — {variant}", paragraphs=paragraphs, tables=tables,
                   figures=figures)
