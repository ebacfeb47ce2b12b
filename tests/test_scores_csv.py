from __future__ import annotations

from pathlib import Path

import pytest

import emergentlab
from emergentlab.analysis.analyze import Analysis
from emergentlab.analysis.scores_csv import read_scores_csv, scores_to_sets
from emergentlab.errors import UserError
from emergentlab.pipeline import analyze_csv

GPT3 = Path(emergentlab.__file__).parent / "data" / "published" / "gpt3_addition.csv"

SMALL = """# a comment line
model,params,loss,task,metric,value,n
a,1e8,3.0,add,exact_match,0.00,500
b,1e9,2.6,add,exact_match,0.01,500
c,1e10,2.3,add,exact_match,0.02,500
d,1e11,2.1,add,exact_match,0.60,500
a,1e8,3.0,add,token_edit_distance,2.9,500
b,1e9,2.6,add,token_edit_distance,2.2,500
c,1e10,2.3,add,token_edit_distance,1.5,500
d,1e11,2.1,add,token_edit_distance,0.8,500
"""


def analysis_from_csv(path: Path) -> Analysis:
    return Analysis(seed=0).fit_sets(scores_to_sets(read_scores_csv(path), seed=0, source=str(path)))


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "scores.csv"
    p.write_text(text)
    return p


def test_published_gpt3_addition_reads_and_is_emergent_per_wei(tmp_path: Path) -> None:
    a = analysis_from_csv(GPT3)
    row = a.table_.iloc[0]
    assert row["task"] == "3-digit addition" and row["verdict"] == "emergent" and row["partner"] is None
    assert bool(row["wei_emergent"]) and "mirage is not ruled out" in row["note"]
    rep = analyze_csv(GPT3, tmp_path / "r")
    assert rep.path.exists() and rep.verdicts["verdict"].tolist() == ["emergent"]


def test_small_table_with_a_continuous_partner(tmp_path: Path) -> None:
    a = analysis_from_csv(_write(tmp_path, SMALL))
    row = a.table_.iloc[0]
    assert row["partner"] == "token_edit_distance" and row["shape"] == "jump"
    assert row["partner_shape"] == "rise" and row["verdict"] == "mirage"
    assert set(a.sets_) == {"params", "loss"} and "loss_threshold" in a.table_
    assert 0 < row["confidence"] <= 1  # binomial replicates from n


def test_without_n_there_is_no_interval(tmp_path: Path) -> None:
    sets = scores_to_sets(read_scores_csv(_write(tmp_path, SMALL.replace(",n", "").replace(",500", ""))))
    assert sets["params"].boot is None


@pytest.mark.parametrize(("text", "field", "words"), [
    ("model,params,task,value\na,1,t,0.1\n", "metric", "missing column"),
    (SMALL.replace("1e9,2.6", "big,2.6"), "params", "non-numeric"),
    (SMALL.replace("0.01,500", "n/a,500"), "value", "non-numeric"),
    ("model,params,task,metric,value\na,1e9,t,exact_match,0.1\na,1e9,u,exact_match,0.2\n", "model", "at least 3"),
    (SMALL.replace("c,1e10,2.3,add,token_edit_distance,1.5,500\n", ""), "value", "no value for model"),
    (SMALL + "a,1e8,3.0,add,exact_match,0.5,500\n", "value", "two values"),
])
def test_bad_tables_are_user_errors_naming_file_and_column(tmp_path: Path, text: str, field: str, words: str) -> None:
    p = _write(tmp_path, text)
    with pytest.raises(UserError) as e:
        analysis_from_csv(p)
    assert e.value.field == field and e.value.source == str(p)
    assert words in str(e.value) and str(p) in str(e.value) and "\n" not in str(e.value)
