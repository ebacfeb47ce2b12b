from __future__ import annotations

import numpy as np
import pytest

from emergentlab.analysis.simulator import Compositional, analyze, ladder_params, rungs_frame, simulate
from emergentlab.analysis.verdict import Shape, Verdict

MODEL = Compositional()  # 8 sub-skills, logistic midpoints 10^7.4 … 10^7.8, one decade wide


def test_sub_skills_are_logistic_in_log_scale_and_chains_multiply() -> None:
    n = ladder_params()
    p = MODEL.skill_probs(n)
    assert p.shape == (8, 8) and np.all(np.diff(p, axis=1) > 0)  # every sub-skill improves at every rung
    mid = Compositional(n_skills=1, midpoint=8.0, width=1.0, spread=0.0)
    assert mid.skill_probs(np.array([1e8]))[0, 0] == pytest.approx(0.5)
    assert np.allclose(MODEL.task_probs(n, 8), np.prod(p, axis=0))
    floor = Compositional(n_skills=1, floor=0.25, spread=0.0)
    assert floor.skill_probs(np.array([1.0, 1e20]))[0] == pytest.approx([0.25, 1.0], abs=1e-3)  # chance, then sure


def test_simulated_exact_match_tracks_the_model() -> None:
    recs = simulate(MODEL, steps=(4,), n_examples=300, seed=1, params=ladder_params(4))
    by = {}
    for r in recs:
        if r.task == "steps4":
            by.setdefault(r.model, []).append(r.generation == r.target)
    observed = np.array([np.mean(by[f"m{i}"]) for i in range(4)])
    assert np.allclose(observed, MODEL.task_probs(ladder_params(4), 4), atol=0.08)


@pytest.mark.slow
def test_long_chains_look_emergent_while_every_sub_skill_is_smooth() -> None:
    """Seed 001's compositional story through the real analysis: each sub-skill (and the 1-step task) is judged
    `smooth`; the 8-step task's exact match is judged `emergent` or `mirage`, and most of its rise is missed by
    extending the small models' trend, the more so the longer the chain."""
    a = analyze(simulate(MODEL, steps=(1, 8), n_examples=200, seed=0), rungs_frame(ladder_params()), n_boot=300)
    t = a.table_.set_index("task")
    for j in range(MODEL.n_skills):
        assert t.loc[f"skill{j}", "verdict"] == Verdict.SMOOTH.label
    assert t.loc["steps1", "verdict"] == Verdict.SMOOTH.label
    assert t.loc["steps8", "verdict"] in (Verdict.EMERGENT.label, Verdict.MIRAGE.label)
    # the chain jumps while its per-step accuracy rises smoothly: hence mirage
    assert (t.loc["steps8", "shape"], t.loc["steps8", "partner_shape"]) == (Shape.JUMP.label, Shape.RISE.label)
    share = (t["excess"] / t["change"]).to_dict()
    assert share["steps8"] > 0.5 > share["steps1"]
