"""The ledger's public formats against the specs' own examples, and proofs by property.

Vectors: RFC 6962/9162 reference leaves, roots and proofs (as published with the
transparency-dev/merkle reference implementation), the C2SP tlog-tiles examples (tile
counts for a tree of 70,000, index path encoding), the signed-note example key and note
(golang.org/x/mod/sumdb/note), and the tlog-checkpoint and tlog-witness examples.
"""

from __future__ import annotations

import base64
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sovdeploy.ledger import merkle, note, tiles
from sovdeploy.ledger.checkpoint import Checkpoint, CheckpointError, SignedCheckpoint, sign

H = bytes.fromhex

LEAVES = [H(x) for x in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                          "606162636465666768696a6b6c6d6e6f")]  # fmt: skip
ROOTS = [H(x) for x in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]  # fmt: skip
# (leaf index, tree size, proof)
INCLUSION = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip
# (old size, new size, proof)
CONSISTENCY = [
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]  # fmt: skip


class MemoryTree:
    """A tree held in memory: the node reader that the proof builders need."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.hashes = [merkle.leaf_hash(x) for x in leaves]

    def node(self, height: int, index: int) -> bytes:
        span = self.hashes[index << height : (index + 1) << height]
        assert len(span) == 1 << height
        return merkle.perfect_root(span)

    def root(self, size: int) -> bytes:
        return merkle.root_of(self.hashes[:size])


# -- RFC 9162 -----------------------------------------------------------------------


def test_empty_tree_and_reference_roots() -> None:
    assert merkle.root_of([]).hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    tree = MemoryTree(LEAVES)
    for size in range(1, 9):
        assert tree.root(size) == ROOTS[size - 1], size


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_reference_inclusion_proofs(index: int, size: int, proof: list[str]) -> None:
    tree = MemoryTree(LEAVES)
    want = [H(p) for p in proof]
    assert merkle.inclusion_proof(tree.node, index, size) == want
    leaf = merkle.leaf_hash(LEAVES[index])
    merkle.verify_inclusion(index, size, leaf, want, ROOTS[size - 1])
    for bad_index in (index + 1, index ^ 2):
        if bad_index < size:
            with pytest.raises(merkle.ProofError):
                merkle.verify_inclusion(bad_index, size, leaf, want, ROOTS[size - 1])
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(index, size, leaf, [*want, ROOTS[0]], ROOTS[size - 1])
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(index, size, leaf, want[:-1], ROOTS[size - 1])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_reference_consistency_proofs(old: int, new: int, proof: list[str]) -> None:
    tree = MemoryTree(LEAVES)
    want = [H(p) for p in proof]
    assert merkle.consistency_proof(tree.node, old, new) == want
    merkle.verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], want)
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(old, new, ROOTS[new - 1], ROOTS[old - 1], want)
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], want[:-1])


def test_consistency_edge_cases() -> None:
    merkle.verify_consistency(0, 5, b"x", ROOTS[4], [])
    merkle.verify_consistency(3, 3, ROOTS[2], ROOTS[2], [])
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(3, 3, ROOTS[2], ROOTS[3], [])
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(4, 3, ROOTS[3], ROOTS[2], [])
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(1, 2, ROOTS[0], ROOTS[1], [])


leaf_lists = st.lists(st.binary(max_size=40), min_size=1, max_size=70)


@settings(max_examples=150, deadline=None)
@given(leaves=leaf_lists, data=st.data())
def test_every_inclusion_proof_verifies_and_a_changed_one_does_not(
    leaves: list[bytes], data: st.DataObject
) -> None:
    tree = MemoryTree(leaves)
    size = data.draw(st.integers(1, len(leaves)))
    index = data.draw(st.integers(0, size - 1))
    root = tree.root(size)
    proof = merkle.inclusion_proof(tree.node, index, size)
    leaf = tree.hashes[index]
    merkle.verify_inclusion(index, size, leaf, proof, root)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(index, size, merkle.leaf_hash(b"not " + leaves[index]), proof, root)
    if proof:
        flip = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[flip] = bytes([bad[flip][0] ^ 1]) + bad[flip][1:]
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(index, size, leaf, bad, root)
    other = data.draw(st.integers(0, size - 1))
    if tree.hashes[other] != leaf:
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(other, size, leaf, proof, root)


@settings(max_examples=150, deadline=None)
@given(leaves=leaf_lists, data=st.data())
def test_every_consistency_proof_verifies_and_a_forged_tree_does_not(
    leaves: list[bytes], data: st.DataObject
) -> None:
    tree = MemoryTree(leaves)
    new = data.draw(st.integers(1, len(leaves)))
    old = data.draw(st.integers(1, new))
    proof = merkle.consistency_proof(tree.node, old, new)
    merkle.verify_consistency(old, new, tree.root(old), tree.root(new), proof)
    if old < new:
        # A log that rewrote one of the first `old` entries cannot prove consistency.
        victim = data.draw(st.integers(0, old - 1))
        forged = MemoryTree([*leaves[:victim], leaves[victim] + b"!", *leaves[victim + 1 :]])
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(old, new, tree.root(old), forged.root(new), proof)
        forged_proof = merkle.consistency_proof(forged.node, old, new)
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(old, new, tree.root(old), forged.root(new), forged_proof)


@settings(max_examples=100, deadline=None)
@given(size=st.integers(0, 3000))
def test_compact_range_with_subtrees_matches_leaf_by_leaf(size: int) -> None:
    hashes = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    by_leaf = merkle.root_of(hashes)
    cr = merkle.CompactRange()
    full = size // 256 * 256
    for start in range(0, full, 256):
        cr.append_subtree(merkle.perfect_root(hashes[start : start + 256]), 8)
    for h in hashes[full:]:
        cr.append(h)
    assert cr.root() == by_leaf
    assert merkle.CompactRange(cr.size, cr.hashes).root() == by_leaf


# -- tlog-tiles -------------------------------------------------------------------------


def test_tile_index_encoding_from_the_spec() -> None:
    assert tiles.encode_index(1234067) == "x001/x234/067"
    assert tiles.encode_index(0) == "000"
    assert tiles.encode_index(1000) == "x001/000"
    assert tiles.tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tiles.tile_path("entries", 5, 17) == "tile/entries/005.p/17"


def test_tiles_of_a_tree_of_70000_from_the_spec() -> None:
    found = list(tiles.tiles_for_size(70_000))
    level0 = [t for t in found if t[0] == 0]
    assert sum(1 for t in level0 if t[2] == 256) == 273
    assert (0, 273, 112) in found
    assert (1, 0, 256) in found
    assert (1, 1, 17) in found
    assert (2, 0, 1) in found
    assert len(found) == 273 + 1 + 1 + 1 + 1
    assert list(tiles.tiles_for_size(256)) == [(0, 0, 256), (1, 0, 1)]


def test_entry_bundles_round_trip_and_refuse_oversized_entries() -> None:
    entries = [b"", b"a", b"x" * 300, bytes(range(256))]
    data = tiles.encode_bundle(entries)
    assert data[:5] == b"\x00\x00\x00\x01a"
    assert tiles.decode_bundle(data) == entries
    with pytest.raises(tiles.TileError):
        tiles.decode_bundle(data[:-1])
    with pytest.raises(tiles.TileError):
        tiles.encode_bundle([b"x" * 65536])


# -- signed notes, checkpoints, cosignatures -------------------------------------------

VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"  # noqa: E501
SIG = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
SIGNED = TEXT + "\n\u2014 PeterNeumann " + SIG + "\n"


def test_signed_note_example_keys_and_signature() -> None:
    v = note.Verifier.parse(VKEY)
    assert v.vkey() == VKEY
    assert f"{v.id:08x}" == "c74f20a3"
    signer = note.Signer.parse(SKEY)
    assert signer.skey() == SKEY
    assert signer.verifier == v
    # Ed25519 is deterministic: our note is the published one, byte for byte.
    assert note.sign_text(TEXT, [signer]).decode() == SIGNED
    assert note.verify(note.parse(SIGNED.encode()), [v]) == [v]
    with pytest.raises(note.NoteError):
        note.verify(note.parse(SIGNED.replace("cryptography", "cryptographY").encode()), [v])


def test_signed_note_refuses_mangled_keys_and_ignores_unknown_signers() -> None:
    for bad in (VKEY[:-1], VKEY.replace("c74f20a3", "c74f20a4"), "Peter Neumann" + VKEY[12:]):
        with pytest.raises(note.NoteError):
            note.Verifier.parse(bad)
    other = note.Signer.generate("example.com/other")
    with pytest.raises(note.NoteError, match="no signature by a known key"):
        note.verify(note.parse(SIGNED.encode()), [other.verifier])
    # Same name, different key: ignored, not a failure, as the spec requires.
    impostor = note.Signer.generate("PeterNeumann")
    both = note.parse(SIGNED.encode())
    extra = note.parse(note.sign_text(TEXT, [impostor]))
    merged = note.Note(TEXT, both.signatures + extra.signatures)
    assert note.verify(merged, [note.Verifier.parse(VKEY)]) == [note.Verifier.parse(VKEY)]


CHECKPOINT_EXAMPLE = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)


def test_checkpoint_text_from_the_spec() -> None:
    cp = Checkpoint.parse_text(CHECKPOINT_EXAMPLE)
    assert (cp.origin, cp.size) == ("example.com/behind-the-sofa", 20852163)
    assert base64.b64encode(cp.root).decode() == "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
    assert cp.text() == CHECKPOINT_EXAMPLE
    for bad in ("a\n012\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n", "a\n1\nAAAA\n", "a\n1\n"):
        with pytest.raises(CheckpointError):
            Checkpoint.parse_text(bad)


def test_cosignature_message_and_verification() -> None:
    # The signed message is the one tlog-cosignature spells out.
    assert note.cosignature_message(CHECKPOINT_EXAMPLE, 1679315147).decode() == (
        "cosignature/v1\ntime 1679315147\n" + CHECKPOINT_EXAMPLE
    )
    log = note.Signer.generate("example.com/behind-the-sofa")
    witness = note.Signer.generate("witness.example.com/w1", note.COSIGNATURE_V1)
    signed = sign(Checkpoint.parse_text(CHECKPOINT_EXAMPLE), log)
    cosig = note.cosign(signed.note.text, witness, 1679315147)
    raw = base64.b64decode(cosig.line().split()[-1])
    assert struct.unpack(">I", raw[:4])[0] == witness.verifier.id
    assert struct.unpack(">Q", raw[4:12])[0] == 1679315147
    both = signed.with_signatures([cosig])
    again = SignedCheckpoint.parse(both.encode())
    assert note.verified_by(again.note, [witness.verifier]) == [witness.verifier]
    assert note.cosignature_time(again.note, witness.verifier) == 1679315147
    # The witness key id uses type 0x04, so the same key as a note key is another key.
    assert note.Verifier(witness.name, note.ED25519, witness.verifier.public).id != (
        witness.verifier.id
    )
    tampered = both.encode().replace(b"20852163", b"20852164")
    with pytest.raises(note.NoteError):
        note.verified_by(note.parse(tampered), [witness.verifier])
