"""RFC 6962 / RFC 9162 Merkle tree hashes and inclusion proofs."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secmark.crypto.merkle import (
    MerkleTree,
    leaf_hash,
    merkle_root,
    node_hash,
    verify_inclusion,
)
from secmark.errors import EncodingError, ProofError
from tests.conftest import flip_byte, load_vector

CT = load_vector("triggers/merkle-rfc6962.json")
LEAVES = [bytes.fromhex(leaf) for leaf in CT["leaves"]]


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, the recursive definition, word for word."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1 << ((n - 1).bit_length() - 1)  # largest power of two < n
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 section 2.1.1, PATH(m, D[n])."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return path(m, leaves[:k]) + [mth(leaves[k:])]
    return path(m - k, leaves[k:]) + [mth(leaves[:k])]


def test_published_roots() -> None:
    assert merkle_root([]).hex() == CT["empty_root"]
    for size, expected in enumerate(CT["roots"], start=1):
        assert merkle_root(LEAVES[:size]).hex() == expected
        assert MerkleTree.from_leaves(LEAVES[:size]).root.hex() == expected


@pytest.mark.parametrize("case", CT["inclusion"], ids=lambda c: f"{c['index']}-of-{c['size']}")
def test_published_inclusion_proofs(case: dict[str, object]) -> None:
    index, size = case["index"], case["size"]
    assert isinstance(index, int) and isinstance(size, int)
    expected = [bytes.fromhex(h) for h in case["path"]]  # type: ignore[attr-defined]
    tree = MerkleTree.from_leaves(LEAVES[:size])
    assert list(tree.inclusion_path(index)) == expected
    root = bytes.fromhex(CT["roots"][size - 1])
    verify_inclusion(root, index, size, LEAVES[index], expected)


def _corruptions(
    index: int, size: int, proof: list[bytes], root: bytes
) -> list[tuple[str, int, int, bytes, list[bytes], bytes]]:
    """The probes of transparency-dev/merkle's verify_test.go, adapted."""
    leaf = b"leaf %d" % index
    probes = [
        ("index - 1", index - 1, size, leaf, proof, root),
        ("index + 1", index + 1, size, leaf, proof, root),
        ("index ^ 2", index ^ 2, size, leaf, proof, root),
        ("size * 2", index, size * 2, leaf, proof, root),
        ("size // 2", index, size // 2, leaf, proof, root),
        ("wrong leaf", index, size, b"WrongLeaf", proof, root),
        ("empty root", index, size, leaf, proof, hashlib.sha256(b"").digest()),
        ("trailing root", index, size, leaf, [*proof, root], root),
        ("preceding root", index, size, leaf, [root, *proof], root),
        ("trailing empty", index, size, leaf, [*proof, b""], root),
    ]
    probes += [
        (
            f"bit flipped in proof[{j}]",
            index,
            size,
            leaf,
            [flip_byte(p, 0, 8) if i == j else p for i, p in enumerate(proof)],
            root,
        )
        for j in range(len(proof))
    ]
    if proof:
        probes.append(("removed component", index, size, leaf, proof[:-1], root))
    return [p for p in probes if (p[1], p[2]) != (index, size) or p[3:] != (leaf, proof, root)]


@pytest.mark.parametrize("size", range(1, 34))
def test_every_path_of_every_small_tree(size: int) -> None:
    leaves = [b"leaf %d" % i for i in range(size)]
    tree = MerkleTree.from_leaves(leaves)
    assert tree.root == mth(leaves) == merkle_root(iter(leaves))
    for index in range(size):
        proof = list(tree.inclusion_path(index))
        assert proof == path(index, leaves)
        verify_inclusion(tree.root, index, size, leaves[index], proof)
        for description, *probe in _corruptions(index, size, proof, tree.root):
            with pytest.raises(ProofError):
                verify_inclusion(probe[4], probe[0], probe[1], probe[2], probe[3])  # type: ignore[arg-type]
                pytest.fail(f"accepted: {description}")


@given(leaves=st.lists(st.binary(max_size=8), min_size=1, max_size=70), data=st.data())
@settings(max_examples=60, deadline=None)
def test_tree_matches_the_recursive_definition(leaves: list[bytes], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(leaves) - 1))
    tree = MerkleTree.from_leaves(leaves)
    assert tree.root == mth(leaves) == merkle_root(leaves)
    assert list(tree.inclusion_path(index)) == path(index, leaves)


def test_leaf_and_node_are_domain_separated() -> None:
    # A two-leaf tree's root is not the leaf hash of its children's concatenation.
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(a, b) != leaf_hash(a + b)
    with pytest.raises(ProofError):
        # An interior node presented as a leaf of a one-leaf tree.
        verify_inclusion(node_hash(a, b), 0, 1, a + b, [])


def test_bounds_are_refused() -> None:
    with pytest.raises(EncodingError):
        MerkleTree([])
    with pytest.raises(EncodingError):
        MerkleTree([b"short"])
    tree = MerkleTree.from_leaves([b"x", b"y"])
    with pytest.raises(EncodingError):
        tree.inclusion_path(2)
    with pytest.raises(ProofError):
        verify_inclusion(tree.root, 0, 0, b"x", [])
    with pytest.raises(ProofError):
        verify_inclusion(tree.root[:31], 0, 2, b"x", tree.inclusion_path(0))
    with pytest.raises(ProofError):
        verify_inclusion(tree.root, 0, 2**32 + 1, b"x", tree.inclusion_path(0))
