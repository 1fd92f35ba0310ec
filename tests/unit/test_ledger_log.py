"""The append path: durability across kills, batching, checkpoints, receipts."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from sovdeploy.ledger import audit, proof, records, tiles
from sovdeploy.ledger.log import (
    CHECKPOINT_FILE,
    HISTORY_DIR,
    MAX_BATCH,
    Log,
    LogError,
    open_writer,
)
from sovdeploy.ledger.note import Signer

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "sovdeploy.test/log"


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.generate(ORIGIN)


def entry(seq: int) -> bytes:
    """A deterministic entry of varying length, so that torn writes show."""
    return f"entry {seq} ".encode() + bytes([seq % 251]) * (seq * 7919 % 700)


def test_append_checkpoint_reopen_and_verify(tmp_path: Path, signer: Signer) -> None:
    log = Log(tmp_path, ORIGIN, signer)
    assert log.append([entry(i) for i in range(300)]) == 0
    assert log.append([entry(i) for i in range(300, 700)]) == 300
    root = log.root_hash()
    cp = log.checkpoint()
    assert (cp.checkpoint.size, cp.checkpoint.root) == (700, root)
    log.close()
    # Two full bundles and their tiles, one partial of 188, as the spec lays them out.
    assert (tmp_path / "tile/entries/000").exists()
    assert (tmp_path / "tile/entries/002.p/188").exists()
    assert (tmp_path / "tile/0/002.p/188").exists()
    assert (tmp_path / "tile/1/000.p/2").exists()
    log = Log(tmp_path, ORIGIN, signer)
    assert (log.size, log.root_hash()) == (700, root)
    assert log.entry(5) == entry(5)
    assert log.entry(650) == entry(650)
    log.close()
    report = audit.verify(audit.DirectoryFiles(tmp_path), [signer.verifier], check_sources=False)
    assert report.ok, report.findings
    assert report.size == 700


def test_reopening_redoes_bundles_from_the_write_ahead_log(tmp_path: Path, signer: Signer) -> None:
    """log.json lags by up to WAL_BUNDLES bundles; pending holds the rest, torn tail and all."""
    log = Log(tmp_path, ORIGIN, signer)
    log.append([entry(i) for i in range(3 * 256 + 10)])
    root = log.root_hash()
    log.close()  # closing writes nothing: this is what a kill leaves behind
    state = json.loads((tmp_path / "log.json").read_text())
    assert state["full"] == 0
    with (tmp_path / "pending").open("ab") as fh:
        fh.write(b"\0" * 64)  # a zero-filled tail, as a power cut can leave
    for bundle in (1, 2):  # as if the crash came before these bundles were written
        (tmp_path / tiles.tile_path("entries", bundle)).unlink()
    log = Log(tmp_path, ORIGIN, signer)
    assert (log.size, log.root_hash()) == (3 * 256 + 10, root)
    assert log.entry(600) == entry(600)
    log.checkpoint()
    log.close()
    assert json.loads((tmp_path / "log.json").read_text())["full"] == 3 * 256
    report = audit.verify(audit.DirectoryFiles(tmp_path), [signer.verifier], check_sources=False)
    assert report.ok, report.findings


class _AsOf:
    """A log's files as a reader that fetched ``checkpoint`` at ``data`` goes on to see them."""

    def __init__(self, root: Path, data: bytes, size: int) -> None:
        self.files = audit.DirectoryFiles(root)
        self.data, self.size = data, size

    def read(self, path: str) -> bytes | None:
        return self.data if path == CHECKPOINT_FILE else self.files.read(path)

    def history(self) -> list[str]:
        return [p for p in self.files.history() if int(p.rsplit("/", 1)[1]) <= self.size]


