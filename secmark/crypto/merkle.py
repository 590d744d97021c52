"""Merkle tree hashes and inclusion proofs (RFC 6962 section 2.1, RFC 9162 section 2.1).

The tree is the one Certificate Transparency defines: a leaf hash is
``SHA-256(0x00 || leaf)``, an interior node ``SHA-256(0x01 || left || right)``,
and a list of ``n > 1`` leaves splits at the largest power of two smaller
than ``n``. The domain-separating prefixes keep a leaf from being passed off
as an interior node (second-preimage attacks on the tree).

An inclusion proof (RFC 9162 "audit path") lists the sibling hashes from the
leaf up to the root; :func:`verify_inclusion` is RFC 9162 section 2.1.3.2
step by step.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence

from secmark.errors import EncodingError, ProofError

__all__ = [
    "HASH_SIZE",
    "MAX_TREE_SIZE",
    "MerkleTree",
    "leaf_hash",
    "merkle_root",
    "node_hash",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Bytes in every hash of the tree (SHA-256)."""

MAX_TREE_SIZE = 1 << 32
"""Bound on the number of leaves: the largest pool a commitment may name.
It also bounds an audit path to 32 hashes."""

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
    # stack[j] is the root of a complete subtree of stack_sizes[j] leaves,
    # sizes strictly decreasing: the binary decomposition of the count so far,
    # which is exactly how RFC 6962 splits the list.
    stack: list[bytes] = []
    stack_sizes: list[int] = []
    for leaf in leaves:
        node, size = leaf_hash(leaf), 1
        while stack_sizes and stack_sizes[-1] == size:
            node = node_hash(stack.pop(), node)
            size += stack_sizes.pop()
        stack.append(node)
        stack_sizes.append(size)
    if not stack:
        return hashlib.sha256(b"").digest()
    # The smaller subtrees on the right combine first: MTH(D[k:n]) is built
    # before it is joined to the complete left subtree.
    root = stack.pop()
    while stack:
        root = node_hash(stack.pop(), root)
    return root


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
