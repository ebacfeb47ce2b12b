"""Machine facts every benchmark result carries: CPU model, cores, torch threads, date."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    return f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, {dt.date.today().isoformat()}"


def write_result(name: str, body: str) -> Path:
    """benchmarks/results/NAME.md with a machine-and-date header; sections another script put there
    (`put_section`) are kept after the new body."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.md"
    old = path.read_text() if path.is_file() else ""
    kept = "".join(f"\n{m.group(0)}\n" for m in re.finditer(r"(?s)<!-- (\S+): start -->.*?<!-- \1: end -->", old))
    path.write_text(f"# {name}\n\nMachine: {machine()}\n\n{body.strip()}\n{kept}")
    return path


def load_note() -> str:
    """The machine's load averages (1, 5, 15 min) as `uptime` prints them: these results share the cores."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f}, {five:.1f}, {fifteen:.1f} on {os.cpu_count()} cores"


def put_section(name: str, key: str, body: str) -> Path:
    """Put `body` into benchmarks/results/NAME.md between markers named `key`, replacing what a previous run put
    there (the rest of the file, written by other scripts, stays); appended when the markers are not there yet."""
    path = RESULTS / f"{name}.md"
    text = path.read_text() if path.is_file() else f"# {name}\n"
    start, end = f"<!-- {key}: start -->", f"<!-- {key}: end -->"
    block = f"{start}\n\n{body.strip()}\n\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
    return path
