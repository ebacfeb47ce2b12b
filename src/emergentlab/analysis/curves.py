"""Curves: a metric's mean per rung of a ladder, with bootstrap confidence intervals over examples.

A `CurveSet` is the one currency of analysis/: C curves (task, metric, variant) × R rungs, the rung means,
and B bootstrap replicates of those means. Records give replicates by resampling examples (paired across
rungs: the same resampled example ids at every rung, since every rung answers the same examples); a table
of published scores gives them by a binomial draw from n. Every later statistic is a function of these
arrays, computed for all curves and all replicates at once.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from emergentlab import metrics

SCALE_AXES = ("params", "non_embedding_params", "flops", "tokens", "step", "loss")
"""Scale axes a ladder may carry, in the order a primary axis is chosen. Loss falls as capability grows."""

AXIS_UNIT = {"params": "params", "non_embedding_params": "params", "flops": "FLOPs", "tokens": "tokens",
             "step": "steps", "loss": "nats"}
"""The unit a value on each scale axis is counted in (`axis_value` gives values in it)."""

CURVE_KEYS = ["task", "metric", "variant"]

_CHUNK_ELEMS = 2**20  # float32 replicate entries per bootstrap matmul (4 MB: one rung of a block of curves)
_BLOCK_ELEMS = 2**16  # replicate entries per rung in one block of curves read by the statistics (256 KB)


def axis_position(axis: str, values: np.ndarray) -> np.ndarray:
    """Where rungs sit on `axis` as one increasing coordinate t: log10 for counts, −loss (nats) for loss."""
    v = np.asarray(values, dtype=float)
    return -v if axis == "loss" else np.log10(v)


def axis_value(axis: str, t: np.ndarray | float) -> np.ndarray | float:
    """The inverse of `axis_position`: the axis' own unit (parameters, tokens, FLOPs, steps, loss in nats) at t,
    an array for an array and a number for a number."""
    return -t if axis == "loss" else 10.0**t


def usable_axes(rungs: pd.DataFrame) -> list[str]:
    """Axes that every rung has, positive (counts) and not all equal."""
    out = []
    for a in SCALE_AXES:
        if a not in rungs:
            continue
        v = pd.to_numeric(rungs[a], errors="coerce").to_numpy(dtype=float)
        if np.isfinite(v).all() and (a == "loss" or (v > 0).all()) and np.unique(v).size > 1:
            out.append(a)
    return out


def bootstrap_means(values: np.ndarray, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means over examples and their bootstrap replicates, for many curves at once.

    `values` is (C, R, N): C curves × R rungs × N example slots, NaN where a slot is empty (ragged example
    counts). One multinomial resample of the N slots is drawn per replicate and shared by every curve and
    rung (a paired bootstrap), so the replicates are one matrix product: values (C·R × N) @ counts (N × B).
    Returns (mean (C, R), n (C, R), replicates (B, C, R) float32 in the `rung_major` layout).
    """
    c, r, n = values.shape
    mask = np.isfinite(values)
    count = mask.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(mask, values, 0.0).sum(axis=-1, dtype=np.float64) / count
    rng = np.random.default_rng(seed)
    counts_t = np.ascontiguousarray(rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).T, dtype=np.float32)
    reps = np.empty((r, c, n_boot), dtype=np.float32)
    step = max(1, _CHUNK_ELEMS // max(n_boot, n, 1))
    for j in range(r):
        for lo in range(0, c, step):
            hi = min(lo + step, c)
            v, m = values[lo:hi, j], mask[lo:hi, j]
            out = reps[j, lo:hi]
            if m.all():  # a (curves, N) row-strided view goes to BLAS as it is when already float32
                np.matmul(v.astype(np.float32, copy=False), counts_t, out=out)
                out /= n
            else:  # each replicate's mean is over the slots it drew that hold a value
                np.matmul(np.where(m, v, 0.0).astype(np.float32), counts_t, out=out)
                with np.errstate(invalid="ignore", divide="ignore"):
                    out /= m.astype(np.float32) @ counts_t
    return mean, count.astype(float), reps.transpose(2, 1, 0)


def rung_major(boot: np.ndarray) -> np.ndarray:
    """Replicates (B, C, R) as a view of an (R, C, B) C-contiguous array (copied only when not already so).

    Every statistic of analysis/ reads one rung of a block of curves at a time, and the per-curve intervals sort
    each curve's B replicates: in this layout both are contiguous rows.
    """
    rcb = boot.transpose(2, 1, 0)
    return boot if rcb.flags.c_contiguous else np.ascontiguousarray(rcb).transpose(2, 1, 0)


def curve_blocks(boot: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
    """(curves, y) per block of curves: y is a (c, B, R) view of `boot` (B, C, R) whose rung slabs y[..., j] are
    contiguous in the `rung_major` layout. Blocks hold about `_BLOCK_ELEMS` replicate entries per rung, so that a
    block's slabs and the temporaries made from them stay in cache."""
    b, c = boot.shape[:2]
    step = max(1, _BLOCK_ELEMS // max(b, 1))
    for lo in range(0, c, step):
        sl = slice(lo, min(lo + step, c))
        yield sl, boot[:, sl].transpose(1, 0, 2)


def rung_se(boot: np.ndarray | None, mean: np.ndarray) -> np.ndarray:
    """Bootstrap standard error of every rung mean, (C, R) in the metric's unit (0 when no replicates);
    replicates that are NaN (a resample that drew no example of an empty-slotted rung) are left out."""
    if boot is None:
        return np.zeros_like(mean, dtype=float)
    out = np.empty(boot.shape[1:])
    for sl, y in curve_blocks(boot):
        for j in range(y.shape[-1]):
            slab = y[..., j]
            s = slab.std(axis=-1)
            bad = np.isnan(s)
            if bad.any():
                with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    s[bad] = np.nanstd(slab[bad], axis=-1)
            out[sl, j] = s
    return out


def interval_ranks(m: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Ranks (0-based) of a percentile interval's ends among m sorted replicates: ⌊a(m−1)⌋ and ⌈(1−a)(m−1)⌉,
    a = (1 − level) / 2; −1 when m = 0."""
    a = (1 - level) / 2
    return np.floor(a * (m - 1)).astype(np.intp), np.ceil((1 - a) * (m - 1)).astype(np.intp)


def percentile_interval(x: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval per row of x (c, B), which is sorted in place: the `interval_ranks` order
    statistics of each row's non-NaN replicates (NaN sorts last); NaN where a row has none. The one interval
    rule of analysis/: rung means, D, e and B all use it."""
    x.sort(axis=-1)
    m = np.full(x.shape[0], x.shape[-1]) if not np.isnan(x[:, -1]).any() else x.shape[-1] - np.isnan(x).sum(-1)
    k_lo, k_hi = interval_ranks(m, level)
    rows = np.arange(x.shape[0])
    lo, hi = x[rows, np.maximum(k_lo, 0)].astype(float), x[rows, np.maximum(k_hi, 0)].astype(float)
    lo[m == 0] = hi[m == 0] = np.nan
    return lo, hi


def binomial_replicates(p: np.ndarray, n: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Parametric bootstrap of published accuracies: Binomial(n, p) / n per replicate, shape (B, *p.shape)."""
    rng = np.random.default_rng(seed)
    pc = np.clip(np.nan_to_num(p), 0.0, 1.0)
    nn = np.maximum(np.nan_to_num(n).astype(np.int64), 1)
    return (rng.binomial(nn, pc, size=(n_boot, *p.shape)) / nn).astype(np.float32)


@dataclass
class CurveSet:
    """C curves × R rungs, rungs sorted along `axis`.

    `keys`: one row per curve: task, metric, variant and the metric's declared properties (`curve_keys`);
    `rungs`: one row per rung (model and every scale axis); `mean`/`n`: (C, R) in the metric's own unit and
    example counts; `boot`: (B, C, R) replicates of `mean`, or None when no uncertainty is known (any memory
    layout is read correctly; the `rung_major` one, which `bootstrap_means` returns, is the fast one);
    `chance`: (C,) the score of a model that knows nothing, from the metric's declaration (`chance_levels`; NaN
    when unknown); `k_tokens`: (C,) mean target length in tokens (NaN when unknown).
    """

    keys: pd.DataFrame
    rungs: pd.DataFrame
    axis: str
    mean: np.ndarray
    n: np.ndarray
    boot: np.ndarray | None
    chance: np.ndarray
    k_tokens: np.ndarray
    _intervals: dict[float, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, init=False, repr=False,
                                                                   compare=False)

    @property
    def t(self) -> np.ndarray:
        """Rung positions on the primary axis (log10 of the count, or −loss)."""
        return axis_position(self.axis, self.rungs[self.axis].to_numpy())

    @property
    def sign(self) -> np.ndarray:
        """+1 where higher is better, −1 where lower is: multiply to orient every curve upward."""
        return np.where(self.keys["higher_is_better"].to_numpy(dtype=bool), 1.0, -1.0)

    def interval(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Percentile bootstrap interval of each rung mean (`percentile_interval`), (C, R) each; the mean itself
        when no replicates. Computed once per level (the replicates are not meant to change after construction):
        every figure panel asks for it."""
        if self.boot is None:
            return self.mean.copy(), self.mean.copy()
        if level not in self._intervals:
            lo, hi = np.empty(self.mean.shape), np.empty(self.mean.shape)
            for sl, y in curve_blocks(self.boot):
                for j in range(y.shape[-1]):
                    lo[sl, j], hi[sl, j] = percentile_interval(y[..., j].copy(), level)
            self._intervals[level] = (lo, hi)
        lo, hi = self._intervals[level]
        return lo.copy(), hi.copy()

    def frame(self, level: float = 0.95) -> pd.DataFrame:
        """Long frame: one row per (curve, rung) with every scale axis, mean, lo, hi, n."""
        lo, hi = self.interval(level)
        c, r = self.mean.shape
        out = self.keys.loc[np.repeat(np.arange(c), r), CURVE_KEYS].reset_index(drop=True)
        rung_cols = self.rungs.loc[np.tile(np.arange(r), c)].reset_index(drop=True)
        out = pd.concat([out, rung_cols], axis=1)
        out["mean"], out["lo"], out["hi"], out["n"] = self.mean.ravel(), lo.ravel(), hi.ravel(), self.n.ravel()
        return out


def curve_keys(keys: pd.DataFrame) -> pd.DataFrame:
    """(task, metric, variant) rows with each metric's declared properties (`metrics.declared`): kind, unit,
    higher_is_better and its range (bound_lo, bound_hi) in its unit."""
    out = keys[CURVE_KEYS].reset_index(drop=True)
    declared = [metrics.declared(m) for m in out["metric"]]
    out["kind"] = [m.kind for m in declared]
    out["unit"] = [m.unit for m in declared]
    out["higher_is_better"] = [m.higher_is_better for m in declared]
    out["bound_lo"] = np.array([m.bounds[0] for m in declared], dtype=float)
    out["bound_hi"] = np.array([m.bounds[1] for m in declared], dtype=float)
    return out


def chance_levels(keys: pd.DataFrame, records: pd.DataFrame | None) -> np.ndarray:
    """(C,) the declared `chance` of each curve's metric, in its unit: the number, or the mean over the curve's
    (task, variant) records of the per-example chance (NaN without records); NaN where the metric declares none."""
    out = np.full(len(keys), np.nan)
    for c, (task, name, variant) in enumerate(keys[CURVE_KEYS].itertuples(index=False, name=None)):
        ch = metrics.declared(name).chance
        if isinstance(ch, int | float):
            out[c] = ch
        elif callable(ch) and records is not None:
            applies = metrics.METRICS[name].applies
            mine = records[(records["task"] == task) & (records["variant"] == variant) & records["kind"].isin(applies)]
            vals = [v for v in map(ch, mine.to_dict("records")) if np.isfinite(v)]
            if vals:
                out[c] = float(np.mean(vals))
    return out


def _target_lengths(records: pd.DataFrame) -> dict[str, float]:
    """task → mean target length in tokens over its records (the k of the mirage test's p^k)."""
    if "target_tokens" not in records or records.empty:
        return {}
    lens = pd.Series([len(t) if isinstance(t, list | tuple) else np.nan for t in records["target_tokens"]],
                     index=records.index, dtype=float)
    return {str(k): float(v) for k, v in lens.groupby(records["task"]).mean().items()}


def primary_axis(rungs: pd.DataFrame, prefer: str | None = None) -> str:
    """`prefer` when usable, else the first usable axis in `SCALE_AXES` order; ValueError when none is."""
    axes = usable_axes(rungs)
    if prefer is not None and prefer in axes:
        return prefer
    if not axes:
        raise ValueError("no scale axis is known for every rung (params, tokens, flops, loss or step)")
    return axes[0]


def _factorized(col: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """`pd.factorize(col, sort=True)`, read off a categorical with sorted categories (`metrics.compute` makes its
    key columns so) instead of hashing millions of strings; unused categories stay in the uniques."""
    if isinstance(col.dtype, pd.CategoricalDtype) and col.cat.categories.is_monotonic_increasing:
        return col.cat.codes.to_numpy(), col.cat.categories
    return pd.factorize(col, sort=True)  # type: ignore[return-value]


def _text_codes(col: pd.Series, names: Sequence[str]) -> np.ndarray:
    """Position in `names` of each value of `col` read as text (−1 where absent), per category when it is one."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        at = np.append(pd.Index(names).get_indexer(col.cat.categories.astype(str)), -1)
        return at[col.cat.codes.to_numpy()]  # code −1 (missing) picks the appended −1
    return pd.Index(names).get_indexer(col.astype(str))


def _cells(sc: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The curves of per-example scores `sc`: their keys (sorted by `CURVE_KEYS`), each score's curve index, and
    its example slot (one per (task, variant, example_id), numbered in example-id order within its task and
    variant, shared by the curve's metrics). Each key column is factorized once: a million-record study has
    millions of scores, and grouping by text columns again and again was most of the analysis' time."""
    codes, uniques = zip(*(_factorized(sc[c]) for c in (*CURVE_KEYS, "example_id")), strict=True)
    t, m, v, e = (np.asarray(c, dtype=np.int64) for c in codes)
    nt, nm, nv, ne = (max(len(u), 1) for u in uniques)
    curve = (t * nm + m) * nv + v
    # few possible curves: marking them beats sorting millions of scores (np.unique)
    present = np.zeros(nt * nm * nv, dtype=bool)
    present[curve] = True
    curves, cidx = np.flatnonzero(present), (np.cumsum(present) - 1)[curve]
    keys = pd.DataFrame({"task": uniques[0].take(curves // (nm * nv)), "metric": uniques[1].take(curves // nv % nm),
                         "variant": uniques[2].take(curves % nv)})
    group = t * nv + v
    pairs = group * ne + e
    seen = np.sort(pd.unique(pairs))  # hashing, then sorting the far fewer distinct pairs
    slot = np.searchsorted(seen, pairs) - np.searchsorted(seen, group * ne)
    return keys, cidx.reshape(-1), slot


def curves_by_axis(scores: pd.DataFrame, rungs: pd.DataFrame, axes: Sequence[str] | None = None, *,
                   n_boot: int = 1000, seed: int = 0, records: pd.DataFrame | None = None) -> dict[str, CurveSet]:
    """Per-example scores (`metrics.compute` output) + rungs (`Store.rungs`) → a `CurveSet` per scale axis
    (default: every `usable_axes` one), rungs sorted along each.

    One paired bootstrap serves every axis: a curve's replicate at a rung does not depend on the axis, only the
    rung order does, so axes that order the rungs alike (parameters, tokens and FLOPs usually do) share one
    replicate array and an axis that orders them otherwise gets a reordered copy. Scores of models missing from
    `rungs` are left out. `records`, when given, supplies the chance levels that depend on the example (multiple
    choice) and target lengths in tokens (for the mirage test).
    """
    axes = usable_axes(rungs) if axes is None else list(axes)
    if not axes:
        return {}
    rg_all = rungs[rungs[axes].notna().all(axis=1)].reset_index(drop=True)
    orders = {ax: np.argsort(axis_position(ax, rg_all[ax].to_numpy()), kind="stable") for ax in axes}
    base = orders[axes[0]]
    models = [str(m) for m in rg_all["model"].iloc[base]]
    ridx = _text_codes(scores["model"], models)
    sc = scores[ridx >= 0]
    ridx = ridx[ridx >= 0]
    keys, cidx, slot = _cells(sc)
    n_slots = int(slot.max()) + 1 if len(sc) else 0
    values = np.full((len(keys), len(models), max(n_slots, 1)), np.nan)
    values[cidx, ridx, slot] = sc["value"].to_numpy(dtype=float)
    mean, n, boot = bootstrap_means(values, n_boot, seed)
    lengths = _target_lengths(records) if records is not None else {}
    keys = curve_keys(keys)
    chance = chance_levels(keys, records)
    k_tokens = np.array([lengths.get(str(t), np.nan) for t in keys["task"]])
    at = np.empty(len(base), dtype=np.intp)
    at[base] = np.arange(len(base))  # rung of rg_all → its position in the bootstrap's rung order
    out = {}
    for ax in axes:
        perm = at[orders[ax]]
        same = bool((perm == np.arange(len(perm))).all())
        ax_boot = boot if same else np.ascontiguousarray(boot.transpose(2, 1, 0)[perm]).transpose(2, 1, 0)
        out[ax] = CurveSet(keys.copy(), rg_all.iloc[orders[ax]].reset_index(drop=True), ax,
                           mean if same else mean[:, perm], n if same else n[:, perm], ax_boot, chance.copy(),
                           k_tokens.copy())
    return out
