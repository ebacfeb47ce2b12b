"""One module per experiment kind: a typed config, `run(config, store, progress)`, and `sections(store, study)`.

`EXPERIMENTS` lists the kinds whose results a report collects from any store (training dynamics); the ladder
study (`experiments.study`) is the report's spine and is called directly by `pipeline`.
"""

from __future__ import annotations

from types import ModuleType

EXPERIMENTS: dict[str, ModuleType] = {}
