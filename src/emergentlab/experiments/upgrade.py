"""The upgrade gate: score OLD and NEW on the same suite and say, per category and per item, what improved, what
regressed and what stayed the same — by paired tests (`analysis.paired`), not a fixed tolerance.

A suite is a shipped name (`starter`), a folder of task files (each `*.jsonl` a JSONL task, each `*.json` or
subfolder with a `task.json` a BIG-bench task; the file name is the category), one JSONL file, or a TOML file
with `[[tasks]]` entries written as in a study file (generators, JSONL, BIG-bench; `n`, `shots`, `choices`).

Per category (task × prompt variant) two paired tests: the pass/fail metric of the task's kind (exact match,
numeric exact match, or multiple-choice grade) by McNemar's exact test, and a continuous metric (mean target
log-prob in nats/token, or the probability on the right choice) by a paired bootstrap; p-values adjusted across
categories by Holm (default) or Benjamini–Hochberg. The gate fails when a pass/fail metric (and, with
`gate_continuous`, a continuous one) has a significant regression. An item is a *new capability* when OLD failed
it with the right answer's probability at most `near_zero`, and NEW passes it with that probability at least
`solved`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emergentlab import metrics
from emergentlab.analysis.paired import CORRECTIONS, compare_scores
from emergentlab.errors import UserError, read_toml
from emergentlab.records import Progress
from emergentlab.runner import RunSummary, run_study
from emergentlab.sections import Section, Table
from emergentlab.store import Store
from emergentlab.study import Study, parse_study

NAME = "upgrade"
ROLES = ("old", "new")
SUITES_DIR = Path(__file__).resolve().parents[1] / "data" / "suites"
# per task kind: the pass/fail metric, the continuous metric tested beside it, and the right answer's probability
PASS_METRIC = {"generative": "exact_match", "numeric": "numeric_exact", "multiple_choice": "mc_grade"}
CONTINUOUS_METRIC = {"generative": "target_logprob", "numeric": "target_logprob",
                     "multiple_choice": "correct_choice_prob"}
PROB_METRIC = {"generative": "expected_exact_match", "numeric": "expected_exact_match",
               "multiple_choice": "correct_choice_prob"}
ITEMS_SHOWN = 25


@dataclass(frozen=True)
class UpgradeConfig:
    """What to compare and how. `old`/`new` are backend specs (`tiny:PATH`, `hf:ORG/NAME`, …); `alpha` the
    level of every test after `correction` ("holm", "bh" or "none"); `n` the most items per category; `near_zero`
    and `solved` (probabilities) define a new capability; `n_boot` bootstrap resamples for continuous metrics."""

    old: str
    new: str
    suite: str = "starter"
    out: Path = Path("runs/compare")
    alpha: float = 0.05
    correction: str = "holm"
    n: int = 1000
    shots: tuple[int, ...] = (0,)
    n_boot: int = 2000
    seed: int = 0
    near_zero: float = 0.05
    solved: float = 0.5
    gate_continuous: bool = False
    batch_size: int = 64


@dataclass
class Comparison:
    """The result. `tests`: one row per (category, variant, metric), columns `analysis.paired.TEST_COLUMNS`
    plus `gates`; `items`: one row per (category, variant, item) with both models' outputs, pass/fail and the
    right answer's probability; `failed`: whether the gate fails (a gating metric significantly regressed)."""

    config: UpgradeConfig
    tests: pd.DataFrame
    items: pd.DataFrame
    failed: bool
    new_capabilities: pd.DataFrame = field(init=False)
    regressed_items: pd.DataFrame = field(init=False)

    def __post_init__(self) -> None:
        self.new_capabilities = self.items[self.items["new_capability"]].reset_index(drop=True)
        self.regressed_items = self.items[self.items["change"] == "regressed"].reset_index(drop=True)


def _suite_path(suite: str) -> Path:
    p = Path(suite).expanduser()
    if not p.exists() and (SUITES_DIR / suite).is_dir():
        return SUITES_DIR / suite
    if not p.exists():
        shipped = ", ".join(sorted(d.name for d in SUITES_DIR.iterdir() if d.is_dir()))
        raise UserError(f"no such file or folder, and not a shipped suite ({shipped})", source=suite,
                        field="--suite")
    return p


