"""Benchmark (not a timed test): `sovdeploy validate` on inventories of 10, 100, 1000 hosts.

Runs the real command in a fresh process each time (interpreter start-up and imports
included, as an operator sees it), takes the best of three, and prints the time per
host so that growth faster than linear shows.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from geninv import generate

SIZES = (10, 100, 1000)
SOVDEPLOY = str(Path(sys.executable).parent / "sovdeploy")


def main() -> None:
    print(f"{'hosts':>6} {'best of 3 (s)':>14} {'ms/host':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in SIZES:
            inv = Path(tmp) / f"inv{n}"
            inv.mkdir()
            generate(inv, n)
            times = []
            for _ in range(3):
                started = time.perf_counter()
                cmd = [SOVDEPLOY, "validate", "-i", str(inv)]
                subprocess.run(cmd, check=True, capture_output=True)
                times.append(time.perf_counter() - started)
            best = min(times)
            print(f"{n:>6} {best:>14.3f} {best / n * 1000:>9.3f}")


if __name__ == "__main__":
    main()
