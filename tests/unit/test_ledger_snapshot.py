"""A snapshot of a live ledger: one checkpoint and what it covers, consistent while it grows."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest

from sovdeploy import bundle
from sovdeploy.hostside import snapshot
from sovdeploy.ledger import audit, tiles
from sovdeploy.ledger.log import CHECKPOINT_FILE, HISTORY_DIR, Log, open_writer
from sovdeploy.ledger.note import Signer

ORIGIN = "sovdeploy.test/snapshot"


def unpack(data: bytes, dest: Path) -> set[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = set(tar.getnames())
        tar.extractall(dest, filter="data")
    return names


def take(root: Path) -> bytes:
    out = io.BytesIO()
    snapshot.write(root, out)
    return out.getvalue()


def checkpointed(tmp_path: Path, count: int) -> tuple[Log, Path, Signer]:
    """A log of ``count`` entries with a checkpoint at that size, still open."""
    signer = Signer.generate(ORIGIN)
    root = tmp_path / "log"
    log = Log(root, ORIGIN, signer)
    log.append([b"entry %d" % i for i in range(count)])
    log.checkpoint()
    return log, root, signer


def assert_verifies(copy: Path, signer: Signer, size: int) -> None:
    report = audit.verify(audit.DirectoryFiles(copy), [signer.verifier])
    assert report.ok and report.size == size, report.findings


def test_a_snapshot_is_the_checkpoint_and_its_tiles_without_the_writers_files(
    tmp_path: Path,
) -> None:
    log, root, signer = checkpointed(tmp_path, 300)
    log.append([b"entry %d" % i for i in range(300, 310)])  # durable, not yet checkpointed
    names = unpack(take(root), tmp_path / "copy")
    log.close()
    assert {"lock", "pending", "log.json"} & {p.name for p in root.iterdir()}
    assert not {"lock", "pending", "log.json"} & names
    assert "tile/entries/001.p/44" in names and "tile/entries/001.p/54" not in names
    assert_verifies(tmp_path / "copy", signer, 300)


def test_a_partial_tile_dropped_since_the_checkpoint_is_cut_from_the_full_tile(
    tmp_path: Path,
) -> None:
    log, root, signer = checkpointed(tmp_path, 250)
    served = {
        p: (root / p).read_bytes()
        for p in (tiles.tile_path("entries", 0, 250), tiles.tile_path(0, 0, 250))
    }
    log.append([b"entry %d" % i for i in range(250, 260)])  # fills tile 0: partials dropped
    log.close()
    assert not any((root / p).exists() for p in served)
    copy = tmp_path / "copy"
    unpack(take(root), copy)
    for path, data in served.items():
        assert (copy / path).read_bytes() == data  # the bytes the log served at 250
    assert_verifies(copy, signer, 250)


def test_history_newer_than_the_checkpoint_read_is_left_out(tmp_path: Path) -> None:
    """The writer publishes the checkpoint, then its history entry: a reader between
    the two (or one that read the checkpoint before both) must not take the newer one,
    which the verifier would call a rollback."""
    log, root, signer = checkpointed(tmp_path, 2)
    first = (root / CHECKPOINT_FILE).read_bytes()
    log.append([b"c"])
    log.checkpoint()
    log.close()
    (root / CHECKPOINT_FILE).write_bytes(first)  # as read before the second was published
    names = unpack(take(root), tmp_path / "copy")
    assert f"{HISTORY_DIR}/{2:020d}" in names
    assert f"{HISTORY_DIR}/{3:020d}" not in names
    assert_verifies(tmp_path / "copy", signer, 2)


def test_snapshots_taken_while_the_log_grows_each_verify(tmp_path: Path) -> None:
    """The race a tar of the directory loses: a writer appends and checkpoints
    continuously, across tile boundaries, while snapshots are taken."""
    signer = Signer.generate(ORIGIN)
    root = tmp_path / "log"
    stop = threading.Event()
    with open_writer(root, ORIGIN, signer, checkpoint_interval=0.01) as writer:

        def grow() -> None:
            i = 0
            while not stop.is_set():
                writer.append(b"entry %d" % i).result()
                i += 1

        thread = threading.Thread(target=grow)
        thread.start()
        try:
            sizes: list[int] = []
            # At least 25, and on until the log has crossed a tile boundary, however slow
            # the machine's writer is; bounded, so a writer that stalls fails the test.
            deadline = time.monotonic() + 300
            while len(sizes) < 25 or sizes[-1] <= tiles.TILE_WIDTH:
                assert time.monotonic() < deadline, f"the log grew only to {sizes[-1:]}"
                if not (root / CHECKPOINT_FILE).exists():
                    continue
                copy = tmp_path / f"copy{len(sizes)}"
                unpack(take(root), copy)
                report = audit.verify(audit.DirectoryFiles(copy), [signer.verifier])
                assert report.ok, (len(sizes), report.findings)
                sizes.append(report.size)
                shutil.rmtree(copy)
        finally:
            stop.set()
            thread.join()
    assert sizes == sorted(sizes) and sizes[-1] > sizes[0] and sizes[-1] > tiles.TILE_WIDTH


def test_a_tile_that_does_not_hash_to_the_checkpoint_fails(tmp_path: Path) -> None:
    log, root, _signer = checkpointed(tmp_path, 20)
    log.close()
    tile = root / tiles.tile_path(0, 0, 20)
    tile.write_bytes(b"\0" * 32 + tile.read_bytes()[32:])
    with pytest.raises(snapshot.SnapshotError, match="do not hash to the root of size 20"):
        snapshot.write(root, io.BytesIO())


def test_a_directory_without_a_checkpoint_is_no_log(tmp_path: Path) -> None:
    with pytest.raises(snapshot.SnapshotError, match="holds no checkpoint"):
        snapshot.write(tmp_path, io.BytesIO())


def test_the_ledger_bundle_runs_it_with_debians_python(tmp_path: Path) -> None:
    """As on a log host: Debian's python3, the bundle on PYTHONPATH, the tar on stdout."""
    python = Path("/usr/bin/python3")
    check = subprocess.run([python, "-c", "import cryptography"], check=False)
    if check.returncode != 0:
        pytest.skip("Debian's python3-cryptography (the log hosts') is not installed here")
    code = tmp_path / "code"
    code.mkdir()
    bundle.write(tmp_path / "bundle.tar.gz")
    with tarfile.open(tmp_path / "bundle.tar.gz") as tar:
        tar.extractall(code, filter="data")
    log, root, signer = checkpointed(tmp_path, 5)
    log.close()
    done = subprocess.run(
        [python, "-m", "sovdeploy.hostside.snapshot", str(root)],
        env={"PYTHONPATH": str(code), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr.decode().strip() == "snapshot: 5 entries"
    unpack(done.stdout, tmp_path / "copy")
    assert_verifies(tmp_path / "copy", signer, 5)
