"""Score one tiny rung on a synthetic test task: the numbers the demo ladder records beside its checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emergentlab import metrics
from emergentlab.models.tiny import TinyBackend
from emergentlab.tasks import build_prompt, make_task

_MEANS = ("exact_match", "token_accuracy", "expected_exact_match", "target_logprob", "token_edit_distance")


def evaluate_rung(path: Path, task: str, n: int = 500, seed: int = 0, shots: int = 0) -> dict[str, float]:
    """Means over `n` test items of `task` of exact_match, token_accuracy (fractions), expected_exact_match
    (probability), target_logprob (nats/token) and token_edit_distance (tokens), greedy zero- or few-shot."""
    backend = TinyBackend.from_path(path)
    t = make_task(task, n=n, seed=seed)
    prompts = [build_prompt(t, ex, shots, seed) for ex in t]
    scores = backend.score(prompts, [ex.target for ex in t])
    gens = backend.generate(prompts, t.max_new_tokens, t.stop)
    rows = [{"generation": g.text, "generation_tokens": g.tokens, "target": ex.target, "target_tokens": s.tokens,
             "target_logprobs": s.logprobs, "target_greedy": s.greedy}
            for ex, s, g in zip(t, scores, gens, strict=True)]
    out = {m: float(np.mean([metrics.METRICS[m].fn(r) for r in rows])) for m in _MEANS}
    return {**out, "n": float(len(rows))}
