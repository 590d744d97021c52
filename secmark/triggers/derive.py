"""Trigger ``i`` of a commitment: derived by the owner, checked by anyone.

The owner proves the VRF on ``alpha_i`` (the commitment id and ``i``) and
expands the output ``beta_i`` into an input and a label
(``specs/derivation.md``). A verifier holding only the commitment checks the
proof ``pi_i`` under the owner's committed VRF key, which yields the same
``beta_i`` — the VRF output is unique, so there is nothing to choose — and
repeats the expansion. Decoys run the same expansion from fresh randomness.
"""

from __future__ import annotations

import itertools
import math
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Any

import numpy as np
import numpy.typing as npt

from secmark.crypto.ecvrf import OUTPUT_SIZE, PROOF_SIZE, VrfSecretKey
from secmark.crypto.keys import IdentityKeys
from secmark.crypto.merkle import MerkleTree, merkle_root, verify_inclusion
from secmark.errors import EncodingError, KeyMaterialError, ProofError
from secmark.messages.commitment import MAX_COMMITTED_TRIGGERS, Commitment
from secmark.messages.document import SignedDocument
from secmark.messages.families import NoiseFamily, OverlayFamily, PoolFamily, TriggerFamily
from secmark.triggers.generate import (
    Label,
    PoolItems,
    checked_item,
    draw_input,
    draw_label,
    input_layout,
    item_leaf,
    label_layout,
)
from secmark.triggers.sampling import KeyStream, stream_keys, uniform_float32_rows

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "TRIGGER_DOMAIN",
    "CommittedPool",
    "Trigger",
    "TriggerBatch",
    "derive_trigger",
    "draw_decoys",
    "generate_decoys",
    "iter_triggers",
    "pool_root",
    "trigger_alpha",
    "verify_trigger",
    "verify_triggers",
]

TRIGGER_DOMAIN = b"secmark-v1 trigger"
"""Prefix of every trigger's VRF input; no other secmark VRF input starts so."""

DEFAULT_BATCH_SIZE = 256
"""Triggers per batch: a batch of 3x224x224 float32 inputs is about 150 MiB."""

_MAX_DECOYS = MAX_COMMITTED_TRIGGERS
# Draws per decoy before a family is declared too small to give distinct
# inputs; a family with at least twice as many inputs as decoys and
# triggers fails this with probability below 2^-64.
_MAX_DECOY_DRAWS = 64


def trigger_alpha(commitment_id: bytes, index: int) -> bytes:
    """``alpha_i = "secmark-v1 trigger" || commitment_id || I2OSP(i, 4)``.

    Raises:
        EncodingError: the id is not 32 bytes or ``index`` not in ``[0, 2^32)``.
    """
    if len(commitment_id) != 32:
        raise EncodingError("a commitment id is 32 bytes (a SHA-256 digest)")
    if not 0 <= index < 1 << 32:
        raise EncodingError(f"trigger index {index} does not fit in 4 bytes")
    return TRIGGER_DOMAIN + commitment_id + index.to_bytes(4, "big")


def _pool_family(family: TriggerFamily) -> PoolFamily | OverlayFamily:
    if not isinstance(family, (PoolFamily, OverlayFamily)):
        raise EncodingError(f"the {family.NAME} family draws from no pool")
    return family


def _pool_leaves(items: PoolItems, family: PoolFamily | OverlayFamily) -> Iterator[bytes]:
    if len(items) != family.pool_size:
        raise EncodingError(
            f"the pool has {len(items)} items; the family commits to {family.pool_size}"
        )
    for position in range(family.pool_size):
        yield item_leaf(checked_item(items[position], family))


def pool_root(items: PoolItems, family: TriggerFamily) -> str:
    """The hex Merkle root a commitment names for the candidate pool ``items``.

    Leaf ``j`` is item ``j``'s values in C order, little-endian, in the
    committed dtype. Items are hashed one at a time (memory O(one item)).

    Raises:
        EncodingError: not a pool family, a pool of another size, or an item
            of another shape or dtype.
    """
    return merkle_root(_pool_leaves(items, _pool_family(family))).hex()


