"""The canonical form of a layer: the same vector whatever order, scale or dummies its units have.

A ReLU network computes the same function after three rearrangements of a
hidden layer's units that a thief can apply to a stolen model for free
(neural structural obfuscation, Yan et al., USENIX Security 2023):

- **permutation** of the units (with the matching rows and columns of the
  layers around them);
- **positive rescaling**: a unit's incoming weights times ``s > 0`` and its
  outgoing weights times ``1/s`` (ReLU and max-pooling commute with it);
- **dummy units**: a unit whose incoming or outgoing weights are zero, or a
  clique of units with the same incoming weights whose outgoing weights sum
  to those of one unit (a unit split into several, or several that cancel).

A weights commitment with the ``canonical`` reduction
(``specs/derivation.md`` 7.11.1) projects a vector computed from the
committed parameter ``W`` (output units x input units of ``unit_size``
columns each) after undoing all three, from the suspect's own weights: the
*producer* ``P`` (first axis: ``W``'s input units; second axis, if any: the
units before them) and the *consumer* ``Q`` (one column per output unit).
In float64:

1. The producer's columns (the units before it) that are parallel
   (:func:`parallel_groups`) are summed into one; zero columns go.
2. Its rows (``W``'s input units) are grouped the same way; group ``H``'s
   representative is its lowest unit, and unit ``c`` of it weighs
   ``|P_c| / |P_rep|``.
3. Input scales: the matrix of norms of the representatives' incoming
   weights per column (rows x columns) is balanced (:func:`balance`); group
   ``H``'s scale is the inverse of its row factor, which grows with the
   unit's own scale and ignores the scales of the units before it.
   ``Wm[:, H]`` is the weighted sum of ``W``'s columns of ``H``'s units,
   times that scale.
4. The rows of ``Wm`` (``W``'s output units) are grouped likewise. Group
   ``G``'s merged consumer column is ``sum_u |Wm_u| / |Wm_rep| Q[:, u]``;
   groups whose merged column is zero go; the matrix of the columns'
   absolute values is balanced and ``G``'s output scale is the inverse of
   its column factor.
5. ``r_H`` is the sum over output groups of ``Wm[rep_G, H] * scale_G``
   (``unit_size`` values for each input group).
6. The vector is ``sum_H f(A r_H)``, ``f(z) = z |z|`` elementwise, with
   ``A`` the public matrix of :func:`feature_matrix` (one row per value),
   divided by its norm (unless it is zero).
   The sum over units is what makes the order of the units irrelevant; the
   signed square keeps enough freedom for the rows to be embedded (a sum of
   linear terms would leave ``unit_size`` of it) and is homogeneous, so the
   common factor that balancing leaves open changes nothing.

Every step depends on the suspect's weights alone, so a model never trained
against a commitment's rows still answers each bit with probability exactly
1/2 (the rows and bits are independent of it); what the form buys is that a
marked model keeps its bits through the rearrangements above.

What it does not undo: a unit that is zero only on the inputs the model
sees (a "dead" unit whose weights are not zero), a unit before the
producer with zero incoming weights (a constant), units merged or split
with different biases (biases are not read), and any change of
architecture beyond the layers named. Units whose directions differ by
less than :data:`PARALLEL_TOLERANCE` are treated as one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from secmark.errors import SuspectError
from secmark.messages.families import MAX_CANONICAL_UNITS

__all__ = [
    "PARALLEL_TOLERANCE",
    "CanonicalLayout",
    "balance",
    "canonical_layout",
    "canonical_vector",
    "check_layer_shapes",
    "feature_matrix",
    "parallel_groups",
    "project_layout",
]

PARALLEL_TOLERANCE = 1e-5
"""Units whose unit-norm weight vectors are within this Euclidean distance
are one unit split in several. A float32 copy of a unit scaled by any
``s`` differs from it by about ``1e-7 * sqrt(d)``; two units of a trained
model are never this close."""
_BLOCK = 256
"""Rows compared at once when grouping (memory: _BLOCK x units float64)."""
_BALANCE_ROUNDS = 500
_BALANCE_PRECISION = 1e-13


@dataclass(frozen=True)
class CanonicalLayout:
    """What steps 1 to 4 found in one suspect's layer, beyond ``W`` itself.

    ``inputs``: the groups of input units (sorted tuples, in order of their
    lowest unit); ``input_weights[c]``: unit ``c``'s weight in its group
    (0 for a unit in none); ``input_scales``: one per input group.
    ``outputs`` and ``output_scales``: the same for the output groups that
    contribute (the representative of each is its first unit).
    """

    inputs: tuple[tuple[int, ...], ...]
    input_weights: tuple[float, ...]
    input_scales: tuple[float, ...]
    outputs: tuple[tuple[int, ...], ...]
    output_scales: tuple[float, ...]


def check_layer_shapes(
    parameter: tuple[int, ...],
    producer: tuple[int, ...],
    consumer: tuple[int, ...],
    unit_size: int,
) -> tuple[int, int]:
    """The numbers of input and output units of a suspect's layer.

    ``parameter`` must be 2-D (outputs x inputs) with ``inputs`` a multiple
    of ``unit_size``; ``producer`` must have at least two axes, the first of
    one entry per input unit; ``consumer`` must be 2-D with one column per
    output unit.

    Raises:
        SuspectError: shapes that do not fit together, or more than
            :data:`~secmark.messages.families.MAX_CANONICAL_UNITS` units on a
            side or before the producer.
    """
    if len(parameter) != 2 or parameter[1] % unit_size:
        raise SuspectError(
            f"the committed parameter has shape {parameter}, not outputs x (units x {unit_size})"
        )
    outputs, inputs = parameter[0], parameter[1] // unit_size
    if len(producer) < 2 or producer[0] != inputs:
        raise SuspectError(
            f"the producer has shape {producer}; the parameter's {inputs} input units need "
            f"at least two axes, the first of {inputs}: the layers named do not fit together"
        )
    if len(consumer) != 2 or consumer[1] != outputs:
        raise SuspectError(
            f"the consumer has shape {consumer}; the parameter's {outputs} output units need "
            f"a 2-D consumer with {outputs} columns: the layers named do not fit together"
        )
    if max(inputs, outputs, producer[1], consumer[0]) > MAX_CANONICAL_UNITS:
        raise SuspectError(
            f"the layers have more than {MAX_CANONICAL_UNITS} units on a side; a canonical "
            "form compares every pair of units and is computed for no more"
        )
    return inputs, outputs


def parallel_groups(
    vectors: npt.NDArray[np.float64], tolerance: float = PARALLEL_TOLERANCE
) -> list[tuple[int, ...]]:
    """Rows of ``vectors`` grouped by direction, zero rows left out.

    Two non-zero rows are linked when their unit vectors are within
    ``tolerance`` (Euclidean); groups are the connected components of those
    links, each sorted, in order of their lowest index. The grouping
    depends on the rows, not on their order: permuting the rows permutes
    the groups' members and nothing else.
    """
    norms = np.linalg.norm(vectors, axis=1)
    alive = np.flatnonzero(norms > 0)
    units = vectors[alive] / norms[alive, None]
    parent = np.arange(len(alive))
    # |a - b|^2 = 2 - 2 a.b for unit vectors a and b.
    limit = 1.0 - tolerance * tolerance / 2.0
    for start in range(0, len(alive), _BLOCK):
        similarity = units[start : start + _BLOCK] @ units.T
        for offset, row in enumerate(similarity):
            linked = np.flatnonzero(row >= limit)
            if len(linked) < 2:
                continue
            roots = _roots(parent, np.append(linked, start + offset))
            parent[roots] = roots.min()
    roots = _roots(parent, np.arange(len(alive)))
    groups: dict[int, list[int]] = {}
    for position, root in enumerate(roots.tolist()):
        groups.setdefault(root, []).append(int(alive[position]))
    return sorted((tuple(members) for members in groups.values()), key=lambda g: g[0])


def _roots(parent: npt.NDArray[np.int64], nodes: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """The union-find roots of ``nodes``, compressing the paths walked."""
    current = nodes.astype(np.int64)
    while True:
        above = parent[current]
        if np.array_equal(above, current):
            return current
        parent[current] = parent[above]
        current = above


def balance(
    magnitudes: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Row and column factors that balance a non-negative matrix's squares.

    Sinkhorn's iteration on the squared entries, from factors of 1: rows
    are scaled so their squares sum to 1, then columns so theirs sum to
    rows / columns, until no factor changes by more than a relative 1e-13
    (at most 500 rounds); all-zero rows and columns get the factor 0.
    Scaling a row of the input by ``t`` divides its factor by ``t``, and
    scaling columns changes the row factors at most by one common factor:
    that is what makes a unit's scale readable from its own weights
    whatever the scales of the units around it.
    """
    squares = magnitudes * magnitudes
    live_rows = squares.sum(axis=1) > 0
    live_columns = squares.sum(axis=0) > 0
    kept = squares[np.ix_(live_rows, live_columns)]
    rows = np.ones(kept.shape[0])
    columns = np.ones(kept.shape[1])
    share = kept.shape[0] / max(kept.shape[1], 1)
    for _ in range(_BALANCE_ROUNDS):
        new_rows = 1.0 / (kept @ columns)
        new_columns = share / (kept.T @ new_rows)
        settled = np.allclose(new_rows, rows, rtol=_BALANCE_PRECISION, atol=0.0) and np.allclose(
            new_columns, columns, rtol=_BALANCE_PRECISION, atol=0.0
        )
        rows, columns = new_rows, new_columns
        if settled:
            break
    row_factors = np.zeros(squares.shape[0])
    column_factors = np.zeros(squares.shape[1])
    row_factors[live_rows] = np.sqrt(rows)
    column_factors[live_columns] = np.sqrt(columns)
    return row_factors, column_factors


