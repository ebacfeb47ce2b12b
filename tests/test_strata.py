from __future__ import annotations

from dataclasses import replace

import pandas as pd

from emergentlab import metrics
from emergentlab.analysis import synthetic as syn
from emergentlab.analysis.analyze import Analysis
from emergentlab.analysis.strata import strata_verdicts
from emergentlab.experiments import study as study_exp


def _mixed_records() -> pd.DataFrame:
    """One task whose easy (1-digit) examples improve smoothly while its hard (3-digit) ones get worse."""
    easy = syn.records({"easy": syn.schaeffer}, n_examples=60, seed=1)
    hard = syn.records({"hard": syn.inverse}, n_examples=60, seed=2)
    recs = ([replace(r, task="add", example_id=f"e{r.example_id}", metadata={"digits": 1}) for r in easy]
            + [replace(r, task="add", example_id=f"h{r.example_id}", metadata={"digits": 3}) for r in hard])
    return pd.DataFrame([r.__dict__ for r in recs])


def test_each_difficulty_gets_its_own_verdict() -> None:
    records = _mixed_records()
    scores = metrics.compute(records)
    st = strata_verdicts(scores, syn.rungs_frame(), records, "digits", "params", n_boot=200, seed=0)
    em = st[st["metric"] == "exact_match"].set_index("stratum")
    assert list(em.index) == ["1", "3"] and (em["examples"] == 60).all()
    assert em.at["1", "last"] > em.at["1", "first"] and em.at["3", "last"] < em.at["3", "first"]
    assert em.at["1", "verdict"] in ("mirage", "smooth", "emergent") and em.at["3", "verdict"] == "inverse"
    # a key no example carries gives no strata, and a stratum below MIN_EXAMPLES is not judged
    assert strata_verdicts(scores, syn.rungs_frame(), records, "steps", "params", n_boot=50).empty
    few = records[records["example_id"].str[1:].astype(int) < 10]
    assert strata_verdicts(metrics.compute(few), syn.rungs_frame(), few, "digits", "params", n_boot=50).empty


def test_report_shows_strata_side_by_side() -> None:
    records = _mixed_records()
    a = Analysis(n_boot=200).fit(metrics.compute(records), syn.rungs_frame(), records, strata="digits")
    secs = study_exp.sections(a, records)
    strata = [s for s in secs if s.title == "Verdicts per digits"]
    assert len(strata) == 1 and secs.index(strata[0]) == 1  # right after the verdict table
    tab = strata[0].tables[0].frame
    assert set(tab["digits"]) == {"1", "3"} and "verdict" in tab
    assert Analysis(n_boot=50).fit(metrics.compute(records), syn.rungs_frame(), records).strata_.empty
