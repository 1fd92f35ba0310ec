"""The host-side programs, packed on the deployer for the log hosts.

The log hosts run :mod:`sovdeploy.hostside.ledger_service` (and the witness) with
Debian's Python and its ``python3-cryptography`` and ``python3-systemd``. What Debian
does not package is packed here into one reproducible tar.gz: the modules of
:mod:`sovdeploy.hostside` and every sovdeploy module they import (the ledger's core and
the leaf modules below it, found by :func:`sovdeploy.imports.closure`, so nothing of the
deployer's goes with them), and ``rfc8785`` (pure Python, with its licence), all taken
from the deployer's own installation. Nothing is downloaded, so the bundle comes from
where sovdeploy itself came from; its SHA-256 is in the ledger.

Run: ``python -m sovdeploy.bundle OUT.tar.gz`` (prints the digest).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import io
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import rfc8785

import sovdeploy
from sovdeploy import imports
from sovdeploy.fsutil import atomic_write

#: The package whose programs run on the hosts.
HOSTSIDE = "sovdeploy.hostside"


def module_names() -> list[str]:
    """The sovdeploy modules in the bundle: the host-side package and what it imports."""
    edges = imports.graph()
    return sorted(imports.closure([m for m in edges if m.startswith(HOSTSIDE)], edges))


def _files() -> Iterator[tuple[str, Path]]:
    files = imports.modules()
    root = imports.PACKAGE_DIR.parent
    for name in module_names():
        yield files[name].relative_to(root).as_posix(), files[name]
    jcs = Path(rfc8785.__file__).parent
    for path in sorted(p for p in jcs.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        yield f"rfc8785/{path.relative_to(jcs)}", path
    dist = importlib.metadata.distribution("rfc8785")
    for file in dist.files or ():
        if file.name.upper().startswith(("LICENSE", "COPYING")):
            yield f"rfc8785/{file.name}", Path(str(file.locate()))


def manifest() -> str:
    return f"sovdeploy {sovdeploy.__version__}\nrfc8785 {importlib.metadata.version('rfc8785')}\n"


def pack() -> bytes:
    """The bundle's bytes: same inputs, same bytes (fixed times, owners and order)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = [("MANIFEST", manifest().encode())]
        entries += [(name, path.read_bytes()) for name, path in _files()]
        for name, data in sorted(entries):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def write(path: Path) -> str:
    """Write the bundle to ``path`` (only when it differs); return its SHA-256."""
    data = pack()
    if not path.exists() or path.read_bytes() != data:
        atomic_write(path, data)
    return hashlib.sha256(data).hexdigest()


if __name__ == "__main__":
    print(write(Path(sys.argv[1])))