def feature_matrix(size: int, unit_size: int) -> npt.NDArray[np.int8]:
    """The public ``size x unit_size`` matrix of +1 and -1 of step 6.

    Bits of SHAKE-256 over ``b"secmark-v1 canonical features"`` and both
    sizes (4 bytes big-endian each), least significant bit of each byte
    first, row by row: bit 1 is +1, bit 0 is -1.
    """
    count = size * unit_size
    seed = b"secmark-v1 canonical features" + size.to_bytes(4, "big") + unit_size.to_bytes(4, "big")
    stream = np.frombuffer(hashlib.shake_256(seed).digest((count + 7) // 8), dtype=np.uint8)
    bits = np.unpackbits(stream, bitorder="little")[:count]
    return (bits.astype(np.int8) * 2 - 1).reshape(size, unit_size)


def _merged_inputs(
    parameter: npt.NDArray[np.float64], layout: CanonicalLayout, unit_size: int
) -> npt.NDArray[np.float64]:
    """``Wm`` of step 3: outputs x input groups x unit_size."""
    by_unit = parameter.reshape(parameter.shape[0], -1, unit_size)
    weights = np.asarray(layout.input_weights)
    merged = np.zeros((parameter.shape[0], len(layout.inputs), unit_size))
    for position, group in enumerate(layout.inputs):
        members = list(group)
        merged[:, position] = np.einsum("ocs,c->os", by_unit[:, members], weights[members])
        merged[:, position] *= layout.input_scales[position]
    return merged


def _input_layout(
    merged: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64],
    live_rows: npt.NDArray[np.bool_],
    unit_size: int,
) -> CanonicalLayout:
    """Steps 2 and 3, the outgoing weights read on ``live_rows`` only."""
    inputs_count = merged.shape[0]
    flat = merged.reshape(inputs_count, -1)
    lengths = np.linalg.norm(flat, axis=1)
    input_weights = np.zeros(inputs_count)
    by_unit = weights[live_rows].reshape(int(live_rows.sum()), inputs_count, unit_size)
    inputs: list[tuple[int, ...]] = []
    for group in parallel_groups(flat):
        members = list(group)
        shares = lengths[members] / lengths[group[0]]
        # A unit nothing live reads, or a clique whose outgoing weights
        # cancel, is a dummy: it goes.
        if np.any(np.einsum("ocs,c->os", by_unit[:, members], shares) != 0):
            inputs.append(group)
            input_weights[members] = shares
    scales = np.zeros(0)
    if inputs:
        row_factors, _ = balance(np.linalg.norm(merged[[group[0] for group in inputs]], axis=2))
        scales = 1.0 / row_factors
    return CanonicalLayout(
        tuple(inputs), tuple(input_weights.tolist()), tuple(scales.tolist()), (), ()
    )


def _output_layout(
    partial: CanonicalLayout,
    weights: npt.NDArray[np.float64],
    outgoing: npt.NDArray[np.float64],
    unit_size: int,
) -> CanonicalLayout:
    """Step 4 on the input layout ``partial``."""
    rows = _merged_inputs(weights, partial, unit_size).reshape(weights.shape[0], -1)
    outputs: list[tuple[int, ...]] = []
    merged_columns = []
    row_lengths = np.linalg.norm(rows, axis=1)
    for group in parallel_groups(rows):
        members = list(group)
        column = outgoing[:, members] @ (row_lengths[members] / row_lengths[group[0]])
        if np.any(column != 0):
            outputs.append(group)
            merged_columns.append(column)
    output_scales: tuple[float, ...] = ()
    if outputs:
        _, column_factors = balance(np.abs(np.stack(merged_columns, axis=1)))
        output_scales = tuple((1.0 / column_factors).tolist())
    return CanonicalLayout(
        partial.inputs, partial.input_weights, partial.input_scales, tuple(outputs), output_scales
    )


def canonical_layout(
    parameter: npt.NDArray[Any],
    producer: npt.NDArray[Any],
    consumer: npt.NDArray[Any],
    *,
    unit_size: int,
) -> CanonicalLayout:
    """Steps 1 to 4 for one suspect's layer.

    Which input units are dummies depends on which output units are live
    (a unit read only by dummy outputs is one too) and the reverse, so
    steps 2 to 4 repeat, each time reading outgoing weights only on the
    output units step 4 kept, until those stop changing.

    Raises:
        SuspectError: as :func:`check_layer_shapes`.
    """
    inputs_count, outputs_count = check_layer_shapes(
        parameter.shape, producer.shape, consumer.shape, unit_size
    )
    weights = np.asarray(parameter, dtype=np.float64)
    incoming = np.asarray(producer, dtype=np.float64)
    incoming = incoming.reshape(incoming.shape[0], incoming.shape[1], -1)
    outgoing = np.asarray(consumer, dtype=np.float64)

    columns = parallel_groups(incoming.transpose(1, 0, 2).reshape(incoming.shape[1], -1))
    merged = (
        np.stack([incoming[:, list(group)].sum(axis=1) for group in columns], axis=1)
        if columns
        else np.zeros((inputs_count, 0, incoming.shape[2]))
    )
    live_rows = np.linalg.norm(outgoing, axis=0) > 0
    for _ in range(outputs_count + 1):
        layout = _output_layout(
            _input_layout(merged, weights, live_rows, unit_size), weights, outgoing, unit_size
        )
        kept = np.zeros(outputs_count, dtype=bool)
        for group in layout.outputs:
            kept[list(group)] = True
        if np.array_equal(kept, live_rows):
            break
        live_rows = kept
    return layout


def project_layout(
    parameter: npt.NDArray[Any], layout: CanonicalLayout, *, unit_size: int, size: int
) -> npt.NDArray[np.float64]:
    """Steps 5 and 6: the ``size`` values of the canonical vector of ``parameter`` under ``layout``."""
    merged = _merged_inputs(np.asarray(parameter, dtype=np.float64), layout, unit_size)
    representatives = [group[0] for group in layout.outputs]
    units = np.einsum("ghs,g->hs", merged[representatives], np.asarray(layout.output_scales))
    projected = units @ feature_matrix(size, unit_size).astype(np.float64).T
    vector = (projected * np.abs(projected)).sum(axis=0)
    length = float(np.linalg.norm(vector))
    return np.asarray(vector / length if length > 0 else vector)


def canonical_vector(
    parameter: npt.NDArray[Any],
    producer: npt.NDArray[Any],
    consumer: npt.NDArray[Any],
    *,
    unit_size: int,
    size: int,
) -> npt.NDArray[np.float64]:
    """The ``size`` values a ``canonical`` weights family projects, from the suspect's layers.

    Raises:
        SuspectError: as :func:`check_layer_shapes`.
    """
    layout = canonical_layout(parameter, producer, consumer, unit_size=unit_size)
    return project_layout(parameter, layout, unit_size=unit_size, size=size)
