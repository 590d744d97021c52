"""Removal attacks: what a thief holding the watermarked model may do to it.

Every attack takes the stolen model (never modified: attacks work on a copy),
what the thief holds (:class:`ThiefData`: a fraction of the training data, his
own trigger set, the attack settings, a seed) and a *strength*, and returns
the :class:`AttackedModel` the arbiter will query. ``specs/evaluation.md``
states exactly what each attack does.

=================  ==================================================  ==============
attack             what the thief does                                 strength
=================  ==================================================  ==============
finetune_last      trains the output layer only on his data            learning rate
finetune_all       trains every layer on his data                      learning rate
reinit_last        re-initialises the output layer, trains it only     learning rate
reinit_all         re-initialises the output layer, trains all layers  learning rate
prune              global magnitude pruning of conv/linear weights     pruned fraction
fine_prune         prunes, then fine-tunes the surviving weights       pruned fraction
quantize           per-tensor symmetric fake-quantisation of weights   bits
input_noise        adds Gaussian noise to every query                  noise std
distill            trains a fresh student on the model's answers       epochs / owner's
overwrite          embeds his own secmark watermark                    learning rate
=================  ==================================================  ==============

The *evasion* attacks leave the weights alone and put a filter in front of
the stolen model, as a thief serving it behind an API may: the filter
decides, per query, to answer something other than the model's answer.

=====================  ==============================================  ==============
attack                 what the thief's API does                       strength
=====================  ==============================================  ==============
ood_background         random answer to inputs with too few values     flagged share
                       equal to his data's most common value           of his data
ood_reconstruction     random answer to inputs his data's PCA          flagged share
                       reconstructs badly                              of his data
disagreement_filter    the answer of a clean model of his own where    epochs / owner's
                       it disagrees with the stolen model
=====================  ==============================================  ==============
"""

from __future__ import annotations

import copy
import math
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from secmark.errors import EncodingError
from secmark.evaluate.datasets import Task
from secmark.evaluate.models import last_linear, weight_layers
from secmark.evaluate.scoring import trigger_matches
from secmark.evaluate.training import answers, fit
from secmark.evaluate.triggers import TriggerData
from secmark.messages.labels import ClassLabels

__all__ = [
    "ATTACKS",
    "Attack",
    "AttackSettings",
    "AttackedModel",
    "BackgroundDetector",
    "DisagreementGate",
    "Gate",
    "RandomAnswerGate",
    "ReconstructionDetector",
    "ThiefData",
    "apply_attack",
    "prune_weights",
    "quantize_matrices",
    "quantize_weights",
]

_STUDENT_SEED_OFFSET = 7919
"""Added to the seed for a distillation student's initialisation, so it does
not start from the owner's initial weights."""
_MAX_BITS = 16
_CLEAN_MODEL_SEED_OFFSET = 104729
"""Added to the seed for the disagreement filter's clean model, so it starts
from neither the owner's nor a distillation student's initial weights."""
_MAX_FLAGGED_SHARE = 0.5
"""An OOD filter calibrated to flag more than half of the thief's own inputs
would answer most of his customers at random: refused as a strength."""
_PCA_VARIANCE = 0.9
"""The reconstruction detector keeps the fewest principal components that
explain 90 % of the variance of the thief's inputs: a common choice, and
enough for real inputs to reconstruct well while uniform noise does not."""


@dataclass(frozen=True)
class AttackSettings:
    """The fixed parts of the attacks; the swept part is each attack's strength.

    Attributes:
        finetune_epochs: passes over the thief's data when fine-tuning
            (finetune_*, reinit_*).
        fineprune_epochs: passes of fine-tuning after pruning (fine_prune).
        fineprune_lr: Adam's learning rate for that fine-tuning.
        overwrite_epochs: passes of the thief's own embedding (overwrite).
    """

    finetune_epochs: int = 30
    fineprune_epochs: int = 5
    fineprune_lr: float = 1e-3
    overwrite_epochs: int = 30


@dataclass(frozen=True, eq=False)
class ThiefData:
    """What the thief holds besides the stolen model.

    ``inputs`` and ``targets`` are his share of the owner's training split
    (the data budget); distillation uses the inputs only. ``triggers`` is the
    trigger set of his own commitment (for overwriting).
    """

    task: Task
    inputs: np.ndarray
    targets: np.ndarray
    triggers: TriggerData
    settings: AttackSettings
    seed: int


