"""Report sections for training dynamics: grokking curves with the located jump, the weight-decay / train-fraction
sweep, and induction-head scores over training. Everything is read back from the store's `series` table, so a
report is rebuilt without re-training; the jumps are located by the same functions the runs use.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from emergentlab.analysis.dynamics import Jump  # noqa: E402
from emergentlab.report.sections import Section  # noqa: E402
from emergentlab.store import Store  # noqa: E402
from emergentlab.train.grokking import MEMORISED_ACC, locate_grokking  # noqa: E402
from emergentlab.train.induction import locate_phase_change  # noqa: E402

_HEAD = re.compile(r"^blocks\.(\d+)\.attn\.head(\d+)\.(\w+)$")
_NUM = r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"  # a number as GrokConfig.run_name writes it (:g)
_SWEEP = re.compile(rf"wd(?P<wd>{_NUM})-frac(?P<frac>{_NUM})")


def dynamics_sections(store: Store, study: str | None, out_dir: Path) -> list[Section]:
    """Sections for every grokking and induction run stored under `study` (all studies if None); PNGs go to
    `out_dir`. Returns [] when the store holds no training-dynamics series."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sections: list[Section] = []
    grok = runs_frame(store, study, "grokking")
    if grok:
        sections += [_grokking_section(run, h, out_dir) for run, h in grok.items()]
        if len(grok) > 1:
            sections.append(_sweep_section(grok, out_dir))
    ind = runs_frame(store, study, "induction")
    if ind:
        sections += [_induction_section(run, h, out_dir) for run, h in ind.items()]
        if len(ind) > 1:
            sections.append(_depth_section(ind))
    return sections


def runs_frame(store: Store, study: str | None, experiment: str) -> dict[str, pd.DataFrame]:
    """Each run of `experiment` as a wide frame: one row per logged step, one column per metric, sorted by step.

    Runs of different studies with the same name are kept apart as "study/run" when `study` is None."""
    long = store.series(study=study, experiment=experiment)
    if long.empty:
        return {}
    several = long["study"].nunique() > 1
    out: dict[str, pd.DataFrame] = {}
    for (st, run), g in long.groupby(["study", "run"], sort=True):
        wide = g.pivot_table(index="step", columns="metric", values="value", aggfunc="last").sort_index()
        wide.columns.name = None
        out[f"{st}/{run}" if several else str(run)] = wide.reset_index()
    return out


def _save(fig: Any, title: str | None, path: Path) -> Path:
    """Title, lay out, write the PNG and free the figure."""
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_") or "run"


def _fmt(x: float | None) -> str:
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:,.0f}"


def _mark_jump(ax: plt.Axes, jump: Jump | None, color: str, label: str) -> None:
    if jump is None:
        return
    ax.axvspan(jump.start, jump.end, color=color, alpha=0.12, lw=0)
    ax.axvline(jump.step, color=color, ls="--", lw=1, label=f"{label} {jump.step:,.0f}")


def _positive(h: pd.DataFrame) -> pd.DataFrame:
    return h[h["step"] > 0]  # log-step axes cannot show step 0 (the initialisation)


