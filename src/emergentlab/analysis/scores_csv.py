"""Published scores → curves: `emergentlab analyze scores.csv` enters the pipeline here, no model needed.

Columns: model, params, task, metric, value (required); tokens, flops, loss, step (scale axes), n (examples behind
the value: gives a binomial interval for accuracies), chance (score of a blind guess; default: the metric's declared
chance, 0 for an accuracy), variant (optional).
Lines starting with '#' are comments (sources go there). Values are aggregated, so uncertainty comes from n only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from emergentlab.analysis.analyze import no_axis_error
from emergentlab.analysis.curves import (
    CURVE_KEYS,
    SCALE_AXES,
    CurveSet,
    axis_position,
    binomial_replicates,
    chance_levels,
    curve_keys,
    rung_major,
    usable_axes,
)
from emergentlab.errors import UserError

REQUIRED = ("model", "params", "task", "metric", "value")
MIN_RUNGS = 3


def read_scores_csv(path: Path) -> pd.DataFrame:
    """The table, checked: every error names the file and the column (`UserError`)."""
    src = str(path)
    if Path(path).is_dir():
        raise UserError("is a folder, not a CSV file", source=src)
    try:
        df = pd.read_csv(path, comment="#", skipinitialspace=True)
    except FileNotFoundError:
        raise UserError("file not found", source=src) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise UserError(f"not a readable CSV ({str(e).splitlines()[0]})", source=src) from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise UserError(f"missing column(s) {', '.join(missing)}; need {', '.join(REQUIRED)}", source=src,
                        field=missing[0])
    if df.empty:
        raise UserError("no rows", source=src)
    for col in ("params", "value", *[a for a in SCALE_AXES if a != "params"], "n", "chance"):
        if col not in df.columns:
            continue
        num = pd.to_numeric(df[col], errors="coerce")
        bad = num.isna() & df[col].notna()
        if col in ("params", "value"):
            bad |= df[col].isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise UserError(f"non-numeric value {df[col].iat[row]!r} on data row {row + 1}", source=src, field=col)
        bad = ~np.isfinite(num.to_numpy(dtype=float)) & num.notna().to_numpy()
        if col in ("n", *SCALE_AXES):
            bad |= (num < 0).to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            lo = " non-negative" if col in ("n", *SCALE_AXES) else ""
            raise UserError(f"must be a finite{lo} number, got {df[col].iat[row]!r} on data row {row + 1}",
                            source=src, field=col)
        df[col] = num
    if (df["params"] <= 0).any():
        raise UserError("parameter counts must be positive", source=src, field="params")
    if "variant" not in df.columns:
        df["variant"] = "default"
    df["variant"] = df["variant"].fillna("default").astype(str)
    for c in ("model", "task", "metric"):
        df[c] = df[c].astype(str).str.strip()
    dup = df.duplicated(["model", *CURVE_KEYS])
    if dup.any():
        r = df[dup].iloc[0]
        raise UserError(f"two values for model {r['model']!r}, task {r['task']!r}, metric {r['metric']!r}",
                        source=src, field="value")
    axes = [a for a in SCALE_AXES if a in df.columns]
    per_model = df.groupby("model")[axes].nunique(dropna=False)
    if (per_model > 1).any().any():
        col = per_model.columns[(per_model > 1).any()][0]
        raise UserError("a model has two different values", source=src, field=col)
    n_rungs = df["model"].nunique()
    if n_rungs < MIN_RUNGS:
        raise UserError(f"{n_rungs} model(s) on the ladder; a curve needs at least {MIN_RUNGS} rungs", source=src,
                        field="model")
    return df


def scores_to_sets(df: pd.DataFrame, n_boot: int = 1000, seed: int = 0,
                   source: str = "<scores>") -> dict[str, CurveSet]:
    """One `CurveSet` per usable scale axis from a checked published-scores table."""
    axes_cols = [a for a in SCALE_AXES if a in df.columns]
    rungs = df.groupby("model", sort=False)[axes_cols].first().reset_index()
    keys = curve_keys(df[CURVE_KEYS].drop_duplicates().sort_values(CURVE_KEYS))
    # a share of n examples (declared range 0..1) has a binomial sampling distribution
    share = ((keys["bound_lo"] == 0) & (keys["bound_hi"] == 1)).to_numpy()
    declared_chance = chance_levels(keys, None)
    sets: dict[str, CurveSet] = {}
    for ax in usable_axes(rungs):
        rg = rungs[rungs[ax].notna()]
        rg = rg.iloc[np.argsort(axis_position(ax, rg[ax].to_numpy()), kind="stable")].reset_index(drop=True)
        wide = df.pivot_table(index=CURVE_KEYS, columns="model", values="value", aggfunc="first")
        wide = wide.reindex(pd.MultiIndex.from_frame(keys[CURVE_KEYS]))[rg["model"]]
        if wide.isna().any().any():
            k, m = next((i, c) for i in wide.index for c in wide.columns if pd.isna(wide.at[i, c]))
            raise UserError(f"no value for model {m!r} on task {k[0]!r}, metric {k[1]!r}", source=source,
                            field="value")
        mean = wide.to_numpy(dtype=float)
        if "n" in df.columns:
            nn = (df.pivot_table(index=CURVE_KEYS, columns="model", values="n", aggfunc="first")
                  .reindex(pd.MultiIndex.from_frame(keys[CURVE_KEYS]))[rg["model"]].to_numpy(dtype=float))
        else:
            nn = np.full(mean.shape, np.nan)
        bounded = share[:, None] & (mean >= 0) & (mean <= 1)
        has_n = np.isfinite(nn) & bounded
        boot = None
        if has_n.any():
            reps = binomial_replicates(mean, np.where(has_n, nn, 1), n_boot, seed)
            boot = rung_major(np.where(has_n[None], reps, mean[None].astype(np.float32)))
        if "chance" in df.columns:
            ch = df.groupby(CURVE_KEYS)["chance"].first().reindex(pd.MultiIndex.from_frame(keys[CURVE_KEYS]))
            chance = ch.to_numpy(dtype=float)
        else:
            chance = np.full(len(keys), np.nan)
        chance = np.where(np.isnan(chance), declared_chance, chance)
        sets[ax] = CurveSet(keys.copy(), rg, ax, mean, np.where(np.isfinite(nn), nn, np.nan), boot, chance,
                            np.full(len(keys), np.nan))
    if not sets:
        raise no_axis_error(rungs, source)
    return sets
