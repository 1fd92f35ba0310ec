"""The ledger service's code, packed on the deployer for the log hosts.

The log hosts run :mod:`sovdeploy.ledger.service` with Debian's Python and its
``python3-cryptography`` and ``python3-systemd``. What Debian does not package is packed
here into one reproducible tar.gz: the ledger modules, the three stdlib-only modules they
import (``sovdeploy/__init__``, ``errors``, ``state``), and ``rfc8785`` (pure Python, with
its licence), all taken from the deployer's own installation. Nothing is downloaded, so
the bundle comes from where sovdeploy itself came from; its SHA-256 is in the ledger.

Run: ``python -m sovdeploy.ledger.bundle OUT.tar.gz`` (prints the digest).
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
from sovdeploy.state import atomic_write

MODULES = ("__init__.py", "errors.py", "state.py")


def _files() -> Iterator[tuple[str, Path]]:
    package = Path(sovdeploy.__file__).parent
    for name in MODULES:
        yield f"sovdeploy/{name}", package / name
    for path in sorted((package / "ledger").glob("*.py")):
        yield f"sovdeploy/ledger/{path.name}", path
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
