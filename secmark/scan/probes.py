"""What a platform scan checks each hosted model with: one opened deposit.

A :class:`ScanProbe` is the trigger subset one owner deposited with the
platform, already opened (the sealed deposit documents and their checks are
not this module's): the inputs, their committed labels, the commitment's
label space and trigger family. The constructor checks that the arrays are
what the family and the label space derive, so the engine never counts
against labels no commitment could have drawn; the null match probability
p0 comes from the label space alone (:func:`secmark.stats.null_match_probability`).

A probe of a :class:`~secmark.messages.families.WeightsFamily` is white-box:
its inputs are the commitment's rows (int8, +1 or -1) and its labels the
bits, answered from the model's weights file by
:class:`~secmark.models.WeightsSuspect`, a projection rather than an
inference.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from secmark.errors import EncodingError
from secmark.messages.families import (
    NoiseFamily,
    OverlayFamily,
    PoolFamily,
    TokensFamily,
    TriggerFamily,
    WeightsFamily,
)
from secmark.messages.labels import ClassLabels, LabelSpace, RegressionLabels, TokenLabels
from secmark.protocol.querying import trials_per_trigger
from secmark.stats import MAX_TRIALS, null_match_probability
from secmark.triggers.generate import input_layout, label_layout

__all__ = ["MAX_ID_LENGTH", "ScanProbe", "checked_id"]

MAX_ID_LENGTH = 128
"""Longest deposit or model id: a results-table key, not a document."""

_TRIGGER_FAMILIES = (NoiseFamily, TokensFamily, PoolFamily, OverlayFamily, WeightsFamily)
_LABEL_SPACES = (ClassLabels, RegressionLabels, TokenLabels)


def checked_id(value: object, what: str) -> str:
    """``value`` if it is an id a scan may key results by: a str of 1 to
    :data:`MAX_ID_LENGTH` printable characters.

    Raises:
        EncodingError: anything else, naming ``what``.
    """
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID_LENGTH:
        raise EncodingError(f"{what} must be a str of 1 to {MAX_ID_LENGTH} characters")
    if not value.isprintable():
        raise EncodingError(f"{what} must hold printable characters only")
    return value


def _frozen(array: npt.NDArray[Any], dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    """A read-only, C-ordered, native-byte-order copy of ``array`` as ``dtype``."""
    copy = np.array(array, dtype=dtype.newbyteorder("="), order="C", copy=True)
    copy.flags.writeable = False
    return copy


@dataclass(frozen=True, eq=False)
class ScanProbe:
    """One opened deposit: ``inputs[j]`` is trigger j, ``labels[j]`` its label.

    ``inputs`` is an N x (input shape) array of exactly the family's dtype
    (:func:`secmark.triggers.generate.input_layout`, either byte order:
    inputs are never converted) whose values lie where the family draws them
    (noise in [low, high], token ids in [0, V), finite pool items): one
    deposit's bad input would fail the batch it shares with every other
    deposit of its shape. ``labels`` holds N labels of ``space``:
    integer classes in [0, K), float regression targets in [lo, hi], or
    N x L integer token ids in [0, V). For a white-box probe
    (``family`` a :class:`WeightsFamily`) the space must be
    ``ClassLabels(2)`` and every row value +1 or -1. N is at least 1 and at
    most what one exact test takes (``N * L <= MAX_TRIALS``). The arrays are
    kept as read-only copies.

    Raises:
        EncodingError: an id that is not 1 to 128 printable characters; a
            space or family of another type; inputs or labels of another
            shape or dtype than the family and space derive; an input value
            the family never draws (a row value other than +1 or -1 for a
            weights family); a label outside the space.
    """

    deposit_id: str
    inputs: npt.NDArray[Any]
    labels: npt.NDArray[Any]
    space: LabelSpace
    family: TriggerFamily

    def __post_init__(self) -> None:
        checked_id(self.deposit_id, "a deposit id")
        where = f"deposit {self.deposit_id!r}"
        if not isinstance(self.space, _LABEL_SPACES):
            raise EncodingError(f"{where}: the label space must be one of secmark's label spaces")
        if not isinstance(self.family, _TRIGGER_FAMILIES):
            raise EncodingError(f"{where}: the family must be one of secmark's trigger families")
        if self.white_box and self.space != ClassLabels(2):
            raise EncodingError(f"{where}: a weights family's labels are ClassLabels(2) bits")
        object.__setattr__(self, "inputs", self._checked_inputs(where))
        object.__setattr__(self, "labels", self._checked_labels(where))

    def _checked_inputs(self, where: str) -> npt.NDArray[Any]:
        shape, dtype = input_layout(self.family)
        inputs = self.inputs
        if (
            not isinstance(inputs, np.ndarray)
            or inputs.shape[1:] != shape
            or inputs.dtype.newbyteorder("=") != dtype.newbyteorder("=")
        ):
            got = (
                f"{inputs.dtype} {inputs.shape}"
                if isinstance(inputs, np.ndarray)
                else type(inputs).__name__
            )
            raise EncodingError(
                f"{where}: inputs must be an N x {shape} array of {dtype}, as the "
                f"{self.family.NAME} family derives them, not {got}"
            )
        count = inputs.shape[0]
        if not 1 <= count * trials_per_trigger(self.space) <= MAX_TRIALS:
            raise EncodingError(
                f"{where}: a probe holds 1 to {MAX_TRIALS} trials (triggers times labels "
                f"per trigger), not {count * trials_per_trigger(self.space)}"
            )
        family = self.family
        if isinstance(family, WeightsFamily):
            inside = np.isin(inputs, (-1, 1))
        elif isinstance(family, NoiseFamily):
            inside = (inputs >= family.low) & (inputs <= family.high)  # NaN is neither
        elif isinstance(family, TokensFamily):
            inside = (inputs >= 0) & (inputs < family.vocab_size)
        else:
            inside = np.isfinite(inputs)
        if not inside.all():
            raise EncodingError(
                f"{where}: {int((~inside).sum())} input value(s) lie outside what the "
                f"{family.NAME} family draws (a pool item's values must be finite)"
            )
        return _frozen(inputs, dtype)

    def _checked_labels(self, where: str) -> npt.NDArray[Any]:
        shape, dtype = label_layout(self.space)
        labels = self.labels
        kind = "f" if isinstance(self.space, RegressionLabels) else "iu"
        if (
            not isinstance(labels, np.ndarray)
            or labels.shape != (len(self.inputs), *shape)
            or labels.dtype.kind not in kind
        ):
            got = (
                f"{labels.dtype} {labels.shape}"
                if isinstance(labels, np.ndarray)
                else type(labels).__name__
            )
            expected = "floats" if kind == "f" else "integers"
            raise EncodingError(
                f"{where}: labels must be {expected} of shape {(len(self.inputs), *shape)}, "
                f"one per input, not {got}"
            )
        space = self.space
        if isinstance(space, ClassLabels):
            inside = (labels >= 0) & (labels < space.num_classes)
        elif isinstance(space, RegressionLabels):
            inside = (labels >= space.lo) & (labels <= space.hi)  # NaN is neither
        else:
            inside = (labels >= 0) & (labels < space.vocab_size)
        if not inside.all():
            raise EncodingError(
                f"{where}: {int((~inside).sum())} label value(s) lie outside the "
                f"{space.KIND} label space"
            )
        return _frozen(labels, dtype)

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def white_box(self) -> bool:
        """Whether the probe is answered from weights rather than by inference."""
        return isinstance(self.family, WeightsFamily)

    @property
    def trials(self) -> int:
        """k: the Bernoulli trials of the probe's test (N, or N * L for tokens)."""
        return len(self) * trials_per_trigger(self.space)

    @property
    def p0(self) -> Fraction:
        """The exact null match probability of one trial."""
        return null_match_probability(self.space)

    @property
    def input_key(self) -> tuple[tuple[int, ...], str]:
        """(input shape, dtype): black-box probes of one key share a batch."""
        return tuple(self.inputs.shape[1:]), self.inputs.dtype.str
