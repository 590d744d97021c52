"""The owner's derived trigger set on disk: four ``.npy`` files and a manifest.

A trigger set directory holds ``indices.npy``, ``inputs.npy``,
``labels.npy``, ``proofs.npy`` and ``manifest.json``
(``specs/derivation.md`` 7.9). It is the watermark itself, so it is
written readable by its owner only. It is written into a temporary sibling
directory and renamed into place when complete: a crash or an error leaves
no half-written set. It is read only through :func:`read_trigger_set`, which
checks every file against the manifest's SHA-256 before parsing it
(``allow_pickle=False``), and trusted only after :func:`verify_trigger_set`.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import numpy as np
import numpy.typing as npt

from secmark.crypto.ecvrf import PROOF_SIZE
from secmark.encoding import canonical_json, parse_canonical_json
from secmark.errors import EncodingError, ProofError, SecmarkError
from secmark.files import new_directory, open_regular_file
from secmark.messages.commitment import MAX_COMMITTED_TRIGGERS, Commitment
from secmark.messages.document import Fields, SignedDocument
from secmark.messages.families import TriggerFamily, family_from_fields
from secmark.messages.labels import LabelSpace, label_space_from_fields
from secmark.triggers.derive import CommittedPool, TriggerBatch, _pool_fetch, _verify
from secmark.triggers.generate import input_layout, label_layout

__all__ = [
    "ARRAY_NAMES",
    "MANIFEST_NAME",
    "TriggerSet",
    "TriggerSetManifest",
    "read_trigger_set",
    "verify_trigger_set",
    "write_trigger_set",
]

MANIFEST_NAME = "manifest.json"
ARRAY_NAMES = ("indices.npy", "inputs.npy", "labels.npy", "proofs.npy")

# The manifest holds a family's parameters, at most 65,536 reserved token
# ids among them: well under a megabyte.
_MAX_MANIFEST_SIZE = 1 << 20
_FILE_MODE = 0o600


@dataclass(frozen=True)
class TriggerSetManifest:
    """``manifest.json``: what the arrays are and their SHA-256 digests."""

    TYPE: ClassVar[str] = "secmark.trigger-set"
    VERSION: ClassVar[int] = 1

    commitment_id: str
    family: TriggerFamily
    labels: LabelSpace
    count: int
    digests: dict[str, str]

    def to_fields(self) -> dict[str, Any]:
        return {
            "commitment_id": self.commitment_id,
            "count": self.count,
            "family": self.family.to_fields(),
            "files": dict(self.digests),
            "labels": self.labels.to_fields(),
            "type": self.TYPE,
            "version": self.VERSION,
        }

    @classmethod
    def from_json(cls, data: bytes) -> TriggerSetManifest:
        """Raises:
        EncodingError: not a canonical manifest of this type and version.
        """
        value = parse_canonical_json(data, max_size=_MAX_MANIFEST_SIZE, what="trigger set manifest")
        if not isinstance(value, dict):
            raise EncodingError("a trigger set manifest must be a JSON object")
        fields = Fields(value, context=cls.TYPE)
        if (
            fields.text("type") != cls.TYPE
            or fields.integer("version", minimum=0, maximum=1 << 31) != cls.VERSION
        ):
            raise EncodingError(f"not a {cls.TYPE} version {cls.VERSION} manifest")

        def read_digests(files: Fields) -> dict[str, str]:
            return {name: files.hex_digest(name) for name in ARRAY_NAMES}

        manifest = cls(
            commitment_id=fields.hex_digest("commitment_id"),
            family=fields.nested("family", family_from_fields),
            labels=fields.nested("labels", label_space_from_fields),
            count=fields.integer("count", minimum=0, maximum=MAX_COMMITTED_TRIGGERS),
            digests=fields.nested("files", read_digests),
        )
        fields.finish()
        return manifest


@dataclass(frozen=True, eq=False)
class TriggerSet:
    """A trigger set read from disk; row ``r`` of each array is one trigger."""

    manifest: TriggerSetManifest
    indices: npt.NDArray[np.int64]
    inputs: npt.NDArray[Any]
    labels: npt.NDArray[Any]
    proofs: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return self.manifest.count


def _file_layouts(
    family: TriggerFamily, labels: LabelSpace, count: int
) -> dict[str, tuple[tuple[int, ...], np.dtype[Any]]]:
    """Shape and little-endian dtype of each array file."""
    input_shape, input_dtype = input_layout(family)
    label_shape, label_dtype = label_layout(labels)
    layouts = {
        "indices.npy": ((count,), np.dtype(np.int64)),
        "inputs.npy": ((count, *input_shape), input_dtype),
        "labels.npy": ((count, *label_shape), label_dtype),
        "proofs.npy": ((count, PROOF_SIZE), np.dtype(np.uint8)),
    }
    return {name: (shape, dtype.newbyteorder("<")) for name, (shape, dtype) in layouts.items()}


class _NpyWriter:
    """Writes one ``.npy`` file row block by row block, hashing as it goes."""

    def __init__(self, handle: BinaryIO, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        self._handle = handle
        self._row_shape = shape[1:]
        self._dtype = dtype
        self._digest = hashlib.sha256()
        self._write(_npy_header(shape, dtype))

    def _write(self, data: bytes) -> None:
        self._handle.write(data)
        self._digest.update(data)

    def append(self, rows: npt.NDArray[Any]) -> None:
        if rows.shape[1:] != self._row_shape:
            raise EncodingError(f"a batch row has shape {rows.shape[1:]}, not {self._row_shape}")
        self._write(np.ascontiguousarray(rows, dtype=self._dtype).tobytes())

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def _open_new(path: Path) -> BinaryIO:
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE), "wb")


def write_trigger_set(
    directory: str | os.PathLike[str],
    signed_commitment: SignedDocument[Commitment],
    batches: Iterable[TriggerBatch],
    count: int,
) -> TriggerSetManifest:
    """Write ``count`` triggers, given as batches, to the new ``directory``.

    The batches are written as they arrive (memory O(one batch)). The
    directory is created with mode 0700 and its files 0600.

    Raises:
        SecmarkError: ``directory`` exists, or its parent does not.
        EncodingError: the batches hold another number of rows than
            ``count``, rows of another shape, or an index twice or outside
            ``[0, N)``.
    """
    commitment = signed_commitment.document
    target = Path(directory)
    if not 0 <= count <= commitment.size:
        raise EncodingError(f"a trigger set holds 0 to N = {commitment.size} triggers")
    layouts = _file_layouts(commitment.family, commitment.labels, count)
    with new_directory(target) as temporary:
        handles = {name: _open_new(temporary / name) for name in ARRAY_NAMES}
        try:
            writers = {name: _NpyWriter(handles[name], *layouts[name]) for name in ARRAY_NAMES}
            seen = np.zeros(commitment.size, dtype=bool)
            written = 0
            for batch in batches:
                if len(batch) > count - written:
                    raise EncodingError(f"the batches hold more than {count} triggers")
                if np.any((batch.indices < 0) | (batch.indices >= commitment.size)):
                    raise EncodingError(f"a trigger index is outside [0, {commitment.size})")
                if np.any(seen[batch.indices]) or len(np.unique(batch.indices)) != len(batch):
                    raise EncodingError("a trigger index occurs twice")
                seen[batch.indices] = True
                writers["indices.npy"].append(batch.indices)
                writers["inputs.npy"].append(batch.inputs)
                writers["labels.npy"].append(batch.labels)
                writers["proofs.npy"].append(batch.proofs)
                written += len(batch)
            if written != count:
                raise EncodingError(f"the batches hold {written} triggers, not {count}")
            for handle in handles.values():
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            for handle in handles.values():
                handle.close()
        manifest = TriggerSetManifest(
            commitment_id=signed_commitment.digest,
            family=commitment.family,
            labels=commitment.labels,
            count=count,
            digests={name: writer.hexdigest() for name, writer in writers.items()},
        )
        with _open_new(temporary / MANIFEST_NAME) as handle:
            handle.write(canonical_json(manifest.to_fields()))
            handle.flush()
            os.fsync(handle.fileno())
    return manifest


def _read_file(path: Path, *, max_size: int | None = None) -> bytes:
    try:
        handle, _ = open_regular_file(path)
        with handle:
            return handle.read() if max_size is None else handle.read(max_size + 1)
    except OSError as error:
        raise EncodingError(f"cannot read {path}: {error.strerror}") from None
    except SecmarkError as error:
        raise EncodingError(str(error)) from None


def _npy_header(shape: tuple[int, ...], dtype: np.dtype[Any]) -> bytes:
    """The exact ``.npy`` header :class:`_NpyWriter` writes for an array."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header,
        {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape},
    )
    return header.getvalue()


