"""The report from a records store, checked as a person would: rendered in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from emergentlab.analysis import synthetic as syn
from emergentlab.errors import UserError
from emergentlab.report.html import build_report, load_verdict_table
from emergentlab.report.sections import Section
from emergentlab.store import Store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("run")
    with Store(root / "records.sqlite") as st:
        for m, f in syn.ladder():
            st.put_rung("synthetic", m, "synthetic", f)
        st.put_records(syn.records({"schaeffer": syn.schaeffer, EVIL: syn.step}, n_examples=80))
    extra = Section(title="Grokking", paragraphs=[f"validation jumps {EVIL}"], images=[], tables=[])
    return build_report(root, None, root / "report", extra_sections=[extra])


@pytest.mark.slow
def test_report_is_one_self_contained_escaped_file(report: Path) -> None:
    html = report.read_text()
    assert html.index('id="verdict-table"') < html.index("<img")  # the verdict table comes first
    assert EVIL not in html and "&lt;script&gt;" in html  # autoescaped, extra sections included
    assert 'src="data:image/png;base64,' in html and not re.search(r'src="(?!data:)', html)  # offline
    assert len(list(report.parent.glob("*.png"))) >= 2 and "Grokking" in html
    vt = load_verdict_table(report)
    assert vt.set_index(["task", "pair"]).loc[("schaeffer", "exact_match / token_accuracy"), "verdict"] == "mirage"


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs the Debian chromium package (CI installs it)")
def test_report_as_shown_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    assert CHROMIUM is not None
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1600"]
    dom = subprocess.run([*args, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    text = re.sub(r"<[^>]+>", " ", dom)
    assert "Verdicts" in text and "mirage" in text and "emergent" in text
    assert "alert(1)" in text and "<script>alert" not in dom  # shown as text, never as a script element
    shot = tmp_path / "report.png"
    subprocess.run([*args, f"--screenshot={shot}", report.as_uri()], capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 20_000  # a rendered page with figures, not a blank one


def test_store_errors_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no records store"):
        build_report(tmp_path / "nowhere", None, tmp_path / "out")
    with Store(tmp_path / "records.sqlite") as st:
        for m, f in syn.ladder(rungs=2):
            st.put_rung("two", m, "synthetic", f)
        st.put_records(syn.records({"t": syn.step}, n_examples=5, rungs=2, study="two"))
    with pytest.raises(UserError, match="at least 3"):
        build_report(tmp_path, None, tmp_path / "out")
