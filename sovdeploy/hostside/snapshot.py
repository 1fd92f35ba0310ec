"""A consistent copy of a live ledger: one checkpoint and exactly what it covers, as a tar.

A log directory changes while it is read: the writer adds tiles, replaces the
checkpoint and drops partial tiles once their full tile is written. A plain ``tar`` of
it fails ("file changed as we read it") or, worse, pairs a checkpoint with tiles of
another size. The snapshot reads ``checkpoint`` first, then copies what a tree of that
size serves (:func:`~sovdeploy.ledger.archive.new_paths`), the history up to that size
and the blobs. Everything a checkpoint covers is written before the checkpoint and never
changes after, but for partial tiles: where one was dropped meanwhile, its bytes are cut
from the full tile, whose first items are the partial's (as readers do). Before the tar
ends, the copied hash tiles must hash to the checkpoint's root; otherwise the command
exits 1 and what it wrote is not a snapshot (the exit drill keeps it as ``.part``). The
writer's own files (``lock``, ``pending``, ``log.json``) are not the log: left out.

Run where the log is (a log host has this code under the ledger bundle's directory)::

    PYTHONPATH=/opt/sovdeploy-ledger/current python3 -m sovdeploy.hostside.snapshot LOG > log.tar

It needs only the standard library and the bundle. An auditor checks the unpacked copy
with ``sovdeploy audit verify DIR --key VKEY``.
"""

from __future__ import annotations

import argparse
import io
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from sovdeploy.ledger import tiles
from sovdeploy.ledger.archive import new_paths
from sovdeploy.ledger.checkpoint import CheckpointError, SignedCheckpoint
from sovdeploy.ledger.log import CHECKPOINT_FILE, HISTORY_DIR
from sovdeploy.ledger.merkle import HASH_SIZE
from sovdeploy.ledger.note import NoteError
from sovdeploy.ledger.records import BLOB_DIR


class SnapshotError(RuntimeError):
    """The directory holds no log, or the copy does not hash to its checkpoint."""


def _cut(root: Path, path: str) -> bytes:
    """A partial tile's bytes: the file, or the first items of its full tile."""
    try:
        return (root / path).read_bytes()
    except FileNotFoundError:
        if tiles.PARTIAL not in path:
            raise SnapshotError(f"{path} is missing from {root}") from None
    full_path = tiles.full_tile_path(path)
    width = int(path.rsplit(tiles.PARTIAL, 1)[1])
    try:
        full = (root / full_path).read_bytes()
    except FileNotFoundError:
        raise SnapshotError(f"{path} and its full tile are missing from {root}") from None
    if full_path.startswith("tile/entries/"):
        return tiles.encode_bundle(tiles.decode_bundle(full)[:width])
    return full[: width * HASH_SIZE]


def files(root: Path) -> Iterator[tuple[str, bytes]]:
    """The snapshot's files as (spec path, bytes), checkpoint first; checked at the end.

    Raises:
        SnapshotError: no readable checkpoint, a file it covers is missing, or the
            copied hash tiles do not hash to the checkpoint's root.

    """
    try:
        raw = (root / CHECKPOINT_FILE).read_bytes()
        cp = SignedCheckpoint.parse(raw).checkpoint
    except FileNotFoundError:
        raise SnapshotError(f"{root} holds no checkpoint: not a log, or an empty one") from None
    except (NoteError, CheckpointError) as exc:
        raise SnapshotError(f"{root / CHECKPOINT_FILE}: {exc}") from None
    yield CHECKPOINT_FILE, raw
    history = root / HISTORY_DIR
    if history.is_dir():
        for p in sorted(history.iterdir()):
            if p.name.isdigit() and int(p.name) <= cp.size:
                yield f"{HISTORY_DIR}/{p.name}", p.read_bytes()
    blobs = root / BLOB_DIR
    if blobs.is_dir():
        # A blob is written before the entry that names it, so every blob the
        # checkpoint's entries name is here; one written since is harmless.
        for p in sorted(blobs.glob("*/*")):
            if not p.name.startswith("."):
                yield f"{BLOB_DIR}/{p.parent.name}/{p.name}", p.read_bytes()
    hashes: dict[str, bytes] = {}
    for path in new_paths(cp.size):
        data = _cut(root, path)
        if not path.startswith("tile/entries/"):
            hashes[path] = data
        yield path, data
    try:
        root_hash = tiles.TileReader(hashes.get, cp.size).root()
    except tiles.TileError as exc:
        raise SnapshotError(f"the copied tiles do not make a tree of {cp.size}: {exc}") from None
    if root_hash != cp.root:
        raise SnapshotError(f"the copied tiles do not hash to the root of size {cp.size}")


def write(root: Path, out: BinaryIO) -> int:
    """Stream the snapshot of the log in ``root`` to ``out`` as a tar; return its size.

    Raises:
        SnapshotError: as :func:`files`; what was written by then is no snapshot.

    """
    size = 0
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path, data in files(root):
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
            if path == CHECKPOINT_FILE:
                size = SignedCheckpoint.parse(data).checkpoint.size
    return size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("log", type=Path, help="the log's directory")
    args = parser.parse_args()
    try:
        size = write(args.log, sys.stdout.buffer)
    except (SnapshotError, OSError) as exc:
        print(f"snapshot: {exc}", file=sys.stderr)
        return 1
    print(f"snapshot: {size} entries", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