def _parse_npy(
    data: bytes, shape: tuple[int, ...], dtype: np.dtype[Any], *, what: str
) -> npt.NDArray[Any]:
    """The array of a ``.npy`` file that must be exactly what the writer
    writes for ``shape`` and ``dtype``: its header byte for byte, then the
    values. The header is compared, never evaluated (numpy's reader runs
    ``ast.literal_eval`` on it and fails on hostile headers with errors of
    many kinds)."""
    header = _npy_header(shape, dtype)
    expected = len(header) + math.prod(shape) * dtype.itemsize
    if not data.startswith(header) or len(data) != expected:
        raise EncodingError(
            f"{what} is not a plain .npy file of a {dtype} array of shape {shape} "
            f"(header or length differ: {len(data)} bytes, expected {expected})"
        )
    return np.frombuffer(data, dtype=dtype, offset=len(header)).reshape(shape).copy()


def read_trigger_set(directory: str | os.PathLike[str]) -> TriggerSet:
    """Read a trigger set and check it against its manifest.

    Each file is read once; its SHA-256 is compared with the manifest and
    the same bytes are then parsed, so a file changed between the check and
    the parse cannot slip through. This proves the files are the ones the
    manifest lists, not that they are the commitment's triggers: for that,
    :func:`verify_trigger_set`.

    Raises:
        EncodingError: a file is missing, differs from its digest, is not a
            plain ``.npy`` array of the expected shape and dtype, or indices
            repeat or lie outside ``[0, 2^24)``.
    """
    root = Path(directory)
    manifest = TriggerSetManifest.from_json(
        _read_file(root / MANIFEST_NAME, max_size=_MAX_MANIFEST_SIZE)
    )
    layouts = _file_layouts(manifest.family, manifest.labels, manifest.count)
    arrays: dict[str, npt.NDArray[Any]] = {}
    for name in ARRAY_NAMES:
        data = _read_file(root / name)
        if hashlib.sha256(data).hexdigest() != manifest.digests[name]:
            raise EncodingError(f"{root / name} does not match the digest in the manifest")
        arrays[name] = _parse_npy(data, *layouts[name], what=str(root / name))
    indices = arrays["indices.npy"]
    if np.any((indices < 0) | (indices >= MAX_COMMITTED_TRIGGERS)) or len(
        np.unique(indices)
    ) != len(indices):
        raise EncodingError("trigger set indices must be distinct and in [0, 2^24)")
    return TriggerSet(
        manifest, indices, arrays["inputs.npy"], arrays["labels.npy"], arrays["proofs.npy"]
    )