# --- grokking -----------------------------------------------------------------------------------------------------
def _grokking_section(run: str, h: pd.DataFrame, out_dir: Path) -> Section:
    ev = locate_grokking(h)
    mem: float | None = ev["memorisation_step"]
    jump: Jump | None = ev["jump"]
    hp = _positive(h)
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 3.8))
    ax_acc.plot(hp["step"], hp["train_acc"], label="train", color="tab:blue")
    ax_acc.plot(hp["step"], hp["val_acc"], label="validation", color="tab:orange")
    if mem is not None:
        ax_acc.axvline(mem, color="tab:blue", ls=":", lw=1, label=f"memorised {mem:,.0f}")
    _mark_jump(ax_acc, jump, "tab:red", "jump (t₀.₅)")
    ax_acc.set(xscale="log", xlabel="step", ylabel="accuracy", ylim=(-0.02, 1.02), title="accuracy")
    ax_acc.legend(fontsize=8, loc="upper left")
    ax_loss.plot(hp["step"], hp["train_loss"], label="train loss", color="tab:blue")
    ax_loss.plot(hp["step"], hp["val_loss"], label="val loss", color="tab:orange")
    ax_loss.set(xscale="log", yscale="log", xlabel="step", ylabel="loss (nats)", title="loss, weight norm, Fourier")
    _mark_jump(ax_loss, jump, "tab:red", "jump")
    handles, labels = ax_loss.get_legend_handles_labels()
    if "weight_norm" in hp or "fourier_sparsity" in hp:
        ax2 = ax_loss.twinx()
        if "weight_norm" in hp:
            ax2.plot(hp["step"], hp["weight_norm"] / hp["weight_norm"].max(), color="tab:green",
                     label="weight norm / max")
        if "fourier_sparsity" in hp:
            ax2.plot(hp["step"], hp["fourier_sparsity"], color="tab:purple", label="Fourier sparsity")
        ax2.set(ylabel="share (0–1)", ylim=(0, 1.05))
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax_loss.legend(handles, labels, fontsize=8, loc="lower left")
    path = _save(fig, f"grokking: {run}", out_dir / f"grokking__{_slug(run)}.png")

    last = h.iloc[-1]
    paras = [
        f"Run {run}: {len(h)} logged steps up to step {last['step']:,.0f}; final train accuracy "
        f"{last['train_acc']:.1%}, validation accuracy {last['val_acc']:.1%}.",
        f"Memorisation point (first logged step with train accuracy ≥ {MEMORISED_ACC:.0%}): {_fmt(mem)}. "
        + (f"Generalisation jump of validation accuracy: halfway (t₀.₅) at step {jump.step:,.0f}, 10 %→90 % of its "
           f"rise between steps {jump.start:,.0f} and {jump.end:,.0f} (width {jump.width:,.0f} steps, sharpness "
           f"t₀.₅/width = {jump.sharpness:.1f}); steepest logged rise near step {jump.steepest_step:,.0f}."
           if jump else "Validation accuracy did not rise by 50 points: no generalisation jump within this run."),
        "Jump definitions: crossings of floor + q·(ceiling − floor) for q = 0.1, 0.5, 0.9, interpolated in log-step "
        "(emergentlab.analysis.dynamics). Weight norm is the L2 norm of all weights (scaled by its maximum here); "
        "Fourier sparsity is the share of the token embedding's norm in its top frequencies of Z_p "
        "(Nanda et al. 2023's key frequencies): both move before validation accuracy does.",
    ]
    if mem is not None and jump is not None:
        paras.append(f"The jump comes {jump.step / mem:.1f}× as many steps after the start as memorisation does.")
    table = pd.DataFrame([{"run": run, "memorisation_step": mem, "jump_step": jump.step if jump else None,
                           "jump_width": jump.width if jump else None,
                           "jump_sharpness": jump.sharpness if jump else None,
                           "final_val_acc": float(last["val_acc"])}])
    return Section(title=f"Grokking — {run}", paragraphs=paras, images=[path], tables=[table])


def _sweep_section(runs: dict[str, pd.DataFrame], out_dir: Path) -> Section:
    rows = []
    fig, ax = plt.subplots(figsize=(8, 4))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(runs)))
    for (run, h), color in zip(runs.items(), colors, strict=True):
        ev = locate_grokking(h)
        jump: Jump | None = ev["jump"]
        hp = _positive(h)
        ax.plot(hp["step"], hp["val_acc"], color=color, label=run)
        if jump is not None:
            ax.axvline(jump.step, color=color, ls="--", lw=0.8)
        m = _SWEEP.search(run)
        rows.append({"run": run, "weight_decay": float(m["wd"]) if m else None,
                     "train_frac": float(m["frac"]) if m else None, "memorisation_step": ev["memorisation_step"],
                     "jump_step": jump.step if jump else None, "jump_width": jump.width if jump else None,
                     "final_val_acc": float(h["val_acc"].iloc[-1]), "steps": float(h["step"].iloc[-1])})
    ax.set(xscale="log", xlabel="step", ylabel="validation accuracy", ylim=(-0.02, 1.02),
           title="validation accuracy of every grokking run (dashed: located jump)")
    ax.legend(fontsize=7, loc="upper left")
    path = _save(fig, None, out_dir / "grokking__sweep.png")
    table = pd.DataFrame(rows).sort_values(["weight_decay", "train_frac", "run"], na_position="last")
    vanished = table[table["jump_step"].isna()]["run"].tolist()
    paras = ["Every stored grokking run side by side: with less weight decay or a smaller training split the jump "
             "moves later or vanishes (Power et al. 2022; Nanda et al. 2023)."]
    if vanished:
        paras.append(f"No jump within the run's steps: {', '.join(vanished)}.")
    return Section(title="Grokking — weight decay and train fraction", paragraphs=paras, images=[path],
                   tables=[table.reset_index(drop=True)])


# --- induction heads ----------------------------------------------------------------------------------------------
def head_score_matrix(h: pd.DataFrame, score: str) -> pd.DataFrame:
    """Heads × logged steps for one head score (e.g. "prefix_matching"); rows named ``blocks.1.attn.head3``."""
    cols = sorted((c for c in h.columns if (m := _HEAD.match(c)) and m[3] == score),
                  key=lambda c: (int(_HEAD.match(c)[1]), int(_HEAD.match(c)[2])))  # type: ignore[index]
    mat = h.set_index("step")[cols].T
    mat.index = [c.removesuffix(f".{score}") for c in cols]
    return mat


