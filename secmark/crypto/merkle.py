"""Merkle tree hashes and inclusion proofs (RFC 6962 section 2.1, RFC 9162 section 2.1).

The tree is the one Certificate Transparency defines: a leaf hash is
``SHA-256(0x00 || leaf)``, an interior node ``SHA-256(0x01 || left || right)``,
and a list of ``n > 1`` leaves splits at the largest power of two smaller
than ``n``. The domain-separating prefixes keep a leaf from being passed off
as an interior node (second-preimage attacks on the tree).

An inclusion proof (RFC 9162 "audit path") lists the sibling hashes from the
leaf up to the root; :func:`verify_inclusion` is RFC 9162 section 2.1.3.2
step by step. A consistency proof shows that the tree of ``m`` leaves is a
prefix of the tree of ``n`` leaves (an append-only log was not rewritten):
:func:`consistency_proof` is RFC 6962 section 2.1.2 (``SUBPROOF``) and
:func:`verify_consistency` is RFC 9162 section 2.1.4.2, step by step.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence

from secmark.errors import EncodingError, ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_LOG_SIZE",
    "MAX_TREE_SIZE",
    "MerkleTree",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "merkle_root",
    "node_hash",
    "root_of_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Bytes in every hash of the tree (SHA-256)."""

MAX_TREE_SIZE = 1 << 32
"""Bound on the number of leaves: the largest pool a commitment may name.
It also bounds an audit path to 32 hashes."""

MAX_LOG_SIZE = 1 << 40
"""Bound on the size of an append-only log (a serving query log): far more
queries than any API answers, and small enough that a consistency proof has
at most 80 hashes and a size is exact in JSON."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The Merkle Tree Hash of the empty list (RFC 6962 section 2.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(leaf: bytes) -> bytes:
    """``SHA-256(0x00 || leaf)``."""
    return hashlib.sha256(_LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def merkle_root(leaves: Iterable[bytes]) -> bytes:
    """The Merkle Tree Hash of ``leaves`` (raw leaf bytes, in order).

    The leaves are read once, front to back, keeping only one hash per
    power-of-two subtree completed so far (O(log n) memory): a stream of
    leaves of any length can be hashed. The empty list hashes to
    ``SHA-256("")`` as RFC 6962 defines.
    """
    return _fold(leaf_hash(leaf) for leaf in leaves)


def root_of_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash of the leaves whose :func:`leaf_hash` values are
    ``leaf_hashes``, in order (:data:`EMPTY_ROOT` for none).

    Raises:
        EncodingError: a hash that is not 32 bytes.
    """
    _check_leaf_hashes(leaf_hashes)
    return _fold(leaf_hashes)


def _check_leaf_hashes(leaf_hashes: Sequence[bytes]) -> None:
    if any(len(h) != HASH_SIZE for h in leaf_hashes):
        raise EncodingError(f"every leaf hash must be {HASH_SIZE} bytes")


