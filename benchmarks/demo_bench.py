"""`emergentlab demo` end to end: wall time and peak RSS of the whole process, against the issue's limits.

Runs the demo in a subprocess (fresh output folder, so nothing is resumed) and reads the child's peak RSS.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time

from _machine import write_result

LIMIT_S, LIMIT_MB = 300.0, 2048.0


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "emergentlab.cli", "demo", "--out", f"{tmp}/demo"], check=True,
                       stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        again = time.perf_counter()
        subprocess.run([sys.executable, "-m", "emergentlab.cli", "demo", "--out", f"{tmp}/demo"], check=True,
                       stdout=subprocess.DEVNULL)
        resumed = time.perf_counter() - again
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    body = f"""
| measure | value | limit | ratio to limit |
|---|---|---|---|
| `emergentlab demo` wall, fresh | {wall:.1f} s | {LIMIT_S:.0f} s | {wall / LIMIT_S:.2f} |
| `emergentlab demo` wall, second run (records resumed) | {resumed:.1f} s | – | {resumed / wall:.2f} of fresh |
| peak RSS (largest child) | {rss_mb:.0f} MB | {LIMIT_MB:.0f} MB | {rss_mb / LIMIT_MB:.2f} |
"""
    print(write_result("demo", body))
    print(body)


if __name__ == "__main__":
    main()
