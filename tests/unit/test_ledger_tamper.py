"""The tamper suite: each kind of tampering is caught, with its own class and exit code.

One log is built (three sources, heartbeats, two checkpoints, full and partial bundles)
and copied for each case; an untouched copy must verify clean. The attacker in these
cases holds the log's signing key where the case says so: that is the operator an
auditor must not have to trust.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from sovdeploy.cli import main
from sovdeploy.ledger import audit, records, tiles
from sovdeploy.ledger.audit import Tamper
from sovdeploy.ledger.checkpoint import SignedCheckpoint
from sovdeploy.ledger.log import CHECKPOINT_FILE, Log, open_writer
from sovdeploy.ledger.note import COSIGNATURE_V1, Signer, cosign

ORIGIN = "sovdeploy.test/tamper"
SIGNER = Signer.generate(ORIGIN)
T0 = dt.datetime(2026, 11, 21, 8, 0, tzinfo=dt.UTC)
SIZE_OLD, SIZE = 400, 700


class Clock:
    def __init__(self) -> None:
        self.t = 0

    def __call__(self) -> str:
        return (T0 + dt.timedelta(seconds=self.t)).isoformat().replace("+00:00", "Z")


def build(root: Path, steps: range, clock: Clock, silent_after: int | None = None) -> None:
    """Append records for steps: three sources in turn, hosts heartbeating every 10 s."""
    with open_writer(root, ORIGIN, SIGNER) as w:
        ledgers = {s: records.Ledger(w, s, clock) for s in ("orchestrator", "host-a", "host-b")}
        for step in steps:
            clock.t = step
            name = ("orchestrator", "host-a", "host-b")[step % 3]
            if name == "host-b" and silent_after is not None and step > silent_after:
                continue
            if name != "orchestrator" and step % 4 == 1:
                ledgers[name].record("heartbeat", interval=10)
            else:
                ledgers[name].record("event", step=step, text=f"step {step} on {name}")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The log at SIZE, and a copy taken when it was at SIZE_OLD."""
    root = tmp_path_factory.mktemp("ledger")
    clock = Clock()
    build(root / "log", range(SIZE_OLD), clock)
    shutil.copytree(root / "log", root / "old")
    build(root / "log", range(SIZE_OLD, SIZE), clock)
    return root / "log", root / "old"


@pytest.fixture
def log(pristine: tuple[Path, Path], tmp_path: Path) -> Path:
    shutil.copytree(pristine[0], tmp_path / "log")
    return tmp_path / "log"


def check(root: Path, **kwargs: object) -> audit.Report:
    return audit.verify(audit.DirectoryFiles(root), [SIGNER.verifier], **kwargs)  # type: ignore[arg-type]


def classes(report: audit.Report) -> set[Tamper]:
    return {f.tamper for f in report.findings}


def edit_bundle(root: Path, n: int, width: int, fn: Callable[[list[bytes]], list[bytes]]) -> None:
    path = root / tiles.tile_path("entries", n, width)
    path.write_bytes(tiles.encode_bundle(fn(tiles.decode_bundle(path.read_bytes()))))


def entries_of(root: Path) -> Iterator[bytes]:
    log = Log(root, ORIGIN, SIGNER)
    try:
        for i in range(log.size):
            yield log.entry(i)
    finally:
        log.close()


def resign(src: Path, dst: Path, change: Callable[[list[bytes]], list[bytes]]) -> None:
    """What an operator holding the key can do: rebuild the whole log and sign it."""
    entries = change(list(entries_of(src)))
    log = Log(dst, ORIGIN, SIGNER)
    log.append(entries)
    log.checkpoint()
    log.close()


def trusted_checkpoint(root: Path) -> bytes:
    return (root / CHECKPOINT_FILE).read_bytes()


# -- clean --------------------------------------------------------------------------


def test_an_untouched_log_verifies_clean(log: Path) -> None:
    report = check(log, trusted=[trusted_checkpoint(log)], expected_sources=["host-a"])
    assert report.ok, report.findings
    assert (report.size, report.exit_code) == (SIZE, 0)
    assert report.checkpoints_checked == 3  # two in the history, one trusted
    assert set(report.sources) == {"orchestrator", "host-a", "host-b"}
    assert report.sources["host-a"].heartbeat == 10