class CommittedPool:
    """A candidate pool checked against a commitment's Merkle root.

    Holding one means every item is the committed one, so derivation can
    use items without further proof, and audit paths for reveals are at
    hand. Build with :meth:`open`.
    """

    def __init__(
        self, items: PoolItems, family: PoolFamily | OverlayFamily, tree: MerkleTree
    ) -> None:
        self._items = items
        self._family = family
        self._tree = tree

    @classmethod
    def open(cls, items: PoolItems, commitment: Commitment) -> CommittedPool:
        """Hash every item and compare the root with ``commitment.pool_root``.

        Raises:
            EncodingError: the commitment's family draws from no pool, or the
                pool has another size, item shape or dtype.
            ProofError: the pool's root is not the committed one.
        """
        family = _pool_family(commitment.family)
        tree = MerkleTree.from_leaves(_pool_leaves(items, family))
        if tree.root.hex() != commitment.pool_root:
            raise ProofError("the pool does not match the commitment's pool root")
        return cls(items, family, tree)

    def __len__(self) -> int:
        return self._tree.size

    @property
    def root(self) -> bytes:
        return self._tree.root

    def item(self, index: int) -> npt.NDArray[Any]:
        """Item ``index``, read-only, in the committed shape and dtype.

        Raises:
            EncodingError: the item changed since the pool was opened (its
                shape or dtype no longer match).
        """
        return checked_item(self._items[index], self._family)

    def inclusion_path(self, index: int) -> tuple[bytes, ...]:
        """The Merkle audit path of item ``index``, for a reveal."""
        return self._tree.inclusion_path(index)


@dataclass(frozen=True, eq=False)
class Trigger:
    """Trigger ``index`` of a commitment, with the VRF proof that fixes it.

    ``input`` is read-only. ``label`` is an ``int`` (classes), a ``float``
    (regression) or a read-only int64 array (tokens). ``pool_index`` is the
    pool item the input was built from (pool and overlay families).
    Triggers compare equal when every field is equal, arrays by dtype, shape
    and bytes.
    """

    index: int
    input: npt.NDArray[Any]
    label: Label
    proof: bytes
    beta: bytes
    pool_index: int | None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Trigger):
            return NotImplemented
        return (
            (self.index, self.proof, self.beta, self.pool_index)
            == (other.index, other.proof, other.beta, other.pool_index)
            and _same_array(self.input, other.input)
            and _same_array(np.asarray(self.label), np.asarray(other.label))
        )

    __hash__ = None  # type: ignore[assignment]


