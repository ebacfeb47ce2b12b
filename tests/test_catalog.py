from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from emergentlab import pipeline
from emergentlab.cli import app


def test_catalog_rows_match_wei_et_al_table_1() -> None:
    df = pipeline.catalog()
    assert len(df) == 23 and (df["listed_in"] == "Wei et al. 2022, Table 1").all()
    row = df.set_index("capability").loc["Addition/subtraction (3 digit)"]
    assert (row["emergent_model"], row["emergent_params"], row["emergent_train_flops"]) == ("GPT-3", 1.3e10, 2.3e22)
    assert row["after_accuracy"] == 0.802 and np.isnan(row["before_accuracy"])
    mmlu = df.set_index("capability").loc["MMLU Benchmark (57 topic avg.)"]
    assert (mmlu["before_accuracy"], mmlu["after_accuracy"]) == (0.26, 0.439)
    # a filled accuracy always names its source; accuracies are fractions
    filled = df[df["after_accuracy"].notna() | df["before_accuracy"].notna()]
    assert filled["accuracy_source"].notna().all()
    acc = df[["before_accuracy", "after_accuracy"]].to_numpy().ravel()
    acc = acc[np.isfinite(acc)]
    assert len(acc) == 3 and ((acc >= 0) & (acc <= 1)).all()
    assert df["setting"].isin(["few-shot prompting", "augmented prompting"]).all()


def test_catalog_command() -> None:
    res = CliRunner().invoke(app, ["catalog", "--json"])
    assert res.exit_code == 0, res.output
    caps = json.loads(res.stdout)["capabilities"]
    assert any(c["capability"] == "Calibration via P(True)" and c["emergent_params"] == 5.2e10 for c in caps)
