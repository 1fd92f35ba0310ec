"""C2SP tlog-checkpoint: origin, tree size and root hash, as a signed note's text."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from sovdeploy.errors import LedgerError
from sovdeploy.ledger import merkle
from sovdeploy.ledger.note import Note, Signature, Signer, parse, sign_text


class CheckpointError(LedgerError, ValueError):
    """A checkpoint's text is malformed."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        return "\n".join([*lines, *self.extensions]) + "\n"

    @classmethod
    def parse_text(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "" or any(not ln for ln in lines[:-1]):
            raise CheckpointError("a checkpoint is at least three non-empty lines")
        origin, size_line, root_line = lines[:3]
        if not size_line.isdigit() or (size_line != "0" and size_line.startswith("0")):
            raise CheckpointError(f"bad tree size {size_line!r}")
        try:
            root = base64.b64decode(root_line, validate=True)
        except binascii.Error:
            raise CheckpointError(f"bad root hash {root_line!r}") from None
        if len(root) != merkle.HASH_SIZE:
            raise CheckpointError("a root hash has 32 bytes")
        return cls(origin, int(size_line), root, tuple(lines[3:-1]))


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint and the note that carries it, with every signature as found."""

    checkpoint: Checkpoint
    note: Note

    @classmethod
    def parse(cls, data: bytes) -> SignedCheckpoint:
        n = parse(data)
        return cls(Checkpoint.parse_text(n.text), n)

    def encode(self) -> bytes:
        return self.note.encode()

    def with_signatures(self, extra: list[Signature]) -> SignedCheckpoint:
        """This checkpoint with ``extra`` signature lines added (a witness's cosignatures)."""
        seen = set(self.note.signatures)
        sigs = self.note.signatures + tuple(s for s in extra if s not in seen)
        return SignedCheckpoint(self.checkpoint, Note(self.note.text, sigs))


def sign(cp: Checkpoint, signer: Signer) -> SignedCheckpoint:
    data = sign_text(cp.text(), [signer])
    return SignedCheckpoint.parse(data)
