"""What scoring a study will cost on a local hf model, before running it: seconds and peak memory.

A pure function of the items' prompt lengths and the model's parameter count, read off a table measured by
`benchmarks/cost_bench.py` (SmolLM2-135M, fp32, one CPU thread, items scored one 3-token continuation each; see
benchmarks/results/cost.md). Between measured prompt lengths the time per item is interpolated on log-log axes,
beyond them extrapolated from the nearest segment; time scales with non-embedding parameters where they are known
(forward FLOPs are ~2 per such parameter per token; an embedding row is looked up, not multiplied: Gemma-3-270M
has 2.0x SmolLM2-135M's parameters and scores 100-1000-token prompts at 1.2-1.3x the time this predicts; at 10
tokens 2.4x, where its 262 k-word output head at the scored tokens outweighs the body), else with all parameters;
memory with 4 bytes per parameter (fp32 weights) on top of what the measured run held besides its weights. A
ladder's estimate is the sum over its rungs. It is a first-order guess for `run --dry-run`, good to a factor of ~2
on another machine: it ignores the shared-prefix saving (an upper bound for few-shot prompts) and how many threads
and cores there are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class CostPoint:
    """One measured row: prompt length (tokens), scoring throughput (items/s), peak RSS of the process (MB)."""

    prompt_tokens: float
    items_per_s: float
    peak_rss_mb: float


@dataclass(frozen=True)
class CostEstimate:
    """Predicted scoring time (seconds, model load excluded) and peak RSS (MB) of one model over the items."""

    seconds: float
    peak_rss_mb: float


# SmolLM2-135M-Instruct, fp32, one thread, quiet machine: benchmarks/results/cost.md (2026-12-02)
MEASURED_PARAMS = 134.5e6
MEASURED_NON_EMBEDDING_PARAMS = 106.2e6
MEASURED = (CostPoint(10, 27.2, 1112), CostPoint(100, 3.06, 1409), CostPoint(1000, 0.246, 1777))


def _seconds_per_item(length: float, table: Sequence[CostPoint]) -> float:
    pts = sorted(table, key=lambda p: p.prompt_tokens)
    x = math.log(max(length, 1.0))
    i = next((k for k in range(1, len(pts) - 1) if x <= math.log(pts[k].prompt_tokens)), len(pts) - 1)
    (x0, y0), (x1, y1) = ((math.log(p.prompt_tokens), -math.log(p.items_per_s)) for p in (pts[i - 1], pts[i]))
    return math.exp(y0 + (y1 - y0) * (x - x0) / (x1 - x0))


def estimate_cost(prompt_tokens: Sequence[int], params: float, table: Sequence[CostPoint] = MEASURED,
                  table_params: float = MEASURED_PARAMS, *, non_embedding_params: float | None = None,
                  table_non_embedding_params: float = MEASURED_NON_EMBEDDING_PARAMS) -> CostEstimate:
    """Seconds and peak RSS (MB) to score items whose prompts have these lengths (tokens) on a model of `params`
    parameters (`non_embedding_params` of them outside the embeddings, when known), scaled from `table` (measured
    at `table_params` and `table_non_embedding_params` parameters; at least two rows)."""
    if len(table) < 2:
        raise ValueError("the cost table needs at least two prompt lengths")
    if params <= 0 or table_params <= 0 or (non_embedding_params is not None and non_embedding_params <= 0):
        raise ValueError("parameter counts must be positive")
    scale = (non_embedding_params / table_non_embedding_params if non_embedding_params is not None
             else params / table_params)
    seconds = sum(_seconds_per_item(n, table) for n in prompt_tokens) * scale
    longest = max(prompt_tokens, default=0)
    # memory at the longest prompt: the measured run's memory besides its fp32 weights, plus this model's weights
    pts = sorted(table, key=lambda p: p.prompt_tokens)
    base = next((p for p in pts if p.prompt_tokens >= longest), pts[-1]).peak_rss_mb - 4 * table_params / 2**20
    return CostEstimate(seconds, base + 4 * params / 2**20)
