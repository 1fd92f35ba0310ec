"""Prove exports usable by restoring them on a fresh host; one JSON result a restore.

Runs on the drill's fresh host (``ansible.builtin.script``, as root) once MariaDB and
qemu-utils are installed there, so it uses the standard library only. Reads a JSON
list of restores (a file argument):

- ``database``: load the dump into MariaDB, dump it again with the same options:
  the two dumps must be the same bytes;
- ``image``: the file must hash to what the export recorded, and qemu-img must read it
  in the format Glance records (``qemu-img check`` for qcow2);
- ``volume``: the raw disk must hash to what the export recorded, convert to qcow2, and
  compare equal to the conversion (``qemu-img compare``); where the drill wrote a known
  pattern into the volume, the disk must start with it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _run(argv: list[str], stdin: Path | None = None, stdout: Path | None = None) -> str:
    with (
        stdin.open("rb") if stdin else open("/dev/null", "rb") as fin,  # noqa: PTH123
        stdout.open("wb") if stdout else open("/dev/null", "wb") as fout,  # noqa: PTH123
    ):
        done = subprocess.run(
            argv,
            stdin=fin,
            stdout=fout if stdout else subprocess.PIPE,
            stderr=subprocess.PIPE,
            check=False,
        )
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {tail[0]}")
    return done.stdout.decode(errors="replace") if not stdout else ""


def _sha256(path: Path, limit: int | None = None) -> str:
    digest = hashlib.sha256()
    left = limit
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20 if left is None else min(1 << 20, left)):
            digest.update(chunk)
            if left is not None:
                left -= len(chunk)
                if left <= 0:
                    break
    return digest.hexdigest()


def _same(path: Path, sha256: str) -> None:
    found = _sha256(path)
    if found != sha256:
        raise RuntimeError(f"{path.name} hashes to {found[:16]}..., the export to {sha256[:16]}...")


def database(spec: Mapping[str, Any], work: Path) -> str:
    if not re.fullmatch(r"[a-z0-9_]+", spec["database"]):
        raise ValueError(f"not a database name: {spec['database']!r}")
    dump = work / spec["file"]
    _same(dump, spec["sha256"])
    _run(["mariadb"], stdin=dump)
    again = work / (spec["file"] + ".again")
    _run(list(spec["argv"]), stdout=again)
    if _sha256(again) != spec["sha256"]:
        raise RuntimeError("the restored database dumps to other bytes than the export")
    tables = _run(
        [
            "mariadb",
            "--batch",
            "--skip-column-names",
            "-e",
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = "  # noqa: S608 - checked above
            f"'{spec['database']}'",
        ]
    ).strip()
    return f"{tables} tables loaded into MariaDB; dumped again, the same {dump.stat().st_size} B"


def image(spec: Mapping[str, Any], work: Path) -> str:
    path = work / spec["file"]
    _same(path, spec["sha256"])
    info = json.loads(_run(["qemu-img", "info", "--output=json", "-f", spec["format"], str(path)]))
    if spec["format"] == "qcow2":
        _run(["qemu-img", "check", "-f", "qcow2", str(path)])
    return (
        f"{spec['format']} image, virtual size {info['virtual-size']} B, "
        f"{spec['hash_algo']} equal to Glance's record"
    )


def volume(spec: Mapping[str, Any], work: Path) -> str:
    path = work / spec["file"]
    _same(path, spec["sha256"])
    qcow2 = path.with_suffix(".qcow2")
    _run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(path), str(qcow2)])
    _run(["qemu-img", "compare", "-f", "raw", "-F", "qcow2", str(path), str(qcow2)])
    detail = f"raw disk of {path.stat().st_size} B converts to qcow2 and compares equal"
    marker = spec.get("marker")
    if marker:
        if _sha256(path, int(marker["bytes"])) != marker["sha256"]:
            raise RuntimeError("the volume does not start with the pattern the drill wrote")
        detail += f"; starts with the {marker['bytes']} B the drill wrote through Cinder"
    return detail


KINDS = {"database": database, "image": image, "volume": volume}


def restore(spec: Mapping[str, Any], work: Path) -> dict[str, Any]:
    started = time.monotonic()
    result: dict[str, Any] = {"what": spec["what"], "kind": spec["kind"], "ok": False}
    try:
        result["detail"] = KINDS[spec["kind"]](spec, work)
        result["ok"] = True
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        result["detail"] = str(exc)
    result["seconds"] = round(time.monotonic() - started, 2)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("specs", type=Path, help="JSON file: a list of restores")
    parser.add_argument("work", type=Path, help="directory holding the exported files")
    args = parser.parse_args()
    specs = json.loads(args.specs.read_text())
    json.dump([restore(spec, args.work) for spec in specs], sys.stdout, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