def test_a_reader_behind_the_writer_reads_the_full_tile_once_the_partial_is_dropped(
    tmp_path: Path, signer: Signer
) -> None:
    log = Log(tmp_path, ORIGIN, signer)
    log.append([entry(i) for i in range(250)])
    old = log.checkpoint().encode()
    old_root = log.root_hash()
    log.append([entry(i) for i in range(250, 300)])
    log.checkpoint()
    log.close()
    assert not (tmp_path / tiles.tile_path("entries", 0, 250)).exists()
    assert not (tmp_path / tiles.tile_path(0, 0, 250)).exists()
    reader = tiles.TileReader(tiles.directory_reader(tmp_path), 250)
    assert reader.root() == old_root
    assert [reader.entry(i) for i in range(250)] == [entry(i) for i in range(250)]
    report = audit.verify(_AsOf(tmp_path, old, 250), [signer.verifier], check_sources=False)
    assert report.ok, report.findings
    assert report.size == 250
    # Without the full tile either, the bundle is missing: the log is truncated.
    (tmp_path / tiles.tile_path("entries", 0)).unlink()
    report = audit.verify(_AsOf(tmp_path, old, 250), [signer.verifier], check_sources=False)
    assert audit.Tamper.TRUNCATED in {f.tamper for f in report.findings}


def test_a_second_writer_is_refused(tmp_path: Path, signer: Signer) -> None:
    log = Log(tmp_path, ORIGIN, signer)
    with pytest.raises(LogError, match="another process"):
        Log(tmp_path, ORIGIN, signer)
    log.close()
    with pytest.raises(LogError, match="holds the log"):
        Log(tmp_path, "another/origin", signer)


def test_upper_tiles_across_a_level_one_tile(tmp_path: Path, signer: Signer) -> None:
    """65,536 + 300 entries fill a level-1 tile and start the next one."""
    size = 256 * 256 + 300
    with open_writer(tmp_path, ORIGIN, signer) as w:
        futs = [w.append(i.to_bytes(4, "big")) for i in range(size)]
        assert futs[-1].result() == size - 1
    assert (tmp_path / "tile/1/000").stat().st_size == 256 * 32
    assert (tmp_path / "tile/2/000.p/1").exists()
    report = audit.verify(audit.DirectoryFiles(tmp_path), [signer.verifier], check_sources=False)
    assert report.ok, report.findings
    log = Log(tmp_path, ORIGIN, signer)  # recovery rebuilds the partial upper rows
    assert log.size == size
    log.append([b"one more"])
    log.checkpoint()
    log.close()
    report = audit.verify(audit.DirectoryFiles(tmp_path), [signer.verifier], check_sources=False)
    assert report.ok, report.findings