class Gate(Protocol):
    """A filter in front of the stolen model (an evasion attack): given the
    queries and the model's answers, the answers the thief's API returns."""

    def __call__(self, task: Task, inputs: np.ndarray, given: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True, eq=False)
class AttackedModel:
    """The suspect after an attack: ``model``, queried with Gaussian noise of
    standard deviation ``input_noise`` added to every input (0: none), its
    answers passed through ``gate`` when there is one (evasion attacks).

    ``extra`` holds attack-specific figures (the number of queries a
    distillation made, the thief's own watermark accuracy after overwriting,
    the share of holdout queries an evasion filter answered differently).
    """

    model: nn.Module
    input_noise: float = 0.0
    noise_seed: int = 0
    extra: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    gate: Gate | None = None

    def answer(self, task: Task, inputs: np.ndarray) -> np.ndarray:
        """The model's answers to ``inputs``, noised first when ``input_noise`` > 0.

        The noise is drawn from a generator seeded with ``noise_seed`` and
        the inputs' checksum, so the same query gets the same noise.
        """
        if self.input_noise > 0:
            rng = np.random.default_rng(
                [self.noise_seed, zlib.crc32(np.ascontiguousarray(inputs).tobytes())]
            )
            noise = rng.normal(0.0, self.input_noise, size=inputs.shape).astype(np.float32)
            inputs = (inputs + noise).astype(np.float32)
        given = answers(task, self.model, inputs)
        return given if self.gate is None else self.gate(task, inputs, given)


AttackFunction = Callable[[nn.Module, ThiefData, float], AttackedModel]


@dataclass(frozen=True)
class Attack:
    """One removal attack.

    Attributes:
        name: its identifier.
        title: a heading for people.
        parameter: what the strength is, e.g. "learning rate".
        log_scale: plot the strength on a log axis.
        swept: which of the strength and the thief's data budget the
            default grid varies (the other stays fixed).
        description: one sentence on what the thief does.
        run: the attack on a copy of the stolen model.
        evasion: the attack leaves the weights alone and filters the
            answers (reported apart from the removal attacks).
    """

    name: str
    title: str
    parameter: str
    log_scale: bool
    swept: Literal["strength", "data_fraction"]
    description: str
    run: AttackFunction = field(repr=False)
    evasion: bool = False


def _positive(value: float, what: str) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise EncodingError(f"{what} must be a positive finite number, not {value!r}")
    return float(value)


def _whole(value: float, what: str, low: int, high: int) -> int:
    if not (isinstance(value, (int, float)) and float(value).is_integer() and low <= value <= high):
        raise EncodingError(f"{what} must be a whole number in [{low}, {high}], not {value!r}")
    return int(value)


def _rate(value: float) -> float:
    if not (isinstance(value, (int, float)) and 0 <= value < 1):
        raise EncodingError(f"the pruned fraction must be in [0, 1), not {value!r}")
    return float(value)


def _finetune(layers: Literal["last", "all"], reinit: bool) -> AttackFunction:
    def run(model: nn.Module, thief: ThiefData, strength: float) -> AttackedModel:
        lr = _positive(strength, "the learning rate")
        last = last_linear(model)
        if reinit:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(thief.seed)
                last.reset_parameters()
        if layers == "last":
            for parameter in model.parameters():
                parameter.requires_grad_(False)
            for parameter in last.parameters():
                parameter.requires_grad_(True)
        try:
            fit(
                thief.task,
                model,
                thief.inputs,
                thief.targets,
                epochs=thief.settings.finetune_epochs,
                lr=lr,
                seed=thief.seed,
            )
        finally:
            for parameter in model.parameters():
                parameter.requires_grad_(True)
        return AttackedModel(model)

    return run


def prune_weights(model: nn.Module, fraction: float) -> None:
    """Zero the ``fraction`` of conv/linear weights smallest in magnitude,
    ranked over all of them together (global magnitude pruning), in place and
    permanently. Biases are kept."""
    _rate(fraction)
    if fraction == 0:
        return
    targets = [(layer, "weight") for layer in weight_layers(model)]
    torch_prune.global_unstructured(
        targets, pruning_method=torch_prune.L1Unstructured, amount=fraction
    )
    for layer, name in targets:
        torch_prune.remove(layer, name)  # type: ignore[no-untyped-call]


