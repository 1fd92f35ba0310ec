"""C2SP signed-note with Ed25519, and tlog-cosignature/v1 (timestamped Ed25519) cosignatures.

Keys travel in the spec's text forms, which other implementations read too::

    verifier key  <name>+<key id, 8 hex>+base64(type byte || public key)
    signer key    PRIVATE+KEY+<name>+<key id, 8 hex>+base64(type byte || seed)

where key id = SHA-256(name || 0x0A || type byte || public key)[:4], type 0x01 for a
note signature and 0x04 for a witness cosignature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sovdeploy.errors import LedgerError

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
_DASH = "\u2014 "
#: Verifiers must accept at least 16 signatures; past this many a note is refused.
MAX_SIGNATURES = 100


class NoteError(LedgerError, ValueError):
    """A note, key or signature is malformed or does not verify."""


def key_id(name: str, sig_type: int, public: bytes) -> int:
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public).digest()
    return int.from_bytes(digest[:4], "big")


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise NoteError(f"key name {name!r} is empty or has a space or '+'")


def _b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise NoteError(f"bad base64: {exc}") from None


@dataclass(frozen=True)
class Verifier:
    """A public key that checks one kind of signature line."""

    name: str
    sig_type: int
    public: bytes

    @property
    def id(self) -> int:
        return key_id(self.name, self.sig_type, self.public)

    def vkey(self) -> str:
        blob = base64.b64encode(bytes([self.sig_type]) + self.public).decode()
        return f"{self.name}+{self.id:08x}+{blob}"

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3 or len(parts[1]) != 8:
            raise NoteError(f"malformed verifier key {vkey!r}")
        name, hex_id, blob = parts
        _check_name(name)
        raw = _b64decode(blob)
        if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
            raise NoteError(f"verifier key {name} is not an Ed25519 key of a known type")
        v = cls(name, raw[0], raw[1:])
        try:
            claimed = int(hex_id, 16)
        except ValueError:
            raise NoteError(f"malformed key id in {vkey!r}") from None
        if claimed != v.id:
            raise NoteError(f"verifier key {name}: the key id does not match the key")
        return v

    def check(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except InvalidSignature:
            return False
        return True


class Signer:
    """An Ed25519 private key with its name and signature type."""

    def __init__(self, name: str, seed: bytes, sig_type: int = ED25519) -> None:
        _check_name(name)
        if len(seed) != 32:
            raise NoteError("an Ed25519 seed has 32 bytes")
        self.name = name
        self.sig_type = sig_type
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self._seed = seed
        public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.verifier = Verifier(name, sig_type, public)

    @classmethod
    def generate(cls, name: str, sig_type: int = ED25519) -> Signer:
        seed = Ed25519PrivateKey.generate().private_bytes_raw()
        return cls(name, seed, sig_type)

    @classmethod
    def parse(cls, skey: str) -> Signer:
        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("malformed signer key")
        _, _, name, hex_id, blob = parts
        raw = _b64decode(blob)
        if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
            raise NoteError(f"signer key {name} is not an Ed25519 key of a known type")
        signer = cls(name, raw[1:], raw[0])
        if hex_id != f"{signer.verifier.id:08x}":
            raise NoteError(f"signer key {name}: the key id does not match the key")
        return signer

    def skey(self) -> str:
        blob = base64.b64encode(bytes([self.sig_type]) + self._seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.id:08x}+{blob}"

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


@dataclass(frozen=True)
class Signature:
    name: str
    key_id: int
    signature: bytes

    def line(self) -> str:
        blob = base64.b64encode(struct.pack(">I", self.key_id) + self.signature).decode()
        return f"{_DASH}{self.name} {blob}\n"


@dataclass(frozen=True)
class Note:
    text: str
    signatures: tuple[Signature, ...]

    def encode(self) -> bytes:
        return (self.text + "\n" + "".join(s.line() for s in self.signatures)).encode()


def parse(data: bytes) -> Note:
    """Split a signed note into its text and signature lines (nothing is verified here)."""
    try:
        msg = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError("a note is UTF-8") from None
    if any(ord(c) < 0x20 and c != "\n" for c in msg):
        raise NoteError("a note has no control characters but newline")
    split = msg.rfind("\n\n")
    if split < 0 or not msg.endswith("\n"):
        raise NoteError("a note is text, a blank line, then signature lines")
    text, sig_block = msg[: split + 1], msg[split + 2 :]
    sigs = []
    for line in sig_block.splitlines():
        if not line.startswith(_DASH):
            raise NoteError(f"malformed signature line {line!r}")
        name, _, blob = line[len(_DASH) :].rpartition(" ")
        _check_name(name)
        raw = _b64decode(blob)
        if len(raw) < 5:
            raise NoteError(f"signature by {name} is too short")
        sigs.append(Signature(name, struct.unpack(">I", raw[:4])[0], raw[4:]))
    if not sigs:
        raise NoteError("a note has at least one signature")
    if len(sigs) > MAX_SIGNATURES:
        raise NoteError(f"a note with more than {MAX_SIGNATURES} signatures")
    return Note(text, tuple(sigs))


def sign_text(text: str, signers: Iterable[Signer]) -> bytes:
    if not text.endswith("\n"):
        raise NoteError("a note's text ends in a newline")
    sigs = tuple(Signature(s.name, s.verifier.id, s.sign(text.encode())) for s in signers)
    return Note(text, sigs).encode()


def cosignature_message(text: str, timestamp: int) -> bytes:
    """What a tlog-cosignature/v1 witness signs over a checkpoint's note text."""
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def cosign(text: str, signer: Signer, timestamp: int | None = None) -> Signature:
    """A timestamped witness cosignature (type 0x04) over a checkpoint's text."""
    if signer.sig_type != COSIGNATURE_V1:
        raise NoteError(f"{signer.name} is not a cosignature key")
    ts = int(time.time()) if timestamp is None else timestamp
    sig = signer.sign(cosignature_message(text, ts))
    return Signature(signer.name, signer.verifier.id, struct.pack(">Q", ts) + sig)


