"""Files that survive a crash, and state files read back with a clear error.

Standard library and the error tree only. The ledger, the programs shipped to hosts and the deployer
all write through :func:`atomic_write`, so this module sits below all of them.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from sovdeploy.errors import StateFileError


def atomic_write(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    """Write ``path`` so that a crash at any instant leaves the old file or the new one.

    Temporary file, fsync, rename, then an fsync of the directory so the rename is
    durable too. Temporary files are dot files named after ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).chmod(mode)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: Path, remedy: str, kind: type = dict) -> Any:
    """The JSON document sovdeploy wrote at ``path``, of type ``kind``.

    Raises:
        StateFileError: naming ``path``, what is wrong and ``remedy`` (what to do), when
            the file is truncated, empty, not JSON or not a ``kind``.

    """
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        problem = "it is empty" if path.exists() and not path.stat().st_size else str(exc)
        raise StateFileError(path, problem, remedy) from None
    if not isinstance(data, kind):
        raise StateFileError(path, f"it holds a {type(data).__name__}", remedy)
    return data


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
