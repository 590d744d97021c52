"""A derived trigger set as a torch dataset.

The owner derives the trigger inputs and their secret labels (from a signed
commitment, in ``secmark.triggers``) as numpy arrays; :class:`TriggerDataset`
checks them once and holds them as tensors, so training and evaluation can
index them in batches without converting again.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from secmark.errors import EncodingError

__all__ = ["TriggerDataset"]

_INPUT_DTYPES = (np.float16, np.float32, np.float64)
_MAX_LABEL = int(np.iinfo(np.int64).max)


class TriggerDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """N trigger inputs with their secret class labels.

    Item ``i`` is ``(inputs[i], labels[i])``: a float32 tensor of the input
    shape and an int64 scalar tensor, the form a classifier's training loop
    expects. The arrays are copied, so changing them afterwards does not
    change the dataset.

    The inputs must already be what the model consumes: a family of uint8
    triggers has to be scaled the way the owner's preprocessing scales clean
    inputs before it is wrapped here, which is why integer inputs are refused
    rather than cast.

    Raises:
        EncodingError: ``inputs`` is not a floating-point array of shape
            (N, ...) with N >= 1 and finite values; ``labels`` is not a 1-D
            integer array of length N; a label is negative, or not below
            ``num_classes`` when that is given.
    """

    def __init__(
        self, inputs: np.ndarray, labels: np.ndarray, *, num_classes: int | None = None
    ) -> None:
        if not isinstance(inputs, np.ndarray) or not isinstance(labels, np.ndarray):
            raise EncodingError("trigger inputs and labels must be numpy arrays")
        if inputs.dtype not in _INPUT_DTYPES:
            raise EncodingError(
                f"trigger inputs must be float16, float32 or float64, not {inputs.dtype}; "
                "scale integer inputs as the model's preprocessing does first"
            )
        if inputs.ndim < 2 or inputs.shape[0] < 1:
            raise EncodingError(
                f"trigger inputs must have shape (N, ...) with N >= 1, not {inputs.shape}"
            )
        if not np.isfinite(inputs).all():
            raise EncodingError("trigger inputs contain NaN or infinite values")
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise EncodingError(
                f"trigger labels must be a 1-D integer array, not {labels.dtype} of shape "
                f"{labels.shape}"
            )
        if labels.shape[0] != inputs.shape[0]:
            raise EncodingError(f"{inputs.shape[0]} trigger inputs but {labels.shape[0]} labels")
        if num_classes is not None and num_classes < 2:
            raise EncodingError(f"num_classes must be at least 2, not {num_classes}")
        if labels.min() < 0:
            raise EncodingError("trigger labels must not be negative")
        # int64 is what cross_entropy takes; a uint64 label above its range
        # would wrap to a negative one when converted.
        bound = _MAX_LABEL if num_classes is None else min(num_classes - 1, _MAX_LABEL)
        if int(labels.max()) > bound:
            raise EncodingError(f"trigger label {int(labels.max())} is above the largest, {bound}")
        self._inputs = torch.from_numpy(np.array(inputs, dtype=np.float32, order="C"))
        self._labels = torch.from_numpy(np.array(labels, dtype=np.int64))
        self._num_classes = num_classes

    @property
    def inputs(self) -> torch.Tensor:
        """All N inputs, float32, shape (N, ...). Do not modify in place."""
        return self._inputs

    @property
    def labels(self) -> torch.Tensor:
        """All N secret labels, int64, shape (N,). Do not modify in place."""
        return self._labels

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, without the leading N."""
        return tuple(self._inputs.shape[1:])

    @property
    def num_classes(self) -> int | None:
        """The number of classes the labels were checked against, if given."""
        return self._num_classes

    def __len__(self) -> int:
        return int(self._labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._inputs[index], self._labels[index]
