"""Inclusion receipts in the c2sp.org/tlog-proof@v1 text format.

A receipt is self-contained: the entry itself rides in the ``extra`` line, so an
auditor holding only the receipt and the log's public key can check that this exact
entry is at this index of the signed tree.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from sovdeploy.errors import LedgerError
from sovdeploy.ledger import merkle, note, tiles
from sovdeploy.ledger.checkpoint import SignedCheckpoint

HEADER = "c2sp.org/tlog-proof@v1"


class ReceiptError(LedgerError, ValueError):
    """A receipt is malformed or does not verify."""


@dataclass(frozen=True)
class Receipt:
    index: int
    entry: bytes
    proof: tuple[bytes, ...]
    checkpoint: SignedCheckpoint

    def encode(self) -> str:
        lines = [
            HEADER,
            "extra " + base64.b64encode(self.entry).decode(),
            f"index {self.index}",
            *(base64.b64encode(h).decode() for h in self.proof),
            "",
        ]
        return "\n".join(lines) + "\n" + self.checkpoint.encode().decode()

    @classmethod
    def parse(cls, text: str) -> Receipt:
        head, sep, rest = text.partition("\n\n")
        if not sep:
            raise ReceiptError("a receipt is proof lines, a blank line, then a checkpoint")
        lines = head.split("\n")
        if lines[0] != HEADER:
            raise ReceiptError(f"a receipt starts with {HEADER}")
        pos = 1
        entry = b""
        try:
            if lines[pos].startswith("extra "):
                entry = base64.b64decode(lines[pos][6:], validate=True)
                pos += 1
            if not lines[pos].startswith("index "):
                raise ReceiptError("the index line is missing")
            index = int(lines[pos][6:])
            proof = tuple(base64.b64decode(h, validate=True) for h in lines[pos + 1 :])
        except (IndexError, ValueError, binascii.Error) as exc:
            raise ReceiptError(f"malformed receipt: {exc}") from None
        return cls(index, entry, proof, SignedCheckpoint.parse(rest.encode()))


def prove(read: tiles.FileReader, index: int, checkpoint: SignedCheckpoint) -> Receipt:
    """Build the receipt for entry ``index`` under ``checkpoint`` from the log's tiles."""
    reader = tiles.TileReader(read, checkpoint.checkpoint.size)
    entry = reader.entry(index)
    proof = merkle.inclusion_proof(reader.node, index, checkpoint.checkpoint.size)
    receipt = Receipt(index, entry, tuple(proof), checkpoint)
    check(receipt, [])
    return receipt


def check(receipt: Receipt, log_keys: list[note.Verifier]) -> None:
    """Raise unless the receipt's entry is in its checkpoint's tree (and, given keys, signed)."""
    if log_keys:
        try:
            note.verify(receipt.checkpoint.note, log_keys)
        except note.NoteError as exc:
            raise ReceiptError(f"the checkpoint: {exc}") from None
    cp = receipt.checkpoint.checkpoint
    try:
        merkle.verify_inclusion(
            receipt.index, cp.size, merkle.leaf_hash(receipt.entry), receipt.proof, cp.root
        )
    except merkle.ProofError as exc:
        raise ReceiptError(str(exc)) from None
