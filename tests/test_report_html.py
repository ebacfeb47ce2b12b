"""The report from a records store, checked as a person would: rendered in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from emergentlab.analysis import synthetic as syn
from emergentlab.errors import UserError
from emergentlab.pipeline import Report, build_report
from emergentlab.sections import Section
from emergentlab.store import Store

LONG = "w" * 300  # one unbreakable word: tables must wrap it, not overflow the page
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EVIL = "<script>alert(1)</script>"
PAYLOADS = [EVIL, '"><img src=x onerror=alert(2)>', "<svg onload=alert(3)>", "javascript:alert(4)",
            "</table><iframe src=javascript:alert(5)>", "{{ 7*7 }}", "<a href='javascript:alert(6)'>x</a>"]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    root = tmp_path_factory.mktemp("run")
    with Store(root / "records.sqlite") as st:
        for m, f in syn.ladder():
            st.put_rung("synthetic", m, "synthetic", f)
        st.put_records(syn.records({"schaeffer": syn.schaeffer, EVIL: syn.step, LONG: syn.step}, n_examples=80))
    extra = Section(title="Grokking", paragraphs=[f"validation jumps {p}" for p in PAYLOADS])
    return build_report(root, extra=[extra])


@pytest.mark.slow
def test_report_reads_top_to_bottom_and_is_one_escaped_file(report: Report) -> None:
    html = report.path.read_text()
    # a summary in words first, then the verdict table, then figures
    assert html.index('id="summary"') < html.index('id="verdict-table"') < html.index("<img")
    assert "schaeffer (plain): exact_match is mirage" in html
    assert all(p not in html for p in PAYLOADS if "<" in p) and "&lt;script&gt;" in html  # autoescaped
    assert "{{" in html  # template syntax in user text is shown, not evaluated
    assert 'src="data:image/png;base64,' in html and not re.search(r'src="(?!data:)', html)  # offline
    pngs = sorted(p.name for p in (report.path.parent / "plots").glob("*.png"))
    assert len(pngs) >= 2 and all(re.fullmatch(r"fig-\d\d\.png", n) for n in pngs)  # never named after user text
    assert "<caption>" in html and html.count("<table") == html.count("<caption>")  # every table says what it is
    vt = report.verdicts.set_index(["task", "metric"])
    assert vt.loc[("schaeffer", "exact_match"), "verdict"] == "mirage"


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs the Debian chromium package (CI installs it)")
def test_report_as_shown_in_headless_chromium(report: Report, tmp_path: Path) -> None:
    assert CHROMIUM is not None
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1600"]
    dom = subprocess.run([*args, "--dump-dom", report.path.as_uri()], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    text = re.sub(r"<[^>]+>", " ", dom)
    assert "Summary" in text and "Verdicts" in text and "mirage" in text and "emergent" in text
    assert "alert(1)" in text and "<script>alert" not in dom and "<iframe" not in dom
    for tag in ("<svg", "<img src=x", "<a href='javascript"):
        assert tag not in dom  # payloads are shown as text, never become elements
    # nothing is wider than the 1280 px window (the verdict table used to overflow): measure it in the page itself
    probe = tmp_path / "probe.html"
    probe.write_text(report.path.read_text().replace(
        "</body>", "<script>document.title = 'W=' + document.documentElement.scrollWidth;</script></body>"))
    measured = subprocess.run([*args, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120,
                              check=True).stdout
    width = int(re.search(r"<title>W=(\d+)</title>", measured).group(1))  # type: ignore[union-attr]
    assert width <= 1280
    shot = tmp_path / "report.png"
    subprocess.run([*args, f"--screenshot={shot}", report.path.as_uri()], capture_output=True, timeout=120,
                   check=True)
    assert shot.stat().st_size > 20_000  # a rendered page with figures, not a blank one


def test_store_errors_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no records.sqlite"):
        build_report(tmp_path / "nowhere")
    with Store(tmp_path / "records.sqlite") as st:
        for m, f in syn.ladder(rungs=2):
            st.put_rung("two", m, "synthetic", f)
        st.put_records(syn.records({"t": syn.step}, n_examples=5, rungs=2, study="two"))
    with pytest.raises(UserError, match="at least 3"):
        build_report(tmp_path)