def _fold(leaf_hashes: Iterable[bytes]) -> bytes:
    """The root over leaf hashes read once, in O(log n) memory."""
    # stack[j] is the root of a complete subtree of stack_sizes[j] leaves,
    # sizes strictly decreasing: the binary decomposition of the count so far,
    # which is exactly how RFC 6962 splits the list.
    stack: list[bytes] = []
    stack_sizes: list[int] = []
    for node in leaf_hashes:
        size = 1
        while stack_sizes and stack_sizes[-1] == size:
            node = node_hash(stack.pop(), node)
            size += stack_sizes.pop()
        stack.append(node)
        stack_sizes.append(size)
    if not stack:
        return EMPTY_ROOT
    # The smaller subtrees on the right combine first: MTH(D[k:n]) is built
    # before it is joined to the complete left subtree.
    root = stack.pop()
    while stack:
        root = node_hash(stack.pop(), root)
    return root


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n > 1``): RFC 6962's k."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """Every level of the tree over a list of leaves, to answer audit paths.

    Levels are built bottom-up by pairing neighbours and carrying an unpaired
    last node up unchanged; this gives the same tree as RFC 6962's split at
    the largest power of two (each carried node is the root of the complete
    subtree that the split puts on the right). Memory is about
    ``2 * n * 32`` bytes.
    """

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        """Build the tree from leaf hashes (:func:`leaf_hash` of each leaf).

        Raises:
            EncodingError: no leaves, more than :data:`MAX_TREE_SIZE`, or a
                hash that is not 32 bytes.
        """
        if not 1 <= len(leaf_hashes) <= MAX_TREE_SIZE:
            raise EncodingError(f"a Merkle tree needs 1 to {MAX_TREE_SIZE} leaves")
        if any(len(h) != HASH_SIZE for h in leaf_hashes):
            raise EncodingError(f"every leaf hash must be {HASH_SIZE} bytes")
        levels = [list(leaf_hashes)]
        while len(levels[-1]) > 1:
            below = levels[-1]
            above = [node_hash(below[j], below[j + 1]) for j in range(0, len(below) - 1, 2)]
            if len(below) % 2:
                above.append(below[-1])
            levels.append(above)
        self._levels = levels

    @classmethod
    def from_leaves(cls, leaves: Iterable[bytes]) -> MerkleTree:
        """Build the tree over raw leaf bytes."""
        return cls([leaf_hash(leaf) for leaf in leaves])

    @property
    def size(self) -> int:
        return len(self._levels[0])

    @property
    def root(self) -> bytes:
        return self._levels[-1][0]

    def inclusion_path(self, index: int) -> tuple[bytes, ...]:
        """The audit path ``PATH(index, D[n])`` of RFC 6962 section 2.1.1,
        nearest sibling first.

        Raises:
            EncodingError: ``index`` is not in ``[0, size)``.
        """
        if not 0 <= index < self.size:
            raise EncodingError(f"leaf index {index} is outside a tree of {self.size} leaves")
        path = []
        position = index
        for level in self._levels[:-1]:
            sibling = position ^ 1
            # A node without a sibling is carried up: it adds nothing to the path.
            if sibling < len(level):
                path.append(level[sibling])
            position >>= 1
        return tuple(path)


def verify_inclusion(
    root: bytes, index: int, size: int, leaf: bytes, path: Sequence[bytes]
) -> None:
    """Check that ``leaf`` (raw bytes) is leaf ``index`` of the tree of
    ``size`` leaves with root ``root``, by the audit path ``path``.

    RFC 9162 section 2.1.3.2, with every malformed input refused rather than
    skipped.

    Raises:
        ProofError: the index is outside the tree, a hash has the wrong
            length, the path is too long or too short, or the recomputed root
            differs.
    """
    if not 0 <= index < size <= MAX_TREE_SIZE:
        raise ProofError(f"leaf index {index} is outside a tree of {size} leaves")
    if len(root) != HASH_SIZE or any(len(node) != HASH_SIZE for node in path):
        raise ProofError(f"Merkle root and path hashes must be {HASH_SIZE} bytes each")
    # Step numbers are RFC 9162's.
    fn, sn = index, size - 1  # 2.
    r = leaf_hash(leaf)  # 3.
    for p in path:  # 4.
        if sn == 0:  # 4a. the path is longer than the tree is high
            raise ProofError("the Merkle inclusion path is too long")
        if fn & 1 or fn == sn:  # 4b.
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:  # 4c.
            r = node_hash(r, p)
        fn >>= 1  # 4d.
        sn >>= 1
    if sn != 0:  # 5. the path is shorter than the tree is high
        raise ProofError("the Merkle inclusion path is too short")
    if not hmac.compare_digest(r, root):
        raise ProofError("the Merkle inclusion path does not lead to the committed root")


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> tuple[bytes, ...]:
    """The audit path ``PATH(index, D[n])`` (RFC 6962 section 2.1.1) of the
    tree over ``leaf_hashes`` (``n`` of them), nearest sibling first.

    Unlike :class:`MerkleTree` it keeps no levels: it hashes each subtree
    beside the path once, about ``n`` hashes in all.

    Raises:
        EncodingError: ``index`` is not in ``[0, n)`` or a hash is not 32 bytes.
    """
    n = len(leaf_hashes)
    if not 0 <= index < n:
        raise EncodingError(f"leaf index {index} is outside a tree of {n} leaves")
    _check_leaf_hashes(leaf_hashes)
    siblings: list[bytes] = []  # root level first
    lo, hi = 0, n
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:  # PATH(m, D[0:k]) : MTH(D[k:n])
            siblings.append(_fold(leaf_hashes[lo + k : hi]))
            hi = lo + k
        else:  # PATH(m - k, D[k:n]) : MTH(D[0:k])
            siblings.append(_fold(leaf_hashes[lo : lo + k]))
            lo += k
    return tuple(reversed(siblings))


def consistency_proof(old_size: int, leaf_hashes: Sequence[bytes]) -> tuple[bytes, ...]:
    """The consistency proof ``PROOF(m, D[n])`` of RFC 6962 section 2.1.2,
    with ``m = old_size`` and ``D[n]`` the tree over ``leaf_hashes``.

    The proof is empty when ``m`` is 0 (every tree extends the empty one) or
    ``m == n``. About ``n`` hashes are computed.

    Raises:
        EncodingError: ``old_size`` is not in ``[0, n]`` or a hash is not 32 bytes.
    """
    n = len(leaf_hashes)
    if not 0 <= old_size <= n:
        raise EncodingError(f"no consistency proof from {old_size} leaves to {n} leaves")
    _check_leaf_hashes(leaf_hashes)
    if old_size in (0, n):
        return ()
    # SUBPROOF(m, D[lo:hi], b), unrolled: each step appends the hash of the
    # subtree it leaves behind; those come out root level first.
    m, lo, hi, complete = old_size, 0, n, True
    suffix: list[bytes] = []
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:  # SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            suffix.append(_fold(leaf_hashes[lo + k : hi]))
            hi = lo + k
        else:  # SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
            suffix.append(_fold(leaf_hashes[lo : lo + k]))
            lo, m, complete = lo + k, m - k, False
    # SUBPROOF(m, D[m], true) = {}; SUBPROOF(m, D[m], false) = {MTH(D[m])}.
    head = [] if complete else [_fold(leaf_hashes[lo:hi])]
    return tuple(head + suffix[::-1])


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``old_size`` leaves with root ``old_root`` is a
    prefix of the tree of ``new_size`` leaves with root ``new_root``.

    RFC 9162 section 2.1.4.2 step by step, for ``0 < old_size < new_size``.
    Equal sizes need an empty proof and equal roots; an old size of 0 needs
    an empty proof and the empty tree's root (:data:`EMPTY_ROOT`).

    Raises:
        ProofError: sizes out of order or above :data:`MAX_LOG_SIZE`, a hash
            of the wrong length, a proof too long or too short, or recomputed
            roots that differ from the given ones (the log was rewritten: a
            fork).
    """
    if not 0 <= old_size <= new_size <= MAX_LOG_SIZE:
        raise ProofError(f"no consistency proof from {old_size} leaves to {new_size} leaves")
    # A valid proof has at most two hashes per level; a longer one is refused
    # before its hashes are even looked at (denial of service).
    if len(proof) > 2 * MAX_LOG_SIZE.bit_length():
        raise ProofError("the Merkle consistency proof is too long")
    if (
        len(old_root) != HASH_SIZE
        or len(new_root) != HASH_SIZE
        or any(len(node) != HASH_SIZE for node in proof)
    ):
        raise ProofError(f"Merkle roots and proof hashes must be {HASH_SIZE} bytes each")
    if old_size in (0, new_size):
        if proof:
            raise ProofError("a consistency proof from an empty or equal tree must be empty")
        expected = EMPTY_ROOT if old_size == 0 else new_root
        if not hmac.compare_digest(old_root, expected):
            raise ProofError("the Merkle roots are inconsistent (the log forked)")
        return
    # Step numbers are RFC 9162's.
    if not proof:  # 1.
        raise ProofError("the Merkle consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # 2. the old tree is a complete subtree
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1  # 3.
    while fn & 1:  # 4.
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]  # 5.
    for c in path[1:]:  # 6.
        if sn == 0:  # 6a. the proof is longer than the tree is high
            raise ProofError("the Merkle consistency proof is too long")
        if fn & 1 or fn == sn:  # 6b.
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1  # 6c.
        sn >>= 1
    if sn != 0:  # 7.
        raise ProofError("the Merkle consistency proof is too short")
    if not hmac.compare_digest(fr, old_root) or not hmac.compare_digest(sr, new_root):
        raise ProofError("the Merkle consistency proof does not lead to both roots (a fork)")
