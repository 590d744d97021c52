"""Embedding a white-box weight watermark (Uchida et al. 2017), bound to a commitment.

A weights commitment (:class:`~secmark.messages.families.WeightsFamily`)
derives T rows ``X_j`` of M values +1 or -1 and T bits ``b_j`` from the
owner's VRF (:func:`weights_rows`). Training adds
``lam * BCE(sigmoid(X reduce(w)), b)`` to the loss, ``w`` being the committed
parameter, until ``X_j . reduce(w) > 0`` holds exactly when ``b_j = 1``.
:class:`WeightsRegularizer` is that term, for the owner's own loop or for
:func:`embed_weights`, which trains with it and reports bit and clean
accuracy before and after. The check on a suspect is
:class:`secmark.models.WeightsSuspect`, which needs no torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from secmark.crypto.ecvrf import VrfSecretKey
from secmark.crypto.keys import IdentityKeys
from secmark.embed.train import EvaluationData, Optimizer, evaluate_accuracy, train
from secmark.errors import EncodingError
from secmark.messages.commitment import Commitment
from secmark.messages.document import SignedDocument
from secmark.messages.families import WeightsFamily
from secmark.models.canonical import canonical_layout, feature_matrix
from secmark.triggers import iter_triggers

__all__ = [
    "WeightsEmbedReport",
    "WeightsRegularizer",
    "canonical_tensor",
    "embed_weights",
    "reduce_tensor",
    "weights_rows",
]


def weights_rows(
    keys: IdentityKeys | VrfSecretKey, signed_commitment: SignedDocument[Commitment]
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int64]]:
    """All T rows (int8, T x M) and bits (int64, T) of a weights commitment.

    They are the commitment's triggers 0..T-1 (``specs/derivation.md``
    7.11): the owner derives them privately, as any trigger set.

    Raises:
        EncodingError: the commitment is not of the weights family.
        KeyMaterialError: ``keys`` is not the commitment owner's VRF key.
    """
    commitment = signed_commitment.document
    if not isinstance(commitment.family, WeightsFamily):
        raise EncodingError(f"the {commitment.family.NAME} family has no weight rows")
    batches = list(iter_triggers(keys, signed_commitment, range(commitment.size)))
    return (
        np.concatenate([batch.inputs for batch in batches]),
        np.concatenate([batch.labels for batch in batches]),
    )


def reduce_tensor(weights: torch.Tensor, reduction: str) -> torch.Tensor:
    """The torch counterpart of :func:`secmark.models.reduce_parameter`:
    ``mean-out`` is the mean over dimension 0, flattened; ``flatten`` every
    value. Differentiable."""
    if reduction == "mean-out":
        return weights.mean(dim=0).reshape(-1)
    return weights.reshape(-1)


def canonical_tensor(model: nn.Module, family: WeightsFamily) -> torch.Tensor:
    """The torch counterpart of :func:`secmark.models.canonical.canonical_vector`
    for a ``canonical`` family, on ``model``'s current parameters.

    The layout (groups, weights and scales of the units) is computed by
    :func:`~secmark.models.canonical.canonical_layout` on the detached
    values, as an arbiter computes it on the file; the vector is then
    differentiable in the committed parameter. It is divided by its norm
    and multiplied by the square root of its length, which keeps the
    regulariser's logits in range and changes no projection's sign.

    Raises:
        EncodingError: ``family`` is not ``canonical``, or a parameter it
            names is missing.
        SuspectError: as :func:`secmark.models.canonical.check_layer_shapes`.
    """
    if family.reduction != "canonical" or family.producer is None or family.consumer is None:
        raise EncodingError("canonical_tensor needs a weights family with the canonical reduction")
    parameters = dict(model.named_parameters())
    for name in (family.parameter, family.producer, family.consumer):
        if name not in parameters:
            raise EncodingError(f"the model has no parameter {name!r}")
    weights = parameters[family.parameter]
    size, unit_size = family.projected_size, family.unit_size

    def detached(name: str) -> npt.NDArray[np.float64]:
        return parameters[name].detach().cpu().double().numpy()

    layout = canonical_layout(
        detached(family.parameter),
        detached(family.producer),
        detached(family.consumer),
        unit_size=unit_size,
    )
    if not layout.inputs or not layout.outputs:
        return weights.new_zeros(size)
    by_unit = weights.reshape(weights.shape[0], -1, unit_size)
    shares = torch.tensor(layout.input_weights).to(weights)
    merged = torch.stack(
        [
            torch.einsum("ocs,c->os", by_unit[:, list(group)], shares[list(group)]) * scale
            for group, scale in zip(layout.inputs, layout.input_scales, strict=True)
        ],
        dim=1,
    )
    representatives = [group[0] for group in layout.outputs]
    units = torch.einsum(
        "ghs,g->hs", merged[representatives], torch.tensor(layout.output_scales).to(weights)
    )
    features = torch.from_numpy(feature_matrix(size, unit_size)).to(weights)
    projected = units @ features.T
    vector = (projected * projected.abs()).sum(dim=0)
    scaled: torch.Tensor = vector / (vector.norm() + torch.finfo(vector.dtype).tiny) * size**0.5
    return scaled


class WeightsRegularizer:
    """The loss term ``lam * mean_j BCE(sigmoid(X_j . reduce(w)), b_j)``.

    ``model``'s parameter ``family.parameter`` must exist with shape
    ``family.parameter_shape``; ``rows`` (T x M, values +1 or -1) and
    ``bits`` (T, values 0 or 1) are :func:`weights_rows`' result. Calling
    the regulariser returns the term (a scalar tensor with a gradient) for
    the parameter's current values; add it to the loss of each step. The
    parameter is looked up by name at every call, so moving the model to
    another device afterwards is fine.

    For a ``canonical`` family the term is computed on the layer's
    canonical form (:func:`canonical_tensor`), so it also trains the
    producer and consumer.

    Raises:
        EncodingError: the model has no such parameter (or, for
            ``canonical``, no such producer or consumer) or another shape;
            rows or bits of another shape or with other values; ``lam`` not
            positive and finite.
    """

    def __init__(
        self,
        model: nn.Module,
        family: WeightsFamily,
        rows: npt.NDArray[Any],
        bits: npt.NDArray[Any],
        lam: float,
    ) -> None:
        parameters = dict(model.named_parameters())
        for name in (family.parameter, family.producer, family.consumer):
            if name is not None and name not in parameters:
                raise EncodingError(f"the model has no parameter {name!r}")
        shape = tuple(parameters[family.parameter].shape)
        if shape != family.parameter_shape:
            raise EncodingError(
                f"parameter {family.parameter!r} has shape {shape}; the family commits to "
                f"{family.parameter_shape}"
            )
        rows = np.asarray(rows)
        bits = np.asarray(bits)
        if rows.ndim != 2 or rows.shape[1] != family.projected_size or rows.shape[0] < 1:
            raise EncodingError(f"rows must be T x {family.projected_size}, not {rows.shape}")
        if not np.isin(rows, (-1, 1)).all():
            raise EncodingError("rows must hold only +1 and -1")
        if bits.shape != (rows.shape[0],) or not np.isin(bits, (0, 1)).all():
            raise EncodingError(f"bits must be {rows.shape[0]} values 0 or 1")
        if (
            isinstance(lam, bool)
            or not isinstance(lam, (int, float))
            or not math.isfinite(lam)
            or lam <= 0
        ):
            raise EncodingError(f"lam must be a positive finite number, not {lam!r}")
        self._model = model
        self._family = family
        self._rows = torch.from_numpy(rows.astype(np.float32))
        self._bits = torch.from_numpy(bits.astype(np.float32))
        self._lam = float(lam)

    @property
    def model(self) -> nn.Module:
        return self._model

    @property
    def family(self) -> WeightsFamily:
        return self._family

    @property
    def lam(self) -> float:
        return self._lam

    def __len__(self) -> int:
        """T, the number of bits."""
        return int(self._bits.shape[0])

    def _logits(self) -> torch.Tensor:
        weights = self._model.get_parameter(self._family.parameter)
        if self._family.reduction == "canonical":
            reduced = canonical_tensor(self._model, self._family)
        else:
            reduced = reduce_tensor(weights, self._family.reduction)
        rows = self._rows.to(device=weights.device, dtype=weights.dtype)
        return rows @ reduced

    def __call__(self) -> torch.Tensor:
        logits = self._logits()
        bits = self._bits.to(device=logits.device, dtype=logits.dtype)
        return self._lam * nn.functional.binary_cross_entropy_with_logits(logits, bits)

    def predicted_bits(self) -> npt.NDArray[np.int64]:
        """The bits the model's parameter gives now: ``X_j . reduce(w) > 0``."""
        with torch.no_grad():
            return (self._logits() > 0).to(torch.int64).cpu().numpy()

    def bit_accuracy(self) -> float:
        """The fraction of all T bits the model's parameter gives correctly."""
        return float(np.mean(self.predicted_bits() == self._bits.numpy().astype(np.int64)))