def verified_by(note: Note, verifiers: Sequence[Verifier]) -> list[Verifier]:
    """Return the known keys whose signatures verify; raise if a known key's fails.

    Signatures from unknown keys (name and id not both matching) are ignored, as the
    spec requires; a known key's failed signature rejects the whole note.
    """
    known = {(v.name, v.id): v for v in verifiers}
    good: list[Verifier] = []
    for sig in note.signatures:
        v = known.get((sig.name, sig.key_id))
        if v is None:
            continue
        if v.sig_type == COSIGNATURE_V1:
            if len(sig.signature) != 8 + 64:
                raise NoteError(f"cosignature by {v.name} has the wrong length")
            ts = struct.unpack(">Q", sig.signature[:8])[0]
            ok = v.check(cosignature_message(note.text, ts), sig.signature[8:])
        else:
            ok = v.check(note.text.encode(), sig.signature)
        if not ok:
            raise NoteError(f"the signature by {v.name} does not verify")
        if v not in good:
            good.append(v)
    return good


def verify(note: Note, verifiers: Sequence[Verifier]) -> list[Verifier]:
    """Like :func:`verified_by`, and raise when no known key signed the note."""
    good = verified_by(note, verifiers)
    if not good:
        raise NoteError("no signature by a known key")
    return good


def cosignature_time(note: Note, verifier: Verifier) -> int | None:
    """The timestamp of ``verifier``'s cosignature on ``note``, if it has one."""
    for sig in note.signatures:
        if (sig.name, sig.key_id) == (verifier.name, verifier.id) and len(sig.signature) == 72:
            return int(struct.unpack(">Q", sig.signature[:8])[0])
    return None
