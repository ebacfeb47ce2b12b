"""PNG figures for the report (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from emergentlab.analysis.analyze import Analysis  # noqa: E402
from emergentlab.analysis.curves import CurveSet  # noqa: E402

AXIS_LABEL = {"params": "parameters", "non_embedding_params": "non-embedding parameters", "flops": "training FLOPs",
              "tokens": "training tokens", "step": "training step", "loss": "pre-training loss (nats/token)"}
_COLORS = {"emergent": "#c0392b", "mirage": "#8e44ad", "smooth": "#27ae60", "inverse": "#d35400",
           "U-shaped": "#e67e22", "flat": "#7f8c8d", "inconclusive": "#95a5a6"}


def rows_of(df: pd.DataFrame, task: str, variant: str, metric: str | None = None) -> pd.DataFrame:
    """The rows of `df` for one (task, variant), and one metric if given."""
    keep = (df["task"] == task) & (df["variant"] == variant)
    return df[keep & (df["metric"] == metric)] if metric is not None else df[keep]


def _x(cs: CurveSet) -> np.ndarray:
    return cs.rungs[cs.axis].to_numpy(dtype=float)


def _setup_axis(ax: plt.Axes, axis: str) -> None:
    if axis == "loss":
        ax.invert_xaxis()  # lower loss = more capable, to the right
    else:
        ax.set_xscale("log")
    ax.set_xlabel(AXIS_LABEL.get(axis, axis))
    ax.grid(alpha=0.3)


def _panel(ax: plt.Axes, cs: CurveSet, i: int, color: str) -> None:
    lo, hi = cs.interval()
    x = _x(cs)
    ax.fill_between(x, lo[i], hi[i], color=color, alpha=0.2, lw=0)
    ax.plot(x, cs.mean[i], "o-", color=color, ms=4)
    ax.set_title(str(cs.keys["metric"].iat[i]), fontsize=9)
    ax.set_ylabel(str(cs.keys["unit"].iat[i]), fontsize=8)


def task_figure(a: Analysis, task: str, variant: str, out: Path) -> Path:
    """Small multiples for one (task, variant): each discontinuous metric beside its continuous partners, one
    row per discontinuous metric, on the primary axis. The discontinuous panel adds the forecast trend, the
    last backtest's interval band, the threshold, and (exact match) the mirage prediction p^k."""
    cs = a.sets_[a.axis_]
    keys = cs.keys
    tab = rows_of(a.table_, task, variant)
    pairs = rows_of(a.verdicts_.pairs_, task, variant)
    heads = list(dict.fromkeys(tab["metric"]))
    ncol = 1 + max(int(pairs[pairs["metric"] == h]["partner"].notna().sum()) for h in heads)
    fig, axes = plt.subplots(len(heads), ncol, figsize=(2.9 * ncol, 2.7 * len(heads)), squeeze=False,
                             sharex=True)
    idx = {(t, m, v): k for k, (t, m, v) in enumerate(keys[["task", "metric", "variant"]].itertuples(index=False))}
    fc = a.forecasts_.get(a.axis_)
    for row, head in enumerate(heads):
        sub = tab[tab["metric"] == head]
        verdict = str(sub["verdict"].iat[0])
        i = idx[(task, head, variant)]
        ax0 = axes[row, 0]
        _panel(ax0, cs, i, _COLORS.get(verdict, "#2c3e50"))
        if fc is not None and (task, head, variant) in fc.fits_:
            fit = fc.fits_[(task, head, variant)]
            gx = np.power(10.0, fit["t"]) if cs.axis != "loss" else -fit["t"]
            ax0.plot(gx, fit["y"], "--", color="#34495e", lw=1, label="trend")
            bt = fc.backtest_
            last = rows_of(bt, task, variant, head)
            if not last.empty:
                last = last[last["origin"] == last["origin"].min()]
                bx = _x(cs)[last["rung"].to_numpy()]
                label = f"backtest from {int(last['origin'].iat[0])} rungs"
                if len(last) > 1:
                    ax0.fill_between(bx, last["lo"], last["hi"], color="#34495e", alpha=0.15, lw=0, label=label)
                else:  # one held-out rung: a band would have no width to draw
                    mid = last["predicted"].to_numpy()
                    ax0.errorbar(bx, mid, yerr=[mid - last["lo"].to_numpy(), last["hi"].to_numpy() - mid],
                                 fmt="s", ms=3, color="#34495e", alpha=0.6, capsize=3, label=label)
            ax0.axhline(a.threshold, color="#34495e", lw=0.6, ls=":")
        mir = a.verdicts_.mirage_
        if head == "exact_match" and not mir.empty:
            m = rows_of(mir, task, variant)
            if not m.empty:
                ax0.plot(_x(cs), m["predicted"].iat[0], ":", color="#8e44ad", lw=1.5,
                         label=f"p^k, k={m['k_tokens'].iat[0]:.1f}")
        ax0.legend(fontsize=6, loc="best")
        ax0.set_title(f"{head} — {verdict}", fontsize=9)
        mine = pairs[(pairs["metric"] == head) & pairs["partner"].notna()]
        partners = list(zip(mine["partner"], mine["verdict"], strict=True))
        for col in range(1, ncol):
            ax = axes[row, col]
            if col - 1 < len(partners):
                name, pair_verdict = partners[col - 1]
                _panel(ax, cs, idx[(task, name, variant)], "#2980b9")
                ax.set_title(f"{name} (pair: {pair_verdict})", fontsize=8)
            else:
                ax.set_visible(False)
        for col in range(ncol):
            _setup_axis(axes[row, col], cs.axis)
    fig.suptitle(f"{task} ({variant})", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def loss_figure(a: Analysis, task: str, variant: str, out: Path) -> Path | None:
    """Du et al. 2024's view: each metric of the task against pre-training loss, the flat-then-rise changepoint
    marked. None when the ladder has no loss axis."""
    if "loss" not in a.sets_:
        return None
    cs = a.sets_["loss"]
    rows = np.flatnonzero((cs.keys["task"] == task).to_numpy() & (cs.keys["variant"] == variant).to_numpy())
    if rows.size == 0:
        return None
    fig, axes = plt.subplots(1, len(rows), figsize=(3.0 * len(rows), 2.6), squeeze=False)
    lv = a.loss_view_
    for ax, i in zip(axes[0], rows, strict=True):
        _panel(ax, cs, int(i), "#16a085")
        m = rows_of(lv, task, variant, cs.keys["metric"].iat[i])
        if not m.empty and m["hinge_delta_aic"].iat[0] > 2:
            ax.axvline(m["loss_threshold"].iat[0], color="#c0392b", ls="--", lw=1)
        _setup_axis(ax, "loss")
    fig.suptitle(f"{task} ({variant}) vs pre-training loss", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
