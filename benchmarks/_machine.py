"""Machine facts every benchmark result carries: CPU model, cores, torch threads, date."""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {dt.date.today().isoformat()}"


def write_result(name: str, body: str) -> Path:
    """benchmarks/results/NAME.md with a machine-and-date header."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(f"# {name}\n\nMachine: {machine()}\n\n{body.strip()}\n")
    return path
