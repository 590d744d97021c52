"""RFC 6962 / RFC 9162 Merkle tree hashes and inclusion proofs."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secmark.crypto.merkle import (
    EMPTY_ROOT,
    MAX_LOG_SIZE,
    MerkleTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    node_hash,
    root_of_hashes,
    verify_consistency,
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


def subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    """RFC 6962 section 2.1.2, SUBPROOF(m, D[n], b), word for word."""
    n = len(leaves)
    if m == n:
        return [] if complete else [mth(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return subproof(m, leaves[:k], complete) + [mth(leaves[k:])]
    return subproof(m - k, leaves[k:], False) + [mth(leaves[:k])]


def consistency(m: int, leaves: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]); empty for m = 0 (every tree extends the empty one)."""
    return [] if m == 0 else subproof(m, leaves, True)


@pytest.mark.parametrize("size", range(1, 34))
def test_every_proof_function_on_small_trees(size: int) -> None:
    leaves = [b"leaf %d" % i for i in range(size)]
    hashes = [leaf_hash(leaf) for leaf in leaves]
    root = root_of_hashes(hashes)
    assert root == mth(leaves)
    for index in range(size):
        assert list(inclusion_proof(index, hashes)) == path(index, leaves)
    for old in range(size + 1):
        proof = consistency_proof(old, hashes)
        assert list(proof) == consistency(old, leaves)
        verify_consistency(old, size, mth(leaves[:old]), root, proof)


def test_empty_tree_root() -> None:
    assert root_of_hashes([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert consistency_proof(0, []) == ()
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])


@given(
    leaves=st.lists(st.binary(max_size=6), min_size=1, max_size=80),
    data=st.data(),
)
@settings(max_examples=80, deadline=None)
def test_consistency_matches_the_recursive_definition(
    leaves: list[bytes], data: st.DataObject
) -> None:
    n = len(leaves)
    old = data.draw(st.integers(0, n))
    hashes = [leaf_hash(leaf) for leaf in leaves]
    proof = consistency_proof(old, hashes)
    assert list(proof) == consistency(old, leaves)
    old_root, new_root = mth(leaves[:old]), mth(leaves)
    verify_consistency(old, n, old_root, new_root, proof)
    # A rewritten log: change one old leaf and the proof no longer holds.
    if old > 0:
        j = data.draw(st.integers(0, old - 1))
        forked = [*leaves[:j], leaves[j] + b"!", *leaves[j + 1 :]]
        with pytest.raises(ProofError):
            verify_consistency(old, n, mth(forked[:old]), new_root, proof)
        with pytest.raises(ProofError):
            verify_consistency(old, n, old_root, mth(forked), proof)


def _consistency_corruptions(
    old: int, new: int, proof: list[bytes], old_root: bytes, new_root: bytes
) -> list[tuple[str, int, int, bytes, bytes, list[bytes]]]:
    """The probes of transparency-dev/merkle's verify_test.go, adapted."""
    probes = [
        ("old - 1", old - 1, new, old_root, new_root, proof),
        ("old + 1", old + 1, new, old_root, new_root, proof),
        ("old ^ 2", old ^ 2, new, old_root, new_root, proof),
        ("new * 2", old, new * 2, old_root, new_root, proof),
        ("new // 2", old, new // 2, old_root, new_root, proof),
        ("swapped sizes", new, old, new_root, old_root, proof),
        ("swapped roots", old, new, new_root, old_root, proof),
        ("empty old root", old, new, EMPTY_ROOT, new_root, proof),
        ("trailing root", old, new, old_root, new_root, [*proof, new_root]),
        ("preceding root", old, new, old_root, new_root, [old_root, *proof]),
        ("trailing empty", old, new, old_root, new_root, [*proof, b""]),
        ("short root", old, new, old_root[:31], new_root, proof),
    ]
    probes += [
        (f"bit flipped in proof[{j}]", old, new, old_root, new_root, p)
        for j in range(len(proof))
        for p in [[flip_byte(h, 3, 4) if i == j else h for i, h in enumerate(proof)]]
    ]
    if proof:
        probes.append(("removed component", old, new, old_root, new_root, proof[:-1]))
        probes.append(("empty proof", old, new, old_root, new_root, []))
    return probes


@pytest.mark.parametrize("new", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31])
def test_tampered_consistency_proofs_are_refused(new: int) -> None:
    leaves = [b"leaf %d" % i for i in range(new)]
    hashes = [leaf_hash(leaf) for leaf in leaves]
    new_root = mth(leaves)
    for old in range(new + 1):
        proof = list(consistency_proof(old, hashes))
        old_root = mth(leaves[:old])
        for description, m, n, r1, r2, p in _consistency_corruptions(
            old, new, proof, old_root, new_root
        ):
            # Some probes land on another true statement: "swapped" at
            # old = new is the same claim, and every tree extends the empty one.
            if (m, n, r1, r2, p) == (old, new, old_root, new_root, proof) or (
                (m, r1, p) == (0, EMPTY_ROOT, []) and 0 <= n <= MAX_LOG_SIZE
            ):
                continue
            with pytest.raises(ProofError):
                verify_consistency(m, n, r1, r2, p)
                pytest.fail(f"accepted: {description} (old {old}, new {new})")


def test_consistency_edge_sizes() -> None:
    hashes = [leaf_hash(b"%d" % i) for i in range(5)]
    root = root_of_hashes(hashes)
    # m = n: only an empty proof and equal roots.
    verify_consistency(5, 5, root, root, [])
    with pytest.raises(ProofError):
        verify_consistency(5, 5, root, root, [root])
    with pytest.raises(ProofError):
        verify_consistency(5, 5, root, root_of_hashes(hashes[:4]), [])
    # m = 0: only an empty proof and the empty root.
    with pytest.raises(ProofError):
        verify_consistency(0, 5, EMPTY_ROOT, root, [root])
    with pytest.raises(ProofError):
        verify_consistency(0, 5, root, root, [])
    # m > n, negative sizes, sizes past the bound.
    with pytest.raises(ProofError):
        verify_consistency(6, 5, root, root, [])
    with pytest.raises(ProofError):
        verify_consistency(-1, 5, EMPTY_ROOT, root, [])
    with pytest.raises(ProofError):
        verify_consistency(1, MAX_LOG_SIZE + 1, root, root, [root])
    with pytest.raises(ProofError):
        verify_consistency(3, 5, root, root, [root] * 100)
    # Generation refuses what it cannot prove.
    with pytest.raises(EncodingError):
        consistency_proof(6, hashes)
    with pytest.raises(EncodingError):
        consistency_proof(-1, hashes)
    with pytest.raises(EncodingError):
        consistency_proof(2, [*hashes, b"short"])
    with pytest.raises(EncodingError):
        inclusion_proof(5, hashes)
    with pytest.raises(EncodingError):
        inclusion_proof(-1, hashes)
    with pytest.raises(EncodingError):
        root_of_hashes([b"short"])


def test_a_large_log_is_fast_enough() -> None:
    hashes = [leaf_hash(b"%d" % i) for i in range(100_000)]
    root = root_of_hashes(hashes)
    proof = consistency_proof(77_777, hashes)
    verify_consistency(77_777, 100_000, root_of_hashes(hashes[:77_777]), root, proof)
    verify_inclusion(root, 4_242, 100_000, b"4242", inclusion_proof(4_242, hashes))