def suite_tasks(suite: str) -> tuple[list[dict[str, Any]], Path]:
    """The suite's `[[tasks]]` entries (as a study file writes them) and the folder their paths are relative to."""
    p = _suite_path(suite)
    if p.is_file() and p.suffix == ".toml":
        data = read_toml(p)
        extra = sorted(set(data) - {"tasks"})
        if extra:
            raise UserError(f"unknown field(s) {', '.join(extra)}; a suite file holds [[tasks]] only", source=str(p))
        tasks = data.get("tasks")
        if not isinstance(tasks, list) or not tasks or not all(isinstance(t, dict) for t in tasks):
            raise UserError("needs at least one [[tasks]] table", source=str(p), field="tasks")
        return tasks, p.parent
    if p.is_file() and p.suffix == ".jsonl":
        return [{"jsonl": p.name}], p.parent
    if p.is_dir():
        tasks = [{"jsonl": f.name} for f in sorted(p.glob("*.jsonl"))]
        tasks += [{"bigbench": f.name} for f in sorted(p.glob("*.json"))]
        tasks += [{"bigbench": d.name} for d in sorted(p.iterdir()) if (d / "task.json").is_file()]
        if tasks:
            return tasks, p
    raise UserError("a suite is a folder of *.jsonl / BIG-bench task files, a .jsonl file or a .toml file with "
                    "[[tasks]]", source=str(p), field="--suite")


def _model_spec(spec: str, role: str) -> str:
    """`spec` with a file-backed model's path made absolute (from the working directory, where the user typed it)."""
    kind, sep, rest = spec.partition(":")
    if sep and rest and (kind in ("tiny", "gguf") or (kind == "hf" and rest.startswith((".", "/", "~")))):
        path = Path(rest).expanduser().resolve()
        if not path.exists():
            raise UserError(f"{path} does not exist", source=spec, field=role.upper())
        return f"{kind}:{path}"
    return spec


def make_study(config: UpgradeConfig) -> Study:
    """The two-rung study (`old`, `new`) × every task of the suite, validated like a study file."""
    if not 0 < config.alpha < 1:
        raise UserError(f"must be in (0, 1), got {config.alpha}", field="--alpha")
    if config.correction not in CORRECTIONS:
        raise UserError(f"unknown correction {config.correction!r}; known: {', '.join(CORRECTIONS)}",
                        field="--correction")
    tasks, base = suite_tasks(config.suite)
    data = {"name": NAME, "seed": config.seed, "out": str(Path(config.out).resolve()),
            "shots": list(config.shots), "batch_size": config.batch_size,
            "ladder": [{"name": r, "model": _model_spec(s, r)} for r, s in zip(ROLES, (config.old, config.new),
                                                                              strict=True)],
            "tasks": [{"n": config.n, **t} for t in tasks]}
    return parse_study(data, config.suite, base)


def run(config: UpgradeConfig, store: Store, progress: Progress) -> RunSummary:
    """Score OLD and NEW on every item of the suite into `store` (what is stored is kept: a rerun resumes).

    Raises UserError when the store already holds a comparison of other models (a stale `old` would be reused)."""
    study = make_study(config)
    stored = store.rungs(NAME)
    for rung in study.ladder:
        prev = stored[stored["model"] == rung.name]
        if not prev.empty and prev["spec"].iat[0] != rung.spec:
            raise UserError(f"holds a comparison of {prev['spec'].iat[0]} as {rung.name.upper()}; use another "
                            "--out", source=str(store.path))
    return run_study(study, store, progress)


def _output(r: pd.Series) -> str:
    if r["kind"] == "multiple_choice":
        lps = r["choice_logprobs"]
        return str(r["choices"][int(np.argmax(lps))]) if lps else ""
    return str(r["generation"])