def _heatmap(ax: plt.Axes, mat: pd.DataFrame, title: str, vmin: float, vmax: float, cmap: str) -> None:
    im = ax.imshow(mat.to_numpy(), aspect="auto", vmin=vmin, vmax=vmax, cmap=cmap, interpolation="nearest")
    ax.set_yticks(range(len(mat.index)), [s.replace("blocks.", "").replace(".attn.head", ".h") for s in mat.index],
                  fontsize=7)
    steps = mat.columns.to_numpy()
    ticks = np.unique(np.linspace(0, len(steps) - 1, min(6, len(steps))).round().astype(int))
    ax.set_xticks(ticks, [f"{steps[i]:,.0f}" for i in ticks], fontsize=7)
    ax.set(xlabel="step (logged checkpoints, log-spaced)", title=title)
    plt.colorbar(im, ax=ax, fraction=0.04)


def _induction_section(run: str, h: pd.DataFrame, out_dir: Path) -> Section:
    ev = locate_phase_change(h)
    phase: Jump | None = ev["phase_change"]
    icl: Jump | None = ev["icl_drop"]
    loss: Jump | None = ev["loss_drop"]
    hp = _positive(h)
    prefix, copying = head_score_matrix(h, "prefix_matching"), head_score_matrix(h, "copying")
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8), gridspec_kw={"width_ratios": [1.1, 1, 1]})
    ax = axes[0]
    ax.plot(hp["step"], hp["train_loss"], color="tab:blue", label="train loss")
    ax.plot(hp["step"], hp["val_loss"], color="tab:cyan", label="val loss")
    ax.set(xscale="log", xlabel="step", ylabel="loss (nats)", title="loss, ICL score, induction score")
    ax2 = ax.twinx()
    ax2.plot(hp["step"], hp["icl_score"], color="tab:orange", label="ICL score (nats)")
    ax2.plot(hp["step"], hp["induction_score"], color="tab:red", label="induction score (0–1)")
    ax2.axhline(0, color="grey", lw=0.5)
    _mark_jump(ax, phase, "tab:red", "phase change")
    hs, ls = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(hs + h2, ls + l2, fontsize=7, loc="center left")
    _heatmap(axes[1], prefix, "prefix-matching score", 0.0, 1.0, "viridis")
    _heatmap(axes[2], copying, "copying score", -1.0, 1.0, "RdBu_r")
    path = _save(fig, f"induction heads: {run}", out_dir / f"induction__{_slug(run)}.png")

    last = h.iloc[-1]
    best = str(prefix.iloc[:, -1].idxmax()) if not prefix.empty else "—"
    paras = [f"Run {run}: {len(h)} logged steps up to step {last['step']:,.0f}. Head with the highest final "
             f"prefix-matching score: {best} ({float(prefix.loc[best].iloc[-1]) if best in prefix.index else 0:.2f}; "
             f"copying {float(copying.loc[best].iloc[-1]) if best in copying.index else 0:+.2f}). Final ICL score "
             f"{last['icl_score']:+.2f} nats (loss at a late token minus loss at an early one)."]
    if phase is None:
        paras.append("No phase change: the best prefix-matching score never rose by 0.3 — no induction head formed "
                     "(Olsson et al. 2022: a one-layer attention-only model cannot compose the previous-token and "
                     "induction heads).")
    else:
        lined = ", ".join(f"{name} at step {j.step:,.0f} ({j.step / phase.step:.2f}× the phase change)"
                          for name, j in (("ICL-score drop", icl), ("validation-loss drop", loss)) if j is not None)
        paras.append(f"Phase change (induction score halfway up) at step {phase.step:,.0f}, rising over "
                     f"{phase.start:,.0f}–{phase.end:,.0f}" + (f"; {lined}." if lined else "."))
    table = pd.DataFrame([{"run": run, "induction_head": best, "final_induction_score": float(last["induction_score"]),
                           "final_icl_score": float(last["icl_score"]),
                           "phase_change_step": phase.step if phase else None,
                           "icl_drop_step": icl.step if icl else None, "loss_drop_step": loss.step if loss else None}])
    return Section(title=f"Induction heads — {run}", paragraphs=paras, images=[path], tables=[table])


def _depth_section(runs: dict[str, pd.DataFrame]) -> Section:
    rows = []
    for run, h in runs.items():
        ev = locate_phase_change(h)
        layers = {int(m[1]) for c in h.columns if (m := _HEAD.match(c))}
        rows.append({"run": run, "layers": len(layers), "final_induction_score": float(h["induction_score"].iloc[-1]),
                     "final_icl_score": float(h["icl_score"].iloc[-1]),
                     "phase_change_step": ev["phase_change"].step if ev["phase_change"] else None,
                     "icl_drop_step": ev["icl_drop"].step if ev["icl_drop"] else None})
    table = pd.DataFrame(rows).sort_values(["layers", "run"]).reset_index(drop=True)
    return Section(title="Induction heads — depth", paragraphs=[
        "Every stored induction run: the phase change should appear only in models with at least two layers."],
        tables=[table])
