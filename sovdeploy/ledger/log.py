"""The append path: a tiled log on disk that never loses an entry it acknowledged.

Durability rests on two files besides the tiles:

- ``pending``, a write-ahead log: every entry since ``log.json`` was last written, each
  record framed with a CRC-32 over (index, length, entry), appended and fdatasync'd
  once per batch before anything else happens to the batch. A torn or zero-filled tail
  fails its CRC and is cut off at the next open; it was never acknowledged, because
  acknowledgement waits for the fdatasync.
- ``log.json``: how many entries sit in full bundles, and the compact range (the right
  edge of the tree) over them. Every :data:`WAL_BUNDLES` bundles it is replaced
  atomically, and only then does ``pending`` restart with what follows.

Full bundles and their tiles are written as they fill. Every file is written to a
temporary name, fsync'd, renamed, and its directory fsync'd, so a crash at any instant
leaves either the old file or the new one. Opening the log redoes whatever the crash
interrupted: it finishes every bundle ``pending`` holds in full (rewriting the same
bytes where they were already written) and skips what ``log.json`` already covers.

:class:`Writer` is the single writer: callers hand it entries from any thread and get
a future that resolves to the entry's index once the entry is durable.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import io
import json
import os
import queue
import shutil
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path

from sovdeploy.errors import LedgerError
from sovdeploy.fsutil import atomic_write
from sovdeploy.ledger import merkle, tiles
from sovdeploy.ledger.checkpoint import Checkpoint, SignedCheckpoint, sign
from sovdeploy.ledger.note import Signature, Signer

_PENDING_MAGIC = b"SDLEDGR1"
_HEADER = struct.Struct(">8sQ")
_RECORD = struct.Struct(">IH")
STATE_FILE = "log.json"
PENDING_FILE = "pending"
CHECKPOINT_FILE = "checkpoint"
HISTORY_DIR = "checkpoints"
LOCK_FILE = "lock"

#: ``pending`` restarts (and log.json is rewritten) once it holds this many full bundles.
WAL_BUNDLES = 16
#: A batch never holds more than this many entries (one bundle's worth).
MAX_BATCH = 256
#: Nor does an entry wait longer than this for its batch to be committed.
MAX_DELAY = 0.25
#: While entries arrive, a checkpoint is signed at least this often (seconds).
CHECKPOINT_INTERVAL = 5.0


class LogError(LedgerError):
    """The log cannot be opened or written."""


def _record_crc(index: int, entry: bytes) -> int:
    return zlib.crc32(struct.pack(">QH", index, len(entry)) + entry)


class Log:
    """A tiled log in one directory, opened for appending by one process at a time."""

    def __init__(self, root: Path, origin: str, signer: Signer) -> None:
        self.root = root
        self.origin = origin
        self.signer = signer
        root.mkdir(parents=True, exist_ok=True)
        self._lock = (root / LOCK_FILE).open("w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise LogError(f"another process is appending to the log in {root}") from None
        self._full = 0
        self._range = merkle.CompactRange()
        # Hashes of the partial tile at each level >= 1, and the pending bundle's
        # entries and leaf hashes (level 0).
        self._upper: list[list[bytes]] = []
        self._entries: list[bytes] = []
        self._leaves: list[bytes] = []
        self._wal_start = 0
        self._pending_fh: io.FileIO | None = None
        self._reader: tiles.TileReader | None = None
        self.checkpointed = 0
        #: Asked for witness cosignatures on each checkpoint before it is published.
        self.cosign: Callable[[SignedCheckpoint, merkle.NodeReader], list[Signature]] | None = None
        try:
            self._recover()
        except BaseException:
            self.close()
            raise

    # -- reading --------------------------------------------------------------------

    @property
    def size(self) -> int:
        return self._full + len(self._entries)

    def entry(self, index: int) -> bytes:
        """The entry at ``index``, durable or pending."""
        if self._full <= index < self.size:
            return self._entries[index - self._full]
        if self._reader is None or self._reader.size != self._full:
            self._reader = tiles.TileReader(tiles.directory_reader(self.root), self._full)
        return self._reader.entry(index)

    def root_hash(self) -> bytes:
        cr = self._range.copy()
        for h in self._leaves:
            cr.append(h)
        return cr.root()

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        path = self.root / CHECKPOINT_FILE
        if not path.exists():
            return None
        try:
            return SignedCheckpoint.parse(path.read_bytes())
        except ValueError as exc:
            raise LogError(f"{path} is damaged: {exc}") from None

    # -- recovery -------------------------------------------------------------------

    def _recover(self) -> None:
        state_path = self.root / STATE_FILE
        if state_path.exists():
            try:
                state = json.loads(state_path.read_text())
                origin = state.get("origin")
                full, hashes = int(state["full"]), [base64.b64decode(h) for h in state["range"]]
            except (ValueError, AttributeError, KeyError, TypeError) as exc:
                raise LogError(f"{state_path} is damaged: {exc!r}") from None
            if origin != self.origin:
                raise LogError(f"{self.root} holds the log {origin!r}, not {self.origin!r}")
            self._full = full
            self._range = merkle.CompactRange(self._full, hashes)
        self._rebuild_upper()
        # Redo what the crash interrupted: finish every bundle the write-ahead log holds
        # in full, then start it afresh with the partial bundle.
        wal = self._read_wal()
        self._entries, self._leaves = [], []
        for e in wal:
            self._entries.append(e)
            self._leaves.append(merkle.leaf_hash(e))
            if len(self._entries) == tiles.TILE_WIDTH:
                self._finish_bundle()
        self._checkpoint_wal()
        for stale in (self.root / HISTORY_DIR).glob(".*"):  # atomic_write's temporaries
            stale.unlink()
        cp = self.latest_checkpoint()
        self.checkpointed = cp.checkpoint.size if cp else 0
        if cp is not None:
            kept = self.root / HISTORY_DIR / f"{self.checkpointed:020d}"
            if not kept.exists():
                atomic_write(kept, cp.encode())
        if self.checkpointed > self.size:
            raise LogError(
                f"{self.root}: the checkpoint covers {self.checkpointed} entries "
                f"but only {self.size} are stored"
            )

    def _rebuild_upper(self) -> None:
        self._upper = []
        level = 1
        while True:
            count = self._full >> (tiles.TILE_HEIGHT * level)
            width = count % tiles.TILE_WIDTH
            first = count - width
            reader = tiles.TileReader(tiles.directory_reader(self.root), self._full)
            self._upper.append(
                [merkle.perfect_root(reader.tile(level - 1, i)) for i in range(first, count)]
            )
            if count < tiles.TILE_WIDTH:
                return
            level += 1

    def _read_wal(self) -> list[bytes]:
        """The entries of ``pending`` from the first one not yet in a full bundle on disk."""
        path = self.root / PENDING_FILE
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return []
        if len(data) < _HEADER.size:
            return []
        magic, start = _HEADER.unpack_from(data)
        if magic != _PENDING_MAGIC:
            raise LogError(f"{path} is not the write-ahead log of this log")
        if start > self._full:
            raise LogError(f"{path} starts at entry {start}, but log.json ends at {self._full}")
        entries: list[bytes] = []
        pos, index = _HEADER.size, start
        while pos + _RECORD.size <= len(data):
            crc, n = _RECORD.unpack_from(data, pos)
            entry = data[pos + _RECORD.size : pos + _RECORD.size + n]
            if len(entry) != n or _record_crc(index, entry) != crc:
                break  # a torn or never-acknowledged tail
            if index >= self._full:
                entries.append(entry)
            pos += _RECORD.size + n
            index += 1
        return entries

    def _checkpoint_wal(self) -> None:
        """Record the full bundles in log.json, then restart ``pending`` with the rest.

        The full bundles and their tiles are durable before this is called, and log.json
        is before ``pending`` forgets their entries, so a crash between any two steps
        leaves a log that opening can finish.
        """
        self._save_state()
        if self._pending_fh is not None:
            self._pending_fh.close()
        out = bytearray(_HEADER.pack(_PENDING_MAGIC, self._full))
        for i, e in enumerate(self._entries):
            out += _RECORD.pack(_record_crc(self._full + i, e), len(e)) + e
        path = self.root / PENDING_FILE
        atomic_write(path, bytes(out), 0o600)
        self._pending_fh = path.open("ab", buffering=0)
        self._wal_start = self._full

    # -- writing --------------------------------------------------------------------

    def _save_state(self) -> None:
        state = {
            "format": 1,
            "origin": self.origin,
            "full": self._full,
            "range": [base64.b64encode(h).decode() for h in self._range.hashes],
        }
        atomic_write(self.root / STATE_FILE, json.dumps(state, indent=1).encode() + b"\n")

    def _write_tile(self, level: int | str, index: int, data: bytes, width: int) -> None:
        atomic_write(self.root / tiles.tile_path(level, index, width), data)

    def _drop_partials(self, level: int | str, index: int) -> None:
        partial = self.root / f"{tiles.tile_path(level, index)}.p"
        if partial.is_dir():
            shutil.rmtree(partial)

    def _finish_bundle(self) -> None:
        bundle = self._full // tiles.TILE_WIDTH
        self._write_tile("entries", bundle, tiles.encode_bundle(self._entries), tiles.TILE_WIDTH)
        self._write_tile(0, bundle, b"".join(self._leaves), tiles.TILE_WIDTH)
        subtree = merkle.perfect_root(self._leaves)
        self._range.append_subtree(subtree, tiles.TILE_HEIGHT)
        finished: list[tuple[int | str, int]] = [("entries", bundle), (0, bundle)]
        for level, index, row in tiles.carry(self._upper, subtree, bundle):
            self._write_tile(level, index, b"".join(row), tiles.TILE_WIDTH)
            finished.append((level, index))
        self._full += tiles.TILE_WIDTH
        self._entries, self._leaves = [], []
        for lvl, idx in finished:
            self._drop_partials(lvl, idx)

    def append(self, entries: Sequence[bytes]) -> int:
        """Append ``entries``; when this returns they are durable. Returns the first index."""
        first = self.size
        for e in entries:
            if len(e) > tiles.MAX_ENTRY_SIZE:
                raise LogError(f"an entry of {len(e)} bytes exceeds {tiles.MAX_ENTRY_SIZE}")
        pack, crc = _RECORD.pack, _record_crc
        buf = b"".join(pack(crc(first + i, e), len(e)) + e for i, e in enumerate(entries))
        wal = self._pending_fh
        assert wal is not None, "the log is closed"
        wal.write(buf)
        os.fdatasync(wal.fileno())
        # Durable from here on; what follows can be redone from ``pending``.
        for e in entries:
            self._entries.append(e)
            self._leaves.append(merkle.leaf_hash(e))
            if len(self._entries) == tiles.TILE_WIDTH:
                self._finish_bundle()
        if self._full - self._wal_start >= WAL_BUNDLES * tiles.TILE_WIDTH:
            self._checkpoint_wal()
        return first

    def checkpoint(self) -> SignedCheckpoint:
        """Serve the current size: write its partial tiles, then sign and publish it."""
        size = self.size
        if self._entries:
            bundle, width = self._full // tiles.TILE_WIDTH, len(self._entries)
            self._write_tile("entries", bundle, tiles.encode_bundle(self._entries), width)
            self._write_tile(0, bundle, b"".join(self._leaves), width)
        for level, row in enumerate(self._upper, start=1):
            if row:
                index = (size >> (tiles.TILE_HEIGHT * level)) // tiles.TILE_WIDTH
                self._write_tile(level, index, b"".join(row), len(row))
        signed = sign(Checkpoint(self.origin, size, self.root_hash()), self.signer)
        if self.cosign is not None:
            # The tiles of this size are written: the witnesses' proofs read them.
            node = tiles.TileReader(tiles.directory_reader(self.root), size).node
            signed = signed.with_signatures(self.cosign(signed, node))
        data = signed.encode()
        # The checkpoint first, then its history entry: a reader that reads `checkpoint`
        # and then lists the history must never find there a size the checkpoint it just
        # read does not reach (a rollback that is not one). Opening the log adds the
        # history entry a crash between the two writes left out.
        atomic_write(self.root / CHECKPOINT_FILE, data)
        atomic_write(self.root / HISTORY_DIR / f"{size:020d}", data)
        self.checkpointed = size
        return signed

    def close(self) -> None:
        if self._pending_fh is not None:
            self._pending_fh.close()
            self._pending_fh = None
        if not self._lock.closed:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()


Ack = Callable[[int], None]


class Writer:
    """The single writer: batches what callers append, commits, then acknowledges.

    A batch takes what is queued, up to :data:`MAX_BATCH` entries. It never waits for
    more: under load the queue refills while a batch commits, so batches grow on their
    own, and a lone entry is committed at once, well within :data:`MAX_DELAY`. While
    entries arrive a checkpoint is signed every ``checkpoint_interval`` seconds, and
    once more when the writer closes.
    """

    def __init__(self, log: Log, checkpoint_interval: float = CHECKPOINT_INTERVAL) -> None:
        if not 0 < checkpoint_interval <= 10:
            raise ValueError("checkpoints are signed at least every 10 seconds")
        self.log = log
        self.interval = checkpoint_interval
        self._queue: queue.SimpleQueue[tuple[bytes, Future[int]] | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._closed = False
        self._last_checkpoint = time.monotonic()
        self.batches = 0
        self.largest_batch = 0
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()

    def append(self, entry: bytes) -> Future[int]:
        """Queue ``entry``; the future resolves to its index once it is durable."""
        if self._closed:
            raise LogError("the ledger writer is closed")
        if self._error is not None:
            raise LogError(f"the ledger writer failed: {self._error}") from self._error
        if len(entry) > tiles.MAX_ENTRY_SIZE:
            raise LogError(f"an entry of {len(entry)} bytes exceeds {tiles.MAX_ENTRY_SIZE}")
        fut: Future[int] = Future()
        self._queue.put((entry, fut))
        return fut

    def _take_batch(self) -> tuple[list[tuple[bytes, Future[int]]], bool]:
        timeout = max(0.0, self._last_checkpoint + self.interval - time.monotonic())
        batch: list[tuple[bytes, Future[int]]] = []
        stop = False
        try:
            pending = self.log.size > self.log.checkpointed
            item = self._queue.get(timeout=timeout if pending else None)
        except queue.Empty:
            return batch, stop
        while True:
            if item is None:
                stop = True
                break
            batch.append(item)
            if len(batch) >= MAX_BATCH:
                break
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
        return batch, stop

    def _run(self) -> None:
        stop = False
        while not stop:
            batch, stop = self._take_batch()
            try:
                if batch:
                    first = self.log.append([e for e, _ in batch])
                    self.batches += 1
                    self.largest_batch = max(self.largest_batch, len(batch))
                    for i, (_, fut) in enumerate(batch):
                        fut.set_result(first + i)
                due = time.monotonic() >= self._last_checkpoint + self.interval
                if (due or stop) and self.log.size > self.log.checkpointed:
                    self.log.checkpoint()
                    self._last_checkpoint = time.monotonic()
                elif due:
                    self._last_checkpoint = time.monotonic()
            except BaseException as exc:  # noqa: BLE001 - handed to every waiting caller
                self._error = exc
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                self._fail_queued(exc)
                return

    def _fail_queued(self, exc: BaseException) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                item[1].set_exception(exc)

    def close(self) -> None:
        """Commit what is queued, sign a final checkpoint, and stop."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise LogError(f"the ledger writer failed: {self._error}") from self._error


@contextlib.contextmanager
def open_writer(
    root: Path, origin: str, signer: Signer, checkpoint_interval: float = CHECKPOINT_INTERVAL
) -> Iterator[Writer]:
    log = Log(root, origin, signer)
    try:
        writer = Writer(log, checkpoint_interval)
        try:
            yield writer
        finally:
            writer.close()
    finally:
        log.close()