def _items(records: pd.DataFrame, scores: pd.DataFrame, config: UpgradeConfig) -> pd.DataFrame:
    """One row per (task, variant, example): each model's output, pass/fail, right-answer probability; the change."""
    key = ["task", "variant", "example_id"]
    kind = records.groupby("task")["kind"].first()
    rec = records.assign(output=records.apply(_output, axis=1)) if len(records) else records.assign(output="")
    wide = rec.pivot_table(index=key, columns="model", values="output", aggfunc="first")
    base = rec[rec["model"] == "new"].set_index(key)[["prompt", "target"]]
    out = base.join(wide.rename(columns={r: f"{r}_output" for r in ROLES}))
    for col, table in (("pass", PASS_METRIC), ("p", PROB_METRIC)):
        want = scores["metric"].to_numpy() == scores["task"].map(kind).map(table).to_numpy()
        piv = scores[want].pivot_table(index=key, columns="model", values="value", aggfunc="first")
        out = out.join(piv.rename(columns={r: f"{r}_{col}" for r in ROLES}))
    out = out.reset_index()
    op, np_ = out["old_pass"].to_numpy(dtype=float), out["new_pass"].to_numpy(dtype=float)
    out["change"] = np.where((op == 1) & (np_ == 0), "regressed", np.where((op == 0) & (np_ == 1), "improved",
                                                                          "unchanged"))
    out["new_capability"] = ((op == 0) & (out["old_p"].to_numpy(dtype=float) <= config.near_zero) & (np_ == 1)
                             & (out["new_p"].to_numpy(dtype=float) >= config.solved))
    return out[[*key, "prompt", "target", "old_output", "new_output", "old_pass", "new_pass", "old_p", "new_p",
                "change", "new_capability"]]


def compare(store: Store, config: UpgradeConfig) -> Comparison:
    """The paired tests, the item table and the gate for what `store` holds of the comparison."""
    records = store.records(NAME)
    models = set(records["model"])
    if records.empty or not set(ROLES) <= models:
        raise UserError("holds no scores of both models; run the comparison first", source=str(store.path))
    scores = metrics.compute(records)
    kind = records.groupby("task")["kind"].first()
    task_kind = scores["task"].map(kind)
    tested = scores["metric"].to_numpy() == task_kind.map(PASS_METRIC).to_numpy()
    tested |= scores["metric"].to_numpy() == task_kind.map(CONTINUOUS_METRIC).to_numpy()
    wide = (scores[tested].pivot_table(index=["task", "variant", "metric", "example_id"], columns="model",
                                       values="value", aggfunc="first").reset_index())
    tests = compare_scores(wide, config.alpha, config.correction, config.n_boot, config.seed)
    tests["gates"] = [config.gate_continuous or metrics.METRICS[m].kind == "discontinuous" for m in tests["metric"]]
    failed = bool(((tests["status"] == "regressed") & tests["gates"]).any())
    return Comparison(config, tests, _items(records, scores, config), failed)


# --- the report ----------------------------------------------------------------------------------------------------
def _sentence(r: pd.Series, alpha: float) -> str:
    what = {"regressed": "REGRESSED", "improved": "improved", "unchanged": "no significant change"}[r["status"]]
    return (f"{r['task']} ({r['variant']}): {r['metric']} {r['old']:.3g} → {r['new']:.3g} "
            f"(change {r['delta']:+.3g}, 95 % interval {r['delta_lo']:+.3g} to {r['delta_hi']:+.3g}; "
            f"{r['regressed_items']} item(s) worse, {r['improved_items']} better; adjusted p = {r['p_adjusted']:.3g} "
            f"against α = {alpha:g}): {what}.")


def verdict(c: Comparison) -> str:
    """One sentence: does the gate pass, and why."""
    t = c.tests
    bad = t[(t["status"] == "regressed") & t["gates"]]
    if c.failed:
        return (f"Upgrade gate FAILED: a significant regression in {len(bad)} test(s) "
                f"({', '.join(f'{r.task} {r.metric}' for r in bad.itertuples())}).")
    return (f"Upgrade gate passed: no significant regression in {int(t['gates'].sum())} gating test(s); "
            f"{int((t['status'] == 'improved').sum())} improved, {len(c.new_capabilities)} new capability item(s).")


