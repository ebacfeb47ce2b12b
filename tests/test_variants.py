"""`[[compare]]`: parsed from the study file, saved and reloaded, and turned into a section from records."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from emergentlab.analysis import synthetic
from emergentlab.analysis.simulator import records_frame
from emergentlab.errors import UserError
from emergentlab.experiments.variants import compare_section, crossing_text
from emergentlab.study import CompareSpec, load_saved_study, load_study, save_study


def _sigmoid(t0: float):  # noqa: ANN202 (a synthetic Shape)
    def shape(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = 1 / (1 + np.exp(-(np.log10(n) - t0) / 0.5))
        return p, p
    return shape


def _records(t0_a: float, t0_b: float, n: int = 250) -> list:  # type: ignore[type-arg]
    """One task, two variants: per-token success a sigmoid in log10 params centred at t0 (k = 1: exact = token)."""
    a = synthetic.records({"t": _sigmoid(t0_a)}, n_examples=n, k=1, seed=1)
    b = synthetic.records({"t": _sigmoid(t0_b)}, n_examples=n, k=1, seed=2)
    return [replace(r, variant="3shot") for r in a] + [replace(r, variant="0shot") for r in b]


def test_section_recovers_a_planted_shift() -> None:
    spec = CompareSpec("3shot", "0shot", "t", "exact_match")
    rungs = synthetic.rungs_frame()
    s = compare_section(spec, records_frame(_records(7.5, 8.5)), rungs, "params", n_boot=300)
    marks = {m.label: np.log10(m.x) for m in s.figures[0].panels[0].markers}
    assert marks["3shot crosses 0.5"] == pytest.approx(7.5, abs=0.2)
    assert marks["0shot crosses 0.5"] == pytest.approx(8.5, abs=0.2)
    frame = s.tables[0].frame
    assert list(frame["model"]) == list(rungs["model"]) and frame["significant"].any()
    assert (frame["difference"] >= -0.1).all()  # 3shot never worse: no flip
    assert "no flip within the ladder" in s.paragraphs[2] and s.summary
    assert "extrapolated" not in s.paragraphs[1]  # both cross inside the ladder


def test_a_crossing_past_the_largest_rung_is_called_extrapolated() -> None:
    rungs = synthetic.rungs_frame().iloc[:6]  # largest rung at log10 params 8.86; 0shot crosses 0.5 past it
    s = compare_section(CompareSpec("3shot", "0shot", "t", "exact_match"), records_frame(_records(7.5, 9.2)), rungs,
                        "params", n_boot=300)
    text = s.paragraphs[1]
    assert "0shot at " in text and "(past the largest rung, 8.86: extrapolated)" in text and text in s.summary[0]
    assert text.count("extrapolated") == 1  # 3shot's crossing lies inside the ladder


def test_crossing_text() -> None:
    assert crossing_text(4.404, top=5.0) == "4.40"
    assert crossing_text(5.0, top=5.0) == "5.00"  # at the largest rung: measured, not extrapolated
    assert crossing_text(5.4, top=5.0) == "5.40 (past the largest rung, 5.00: extrapolated)"
    assert crossing_text(float("nan"), top=5.0) == "never"


def test_too_few_paired_examples_says_so() -> None:
    recs = [r for r in _records(7.5, 8.5, n=3) if r.variant == "3shot" or r.example_id == "0000"]
    s = compare_section(CompareSpec("3shot", "0shot", "t", "exact_match"), records_frame(recs),
                        synthetic.rungs_frame(), "params")
    assert not s.tables and "1 example(s)" in s.paragraphs[0]


def _study(tmp_path: Path, ckpt: Path, compare: str) -> Path:
    p = tmp_path / "s.toml"
    p.write_text(f'shots = [0, 3]\n[[ladder]]\nmodel = "tiny:{ckpt}"\n[[tasks]]\ngenerator = "add2"\nn = 5\n'
                 f'[[compare]]\n{compare}\n')
    return p


def test_compare_parses_and_survives_save(tmp_path: Path, tiny_ckpt: Path) -> None:
    s = load_study(_study(tmp_path, tiny_ckpt, 'a = "3shot"\nb = "0shot"\ntask = "add2"\nmetric = "exact_match"'))
    assert s.compares == (CompareSpec("3shot", "0shot", "add2", "exact_match", None),)
    s.out.mkdir(parents=True)
    save_study(s)
    saved = load_saved_study(s.out)
    assert saved is not None and saved.compares == s.compares


@pytest.mark.parametrize(("body", "field"), [
    ('a = "5shot"\nb = "0shot"\ntask = "add2"\nmetric = "exact_match"', "compare[0].a"),
    ('a = "3shot"\nb = "3shot"\ntask = "add2"\nmetric = "exact_match"', "compare[0].b"),
    ('a = "3shot"\nb = "0shot"\ntask = "add9"\nmetric = "exact_match"', "compare[0].task"),
    ('a = "3shot"\nb = "0shot"\ntask = "add2"\nmetric = "vibes"', "compare[0].metric"),
    ('a = "3shot"\nb = "0shot"\ntask = "add2"\nmetric = "exact_match"\nlevel = "x"', "compare[0].level"),
    ('a = "3shot"\nb = "0shot"\ntask = "add2"\nmetric = "exact_match"\nwhat = 1', "compare[0]"),
])
def test_bad_compare_names_the_field(tmp_path: Path, tiny_ckpt: Path, body: str, field: str) -> None:
    with pytest.raises(UserError) as e:
        load_study(_study(tmp_path, tiny_ckpt, body))
    assert e.value.field == field


def test_report_of_a_study_with_compare_has_its_section(tmp_path: Path) -> None:
    from emergentlab.pipeline import build_report
    from emergentlab.store import Store
    from emergentlab.study import Rung, Study, TaskSpec

    study = Study(name="synthetic", seed=0, out=tmp_path, ladder=tuple(Rung(m, "synthetic") for m, _ in
                                                                       synthetic.ladder()),
                  tasks=(TaskSpec("generator", "add2", "t", 60, (0, 3)),),
                  compares=(CompareSpec("3shot", "0shot", "t", "exact_match", 0.5),))
    save_study(study)
    with Store(study.store_path) as store:
        for m, facts in synthetic.ladder():
            store.put_rung("synthetic", m, "synthetic", facts)
        store.put_records(_records(7.5, 8.5, n=60))
    html = build_report(tmp_path).path.read_text()
    assert "Compare 3shot vs 0shot — t · exact_match" in html and "3shot crosses 0.5 at 7." in html
