"""The evaluation tasks: data shipped with scikit-learn, a model, a trigger
family, a label space and the owner's embedding recipe.

Three tasks, nothing downloaded:

``digits``
    the 8x8 handwritten digits and :class:`~secmark.examples.digits.DigitsCNN`
    with the recipe of :mod:`secmark.examples.digits`; noise triggers in
    [0, 1] over the image shape; 10 classes, p0 = 1/10.
``breast_cancer``
    30 standardised features, a binary MLP; noise triggers uniform on
    [-2, 2] per feature (the bulk of standardised data); K = 2, p0 = 1/2: the
    hardest case for the statistics, so it commits more triggers and
    challenges more of them.
``diabetes``
    10 standardised features, an MLP regressor answering in target units;
    noise triggers as for breast_cancer; regression labels uniform on the
    observed target range [25, 346] with a tolerance of 24, so
    p0 = 77 / 512 (about 0.15; specs/statistics.md 2.1). The regressor is
    wider (256 units) and trains with Gaussian noise on its clean inputs:
    without it, the MLP overfits the 353 training rows (test R² near 0)
    whether or not it carries a watermark.

Every split is stratified (classification) or plain (regression), 20 % test,
with a fixed seed, and standardisation is fitted on the training split only.

For the ``pool`` and ``overlay`` trigger families the owner holds a few
training inputs out of his clean training (:class:`CandidateRule`) and
builds the committed candidates from perturbed copies of them
(:func:`perturb`; :func:`secmark.evaluate.triggers.pool_candidates`); the
``pool`` family trains with its own recipe (``Task.pool_recipe``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import numpy as np
import torch
from torch import nn

from secmark.embed import DEFAULT_PER_BATCH
from secmark.errors import EncodingError
from secmark.evaluate.models import TabularClassifier, TabularRegressor
from secmark.examples import digits
from secmark.messages.families import NoiseFamily
from secmark.messages.labels import ClassLabels, RegressionLabels
from secmark.stats import null_match_probability

__all__ = [
    "TASK_NAMES",
    "CandidateRule",
    "Recipe",
    "Task",
    "TaskKind",
    "load_task",
    "perturb",
]

TaskKind = Literal["classification", "regression"]

TASK_NAMES = ("digits", "breast_cancer", "diabetes")

_TEST_FRACTION = 0.2
_SPLIT_SEED = 0
_TABULAR_TRIGGER_RANGE = 2.0
"""Noise triggers of the tabular tasks are uniform on [-2, 2] per standardised
feature: the range where most real rows lie, so no single feature gives a
trigger away by its magnitude."""
_DIABETES_TARGET_RANGE = (25.0, 346.0)
"""The smallest and largest disease-progression score in the data set."""
_DIABETES_TOLERANCE = 24.0
"""A trigger answer matches within 24 score points (a third of the target's
standard deviation): p0 = 77 / 512, about 0.15."""


@dataclass(frozen=True)
class Recipe:
    """How the owner embeds: Adam at ``lr`` for ``epochs`` passes over the
    training split, batches of ``batch_size`` clean samples each carrying
    ``per_batch`` triggers.

    ``input_noise`` (regression only) is the standard deviation of Gaussian
    noise added to the clean training inputs of every batch, the triggers
    left as they are: it keeps a small regressor from overfitting a few
    hundred rows while it memorises the triggers. Every training run of the
    task uses it, the thief's included.

    ``augment`` adds that many perturbed copies of every clean training
    input, with its true label, to the owner's training set (:func:`perturb`,
    drawn once per seed; 0: none). It is the ``pool`` family's: with
    in-distribution triggers, copies that keep their class teach the model
    that a small move of an ordinary input does not change its answer, so it
    learns the triggers' random labels as exceptions close to the triggers
    rather than across their neighbourhood. The thief never augments.
    """

    epochs: int
    lr: float
    batch_size: int
    per_batch: int
    input_noise: float = 0.0
    augment: int = 0


@dataclass(frozen=True)
class CandidateRule:
    """How the owner builds in-distribution candidates for the ``pool`` and
    ``overlay`` families.

    ``reserve`` training inputs are held out of every training run, the
    owner's and the thief's (the thief's share is drawn from the rest), and
    each is perturbed ``variants`` times (:func:`perturb`) with ``spread``:
    on image tasks the largest move in grey levels of a non-zero value (a
    whole number), on tabular tasks the standard deviation of Gaussian noise
    per standardised feature.

    Few reserved inputs with many variants each: every reserved input a
    model learns random labels on costs clean accuracy around it, while the
    variants keep the N triggers on distinct inputs (independent draws from
    M candidates put about N^2 / 2M pairs of triggers on one input, and
    only one of a pair can match).
    """

    reserve: int
    variants: int
    spread: float


@dataclass(frozen=True, eq=False)
class Task:
    """One data set with everything the harness needs to embed and attack.

    Inputs are float32; targets are int64 classes or float32 values. The
    arrays must not be modified. ``triggers`` is N, the committed set size;
    ``challenges`` is k, how many of them an arbiter's challenge samples.
    ``target_scale`` is the standard deviation of the training targets of a
    regression task (1 for classification): squared errors are divided by its
    square so that the loss is on the scale cross-entropy has. ``recipe`` is
    the owner's embedding recipe for the noise and overlay families and every
    training run of the thief's; ``pool_recipe`` the owner's for the pool
    family; ``candidates`` builds the pool and overlay candidates.
    """

    name: str
    kind: TaskKind
    train_inputs: np.ndarray
    train_targets: np.ndarray
    test_inputs: np.ndarray
    test_targets: np.ndarray
    family: NoiseFamily
    labels: ClassLabels | RegressionLabels
    triggers: int
    challenges: int
    recipe: Recipe
    target_scale: float
    build_model: Callable[[], nn.Module]
    candidates: CandidateRule
    pool_recipe: Recipe

    def owner_recipe(self, family: str) -> Recipe:
        """The owner's embedding recipe for trigger ``family``: ``pool_recipe``
        for ``"pool"``, else ``recipe``."""
        return self.pool_recipe if family == "pool" else self.recipe

    @property
    def p0(self) -> Fraction:
        """The exact null match probability of the label space."""
        return null_match_probability(self.labels)

    @property
    def metric(self) -> str:
        """The clean score's name: accuracy, or R² for regression."""
        return "accuracy" if self.kind == "classification" else "R²"

    def new_model(self, seed: int) -> nn.Module:
        """A freshly initialised model, the same for the same seed; torch's
        global generator is restored afterwards."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.build_model()

    def score(self, answers: np.ndarray, targets: np.ndarray) -> float:
        """Clean accuracy (classification) or the coefficient of
        determination R² (regression) of ``answers`` against ``targets``."""
        if self.kind == "classification":
            return float(np.mean(answers == targets))
        residual = float(np.sum((answers - targets) ** 2))
        total = float(np.sum((targets - np.mean(targets)) ** 2))
        return 1.0 - residual / total


def perturb(task: Task, items: np.ndarray, copies: int, rng: np.random.Generator) -> np.ndarray:
    """``copies`` perturbed copies of each of ``items`` (float32, the task's
    item shape), item by item: row ``i * copies + j`` is copy j of item i.

    Image tasks (items of two or more dimensions): every non-zero value
    moves by a whole number of grey levels drawn uniformly from
    ``[-spread, spread]`` (a grey level being the smallest gap between
    distinct values of the training split: 1/16 on digits), clipped to the
    task's noise range; zero (background) values stay zero, so no copy has
    fewer background values than its item. Tabular tasks: Gaussian noise of
    standard deviation ``spread`` on every standardised feature. The spread
    is the task's :class:`CandidateRule`'s.

    Raises:
        EncodingError: ``copies`` below 0.
    """
    if copies < 0:
        raise EncodingError(f"copies must be at least 0, not {copies}")
    source = np.asarray(items, dtype=np.float32)
    repeated = np.repeat(source, copies, axis=0)
    spread = task.candidates.spread
    if source.ndim >= 3:
        level = float(np.diff(np.unique(task.train_inputs)).min())
        steps = int(spread)
        moves = rng.integers(-steps, steps + 1, size=repeated.shape) * (repeated != 0)
        low, high = float(task.family.low), float(task.family.high)
        moved: np.ndarray = np.clip(repeated + level * moves, low, high).astype(np.float32)
        return moved
    jittered: np.ndarray = (repeated + rng.normal(0.0, spread, size=repeated.shape)).astype(
        np.float32
    )
    return jittered


def _load_digits() -> Task:
    data = digits.load_data()
    return Task(
        name="digits",
        kind="classification",
        train_inputs=data.train_inputs,
        train_targets=data.train_labels,
        test_inputs=data.test_inputs,
        test_targets=data.test_labels,
        family=NoiseFamily(digits.IMAGE_SHAPE, "float32", 0.0, 1.0),
        labels=ClassLabels(digits.NUM_CLASSES),
        triggers=256,
        challenges=128,
        recipe=Recipe(
            epochs=digits.DEFAULT_EPOCHS,
            lr=digits.DEFAULT_LR,
            batch_size=digits.BATCH_SIZE,
            per_batch=DEFAULT_PER_BATCH,
        ),
        target_scale=1.0,
        build_model=digits.DigitsCNN,
        candidates=CandidateRule(reserve=16, variants=256, spread=2),
        pool_recipe=Recipe(
            epochs=digits.DEFAULT_EPOCHS,
            lr=digits.DEFAULT_LR,
            batch_size=digits.BATCH_SIZE,
            per_batch=DEFAULT_PER_BATCH,
            augment=12,
        ),
    )


def _standardised_split(
    features: np.ndarray, targets: np.ndarray, *, stratify: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    train_x, test_x, train_y, test_y = train_test_split(
        features,
        targets,
        test_size=_TEST_FRACTION,
        stratify=targets if stratify else None,
        random_state=_SPLIT_SEED,
    )
    mean = train_x.mean(axis=0)
    std = train_x.std(axis=0)
    std[std == 0] = 1.0
    return (
        ((train_x - mean) / std).astype(np.float32),
        train_y,
        ((test_x - mean) / std).astype(np.float32),
        test_y,
    )


def _load_breast_cancer() -> Task:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    train_x, train_y, test_x, test_y = _standardised_split(
        bunch.data, bunch.target.astype(np.int64), stratify=True
    )
    features = train_x.shape[1]
    return Task(
        name="breast_cancer",
        kind="classification",
        train_inputs=train_x,
        train_targets=train_y,
        test_inputs=test_x,
        test_targets=test_y,
        family=NoiseFamily((features,), "float32", -_TABULAR_TRIGGER_RANGE, _TABULAR_TRIGGER_RANGE),
        labels=ClassLabels(2),
        triggers=512,
        challenges=256,
        recipe=Recipe(epochs=100, lr=2e-3, batch_size=32, per_batch=16),
        target_scale=1.0,
        build_model=lambda: TabularClassifier(features, 2, hidden=64),
        candidates=CandidateRule(reserve=16, variants=256, spread=0.2),
        pool_recipe=Recipe(epochs=300, lr=2e-3, batch_size=32, per_batch=16, augment=6),
    )


def _load_diabetes() -> Task:
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(scaled=False)
    train_x, train_y, test_x, test_y = _standardised_split(
        bunch.data, bunch.target.astype(np.float32), stratify=False
    )
    features = train_x.shape[1]
    mean, std = float(train_y.mean()), float(train_y.std())
    low, high = _DIABETES_TARGET_RANGE
    recipe = Recipe(epochs=300, lr=1e-3, batch_size=32, per_batch=16, input_noise=1.0)
    return Task(
        name="diabetes",
        kind="regression",
        train_inputs=train_x,
        train_targets=train_y,
        test_inputs=test_x,
        test_targets=test_y,
        family=NoiseFamily((features,), "float32", -_TABULAR_TRIGGER_RANGE, _TABULAR_TRIGGER_RANGE),
        labels=RegressionLabels(low, high, _DIABETES_TOLERANCE),
        triggers=256,
        challenges=128,
        recipe=recipe,
        target_scale=std,
        build_model=lambda: TabularRegressor(
            features, hidden=256, target_mean=mean, target_std=std
        ),
        # Not measured: the pool family's figures are for the two classifiers.
        candidates=CandidateRule(reserve=16, variants=256, spread=0.2),
        pool_recipe=recipe,
    )


_LOADERS: dict[str, Callable[[], Task]] = {
    "digits": _load_digits,
    "breast_cancer": _load_breast_cancer,
    "diabetes": _load_diabetes,
}


def load_task(name: str) -> Task:
    """The task called ``name`` (one of :data:`TASK_NAMES`), the same arrays every call.

    Raises:
        EncodingError: an unknown name.
        ImportError: scikit-learn is not installed.
    """
    if name not in _LOADERS:
        raise EncodingError(f"unknown data set {name!r} (known: {', '.join(TASK_NAMES)})")
    try:
        import sklearn  # noqa: F401  (every task's data ships with scikit-learn)
    except ImportError as error:
        raise ImportError("the evaluation needs scikit-learn: pip install scikit-learn") from error
    return _LOADERS[name]()