def verify_trigger_set(
    trigger_set: TriggerSet,
    signed_commitment: SignedDocument[Commitment],
    *,
    pool: CommittedPool | None = None,
) -> None:
    """Check every trigger of the set against the commitment.

    Each row's proof must verify under the owner's VRF key for its index, and
    its input and label must equal the ones re-derived from the proof. The
    pool and overlay families need the committed pool.

    Raises:
        ProofError: the set belongs to another commitment or family, or a
            row fails; the message names the first failing index.
        EncodingError: a pool family without its pool.
    """
    commitment = signed_commitment.document
    manifest = trigger_set.manifest
    if manifest.commitment_id != signed_commitment.digest:
        raise ProofError(
            f"the trigger set was derived for commitment {manifest.commitment_id}, "
            f"not {signed_commitment.digest}"
        )
    if manifest.family != commitment.family or manifest.labels != commitment.labels:
        raise ProofError("the trigger set's family or label space differs from the commitment's")
    fetch = _pool_fetch(commitment, pool)
    for row, index in enumerate(trigger_set.indices.tolist()):
        trigger = _verify(signed_commitment, index, trigger_set.proofs[row].tobytes(), fetch)
        stored_input, stored_label = trigger_set.inputs[row], trigger_set.labels[row]
        if not _same_values(trigger.input, stored_input):
            raise ProofError(f"trigger {index}: the stored input differs from its derivation")
        if not _same_values(np.asarray(trigger.label), stored_label):
            raise ProofError(f"trigger {index}: the stored label differs from its derivation")


def _same_values(derived: npt.NDArray[Any], stored: npt.NDArray[Any]) -> bool:
    """Bit-for-bit equality, the stored (little-endian) array's byte order aside."""
    return derived.shape == stored.shape and (
        np.ascontiguousarray(derived, dtype=stored.dtype).tobytes()
        == np.ascontiguousarray(stored).tobytes()
    )