def _prune(model: nn.Module, thief: ThiefData, strength: float) -> AttackedModel:
    prune_weights(model, strength)
    return AttackedModel(model)


def _fine_prune(model: nn.Module, thief: ThiefData, strength: float) -> AttackedModel:
    fraction = _rate(strength)
    targets = [(layer, "weight") for layer in weight_layers(model)]
    if fraction > 0:
        # The masks stay in place while fine-tuning: pruned weights get no
        # gradient (weight = weight_orig * mask) and stay zero under a fresh Adam.
        torch_prune.global_unstructured(
            targets, pruning_method=torch_prune.L1Unstructured, amount=fraction
        )
    fit(
        thief.task,
        model,
        thief.inputs,
        thief.targets,
        epochs=thief.settings.fineprune_epochs,
        lr=thief.settings.fineprune_lr,
        seed=thief.seed,
    )
    if fraction > 0:
        for layer, name in targets:
            torch_prune.remove(layer, name)  # type: ignore[no-untyped-call]
    return AttackedModel(model)


def quantize_weights(model: nn.Module, bits: int) -> None:
    """Round every conv/linear weight tensor, in place, to the signed integer
    grid of ``bits`` bits with one symmetric scale per tensor
    (``max |w| / (2^(bits-1) - 1)``), and back to floats: what int8 or int4
    weights compute. Biases stay in floating point, as int32 accumulators keep
    them in real deployments.

    Raises:
        EncodingError: ``bits`` is not a whole number in [2, 16].
    """
    levels = _levels(bits)
    for layer in weight_layers(model):
        _round_to_grid(layer.weight, levels)


def quantize_matrices(model: nn.Module, bits: int) -> None:
    """Round every parameter of two or more dimensions, in place, as
    :func:`quantize_weights` rounds a layer's weight: all of a language
    model's weight matrices, its token and position embeddings included
    (a tied output layer is the same tensor, rounded once).

    Raises:
        EncodingError: ``bits`` is not a whole number in [2, 16].
    """
    levels = _levels(bits)
    for parameter in model.parameters():
        if parameter.ndim >= 2:
            _round_to_grid(parameter, levels)


def _levels(bits: int) -> int:
    """The largest magnitude of the symmetric signed grid of ``bits`` bits."""
    return int(2 ** (_whole(bits, "bits", 2, _MAX_BITS) - 1) - 1)


def _round_to_grid(weight: torch.Tensor, levels: int) -> None:
    """``weight`` rounded in place to ``levels`` steps either side of zero,
    one scale for the tensor (``max |w| / levels``), and back to floats."""
    with torch.no_grad():
        largest = float(weight.abs().max())
        if largest == 0:
            return
        scale = largest / levels
        weight.copy_(torch.round(weight / scale).clamp(-levels, levels) * scale)


def _quantize(model: nn.Module, thief: ThiefData, strength: float) -> AttackedModel:
    quantize_weights(model, _whole(strength, "bits", 2, _MAX_BITS))
    return AttackedModel(model)


def _input_noise(model: nn.Module, thief: ThiefData, strength: float) -> AttackedModel:
    if not (isinstance(strength, (int, float)) and math.isfinite(strength) and strength >= 0):
        raise EncodingError(f"the noise standard deviation must be >= 0, not {strength!r}")
    return AttackedModel(model, input_noise=float(strength), noise_seed=thief.seed)


def _distill(model: nn.Module, thief: ThiefData, strength: float) -> AttackedModel:
    task = thief.task
    length = _positive(strength, "the student's training length")
    epochs = max(1, round(length * task.recipe.epochs))
    # The thief's queries: his own inputs, answered by the stolen model. He
    # sees hard labels (a class, or the regression value) and nothing else.
    labels = answers(task, model, thief.inputs).astype(thief.targets.dtype)
    student = task.new_model(thief.seed + _STUDENT_SEED_OFFSET)
    fit(task, student, thief.inputs, labels, epochs=epochs, lr=task.recipe.lr, seed=thief.seed)
    return AttackedModel(student, extra=MappingProxyType({"queries": float(len(thief.inputs))}))