@dataclass(frozen=True)
class WeightsEmbedReport:
    """What :func:`embed_weights` did and achieved.

    Bit accuracy is over all T bits (an unmarked model scores about 1/2);
    clean accuracies are on ``holdout`` and None without it.
    """

    bits: int
    lam: float
    epochs: int
    seconds: float
    device: str
    bit_accuracy_before: float
    bit_accuracy_after: float
    clean_accuracy_before: float | None
    clean_accuracy_after: float | None

    @property
    def clean_accuracy_drop(self) -> float | None:
        """Held-out accuracy lost to embedding (negative if it rose)."""
        if self.clean_accuracy_before is None or self.clean_accuracy_after is None:
            return None
        return self.clean_accuracy_before - self.clean_accuracy_after


def embed_weights(
    model: nn.Module,
    train_loader: Iterable[Any],
    regularizer: WeightsRegularizer,
    *,
    epochs: int,
    lr: float,
    seed: int,
    optimizer: Optimizer = "adam",
    device: torch.device | str | None = None,
    holdout: EvaluationData | None = None,
    deterministic: bool = True,
    progress: bool = True,
) -> WeightsEmbedReport:
    """Train ``model`` on ``train_loader`` with ``regularizer`` added to every step.

    The loop, its arguments, reproducibility and errors are those of
    :func:`secmark.embed.train` (cross-entropy on the model's logits plus the
    regulariser's term). ``regularizer`` must be built on ``model``. Check
    the report: the watermark is evidence only if ``bit_accuracy_after`` is
    high, and what a challenge needs is in ``specs/statistics.md``.

    Raises:
        EncodingError: ``regularizer`` is for another model, or as
            :func:`secmark.embed.train`.
        SecmarkError: as :func:`secmark.embed.train`.
    """
    if regularizer.model is not model:
        raise EncodingError("the regularizer was built on another model")
    clean_before = None if holdout is None else evaluate_accuracy(model, holdout)
    bits_before = regularizer.bit_accuracy()
    seconds = train(
        model,
        train_loader,
        epochs=epochs,
        lr=lr,
        seed=seed,
        optimizer=optimizer,
        device=device,
        deterministic=deterministic,
        progress=progress,
        regularizer=regularizer,
    )
    return WeightsEmbedReport(
        bits=len(regularizer),
        lam=regularizer.lam,
        epochs=epochs,
        seconds=seconds,
        device=str(next(iter(model.parameters())).device),
        bit_accuracy_before=bits_before,
        bit_accuracy_after=regularizer.bit_accuracy(),
        clean_accuracy_before=clean_before,
        clean_accuracy_after=None if holdout is None else evaluate_accuracy(model, holdout),
    )