# -- the entries ----------------------------------------------------------------------


def test_an_edited_entry_is_modified(log: Path) -> None:
    edit_bundle(log, 0, 256, lambda es: [*es[:10], es[10].replace(b"step", b"stop"), *es[11:]])
    report = check(log)
    assert classes(report) == {Tamper.MODIFIED}
    assert "[10]" in report.findings[0].message
    assert report.exit_code == 11


def test_a_deleted_entry_is_deleted(log: Path) -> None:
    edit_bundle(log, 1, 256, lambda es: es[:20] + es[21:])
    report = check(log)
    assert classes(report) == {Tamper.DELETED}
    assert "[276]" in report.findings[0].message


def test_two_swapped_entries_are_reordered(log: Path) -> None:
    edit_bundle(log, 0, 256, lambda es: [*es[:30], es[31], es[30], *es[32:]])
    report = check(log)
    assert classes(report) == {Tamper.REORDERED}
    assert "[30, 31]" in report.findings[0].message


def test_a_truncated_log_is_truncated(log: Path) -> None:
    edit_bundle(log, 2, SIZE - 512, lambda es: es[:50])
    assert classes(check(log)) == {Tamper.TRUNCATED}


def test_a_removed_last_bundle_is_truncated(log: Path) -> None:
    (log / tiles.tile_path("entries", 2, SIZE - 512)).unlink()
    assert classes(check(log)) == {Tamper.TRUNCATED}


def test_a_removed_inner_bundle_is_deleted(log: Path) -> None:
    (log / tiles.tile_path("entries", 1)).unlink()
    assert classes(check(log)) == {Tamper.DELETED}


def test_an_edited_hash_tile_is_modified(log: Path) -> None:
    path = log / tiles.tile_path(1, 0, 2)
    data = bytearray(path.read_bytes())
    data[5] ^= 1
    path.write_bytes(bytes(data))
    assert classes(check(log)) == {Tamper.MODIFIED}


# -- the checkpoints ---------------------------------------------------------------------


def test_an_edited_checkpoint_fails_its_signature(log: Path) -> None:
    cp = log / CHECKPOINT_FILE
    cp.write_bytes(cp.read_bytes().replace(f"\n{SIZE}\n".encode(), f"\n{SIZE - 1}\n".encode()))
    report = check(log)
    assert Tamper.SIGNATURE in classes(report)
    assert report.exit_code == 10


def test_a_checkpoint_signed_by_another_key_fails(log: Path) -> None:
    other = Signer.generate(ORIGIN)
    resign_dir = log.parent / "other"
    log_other = Log(resign_dir, ORIGIN, other)
    log_other.append(list(entries_of(log)))
    log_other.checkpoint()
    log_other.close()
    assert classes(check(resign_dir)) == {Tamper.SIGNATURE}


def test_a_rollback_to_an_older_checkpoint(pristine: tuple[Path, Path], log: Path) -> None:
    """The auditor saved the checkpoint at SIZE; the operator restores the copy at SIZE_OLD."""
    old = log.parent / "old"
    shutil.copytree(pristine[1], old)
    assert check(old).ok
    report = check(old, trusted=[trusted_checkpoint(log)])
    assert classes(report) == {Tamper.ROLLBACK}
    assert report.exit_code == 15


def test_a_rollback_the_history_still_shows(log: Path) -> None:
    """The operator cuts the log back and re-signs; its own checkpoint history betrays it."""
    cut = log.parent / "cut"
    resign(log, cut, lambda es: es[:500])
    shutil.copytree(log / "checkpoints", cut / "checkpoints", dirs_exist_ok=True)
    assert Tamper.ROLLBACK in classes(check(cut))


