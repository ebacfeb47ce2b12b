"""Model diffing with sparse autoencoders across a jump: one TopK SAE (`emergentlab.analysis.sae`) on the residual
stream after the last block (``blocks.{L-1}.hook_resid_post``) of a smaller and of a larger rung, both run on the
same tokens — the task's test items written out in full ("123+456=579"), teacher-forced — then the features of the
larger rung that no feature of the smaller one matches (best activation correlation over the same tokens below
`Config.threshold`) but that a second SAE on the larger rung, drawn with other random numbers, finds again (the
count it does not find again is the method's noise floor), each with its top-activating tokens.

Stored: one run per (smaller, larger) pair in the runs table (experiment "sae"), whose config holds the settings,
each SAE's FVU, dead-feature share and L0, the counts (live features of the larger rung, unmatched and found again,
the noise floor) and the unmatched features with their examples.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from emergentlab.analysis.sae import match_features, sae_stats, top_examples, train_sae
from emergentlab.models.tiny import TinyBackend, act_name
from emergentlab.records import Progress, no_progress
from emergentlab.sections import Section, Table
from emergentlab.store import Store
from emergentlab.tasks import make_task
from emergentlab.train import DEMO_LADDER_DIR

NAME = "sae"
THREADS = 1  # the SAE's matrices are small: one thread is fastest and leaves the other cores alone
SHOWN = 10  # unmatched features listed per run


@dataclass
class Config:
    """Rungs `small` and `large` of `ladder` (the demo's: add3 exact match 0.008 → 0.43 between them), `n` test
    items of `task`; SAEs of `expansion` × d_model features with `k` active, `steps` Adam steps, drawn with `seed`;
    a larger-rung feature is unmatched when its best correlation with any smaller-rung feature is below
    `threshold`; one active on fewer than `min_active` tokens is *weak* (its correlations rest on too few tokens to
    say matched or not) and is counted, never listed."""

    ladder: str = str(DEMO_LADDER_DIR)
    small: str = "L2-d64-t4M"
    large: str = "L3-d128-t4M"
    task: str = "add3"
    n: int = 300
    expansion: int = 4
    k: int = 8
    steps: int = 1500
    seed: int = 0
    threshold: float = 0.5
    min_active: int = 5
    run_name: str = field(default="", repr=False)  # "" → "{small}→{large}"


def texts(cfg: Config) -> list[str]:
    """The tokens both rungs see: each test item as prompt = target (a training line's shape)."""
    return [f"{ex.input}={ex.target}" for ex in make_task(cfg.task, n=cfg.n, seed=cfg.seed).examples]


@torch.no_grad()
def residuals(path: Path, lines: list[str]) -> torch.Tensor:
    """(tokens, d_model) residual stream after the last block, every token of every line in order."""
    b = TinyBackend.from_path(path)
    layer = b.model.cfg.n_layer - 1
    out = []
    for line in lines:
        idx = torch.tensor([[0, *b.tok.encode(line)]])  # NUL opens every sequence, as in training
        _, cache = b.model.run_with_cache(idx)
        out.append(cache[act_name(layer, "hook_resid_post")][0, 1:])
    return torch.cat(out)


def run(config: Config | None = None, store: Store | None = None, progress: Progress = no_progress,
        study: str = NAME) -> dict[str, Any]:
    """Train both SAEs, match them, and return (and store under `study`) the run's record (see module docstring)."""
    cfg = config or Config()
    lines = texts(cfg)
    where = [(i, j) for i, line in enumerate(lines) for j in range(len(line))]
    g = torch.Generator().manual_seed(cfg.seed)
    codes, stats = [], []
    runs = (("smaller", cfg.small), ("larger", cfg.large), ("larger, re-drawn", cfg.large))
    for step, (role, rung) in enumerate(runs):
        acts = residuals(Path(cfg.ladder) / rung, lines)
        sae = train_sae(acts, cfg.expansion * acts.shape[1], cfg.k, g, steps=cfg.steps)
        codes.append(sae.encode(acts).detach())
        stats.append({"role": role, "rung": rung, **asdict(sae_stats(sae, acts))})
        progress(f"SAE {rung} ({role})", step + 1, len(runs))
    zs, zl, zl2 = codes
    _, corr = match_features(zl, zs)
    _, again = match_features(zl, zl2)
    active = (zl > 0).sum(0)
    freq = active.float() / max(len(where), 1)
    alive = active > 0
    weak = alive & (active < cfg.min_active)
    # a feature the larger rung's own second SAE cannot find is an accident of one SAE's training, not of the
    # model: only features found again, and absent in the smaller rung, are listed; a weak one is neither
    strong = alive & ~weak
    unmatched = [int(f) for f in torch.nonzero(strong & (corr < cfg.threshold) & (again >= cfg.threshold)).flatten()]
    unmatched.sort(key=lambda f: -float(freq[f]))

    def shown(tok: int) -> str:
        i, j = where[tok]
        return f"{lines[i][:j]}[{lines[i][j]}]{lines[i][j + 1:]}"

    features = [{"feature": f, "best_corr": float(corr[f]), "again_corr": float(again[f]), "frequency": float(freq[f]),
                 "examples": [{"text": shown(t), "activation": a} for t, a in top_examples(zl, f, 3)]}
                for f in unmatched[:SHOWN]]
    rec = {**asdict(cfg), "tokens": len(where), "stats": stats, "alive_large": int(alive.sum()),
           "weak_large": int(weak.sum()), "unmatched": len(unmatched),
           "noise_floor": int((strong & (again < cfg.threshold)).sum()), "features": features}
    if store is not None:
        store.put_run(study, NAME, cfg.run_name or f"{cfg.small}→{cfg.large}", rec)
    return rec


def sections(store: Store, study: str | None) -> list[Section]:
    """Per stored pair: a sentence with the count of unmatched features, the SAE quality table and the features."""
    out: list[Section] = []
    for (_st, name), r in sorted(store.runs(NAME, study).items()):
        quality = pd.DataFrame(r["stats"])
        feats = pd.DataFrame([{"feature": f["feature"], "frequency": round(f["frequency"], 4),
                               "best corr": round(f["best_corr"], 3), "found again": round(f["again_corr"], 3),
                               "top tokens": " · ".join(f"{e['text']} ({e['activation']:.2f})" for e in f["examples"])}
                              for f in r["features"]])
        out.append(Section(
            title=f"SAE model diffing · {name}",
            summary=[f"SAE diffing {name} on {r['task']}: {r['unmatched']} of {r['alive_large']} live features of "
                     f"{r['large']} have no counterpart in {r['small']} and are found again by a second SAE (best "
                     f"activation correlation < {r['threshold']:g}, resp. ≥, over the same {r['tokens']:,} tokens); "
                     f"noise floor: {r['noise_floor']} features the second SAE does not find.",
                     "Dead features (active on no token): "
                     + ", ".join(f"{s['rung']} ({s['role']}) {s['dead_share']:.0%}" for s in r["stats"])
                     + f"; weak (live, but active on fewer than {r.get('min_active', 5)} tokens, too few to match or "
                     f"not, so never listed): {r.get('weak_large', 0)} of {r['alive_large']} live features of "
                     f"{r['large']}. Reconstruction: FVU "
                     + ", ".join(f"{s['fvu']:.4f}" for s in r["stats"]) + " (fraction of variance unexplained)."],
            paragraphs=[f"TopK SAEs ({r['expansion']}× d_model features, k = {r['k']}, {r['steps']} Adam steps) on "
                        "the residual stream after each rung's last block, over the task's test items written out "
                        "in full and teacher-forced. Matching rule: each larger-rung feature is paired with the "
                        "smaller-rung feature whose activations correlate most (Pearson) on the same tokens; it is "
                        "listed when that correlation is below the threshold, a second SAE on the larger rung "
                        "(other random draws) has a feature correlating at or above it, and it is active on at least "
                        f"{r.get('min_active', 5)} tokens."],
            tables=[Table(quality.round(4), "SAE quality per rung: fvu = fraction of variance unexplained (0–1), "
                          "dead_share = fraction of features active on no token, l0 = mean active features per "
                          "token.", key=f"sae-quality-{len(out)}"),
                    Table(feats, f"Unmatched features of {r['large']}, most frequent first (up to {SHOWN}): "
                          "frequency = share of tokens where it is active, best corr = its highest correlation "
                          "with any smaller-rung feature, top tokens = the bracketed token in its line, with the "
                          "activation; found again = its correlation with the second SAE's best feature.",
                          key=f"sae-features-{len(out)}")]))
    return out