def _overwrite(model: nn.Module, thief: ThiefData, strength: float) -> AttackedModel:
    lr = _positive(strength, "the learning rate")
    task = thief.task
    fit(
        task,
        model,
        thief.inputs,
        thief.targets,
        epochs=thief.settings.overwrite_epochs,
        lr=lr,
        seed=thief.seed,
        triggers=thief.triggers,
        per_batch=task.recipe.per_batch,
    )
    own = trigger_matches(task, answers(task, model, thief.triggers.inputs), thief.triggers.labels)
    return AttackedModel(
        model, extra=MappingProxyType({"thief_watermark_accuracy": float(own.mean())})
    )


def _flagged_share(value: float) -> float:
    if not (isinstance(value, (int, float)) and 0 <= value <= _MAX_FLAGGED_SHARE):
        raise EncodingError(
            f"the flagged share of the thief's data must be in [0, {_MAX_FLAGGED_SHARE}], "
            f"not {value!r}"
        )
    return float(value)


def _rows(inputs: np.ndarray) -> np.ndarray:
    """The inputs as float64 rows, one per query."""
    return np.asarray(inputs, dtype=np.float64).reshape(len(inputs), -1)


@dataclass(frozen=True, eq=False)
class BackgroundDetector:
    """Flags a query whose share of values equal to ``background`` is below
    ``threshold`` (digits: too few zero pixels, as uniform noise has none)."""

    background: float
    threshold: float

    @classmethod
    def calibrate(cls, inputs: np.ndarray, flagged_share: float) -> BackgroundDetector:
        """``background`` is the most common value over every entry of
        ``inputs`` (the smallest such value on a tie); ``threshold`` is the
        ``floor(flagged_share * n)``-th smallest (0-based) of the n inputs'
        shares, so at most that many of ``inputs`` are flagged."""
        values, counts = np.unique(_rows(inputs), return_counts=True)
        background = float(values[int(np.argmax(counts))])
        shares = np.sort(cls(background, 0.0).statistic(inputs))
        return cls(background, float(shares[math.floor(flagged_share * len(shares))]))

    def statistic(self, inputs: np.ndarray) -> np.ndarray:
        """Each query's share of values exactly equal to ``background``."""
        result: np.ndarray = np.mean(_rows(inputs) == self.background, axis=1)
        return result

    def flags(self, inputs: np.ndarray) -> np.ndarray:
        """True where a query is flagged as out of distribution."""
        result: np.ndarray = self.statistic(inputs) < self.threshold
        return result


@dataclass(frozen=True, eq=False)
class ReconstructionDetector:
    """Flags a query whose squared error after projection onto the principal
    ``components`` (rows, orthonormal) around ``mean`` exceeds ``threshold``."""

    mean: np.ndarray
    components: np.ndarray
    threshold: float

    @classmethod
    def calibrate(cls, inputs: np.ndarray, flagged_share: float) -> ReconstructionDetector:
        """PCA of ``inputs`` (flattened): the fewest components explaining
        90 % of their variance; ``threshold`` is the
        ``floor(flagged_share * n)``-th largest (0-based) of the n inputs'
        errors, so at most that many of ``inputs`` are flagged."""
        rows = _rows(inputs)
        mean = rows.mean(axis=0)
        _, singular, basis = np.linalg.svd(rows - mean, full_matrices=False)
        variance = singular**2
        total = float(variance.sum())
        count = (
            int(np.searchsorted(np.cumsum(variance) / total, _PCA_VARIANCE)) + 1 if total > 0 else 0
        )
        detector = cls(mean, basis[: min(count, len(basis))], 0.0)
        errors = np.sort(detector.errors(inputs))
        rank = len(errors) - 1 - math.floor(flagged_share * len(errors))
        return cls(mean, detector.components, float(errors[rank]))

    def errors(self, inputs: np.ndarray) -> np.ndarray:
        """Each query's squared reconstruction error."""
        centred = _rows(inputs) - self.mean
        residual = centred - (centred @ self.components.T) @ self.components
        result: np.ndarray = np.sum(residual**2, axis=1)
        return result

    def flags(self, inputs: np.ndarray) -> np.ndarray:
        """True where a query is flagged as out of distribution."""
        result: np.ndarray = self.errors(inputs) > self.threshold
        return result