def sections(c: Comparison) -> list[Section]:
    """The gate's report: the verdict and a sentence per test first, then the tests, new capabilities and the
    items that flipped."""
    cfg = c.config
    corr = {"holm": "Holm", "bh": "Benjamini–Hochberg", "none": "no"}[cfg.correction]
    t = c.tests
    shown_tests = pd.DataFrame({
        "task": t["task"], "variant": t["variant"], "metric": t["metric"], "test": t["test"], "n": t["n"],
        "old → new": [f"{a:.3g} → {b:.3g}" for a, b in zip(t["old"], t["new"], strict=True)],
        "change [95 %]": [f"{d:+.3g} [{lo:+.3g}, {hi:+.3g}]" for d, lo, hi in zip(t["delta"], t["delta_lo"],
                                                                                  t["delta_hi"], strict=True)],
        "worse / better": [f"{w} / {b}" for w, b in zip(t["regressed_items"], t["improved_items"], strict=True)],
        "adjusted p": t["p_adjusted"], "status": t["status"], "gates": t["gates"]})
    tests = Table(shown_tests,
        f"Paired tests per category (task × prompt variant) and metric, OLD = {cfg.old}, NEW = {cfg.new}. "
        "old → new: the means; change: NEW − OLD with its 95 % interval; both in the metric's unit (fractions for "
        "pass/fail metrics, nats/token for target_logprob, probabilities for correct_choice_prob). worse / better: "
        "items whose score fell / rose. mcnemar: McNemar's exact test on the items that flipped (its interval is "
        "the Wald interval for paired proportions); bootstrap: paired bootstrap over items "
        f"({cfg.n_boot} resamples). adjusted p: {corr} correction across categories of each metric; status at "
        f"α = {cfg.alpha:g}. gates: whether a regression in this row fails the gate. Unrounded numbers and "
        "unadjusted p-values: tests.csv.", key="upgrade-tests")
    shown = ["task", "variant", "example_id", "prompt", "target", "old_output", "new_output", "old_p", "new_p"]
    out = [Section(title="Upgrade gate", paragraphs=[
        f"Suite {cfg.suite}: {len(c.items)} items in {c.items['task'].nunique()} category(ies). Both models answered "
        "the same items, so each item is its own control. Exit status 1 when the gate fails."],
        tables=[tests], summary=[verdict(c), *(_sentence(r, cfg.alpha) for _, r in c.tests.iterrows())])]
    for title, frame, what in (
            ("New capabilities", c.new_capabilities,
             f"items OLD failed with the right answer's probability at most {cfg.near_zero:g} and NEW passes with "
             f"at least {cfg.solved:g}"),
            ("Items that regressed", c.regressed_items, "items OLD passed and NEW fails")):
        if frame.empty:
            out.append(Section(title=title, paragraphs=[f"None: no {what}."]))
            continue
        out.append(Section(title=title, tables=[Table(frame[shown].head(ITEMS_SHOWN),
            f"{len(frame)} {what} (first {min(len(frame), ITEMS_SHOWN)} shown; all in items.csv). old_p/new_p: "
            "each model's probability of the right answer (of the whole target under teacher forcing, or of the "
            "right choice normalised over the choices).")]))
    return out


def junit_xml(c: Comparison) -> str:
    """JUnit XML for CI: one test case per (category, variant, metric); a gating regression is a failure, a
    non-gating one is noted in the case's system-out."""
    t = c.tests
    fails = int(((t["status"] == "regressed") & t["gates"]).sum())
    root = ET.Element("testsuites", name="emergentlab compare", tests=str(len(t)), failures=str(fails))
    suite = ET.SubElement(root, "testsuite", name="emergentlab.compare", tests=str(len(t)), failures=str(fails),
                          errors="0", skipped="0")
    for r in t.itertuples(index=False):
        case = ET.SubElement(suite, "testcase", classname=f"emergentlab.compare.{r.task}",
                             name=f"{r.metric} [{r.variant}]", time="0")
        text = _sentence(pd.Series(r._asdict()), c.config.alpha)
        if r.status == "regressed" and r.gates:
            ET.SubElement(case, "failure", message=f"significant regression: {r.metric} {r.old:.3g} → {r.new:.3g}",
                          type="regression").text = text
        else:
            ET.SubElement(case, "system-out").text = text
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
