"""The C2SP tlog-tiles layout: tile paths, entry bundles, and a tree read from tiles.

A log directory holds exactly what the spec serves, so that any tlog-tiles client can
read a copy of it::

    checkpoint                     the latest signed checkpoint
    tile/<L>/<N>[.p/<W>]           hash tiles (256 hashes of 32 bytes when full)
    tile/entries/<N>[.p/<W>]       entry bundles (big-endian uint16 length-prefixed entries)
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from sovdeploy.errors import LedgerError
from sovdeploy.ledger import merkle

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
#: An entry bundle's length prefix is a uint16.
MAX_ENTRY_SIZE = 0xFFFF


class TileError(LedgerError, ValueError):
    """A tile or bundle is missing or malformed."""


def encode_index(n: int) -> str:
    """Encode a tile index as zero-padded 3-digit path elements, ``x``-prefixed but the last."""
    if n < 0:
        raise ValueError("a tile index is not negative")
    parts = []
    while True:
        parts.append(f"{n % 1000:03d}")
        n //= 1000
        if n == 0:
            break
    parts.reverse()
    return "/".join(["x" + p for p in parts[:-1]] + parts[-1:])


#: What separates a partial tile's path from its full tile's (``tile/0/001.p/17``).
PARTIAL = ".p/"


def full_tile_path(path: str) -> str:
    """The path of the full tile of which ``path`` is a partial (itself if it is full)."""
    return path.rsplit(PARTIAL, 1)[0]


def tile_path(level: int | str, index: int, width: int = TILE_WIDTH) -> str:
    """The spec path of a tile (``level`` ``"entries"`` for an entry bundle)."""
    if not 1 <= width <= TILE_WIDTH:
        raise ValueError(f"a tile is 1 to {TILE_WIDTH} wide, not {width}")
    path = f"tile/{level}/{encode_index(index)}"
    return path if width == TILE_WIDTH else f"{path}{PARTIAL}{width}"


def tiles_for_size(size: int) -> Iterator[tuple[int, int, int]]:
    """Every (level, index, width) hash tile a tree of ``size`` leaves is served as."""
    level = 0
    while True:
        count = size >> (TILE_HEIGHT * level)
        if count == 0:
            return
        full, partial = divmod(count, TILE_WIDTH)
        for n in range(full):
            yield level, n, TILE_WIDTH
        if partial:
            yield level, full, partial
        if full == 0:
            return
        level += 1


def served_width(count: int, index: int) -> int:
    """How many hashes (or entries) tile ``index`` holds when its level has ``count``; 0: none."""
    full = count // TILE_WIDTH
    if index < full:
        return TILE_WIDTH
    return count % TILE_WIDTH if index == full else 0


def carry(
    upper: list[list[bytes]], subtree: bytes, bundle: int
) -> list[tuple[int, int, list[bytes]]]:
    """Add a full bundle's subtree hash to the partial tiles above it.

    ``upper[l - 1]`` holds the hashes of the partial tile at level ``l``. Returns each
    tile this completes, as (level, index, hashes), lowest first.
    """
    completed: list[tuple[int, int, list[bytes]]] = []
    level, index, h = 1, bundle, subtree
    while True:
        if len(upper) < level:
            upper.append([])
        row = upper[level - 1]
        row.append(h)
        index //= TILE_WIDTH
        if len(row) < TILE_WIDTH:
            return completed
        completed.append((level, index, list(row)))
        h = merkle.perfect_root(row)
        row.clear()
        level += 1


def encode_bundle(entries: Sequence[bytes]) -> bytes:
    out = bytearray()
    for e in entries:
        if len(e) > MAX_ENTRY_SIZE:
            raise TileError(f"an entry of {len(e)} bytes exceeds {MAX_ENTRY_SIZE}")
        out += struct.pack(">H", len(e))
        out += e
    return bytes(out)


def decode_bundle(data: bytes) -> list[bytes]:
    entries = []
    pos, end = 0, len(data)
    while pos < end:
        if pos + 2 > end:
            raise TileError("an entry bundle ends inside a length prefix")
        n = (data[pos] << 8) | data[pos + 1]
        pos += 2
        if pos + n > end:
            raise TileError("an entry bundle ends inside an entry")
        entries.append(data[pos : pos + n])
        pos += n
    return entries


def split_hashes(data: bytes) -> list[bytes]:
    if len(data) % merkle.HASH_SIZE:
        raise TileError(f"a hash tile of {len(data)} bytes is not a whole number of hashes")
    return [data[i : i + merkle.HASH_SIZE] for i in range(0, len(data), merkle.HASH_SIZE)]


#: Reads the file at a spec path (``tile/0/000``) of a log; None when there is none.
FileReader = Callable[[str], bytes | None]


def directory_reader(root: Path) -> FileReader:
    def read(path: str) -> bytes | None:
        try:
            return (root / path).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    return read


def read_tile(read: FileReader, level: int | str, index: int, width: int) -> list[bytes] | None:
    """The hashes (or, for level ``"entries"``, the entries) of a tile served ``width`` wide.

    A log drops a partial tile once the full one is written, so a reader holding an older
    checkpoint finds it gone: the full tile's first ``width`` items are the same, and are
    read instead. None when neither is there.
    """
    parse = decode_bundle if level == "entries" else split_hashes
    data = read(tile_path(level, index, width))
    if data is not None:
        return parse(data)
    if width == TILE_WIDTH:
        return None
    full = read(tile_path(level, index))
    return None if full is None else parse(full)[:width]


class TileReader:
    """The hashes of a tree of a given size, read from a log's tiles."""

    def __init__(self, read: FileReader, size: int) -> None:
        self.read = read
        self.size = size
        self._cache: dict[tuple[int, int], list[bytes]] = {}
        self._bundle: tuple[int, list[bytes]] = (-1, [])

    def tile(self, level: int, index: int) -> list[bytes]:
        key = (level, index)
        if key not in self._cache:
            width = served_width(self.size >> (TILE_HEIGHT * level), index)
            if width == 0:
                raise TileError(f"tile {level}/{index} is beyond a tree of size {self.size}")
            self._cache[key] = self._fetch(level, index, width)
        return self._cache[key]

    def _fetch(self, level: int | str, index: int, width: int) -> list[bytes]:
        """The ``width`` hashes or entries of a tile or bundle."""
        items = read_tile(self.read, level, index, width)
        path = tile_path(level, index, width)
        if items is None:
            raise TileError(f"{path} is missing")
        if len(items) != width:
            raise TileError(f"{path} holds {len(items)} items, not {width}")
        return items

    def node(self, height: int, index: int) -> bytes:
        """The hash of the perfect subtree at (height, index); a :data:`merkle.NodeReader`."""
        level, below = divmod(height, TILE_HEIGHT)
        first = index << below
        tile_index, offset = divmod(first, TILE_WIDTH)
        hashes = self.tile(level, tile_index)
        span = hashes[offset : offset + (1 << below)]
        if len(span) != 1 << below:
            raise TileError(f"node {height}/{index} is beyond a tree of size {self.size}")
        return merkle.perfect_root(span)

    def root(self) -> bytes:
        if self.size == 0:
            return merkle.EMPTY_ROOT
        return merkle.range_hash(self.node, 0, self.size)

    def entry(self, index: int) -> bytes:
        if not 0 <= index < self.size:
            raise TileError(f"entry {index} is not in a tree of size {self.size}")
        n, offset = divmod(index, TILE_WIDTH)
        if self._bundle[0] == n:
            return self._bundle[1][offset]
        width = served_width(self.size, n)
        entries = self._fetch("entries", n, width)
        self._bundle = (n, entries)
        return entries[offset]