def test_a_fork_two_checkpoints_of_one_size(log: Path) -> None:
    """The operator rewrites entry 100 and re-signs a checkpoint of the same size."""
    forked = log.parent / "forked"
    resign(log, forked, lambda es: [*es[:100], es[100].replace(b"step", b"stop"), *es[101:]])
    assert check(forked).ok  # alone, a consistent forgery looks fine...
    report = check(forked, trusted=[trusted_checkpoint(log)])
    assert classes(report) == {Tamper.FORK}  # ...next to the auditor's checkpoint it does not
    assert report.exit_code == 16
    smaller = check(forked, trusted=[(log / "checkpoints" / f"{SIZE_OLD:020d}").read_bytes()])
    assert classes(smaller) == {Tamper.FORK}


def test_witness_quorum(log: Path) -> None:
    w1 = Signer.generate("witness.test/w1", COSIGNATURE_V1)
    w2 = Signer.generate("witness.test/w2", COSIGNATURE_V1)
    witnesses = [w1.verifier, w2.verifier]
    report = check(log, witnesses=witnesses, quorum=1)
    assert classes(report) == {Tamper.SIGNATURE}
    cp_path = log / CHECKPOINT_FILE
    signed = SignedCheckpoint.parse(cp_path.read_bytes())
    cp_path.write_bytes(signed.with_signatures([cosign(signed.note.text, w1)]).encode())
    assert check(log, witnesses=witnesses, quorum=1).ok
    assert check(log, witnesses=witnesses, quorum=1).witnesses == ["witness.test/w1"]
    assert classes(check(log, witnesses=witnesses, quorum=2)) == {Tamper.SIGNATURE}


# -- the sources ----------------------------------------------------------------------------


def test_a_deleted_and_resigned_entry_leaves_a_sequence_gap(log: Path) -> None:
    """Without a trusted checkpoint, the rebuilt tree verifies; the source's numbering does not."""
    resigned = log.parent / "resigned"
    resign(log, resigned, lambda es: es[:300] + es[301:])
    report = check(resigned)
    assert classes(report) == {Tamper.SOURCE_GAP}
    assert report.exit_code == 19


def test_a_silenced_source(tmp_path: Path) -> None:
    build(tmp_path, range(SIZE), Clock(), silent_after=300)
    report = check(tmp_path)
    assert classes(report) == {Tamper.SOURCE_SILENT}
    assert "host-b has been silent since" in report.findings[0].message
    assert report.exit_code == 20


def test_a_quiet_stretch_before_the_first_heartbeat_is_no_silence(tmp_path: Path) -> None:
    """A host whose journal reached the log before its heartbeat timer existed promised
    nothing then; once it heartbeats, a gap counts."""
    clock = Clock()
    with open_writer(tmp_path, ORIGIN, SIGNER) as w:
        host = records.Ledger(w, "host-a", clock)
        for t in (0, 1, 300, 301):  # quiet for 299 s before any heartbeat
            clock.t = t
            host.record("event", step=t)
        for t in range(305, 400, 10):
            clock.t = t
            host.record("heartbeat", interval=10)
    assert check(tmp_path).ok
    with open_writer(tmp_path, ORIGIN, SIGNER) as w:
        clock.t = 460  # 65 s after the last heartbeat
        records.Ledger(w, "host-a", clock).record("heartbeat", interval=10)
    assert classes(check(tmp_path)) == {Tamper.SOURCE_SILENT}


def test_an_expected_source_that_never_wrote(log: Path) -> None:
    assert classes(check(log, expected_sources=["host-c"])) == {Tamper.SOURCE_SILENT}


# -- the command ------------------------------------------------------------------------------


def test_audit_verify_exit_codes(log: Path, tmp_path: Path) -> None:
    key = tmp_path / "log.pub"
    key.write_text(SIGNER.verifier.vkey() + "\n")
    trusted = tmp_path / "trusted"
    trusted.write_bytes(trusted_checkpoint(log))
    runner = CliRunner()
    ok = runner.invoke(main, ["audit", "verify", str(log), "--key", str(key),
                              "--trusted", str(trusted)])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "verified" in ok.output
    edit_bundle(log, 0, 256, lambda es: [*es[:30], es[31], es[30], *es[32:]])
    bad = runner.invoke(main, ["audit", "verify", str(log), "--key", str(key)])
    assert bad.exit_code == Tamper.REORDERED, bad.output
    assert "REORDERED" in bad.output
