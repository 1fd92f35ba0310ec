"""Run export steps: each command's output into ``<file>.part``, hashed, then renamed.

Runs on the host that holds the store (``ansible.builtin.script``, as root) and on the
deployer for its own stores, so it uses the standard library only. Reads the steps as
JSON (a file argument), writes under a directory, and prints one JSON result a step.
A file is renamed to its final name only once it is complete and, where the store
records what it must hash to (Glance's image hashes), once it matches: an interrupted
or failed export leaves only a ``.part`` file, which the next run replaces.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def _run(argv: Sequence[str], timeout: int) -> None:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {tail[0]}")


def export(step: Mapping[str, Any], root: Path, timeout: int = 3600) -> dict[str, Any]:
    """Run one step; return its result (never raises for the step's own failure)."""
    final = root / str(step["file"])
    part = final.with_name(final.name + ".part")
    final.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    result: dict[str, Any] = {
        "store": step["store"],
        "item": step["item"],
        "file": step["file"],
        "point": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "ok": False,
    }
    try:
        for argv in step.get("before", []):
            _run(argv, timeout)
        try:
            sha256 = hashlib.sha256()
            expect = step.get("expect")
            other = hashlib.new(expect[0]) if expect else None
            size = 0
            with part.open("wb") as out:
                env = {**os.environ, **step["env"]} if step.get("env") else None
                proc = subprocess.Popen(
                    list(step["argv"]), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
                )
                assert proc.stdout is not None
                while chunk := proc.stdout.read(CHUNK):
                    out.write(chunk)
                    sha256.update(chunk)
                    if other is not None:
                        other.update(chunk)
                    size += len(chunk)
                stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                rc = proc.wait(timeout=timeout)
                out.flush()
            if rc != 0:
                tail = stderr.strip().splitlines()[-1:] or ["no output"]
                raise RuntimeError(f"{' '.join(step['argv'])} exited {rc}: {tail[0]}")
            if expect and other is not None and other.hexdigest() != expect[1]:
                raise RuntimeError(
                    f"the export's {expect[0]} is {other.hexdigest()[:16]}..., but the store "
                    f"records {expect[1][:16]}...: not the same bytes"
                )
        finally:
            for argv in step.get("after", []):
                _run(argv, timeout)
        part.replace(final)
        result.update(ok=True, bytes=size, sha256=sha256.hexdigest())
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        result["error"] = str(exc)
    result["seconds"] = round(time.monotonic() - started, 2)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("steps", type=Path, help="JSON file: a list of steps")
    parser.add_argument("root", type=Path, help="directory the exports go under")
    args = parser.parse_args()
    steps = json.loads(args.steps.read_text())
    results = [export(step, args.root) for step in steps]
    json.dump(results, sys.stdout, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
