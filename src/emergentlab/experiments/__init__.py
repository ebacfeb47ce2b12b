"""One module per experiment kind, each with a typed config, `run(config, store, progress)` and
`sections(store, study)` (the contract is in `emergentlab.experiments.base`).

`EXPERIMENTS` maps each kind's `NAME` (the ``experiment`` column of what it stores) to its module, so the report can
collect the sections of whatever a store holds.
"""

from __future__ import annotations

from emergentlab.experiments import (
    bursty,
    cot,
    finetune,
    grokking,
    icl,
    induction,
    passuntil,
    quantization,
    sae,
    tokenization,
)
from emergentlab.experiments.base import Experiment
from emergentlab.sections import Section
from emergentlab.store import Store

EXPERIMENTS: dict[str, Experiment] = {grokking.NAME: grokking, induction.NAME: induction, cot.NAME: cot,
                                      icl.NAME: icl, bursty.NAME: bursty, quantization.NAME: quantization,
                                      sae.NAME: sae, passuntil.NAME: passuntil, tokenization.NAME: tokenization,
                                      finetune.NAME: finetune}


def experiment_sections(store: Store, study: str | None) -> list[Section]:
    """The sections of every registered experiment with runs under `study` (every study if None), in registry order."""
    return [s for module in EXPERIMENTS.values() for s in module.sections(store, study)]


__all__ = ["EXPERIMENTS", "Experiment", "experiment_sections"]