def test_writer_batches_and_acknowledges_in_order(tmp_path: Path, signer: Signer) -> None:
    with open_writer(tmp_path, ORIGIN, signer, checkpoint_interval=0.1) as w:
        lone = w.append(b"lone")
        started = time.monotonic()
        assert lone.result(timeout=5) == 0
        assert time.monotonic() - started < 0.25
        results: list[int] = []
        lock = threading.Lock()

        def burst(k: int) -> None:
            futs = [w.append(f"{k}-{i}".encode()) for i in range(500)]
            got = [f.result(timeout=30) for f in futs]
            with lock:
                results.extend(got)

        threads = [threading.Thread(target=burst, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == list(range(1, 2001))
        # Four threads queue faster than a batch commits: batches form, none over 256.
        assert 1 < w.largest_batch <= MAX_BATCH
        assert w.batches < 2001
        time.sleep(0.3)
        # Checkpoints are signed while entries arrive, not only at close.
        assert w.log.checkpointed == 2001


def test_oversized_record_goes_to_a_blob(tmp_path: Path, signer: Signer) -> None:
    with open_writer(tmp_path, ORIGIN, signer) as w:
        ledger = records.Ledger(w, "test")
        small = ledger.record("note", text="hello").result()
        big = ledger.record("artifact", body="x" * 70_000).result()
        assert ledger.record("note", text="after").result() == 2
    log = Log(tmp_path, ORIGIN, signer)
    rec = records.decode(log.entry(big))
    assert records.decode(log.entry(small))["seq"] == 0
    log.close()
    digest = rec["blob"]["sha256"]
    blob = records.blob_path(tmp_path, digest).read_bytes()
    assert records.decode(blob)["body"] == "x" * 70_000
    assert (rec["seq"], rec["source"]) == (1, "test")
    report = audit.verify(audit.DirectoryFiles(tmp_path), [signer.verifier])
    assert report.ok, report.findings
    records.blob_path(tmp_path, digest).write_bytes(blob.replace(b"xxx", b"yyy", 1))
    report = audit.verify(audit.DirectoryFiles(tmp_path), [signer.verifier])
    assert [f.tamper for f in report.findings] == [audit.Tamper.MODIFIED]


def test_sequence_numbers_continue_across_runs(tmp_path: Path, signer: Signer) -> None:
    for _ in range(2):
        with open_writer(tmp_path, ORIGIN, signer) as w:
            ledger = records.Ledger(w, "orchestrator")
            for i in range(3):
                ledger.record("step", n=i)
    report = audit.verify(audit.DirectoryFiles(tmp_path), [signer.verifier])
    assert report.ok, report.findings
    assert report.sources["orchestrator"].last_seq == 5


def test_receipt_round_trip(tmp_path: Path, signer: Signer) -> None:
    with open_writer(tmp_path, ORIGIN, signer) as w:
        for i in range(1000):
            w.append(entry(i))
    cp = Log(tmp_path, ORIGIN, signer)
    signed = cp.latest_checkpoint()
    cp.close()
    assert signed is not None
    read = tiles.directory_reader(tmp_path)
    for index in (0, 255, 256, 777, 999):
        receipt = proof.prove(read, index, signed)
        again = proof.Receipt.parse(receipt.encode())
        assert again.entry == entry(index)
        proof.check(again, [signer.verifier])
    forged = proof.Receipt(777, b"forged", receipt.proof, signed)
    with pytest.raises(proof.ReceiptError):
        proof.check(forged, [signer.verifier])
    with pytest.raises(proof.ReceiptError):
        proof.check(receipt, [Signer.generate(ORIGIN).verifier])


CHILD = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from sovdeploy.ledger.log import Log, Writer
    from sovdeploy.ledger.note import Signer
    sys.path.insert(0, sys.argv[4])
    from test_ledger_log import entry

    log = Log(Path(sys.argv[1]), sys.argv[2], Signer.parse(sys.argv[3]))
    w = Writer(log, checkpoint_interval=0.05)
    lock = threading.Lock()
    room = threading.Semaphore(3000)

    def ack(fut, seq):
        room.release()
        index = fut.result()
        with lock:
            sys.stdout.write(f"{index} {seq}\\n")
            sys.stdout.flush()

    seq = int(sys.argv[5])
    print("ready", flush=True)
    while True:
        room.acquire()
        w.append(entry(seq)).add_done_callback(lambda f, s=seq: ack(f, s))
        seq += 1
    """
)


def test_no_acknowledged_entry_is_lost_when_the_writer_is_killed(
    tmp_path: Path, signer: Signer
) -> None:
    """Kill the writer at random instants mid-write, 25 times; every ack must hold."""
    rng = random.Random(20261121)
    acked: dict[int, int] = {}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for run in range(25):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path), ORIGIN, signer.skey(),
             str(Path(__file__).parent), str(run * 10_000_000)],
            stdout=subprocess.PIPE,
            env=env,
        )  # fmt: skip
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.02, 0.4))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate()
        for line in out.decode().splitlines():
            index, seq = map(int, line.split())
            assert acked.setdefault(index, seq) == seq, f"index {index} acknowledged twice"
        log = Log(tmp_path, ORIGIN, signer)
        try:
            for index, seq in sorted(acked.items()):
                assert log.entry(index) == entry(seq), f"entry {index} lost or changed"
        finally:
            log.close()
    assert len(acked) > 10_000, "the writer was killed before it wrote much"
    log = Log(tmp_path, ORIGIN, signer)
    size = log.size
    log.checkpoint()
    log.close()
    report = audit.verify(audit.DirectoryFiles(tmp_path), [signer.verifier], check_sources=False)
    assert report.ok, report.findings
    assert report.size == size >= len(acked)


def test_opening_adds_the_history_entry_a_crash_left_out(tmp_path: Path) -> None:
    """`checkpoint` is replaced before its history entry is written; a crash between the
    two leaves the entry out, and opening the log writes it from the checkpoint."""
    signer = Signer.generate("sovdeploy.test/history")
    with open_writer(tmp_path, "sovdeploy.test/history", signer) as w:
        for i in range(300):
            w.append(b"entry %d" % i)
    entry = tmp_path / HISTORY_DIR / f"{300:020d}"
    assert entry.read_bytes() == (tmp_path / CHECKPOINT_FILE).read_bytes()
    entry.unlink()
    Log(tmp_path, "sovdeploy.test/history", signer).close()
    assert entry.read_bytes() == (tmp_path / CHECKPOINT_FILE).read_bytes()