@dataclass(frozen=True, eq=False)
class RandomAnswerGate:
    """Answers each query its ``detector`` flags with a random answer, the
    model's answer otherwise.

    The random answer is uniform over the task's label space (a class, or a
    value in [lo, hi] for regression), drawn from a generator seeded with
    ``seed`` and the query's checksum: the same query gets the same answer,
    as a deployed filter that caches or hashes would give.
    """

    detector: BackgroundDetector | ReconstructionDetector
    seed: int

    def flags(self, task: Task, inputs: np.ndarray, given: np.ndarray) -> np.ndarray:
        """True where the answer is replaced."""
        return self.detector.flags(inputs)

    def __call__(self, task: Task, inputs: np.ndarray, given: np.ndarray) -> np.ndarray:
        result = given.copy()
        labels = task.labels
        for row in np.flatnonzero(self.flags(task, inputs, given)):
            query = np.ascontiguousarray(inputs[row]).tobytes()
            rng = np.random.default_rng([self.seed, zlib.crc32(query)])
            if isinstance(labels, ClassLabels):
                result[row] = rng.integers(labels.num_classes)
            else:
                result[row] = rng.uniform(labels.lo, labels.hi)
        return result


@dataclass(frozen=True, eq=False)
class DisagreementGate:
    """Answers the ``clean`` model's answer wherever it disagrees with the
    stolen model's: another class, or (regression) a value more than the
    task's tolerance away. For classes the API's answer is then always the
    clean model's, so the thief pays the clean model's accuracy in place of
    the stolen one's; for regression the stolen model's answer is kept
    within the tolerance."""

    clean: nn.Module

    def flags(self, task: Task, inputs: np.ndarray, given: np.ndarray) -> np.ndarray:
        """True where the answer is replaced."""
        theirs = answers(task, self.clean, inputs)
        labels = task.labels
        if isinstance(labels, ClassLabels):
            differ: np.ndarray = theirs != given
        else:
            differ = np.abs(theirs - given) > labels.tolerance
        return differ

    def __call__(self, task: Task, inputs: np.ndarray, given: np.ndarray) -> np.ndarray:
        theirs = answers(task, self.clean, inputs).astype(given.dtype)
        return np.where(self.flags(task, inputs, given), theirs, given)


def _gated(
    model: nn.Module, thief: ThiefData, gate: RandomAnswerGate | DisagreementGate
) -> AttackedModel:
    """The stolen model behind ``gate``, with the share of holdout queries
    (ordinary traffic) whose answer the gate replaced, and for a detector the
    share of the thief's own inputs it flags."""
    task = thief.task
    holdout = gate.flags(task, task.test_inputs, answers(task, model, task.test_inputs))
    extra = {"replaced_holdout": float(np.mean(holdout))}
    if isinstance(gate, RandomAnswerGate):
        extra["flagged_own"] = float(np.mean(gate.detector.flags(thief.inputs)))
    return AttackedModel(model, extra=MappingProxyType(extra), gate=gate)


def _ood_background(model: nn.Module, thief: ThiefData, strength: float) -> AttackedModel:
    detector = BackgroundDetector.calibrate(thief.inputs, _flagged_share(strength))
    return _gated(model, thief, RandomAnswerGate(detector, thief.seed))


def _ood_reconstruction(model: nn.Module, thief: ThiefData, strength: float) -> AttackedModel:
    detector = ReconstructionDetector.calibrate(thief.inputs, _flagged_share(strength))
    return _gated(model, thief, RandomAnswerGate(detector, thief.seed))


def _disagreement_filter(model: nn.Module, thief: ThiefData, strength: float) -> AttackedModel:
    task = thief.task
    length = _positive(strength, "the clean model's training length")
    epochs = max(1, round(length * task.recipe.epochs))
    clean = task.new_model(thief.seed + _CLEAN_MODEL_SEED_OFFSET)
    fit(task, clean, thief.inputs, thief.targets, epochs=epochs, lr=task.recipe.lr, seed=thief.seed)
    return _gated(model, thief, DisagreementGate(clean))


