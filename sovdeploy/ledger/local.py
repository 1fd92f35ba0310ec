"""The orchestrator's own ledger, in the deployment's state dir.

``<state>/ledger/`` is a tlog-tiles log; its signing key is ``<state>/keys/ledger.key``
(mode 0600) and its verifier key ``<state>/keys/ledger.pub``, which is what an auditor
is given (out of band) to check it. The log's origin, and its key's name, is
``sovdeploy/<deployment>/orchestrator``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from sovdeploy.errors import LedgerError
from sovdeploy.fsutil import atomic_write
from sovdeploy.ledger import proof, records, tiles
from sovdeploy.ledger.checkpoint import SignedCheckpoint
from sovdeploy.ledger.log import CHECKPOINT_FILE, Log, LogError, Writer
from sovdeploy.ledger.note import Signer, Verifier
from sovdeploy.ledger.proof import Receipt

SOURCE = "orchestrator"


def origin(deployment: str) -> str:
    return f"sovdeploy/{deployment}/orchestrator"


def ledger_dir(state_root: Path) -> Path:
    return state_root / "ledger"


def key_paths(state_root: Path) -> tuple[Path, Path]:
    return state_root / "keys" / "ledger.key", state_root / "keys" / "ledger.pub"


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Say what to do when a file of the ledger at ``path`` cannot be read."""
    try:
        yield
    except (LogError, ValueError) as exc:  # the formats' errors (NoteError, ...) and JSON's
        what = str(exc) if isinstance(exc, LogError) else f"{path} is damaged: {exc}"
        raise LedgerError(
            f"{what}. `sovdeploy audit verify` says what is wrong; the log host holds what "
            "was forwarded. Keep the ledger as evidence and move it aside to start a new one"
        ) from None


def signer_file(private: Path, name: str, *, create: bool) -> tuple[Signer, bool]:
    """The signing key in ``private``, checked to sign for ``name``, and whether it is new.

    When the file does not exist and ``create``, a key is made and written (mode 0600).
    """
    if private.exists():
        try:
            signer = Signer.parse(private.read_text())
        except ValueError as exc:  # NoteError, or not text at all
            raise LedgerError(
                f"{private} is damaged ({exc}); restore it from a backup of the state dir, "
                "or move it and the ledger aside to start a new ledger"
            ) from None
        if signer.name != name:
            raise LedgerError(f"{private} signs for {signer.name}, not for {name}")
        return signer, False
    if not create:
        raise LedgerError(f"this deployment has no ledger key yet ({private})")
    signer = Signer.generate(name)
    atomic_write(private, (signer.skey() + "\n").encode(), 0o600)
    return signer, True


def load_signer(state_root: Path, deployment: str, *, create: bool) -> Signer:
    """The ledger's signing key; made on first use when ``create``."""
    private, public = key_paths(state_root)
    if create and not private.exists():
        private.parent.mkdir(parents=True, exist_ok=True)
        private.parent.chmod(0o700)
    signer, made = signer_file(private, origin(deployment), create=create)
    if made:
        atomic_write(public, (signer.verifier.vkey() + "\n").encode())
    return signer


def load_verifier(state_root: Path) -> Verifier:
    _, public = key_paths(state_root)
    try:
        return Verifier.parse(public.read_text())
    except FileNotFoundError:
        raise LedgerError(f"this deployment has no ledger key yet ({public})") from None
    except ValueError as exc:  # NoteError, or not text at all
        raise LedgerError(
            f"{public} is damaged ({exc}); an auditor checks with the key they were given: "
            "`sovdeploy audit verify --key FILE`"
        ) from None


@contextlib.contextmanager
def open_ledger(state_root: Path, deployment: str) -> Iterator[records.Ledger]:
    """Open the orchestrator's ledger for appending; sign a final checkpoint on exit."""
    signer = load_signer(state_root, deployment, create=True)
    with _reading(ledger_dir(state_root)):
        log = Log(ledger_dir(state_root), origin(deployment), signer)
    try:
        with _reading(ledger_dir(state_root)):
            writer = Writer(log)
        try:
            yield records.Ledger(writer, SOURCE)
        finally:
            writer.close()
    finally:
        log.close()


def latest(state_root: Path) -> SignedCheckpoint:
    root = ledger_dir(state_root)
    data = tiles.directory_reader(root)(CHECKPOINT_FILE)
    if data is None:
        raise LedgerError(f"{root} has no checkpoint yet")
    with _reading(root / CHECKPOINT_FILE):
        return SignedCheckpoint.parse(data)


def entries(state_root: Path) -> Iterator[bytes]:
    """Every entry under the latest checkpoint, read-only (no lock taken)."""
    for _, entry in indexed_entries(state_root):
        yield entry


def indexed_entries(state_root: Path, start: int = 0) -> Iterator[tuple[int, bytes]]:
    """(index, entry) from ``start`` to the latest checkpoint's size, read-only."""
    size = latest(state_root).checkpoint.size
    reader = tiles.TileReader(tiles.directory_reader(ledger_dir(state_root)), size)
    for index in range(start, size):
        with _reading(ledger_dir(state_root) / "tile"):
            entry = reader.entry(index)
        yield index, entry


def prove(state_root: Path, index: int) -> Receipt:
    """The inclusion receipt of entry ``index`` under the ledger's latest checkpoint."""
    root = ledger_dir(state_root)
    cp = latest(state_root)
    if index >= cp.checkpoint.size:
        raise LedgerError(f"the ledger's checkpoint covers entries 0-{cp.checkpoint.size - 1}")
    try:
        return proof.prove(tiles.directory_reader(root), index, cp)
    except (tiles.TileError, proof.ReceiptError) as exc:
        raise LedgerError(
            f"cannot prove entry {index} from the ledger in {root}: {exc}; "
            "`sovdeploy audit verify` says what is wrong"
        ) from None
