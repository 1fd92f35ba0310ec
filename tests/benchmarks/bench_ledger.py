"""Benchmark (not a timed test): the ledger's append, verify and proof figures.

1. Append: 512-byte entries through the single writer (batching, fdatasync before each
   acknowledgement), producers keeping up to 4,096 entries in flight; entries/s, three
   runs, each beside the median latency of one 4 KiB append + fdatasync.
   The same for canonical-JSON records of about 512 bytes through ``Ledger.record``.
2. Full verify of a log of N entries of 512 bytes (``audit.verify``: signature, every
   entry re-hashed, every tile compared, root recomputed), on one core; and, in the same
   run, how fast hashlib alone computes the leaf hashes of the same entries.
   Then the same for JSON records with the source checks on.
3. Inclusion proofs: their size at 10**6 and 10**9 entries (computed), and proofs
   verified per second.

Usage: python tests/benchmarks/bench_ledger.py [N]   (default N = 500,000)
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sovdeploy.ledger import audit, merkle, records, tiles  # noqa: E402
from sovdeploy.ledger.log import Log, Writer  # noqa: E402
from sovdeploy.ledger.note import Signer  # noqa: E402

ORIGIN = "bench.sovdeploy/ledger"
IN_FLIGHT = 4096


def _entries(n: int, size: int = 512) -> list[bytes]:
    rng = random.Random(1)
    return [rng.randbytes(size) for _ in range(n)]


def fsync_latency(root: Path) -> float:
    """Median seconds of a 4 KiB append + fdatasync here: what every acknowledgement waits on."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / "probe", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    times = []
    try:
        for _ in range(200):
            started = time.perf_counter()
            os.write(fd, b"x" * 4096)
            os.fdatasync(fd)
            times.append(time.perf_counter() - started)
    finally:
        os.close(fd)
    return sorted(times)[len(times) // 2]


def bench_append(root: Path, signer: Signer, n: int) -> float:
    entries = _entries(n)
    log = Log(root, ORIGIN, signer)
    writer = Writer(log)
    room = threading.Semaphore(IN_FLIGHT)
    started = time.perf_counter()
    last = None
    for e in entries:
        room.acquire()
        last = writer.append(e)
        last.add_done_callback(lambda _f: room.release())
    assert last is not None
    last.result()
    elapsed = time.perf_counter() - started
    batches = writer.batches
    writer.close()
    log.close()
    rate = n / elapsed
    print(f"append: {n} x 512 B in {elapsed:.2f}s = {rate:,.0f} entries/s "
          f"({batches} batches, {n / batches:.0f} per batch, fdatasync each)")  # fmt: skip
    return rate


def bench_append_records(root: Path, signer: Signer, n: int) -> float:
    log = Log(root, ORIGIN, signer)
    writer = Writer(log)
    ledger = records.Ledger(writer, "bench")
    room = threading.Semaphore(IN_FLIGHT)
    text = "x" * 380
    started = time.perf_counter()
    last = None
    for i in range(n):
        room.acquire()
        last = ledger.record("task", host=f"host{i % 97}", task="Install it", status="ok",
                             changed=False, text=text)  # fmt: skip
        last.add_done_callback(lambda _f: room.release())
    assert last is not None
    last.result()
    elapsed = time.perf_counter() - started
    size = len(log.entry(0))
    writer.close()
    log.close()
    rate = n / elapsed
    print(f"append records: {n} JSON records of {size} B in {elapsed:.2f}s = {rate:,.0f}/s")
    return rate


def build(root: Path, signer: Signer, entries: list[bytes]) -> None:
    log = Log(root, ORIGIN, signer)
    for i in range(0, len(entries), 4096):
        log.append(entries[i : i + 4096])
    log.checkpoint()
    log.close()
    # Let the kernel write back what was just written, so that the verify timing is not
    # the disk's writeback of the build (an auditor verifies a log at rest).
    os.sync()


def bench_verify(root: Path, signer: Signer, n: int) -> tuple[float, float]:
    entries = _entries(n)
    build(root, signer, entries)
    del entries
    files = audit.DirectoryFiles(root)
    started = time.perf_counter()
    report = audit.verify(files, [signer.verifier], check_sources=False)
    elapsed = time.perf_counter() - started
    assert report.ok and report.size == n, report.findings
    # hashlib alone, same entries, same run: read back what the verifier read.
    data = [tiles.decode_bundle(files.read(tiles.tile_path("entries", b, w)) or b"")
            for _, b, w in (t for t in tiles.tiles_for_size(n) if t[0] == 0)]  # fmt: skip
    sha = hashlib.sha256
    started = time.perf_counter()
    for bundle in data:
        for e in bundle:
            sha(b"\x00" + e).digest()
    hash_elapsed = time.perf_counter() - started
    rate, hash_rate = n / elapsed, n / hash_elapsed
    print(f"verify: {n} entries of 512 B in {elapsed:.2f}s = {rate:,.0f} entries/s; "
          f"hashlib leaf hashes alone {hash_rate:,.0f}/s; verify runs at "
          f"{rate / hash_rate:.0%} of that")  # fmt: skip
    return rate, hash_rate


def bench_verify_records(root: Path, signer: Signer, n: int) -> float:
    text = "x" * 380
    entries = [records.encode({"kind": "task", "source": f"host{i % 7}", "seq": i // 7,
                               "time": "2026-11-21T10:00:00.000Z", "text": text})
               for i in range(n - n % 7)]  # fmt: skip
    build(root, signer, entries)
    started = time.perf_counter()
    report = audit.verify(audit.DirectoryFiles(root), [signer.verifier], check_sources=True)
    elapsed = time.perf_counter() - started
    assert report.ok, report.findings[:3]
    rate = len(entries) / elapsed
    print(f"verify with source checks: {len(entries)} JSON records of {len(entries[0])} B "
          f"in {elapsed:.2f}s = {rate:,.0f}/s")  # fmt: skip
    return rate


def bench_proofs(root: Path) -> None:
    def proof_len(size: int, index: int) -> int:
        return len(merkle.inclusion_proof(lambda _h, _i: b"\0" * 32, index, size))

    for size in (10**6, 10**9):
        lengths = [proof_len(size, i) for i in (0, size // 3, size // 2, size - 1)]
        longest = max(lengths)
        print(f"inclusion proof at {size:.0e} entries: {min(lengths)}-{longest} hashes, "
              f"at most {longest * 32} bytes (+ the checkpoint)")  # fmt: skip
    reader = tiles.TileReader(tiles.directory_reader(root), _size(root))
    size = reader.size
    rng = random.Random(2)
    picks = [rng.randrange(size) for _ in range(2000)]
    proofs = [(i, merkle.leaf_hash(reader.entry(i)), merkle.inclusion_proof(reader.node, i, size))
              for i in picks]  # fmt: skip
    root_hash = reader.root()
    started = time.perf_counter()
    rounds = 10
    for _ in range(rounds):
        for i, leaf, p in proofs:
            merkle.verify_inclusion(i, size, leaf, p, root_hash)
    elapsed = time.perf_counter() - started
    print(f"proofs verified: {len(proofs) * rounds / elapsed:,.0f}/s "
          f"(tree of {size} entries, {len(proofs[0][2])} hashes each)")  # fmt: skip


def _size(root: Path) -> int:
    from sovdeploy.ledger.checkpoint import SignedCheckpoint

    return SignedCheckpoint.parse((root / "checkpoint").read_bytes()).checkpoint.size


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
    signer = Signer.generate(ORIGIN)
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/var/tmp")) as tmp:
        base = Path(tmp)
        # The virtual disk's fsync latency swings with its host's load: measure it beside
        # each run, and run three times.
        for run in range(3):
            print(f"fdatasync median: {fsync_latency(base / 'probe') * 1000:.2f} ms")
            bench_append(base / f"append{run}", signer, 200_000)
            os.sync()
        bench_append_records(base / "records", signer, 100_000)
        bench_verify(base / "verify", signer, n)
        bench_verify_records(base / "verify-records", signer, n)
        bench_proofs(base / "verify")


if __name__ == "__main__":
    main()