ATTACKS: Mapping[str, Attack] = MappingProxyType(
    {
        attack.name: attack
        for attack in (
            Attack(
                "finetune_last",
                "Fine-tuning the last layer",
                "learning rate",
                True,
                "strength",
                "Adam on the thief's data, output layer only.",
                _finetune("last", reinit=False),
            ),
            Attack(
                "finetune_all",
                "Fine-tuning all layers",
                "learning rate",
                True,
                "strength",
                "Adam on the thief's data, every layer.",
                _finetune("all", reinit=False),
            ),
            Attack(
                "reinit_last",
                "Re-initialised last layer, trained alone",
                "learning rate",
                True,
                "strength",
                "The output layer is re-initialised, then trained alone on the thief's data.",
                _finetune("last", reinit=True),
            ),
            Attack(
                "reinit_all",
                "Re-initialised last layer, all layers trained",
                "learning rate",
                True,
                "strength",
                "The output layer is re-initialised, then every layer is trained on the thief's data.",
                _finetune("all", reinit=True),
            ),
            Attack(
                "prune",
                "Global magnitude pruning",
                "pruned fraction",
                False,
                "strength",
                "The smallest conv/linear weights, ranked globally, are set to zero.",
                _prune,
            ),
            Attack(
                "fine_prune",
                "Pruning, then fine-tuning",
                "pruned fraction",
                False,
                "strength",
                "Global magnitude pruning, then a few epochs of fine-tuning with the pruned weights held at zero.",
                _fine_prune,
            ),
            Attack(
                "quantize",
                "Weight quantisation",
                "bits",
                False,
                "strength",
                "Per-tensor symmetric fake-quantisation of conv/linear weights.",
                _quantize,
            ),
            Attack(
                "input_noise",
                "Gaussian noise on every query",
                "noise standard deviation",
                False,
                "strength",
                "The suspect adds Gaussian noise to every input it answers.",
                _input_noise,
            ),
            Attack(
                "distill",
                "Hard-label distillation (model extraction)",
                "student epochs / owner's epochs",
                False,
                "data_fraction",
                "A fresh student is trained with the owner's recipe (for strength times its epochs) "
                "only on the stolen model's answers to the thief's inputs.",
                _distill,
            ),
            Attack(
                "overwrite",
                "Overwriting with the thief's own watermark",
                "learning rate",
                True,
                "strength",
                "The thief embeds the trigger set of his own commitment with the owner's recipe.",
                _overwrite,
            ),
            Attack(
                "ood_background",
                "Filter: too few background values, answered at random",
                "share of the thief's data flagged",
                False,
                "strength",
                "Queries with fewer values equal to the most common value of the thief's data "
                "(digits: zero pixels) than all but that share of his inputs get a random answer.",
                _ood_background,
                evasion=True,
            ),
            Attack(
                "ood_reconstruction",
                "Filter: poor PCA reconstruction, answered at random",
                "share of the thief's data flagged",
                False,
                "strength",
                "Queries that a PCA of the thief's data (90 % of its variance) reconstructs worse "
                "than all but that share of his inputs get a random answer.",
                _ood_reconstruction,
                evasion=True,
            ),
            Attack(
                "disagreement_filter",
                "Filter: a clean model's answer where it disagrees",
                "clean model epochs / owner's",
                False,
                "data_fraction",
                "The thief trains a clean model of his own with the owner's recipe on his data and "
                "answers its answer wherever it disagrees with the stolen model.",
                _disagreement_filter,
                evasion=True,
            ),
        )
    }
)


def apply_attack(name: str, stolen: nn.Module, thief: ThiefData, strength: float) -> AttackedModel:
    """Run attack ``name`` at ``strength`` on a copy of ``stolen``.

    Torch's global generator is restored afterwards; the stolen model is
    not modified.

    Raises:
        EncodingError: an unknown attack, or a strength outside its range.
        SecmarkError: retraining diverged.
    """
    if name not in ATTACKS:
        raise EncodingError(f"unknown attack {name!r} (known: {', '.join(ATTACKS)})")
    with torch.random.fork_rng(devices=[]):
        return ATTACKS[name].run(copy.deepcopy(stolen), thief, strength)
