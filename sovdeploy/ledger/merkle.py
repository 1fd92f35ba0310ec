"""RFC 9162 Merkle tree hashing, proofs and their verification.

Leaves hash as SHA-256(0x00 || entry), interior nodes as SHA-256(0x01 || left || right);
the tree over n leaves splits at the largest power of two below n (RFC 9162, 2.1.1).
Proof verification follows the RFC's algorithms step by step (2.1.3.2 and 2.1.4.2), so
that a proof we accept is one any other RFC 9162 implementation accepts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from sovdeploy.errors import LedgerError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


class ProofError(LedgerError, ValueError):
    """A proof does not verify, or was asked for an impossible range."""


def leaf_hash(entry: bytes) -> bytes:
    return _sha256(b"\x00" + entry).digest()


def leaf_hashes(entries: Iterable[bytes]) -> list[bytes]:
    """The leaf hash of each entry (one call for a bundle: the verifier's hot loop)."""
    sha256 = _sha256
    return [sha256(b"\x00" + e).digest() for e in entries]


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    """The k of RFC 9162's split: the largest power of two strictly less than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class CompactRange:
    """The right edge of a growing tree: one hash per perfect subtree, largest first.

    Appending a leaf costs one node hash on average, and the root at any size is a fold
    of at most log2(n) hashes, so a verifier can stream a log of any length through it.
    """

    __slots__ = ("hashes", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if len(hashes) != size.bit_count():
            raise ValueError(f"a compact range of size {size} has {size.bit_count()} hashes")
        self.size = size
        self.hashes = list(hashes)

    def append(self, h: bytes) -> None:
        """Append one leaf hash."""
        n = self.size
        stack = self.hashes
        while n & 1:
            h = _sha256(b"\x01" + stack.pop() + h).digest()
            n >>= 1
        stack.append(h)
        self.size += 1

    def append_subtree(self, h: bytes, height: int) -> None:
        """Append the hash of a perfect subtree of 2**height leaves, aligned to its size."""
        if self.size & ((1 << height) - 1):
            raise ValueError(f"a subtree of height {height} cannot start at {self.size}")
        n = self.size >> height
        stack = self.hashes
        while n & 1:
            h = _sha256(b"\x01" + stack.pop() + h).digest()
            n >>= 1
        stack.append(h)
        self.size += 1 << height

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        it = reversed(self.hashes)
        r = next(it)
        for h in it:
            r = _sha256(b"\x01" + h + r).digest()
        return r

    def copy(self) -> CompactRange:
        return CompactRange(self.size, self.hashes)


def root_of(leaf_hashes: Iterable[bytes]) -> bytes:
    """The Merkle Tree Hash of a sequence of leaf hashes."""
    cr = CompactRange()
    for h in leaf_hashes:
        cr.append(h)
    return cr.root()


def perfect_root(hashes: Sequence[bytes]) -> bytes:
    """The root of a perfect subtree whose 2**k bottom hashes are given."""
    level = list(hashes)
    while len(level) > 1:
        level = [
            _sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level), 2)
        ]
    return level[0]


#: Returns the hash of the perfect subtree at (height, index): leaves
#: [index * 2**height, (index + 1) * 2**height).
NodeReader = Callable[[int, int], bytes]


def range_hash(read: NodeReader, start: int, end: int) -> bytes:
    """The Merkle Tree Hash of leaves [start, end), from the perfect subtrees that tile it.

    ``start`` must be aligned the way RFC 9162's recursion leaves it: a multiple of the
    largest power of two not exceeding ``end - start``.
    """
    if start >= end:
        raise ProofError(f"empty range [{start}, {end})")
    parts: list[bytes] = []
    pos = start
    while pos < end:
        # The largest aligned perfect subtree starting at pos that fits before end.
        height = (end - pos).bit_length() - 1
        while pos & ((1 << height) - 1):
            height -= 1
        parts.append(read(height, pos >> height))
        pos += 1 << height
    r = parts.pop()
    while parts:
        r = node_hash(parts.pop(), r)
    return r


def inclusion_proof(read: NodeReader, index: int, size: int) -> list[bytes]:
    """RFC 9162 PATH(index, D[0:size]), leaf sibling first."""
    if not 0 <= index < size:
        raise ProofError(f"entry {index} is not in a tree of size {size}")
    proof: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = largest_power_of_two_below(hi - lo)
        if index < lo + k:
            proof.append(range_hash(read, lo + k, hi))
            hi = lo + k
        else:
            proof.append(range_hash(read, lo, lo + k))
            lo += k
    proof.reverse()
    return proof


def consistency_proof(read: NodeReader, old: int, new: int) -> list[bytes]:
    """RFC 9162 PROOF(old, D[0:new])."""
    if not 0 <= old <= new:
        raise ProofError(f"no consistency proof from size {old} to size {new}")
    if old in (0, new):
        return []
    proof: list[bytes] = []
    lo, hi, complete = 0, new, True
    while True:
        if old == hi:
            if not complete:
                proof.append(range_hash(read, lo, hi))
            break
        k = largest_power_of_two_below(hi - lo)
        if old <= lo + k:
            proof.append(range_hash(read, lo + k, hi))
            hi = lo + k
        else:
            proof.append(range_hash(read, lo, lo + k))
            lo += k
            complete = False
    proof.reverse()
    return proof


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162, 2.1.3.2: the root that ``proof`` leads to from ``leaf``."""
    if index >= size:
        raise ProofError(f"entry {index} is not in a tree of size {size}")
    if len(leaf) != HASH_SIZE:
        raise ProofError("a leaf hash has 32 bytes")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if len(p) != HASH_SIZE:
            raise ProofError("a proof hash has 32 bytes")
        if sn == 0:
            raise ProofError("the inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the inclusion proof is shorter than the tree is deep")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise :class:`ProofError` unless ``proof`` shows ``leaf`` at ``index`` under ``root``."""
    if root_from_inclusion_proof(index, size, leaf, proof) != root:
        raise ProofError(f"entry {index} is not under this root of a tree of size {size}")


def _trivially_consistent(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Settle the cases the RFC's loop does not cover (equal sizes, the empty tree)."""
    if old > new:
        raise ProofError(f"size {new} is older than size {old}")
    if old == new:
        if proof:
            raise ProofError("a proof between equal sizes is empty")
        if old_root != new_root:
            raise ProofError(f"two different roots for size {old}")
        return True
    if old == 0:
        if proof:
            raise ProofError("a proof from the empty tree is empty")
        return True
    if not proof:
        raise ProofError("the consistency proof is empty")
    if any(len(p) != HASH_SIZE for p in proof):
        raise ProofError("a proof hash has 32 bytes")
    return False


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162, 2.1.4.2: raise unless the tree at ``new`` extends the tree at ``old``."""
    if _trivially_consistent(old, new, old_root, new_root, proof):
        return
    path = list(proof)
    if old & (old - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the consistency proof is shorter than the tree is deep")
    if fr != old_root:
        raise ProofError(f"the proof does not lead to the root of size {old}")
    if sr != new_root:
        raise ProofError(f"the proof does not lead to the root of size {new}")