def _same_array(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@dataclass(frozen=True, eq=False)
class TriggerBatch:
    """Consecutive triggers as arrays, first axis the position in the batch.

    ``indices`` int64 ``(B,)``; ``inputs`` ``(B, *input shape)``; ``labels``
    ``(B,)`` int64 or float64, or ``(B, length)`` int64 for tokens;
    ``betas`` uint8 ``(B, 64)``; ``pool_indices`` int64 ``(B,)`` for pool
    families, else ``None``; ``proofs`` uint8 ``(B, 80)``.

    The proofs are made when ``proofs`` is first read, with the owner's VRF
    key, which the batch keeps until then: a proof costs about as much as
    the rest of a trigger, and embedding needs only inputs and labels.
    """

    indices: npt.NDArray[np.int64]
    inputs: npt.NDArray[Any]
    labels: npt.NDArray[Any]
    betas: npt.NDArray[np.uint8]
    pool_indices: npt.NDArray[np.int64] | None
    _prove: Callable[[], npt.NDArray[np.uint8]] = field(repr=False)

    def __len__(self) -> int:
        return len(self.indices)

    @cached_property
    def proofs(self) -> npt.NDArray[np.uint8]:
        """The VRF proof of each row, uint8 ``(B, 80)``: ``derive_trigger``'s ``proof``."""
        return self._prove()


def _commitment_id(signed: SignedDocument[Commitment]) -> bytes:
    return bytes.fromhex(signed.digest)


def _owner_secret(keys: IdentityKeys | VrfSecretKey, commitment: Commitment) -> VrfSecretKey:
    secret = keys.vrf if isinstance(keys, IdentityKeys) else keys
    if secret.public_key.public_bytes_raw() != commitment.owner.vrf_key.public_bytes_raw():
        raise KeyMaterialError("this VRF key is not the one the commitment names for its owner")
    return secret


def _pool_fetch(
    commitment: Commitment, pool: CommittedPool | None
) -> Callable[[int], npt.NDArray[Any]] | None:
    if not isinstance(commitment.family, (PoolFamily, OverlayFamily)):
        if pool is not None:
            raise EncodingError(f"the {commitment.family.NAME} family draws from no pool")
        return None
    if pool is None:
        raise EncodingError(f"the {commitment.family.NAME} family needs its committed pool")
    if pool.root.hex() != commitment.pool_root:
        raise ProofError("the pool was opened for another commitment's pool root")
    return pool.item


def _expand(
    commitment: Commitment,
    index: int,
    proof: bytes,
    beta: bytes,
    fetch: Callable[[int], npt.NDArray[Any]] | None,
) -> Trigger:
    """``specs/derivation.md`` 7.2, 7.4 and 7.5: beta to input and label."""
    value, label, pool_index = _draw(commitment, beta, fetch)
    value.flags.writeable = False
    if isinstance(label, np.ndarray):
        label.flags.writeable = False
    return Trigger(index, value, label, proof, beta, pool_index)


def _draw(
    commitment: Commitment, beta: bytes, fetch: Callable[[int], npt.NDArray[Any]] | None
) -> tuple[npt.NDArray[Any], Label, int | None]:
    """The input, label and pool index that ``beta`` expands to."""
    input_key, label_key = stream_keys(beta)
    family = commitment.family
    pool_size = family.pool_size if isinstance(family, (PoolFamily, OverlayFamily)) else 0
    value, pool_index = draw_input(family, KeyStream(input_key), pool_size=pool_size, fetch=fetch)
    return value, draw_label(commitment.labels, KeyStream(label_key)), pool_index


# Largest float32 noise input whose rows are decoded together
# (uniform_float32_rows, at least four rows a block); a larger one gains
# little from sharing a block and is decoded row by row (uniform_float32).
_MAX_ROWS_DECODED_VALUES = 8192


def _decoded_together(family: TriggerFamily) -> bool:
    return (
        isinstance(family, NoiseFamily)
        and family.dtype == "float32"
        and math.prod(family.shape) <= _MAX_ROWS_DECODED_VALUES
    )


def _draw_noise_rows(
    commitment: Commitment, betas: list[bytes], inputs: npt.NDArray[Any]
) -> list[Label]:
    """:func:`_draw` of each beta for a small float32 noise family, the
    inputs written into ``inputs`` and decoded for all rows at once
    (:func:`~secmark.triggers.sampling.uniform_float32_rows`); the labels."""
    family = commitment.family
    assert isinstance(family, NoiseFamily)
    input_keys, labels = [], []
    for beta in betas:
        input_key, label_key = stream_keys(beta)
        input_keys.append(input_key)
        labels.append(draw_label(commitment.labels, KeyStream(label_key)))
    rows = inputs.reshape(len(betas), math.prod(family.shape))
    uniform_float32_rows(input_keys, float(family.low), float(family.high), rows)
    return labels


def derive_trigger(
    keys: IdentityKeys | VrfSecretKey,
    signed_commitment: SignedDocument[Commitment],
    index: int,
    *,
    pool: CommittedPool | None = None,
) -> Trigger:
    """The owner's trigger ``index``: prove the VRF, then expand its output.

    Raises:
        KeyMaterialError: ``keys`` is not the commitment owner's VRF key.
        EncodingError: ``index`` is not in ``[0, N)``; a pool family without
            its pool, or a pool for a family that has none.
        ProofError: ``pool`` was opened against another pool root.
    """
    commitment = signed_commitment.document
    secret = _owner_secret(keys, commitment)
    fetch = _pool_fetch(commitment, pool)
    if not 0 <= index < commitment.size:
        raise EncodingError(f"trigger index {index} is outside [0, {commitment.size})")
    alpha = trigger_alpha(_commitment_id(signed_commitment), index)
    proof, beta = secret.prove_and_hash(alpha)
    return _expand(commitment, index, proof, beta, fetch)


def iter_triggers(
    keys: IdentityKeys | VrfSecretKey,
    signed_commitment: SignedDocument[Commitment],
    indices: Iterable[int],
    *,
    pool: CommittedPool | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Iterator[TriggerBatch]:
    """The triggers of ``indices``, in that order, ``batch_size`` at a time.

    ``indices`` is read lazily and only one batch exists at a time, so
    memory is O(batch_size) whatever the number of triggers (pass a
    ``range`` for all N). Each row equals :func:`derive_trigger`'s result.

    Raises (when called, before any batch):
        KeyMaterialError, EncodingError, ProofError: as :func:`derive_trigger`,
            and EncodingError for a batch size below 1.
    Raises (while iterating):
        EncodingError: an index outside ``[0, N)``.
    """
    commitment = signed_commitment.document
    secret = _owner_secret(keys, commitment)
    fetch = _pool_fetch(commitment, pool)
    if batch_size < 1:
        raise EncodingError("the batch size must be at least 1")
    return _batches(secret, signed_commitment, iter(indices), fetch, batch_size)


def _batches(
    secret: VrfSecretKey,
    signed_commitment: SignedDocument[Commitment],
    indices: Iterator[int],
    fetch: Callable[[int], npt.NDArray[Any]] | None,
    batch_size: int,
) -> Iterator[TriggerBatch]:
    commitment = signed_commitment.document
    commitment_id = _commitment_id(signed_commitment)
    input_shape, input_dtype = input_layout(commitment.family)
    label_shape, label_dtype = label_layout(commitment.labels)
    uses_pool = fetch is not None
    while chunk := list(itertools.islice(indices, batch_size)):
        size = len(chunk)
        inputs = np.empty((size, *input_shape), dtype=input_dtype)
        labels: list[Label] = []
        alphas: list[bytes] = []
        betas: list[bytes] = []
        pool_indices: list[int | None] = []
        for index in chunk:
            if not 0 <= index < commitment.size:
                raise EncodingError(f"trigger index {index} is outside [0, {commitment.size})")
            alphas.append(trigger_alpha(commitment_id, index))
        # beta alone (no proof): the batch makes its proofs if asked. All
        # betas first, then all expansions: alternating libsodium's group
        # operations with OpenSSL's HKDF and ChaCha20 row by row evicts each
        # other's code and tables from the caches.
        betas.extend(secret.hash(alpha) for alpha in alphas)
        if _decoded_together(commitment.family):
            labels.extend(_draw_noise_rows(commitment, betas, inputs))
            pool_indices.extend([None] * size)
        else:
            for row, beta in enumerate(betas):
                inputs[row], label, pool_index = _draw(commitment, beta, fetch)
                labels.append(label)
                pool_indices.append(pool_index)
        # Per-row values are gathered in lists and converted once per batch:
        # one numpy call per row and field would cost more than the rest of
        # the expansion.
        yield TriggerBatch(
            indices=np.array(chunk, dtype=np.int64),
            inputs=inputs,
            labels=np.array(labels, dtype=label_dtype).reshape(size, *label_shape),
            betas=np.frombuffer(b"".join(betas), dtype=np.uint8).reshape(size, OUTPUT_SIZE).copy(),
            pool_indices=np.array(pool_indices, dtype=np.int64) if uses_pool else None,
            _prove=partial(_prove_rows, secret, alphas),
        )


def _prove_rows(secret: VrfSecretKey, alphas: list[bytes]) -> npt.NDArray[np.uint8]:
    proofs = b"".join(secret.prove(alpha) for alpha in alphas)
    return np.frombuffer(proofs, dtype=np.uint8).reshape(len(alphas), PROOF_SIZE).copy()


def _verified_beta(
    signed_commitment: SignedDocument[Commitment], index: int, proof: bytes
) -> bytes:
    """beta of trigger ``index`` if ``proof`` is the owner's VRF proof of it."""
    commitment = signed_commitment.document
    if not 0 <= index < commitment.size:
        raise ProofError(f"trigger {index}: outside the committed set [0, {commitment.size})")
    alpha = trigger_alpha(_commitment_id(signed_commitment), index)
    try:
        return commitment.owner.vrf_key.verify(alpha, proof)
    except ProofError as error:
        raise ProofError(f"trigger {index}: {error}") from None


def _verify(
    signed_commitment: SignedDocument[Commitment],
    index: int,
    proof: bytes,
    fetch: Callable[[int], npt.NDArray[Any]] | None,
) -> Trigger:
    beta = _verified_beta(signed_commitment, index, proof)
    return _expand(signed_commitment.document, index, proof, beta, fetch)


def verify_trigger(
    signed_commitment: SignedDocument[Commitment],
    index: int,
    proof: bytes,
    *,
    pool_item: npt.NDArray[Any] | None = None,
    merkle_path: Sequence[bytes] | None = None,
) -> Trigger:
    """Check a revealed trigger and return it, re-derived.

    Verifies, in order: ``index`` is in ``[0, N)``; ``proof`` is the owner's
    VRF proof for ``alpha_index`` under the VRF key the commitment names
    (which fixes ``beta``); for the pool and overlay families, that
    ``pool_item`` is the pool item ``beta`` selects, by its Merkle
    ``merkle_path`` to the committed pool root. The returned trigger's input
    and label are then recomputed from ``beta``, so nothing the revealer
    claims about them is trusted: compare them to any claimed values.

    ``signed_commitment`` must come from ``open_commitment`` (its owner
    signature checked); whether the commitment was timestamped in time is
    the caller's to check.

    Raises:
        ProofError: any check fails; the message names the index.
        EncodingError: a pool item given for a family without a pool.
    """
    commitment = signed_commitment.document
    fetch = _revealed_item(commitment, index, pool_item, merkle_path)
    return _verify(signed_commitment, index, proof, fetch)


def verify_triggers(
    signed_commitment: SignedDocument[Commitment],
    revealed: Sequence[tuple[int, bytes, npt.NDArray[Any] | None, Sequence[bytes] | None]],
) -> list[Trigger]:
    """:func:`verify_trigger` of each ``(index, proof, pool_item, merkle_path)``.

    Returns the triggers in the order given. All proofs are checked before
    any trigger is expanded (the same checks and results, in less time than
    one call per trigger: libsodium's and OpenSSL's work are not interleaved).

    Raises:
        ProofError, EncodingError: as :func:`verify_trigger`, for the first
            failing entry of the failing step.
    """
    commitment = signed_commitment.document
    fetches = [_revealed_item(commitment, index, item, path) for index, _, item, path in revealed]
    betas = [_verified_beta(signed_commitment, index, proof) for index, proof, _, _ in revealed]
    return [
        _expand(commitment, index, proof, beta, fetch)
        for (index, proof, _, _), beta, fetch in zip(revealed, betas, fetches)
    ]


def _revealed_item(
    commitment: Commitment,
    index: int,
    pool_item: npt.NDArray[Any] | None,
    merkle_path: Sequence[bytes] | None,
) -> Callable[[int], npt.NDArray[Any]] | None:
    """The fetch that gives trigger ``index`` its revealed pool item, once the
    item is checked against the committed pool root; None for a family
    without a pool."""
    family = commitment.family
    if not isinstance(family, (PoolFamily, OverlayFamily)):
        if pool_item is not None or merkle_path is not None:
            raise EncodingError(f"the {family.NAME} family draws from no pool")
        return None
    assert commitment.pool_root is not None  # Commitment requires it for pool families
    root = bytes.fromhex(commitment.pool_root)

    def fetch(pool_index: int) -> npt.NDArray[Any]:
        if pool_item is None or merkle_path is None:
            raise ProofError(
                f"trigger {index}: the {family.NAME} family needs pool item {pool_index} "
                "and its Merkle path"
            )
        try:
            item = checked_item(pool_item, family)
        except EncodingError as error:
            raise ProofError(f"trigger {index}: {error}") from None
        try:
            verify_inclusion(root, pool_index, family.pool_size, item_leaf(item), merkle_path)
        except ProofError as error:
            raise ProofError(f"trigger {index}: pool item {pool_index}: {error}") from None
        return item

    return fetch


def _input_bytes(value: npt.NDArray[Any]) -> bytes:
    return np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<")).tobytes()


def generate_decoys(
    commitment: Commitment,
    count: int,
    *,
    items: Sequence[npt.NDArray[Any]] | None = None,
    exclude: Iterable[npt.NDArray[Any]] = (),
) -> npt.NDArray[Any]:
    """``count`` distinct decoy inputs, none equal to an input in ``exclude``.

    Each decoy's input stream is keyed by 32 bytes from ``os.urandom``
    instead of a VRF output; the code that turns the stream into an input
    is the triggers', so without the proofs a decoy cannot be told from a
    trigger by its distribution. A draw that repeats an earlier decoy or an
    excluded input (the triggers) is drawn again: a repeated input would
    tell a suspect something. Returns an array ``(count, *input shape)``.

    The pool and overlay families draw from the owner's pool, which an
    arbiter does not hold: ``items`` are the candidates to draw from instead,
    unrevealed items of the same distribution (the owner's other pool items,
    or held-out inputs of the task). Decoys take distinct candidates, never
    one equal to an excluded input: pass the trigger inputs and, for the
    overlay family, the pool items the triggers were made from.

    Raises:
        EncodingError: ``count`` out of range; ``items`` missing, of the
            wrong shape or dtype, or too few distinct non-excluded ones for
            a pool family, or given for another; a family whose inputs
            cannot supply ``count`` distinct decoys.
    """
    return draw_decoys(commitment, count, items=items, exclude=exclude)[0]


def draw_decoys(
    commitment: Commitment,
    count: int,
    *,
    items: Sequence[npt.NDArray[Any]] | None = None,
    exclude: Iterable[npt.NDArray[Any]] = (),
) -> tuple[npt.NDArray[Any], tuple[int | None, ...]]:
    """The decoys of :func:`generate_decoys`, and for each the position in
    ``items`` of the candidate it was drawn from (for the overlay family,
    the item it overlays), or None for a family drawn without candidates.

    A candidate given more than once is one candidate, named by its first
    position. Raises as :func:`generate_decoys`.
    """
    if not 0 <= count <= _MAX_DECOYS:
        raise EncodingError(f"the number of decoys must be in [0, {_MAX_DECOYS}]")
    family = commitment.family
    shape, dtype = input_layout(family)
    decoys = np.empty((count, *shape), dtype=dtype)
    seen = {_input_bytes(value) for value in exclude}
    if isinstance(family, (PoolFamily, OverlayFamily)):
        if items is None and count:
            raise EncodingError(f"decoys of the {family.NAME} family need candidate items")
        candidates: dict[bytes, tuple[int, npt.NDArray[Any]]] = {}
        for position, item in enumerate(items or ()):
            checked = checked_item(item, family)
            candidates.setdefault(item_leaf(checked), (position, checked))
        eligible = [found for leaf, found in candidates.items() if leaf not in seen]
        if len(eligible) < count:
            raise EncodingError(
                f"{count} decoys of the {family.NAME} family need {count} distinct candidate "
                f"items that are not triggers; {len(eligible)} were given: give the arbiter "
                "more unrevealed items of the same distribution"
            )
        chosen = secrets.SystemRandom().sample(eligible, count)
        for row, (_, item) in enumerate(chosen):
            stream = KeyStream(os.urandom(KeyStream.KEY_SIZE))
            decoys[row], _ = draw_input(family, stream, pool_size=1, fetch=[item].__getitem__)
        return decoys, tuple(position for position, _ in chosen)
    if items is not None:
        raise EncodingError(f"the {family.NAME} family draws from no pool")
    for row in range(count):
        for _ in range(_MAX_DECOY_DRAWS):
            stream = KeyStream(os.urandom(KeyStream.KEY_SIZE))
            decoys[row], _ = draw_input(family, stream)
            drawn = _input_bytes(decoys[row])
            if drawn not in seen:
                seen.add(drawn)
                break
        else:
            raise EncodingError(
                f"the {family.NAME} family has too few distinct inputs for {count} decoys"
            )
    return decoys, (None,) * count
