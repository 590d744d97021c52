"""What an evaluation runs: data sets, seeds, the attack grid and the rules.

:func:`default_config` is the configuration ``secmark evaluate`` and
``benchmarks/robustness.py`` run (about three and a half minutes of CPU time
on one thread for the three data sets and three seeds, 432 training or
measuring runs; the evasion filters take about a sixth of the attack time,
nearly all of it the disagreement filter's clean models; the pool family's
longer embedding recipe takes about twice as long on digits and breast_cancer);
:func:`quick_config` is a reduced grid on one seed (about a minute). Tests
build smaller ones directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from secmark.errors import EncodingError
from secmark.evaluate.attacks import ATTACKS, AttackSettings
from secmark.evaluate.datasets import TASK_NAMES, Recipe
from secmark.evaluate.triggers import FAMILY_NAMES, FamilyName
from secmark.stats import DEFAULT_ALPHA

__all__ = [
    "DEFAULT_DATA_FRACTION",
    "DEFAULT_MAX_CLEAN_DROP",
    "AttackSweep",
    "EvaluationConfig",
    "default_config",
    "quick_config",
]

DEFAULT_DATA_FRACTION = 0.5
"""The thief holds half of the owner's training data unless a sweep says otherwise."""

DEFAULT_MAX_CLEAN_DROP = 0.05
"""An attack removes the watermark only if the suspect's clean score stays
within 5 points (accuracy, or R² for regression) of the watermarked model's:
a model ruined by the attack is no longer worth stealing."""


@dataclass(frozen=True)
class AttackSweep:
    """Attack ``attack`` at every strength, with every data budget (fraction of
    the owner's training data the thief holds)."""

    attack: str
    strengths: tuple[float, ...]
    data_fractions: tuple[float, ...] = (DEFAULT_DATA_FRACTION,)

    def __post_init__(self) -> None:
        if self.attack not in ATTACKS:
            raise EncodingError(f"unknown attack {self.attack!r} (known: {', '.join(ATTACKS)})")
        if not self.strengths or not self.data_fractions:
            raise EncodingError(f"the sweep of {self.attack} needs a strength and a data fraction")
        if any(not 0 < fraction <= 1 for fraction in self.data_fractions):
            raise EncodingError("a thief's data fraction must be in (0, 1]")

    def points(self) -> tuple[tuple[float, float], ...]:
        """Every ``(strength, data_fraction)`` of the sweep."""
        return tuple((s, f) for s in self.strengths for f in self.data_fractions)


@dataclass(frozen=True)
class EvaluationConfig:
    """One evaluation run.

    Attributes:
        datasets: task names (:data:`secmark.evaluate.datasets.TASK_NAMES`).
        seeds: one owner model, trigger set, challenge and thief per seed.
        sweeps: the attack grid.
        settings: the fixed parts of the attacks.
        alpha: the arbiter's significance level.
        max_clean_drop: see :data:`DEFAULT_MAX_CLEAN_DROP`.
        recipes: ``(data set, recipe)`` pairs replacing those tasks' embedding
            recipes for the configured family (for choosing a recipe with the
            harness; see :func:`secmark.evaluate.harness.prepare_task`).
        epochs: the owner's embedding epochs, overriding both recipes of
            every task (None: the recipes'); for tiny test runs.
        triggers: N, overriding every task's (None: the task's).
        challenges: k, overriding every task's (None: the task's).
        safety: run the trigger-safety (universal backdoor) check.
        overlay_contrast: tasks on which the safety check also trains the
            overlay-family models (per-trigger and one shared pattern).
        family: the owner's trigger family (:data:`FAMILY_NAMES`): the
            task's noise, or pool or overlay over in-distribution candidates
            (:func:`secmark.evaluate.triggers.pool_candidates`), whose inputs
            the owner holds out of his and the thief's training data.
    """

    datasets: tuple[str, ...]
    seeds: tuple[int, ...]
    sweeps: tuple[AttackSweep, ...]
    settings: AttackSettings = field(default_factory=AttackSettings)
    alpha: Fraction = DEFAULT_ALPHA
    max_clean_drop: float = DEFAULT_MAX_CLEAN_DROP
    recipes: tuple[tuple[str, Recipe], ...] = ()
    epochs: int | None = None
    triggers: int | None = None
    challenges: int | None = None
    safety: bool = True
    overlay_contrast: tuple[str, ...] = ("digits",)
    family: FamilyName = "noise"

    def __post_init__(self) -> None:
        if self.family not in FAMILY_NAMES:
            raise EncodingError(
                f"unknown trigger family {self.family!r} (known: {', '.join(FAMILY_NAMES)})"
            )
        unknown = [name for name in self.datasets if name not in TASK_NAMES]
        if unknown or not self.datasets:
            raise EncodingError(
                f"unknown or no data sets {unknown} (known: {', '.join(TASK_NAMES)})"
            )
        if any(name not in TASK_NAMES for name, _ in self.recipes):
            raise EncodingError("a recipe override names an unknown data set")
        if len(set(self.datasets)) != len(self.datasets):
            raise EncodingError("a data set is named twice")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise EncodingError("the seeds must be distinct non-negative integers, at least one")
        if not 0 <= self.max_clean_drop <= 1:
            raise EncodingError("max_clean_drop must be in [0, 1]")
        if not 0 < self.alpha < 1:
            raise EncodingError("alpha must be in (0, 1)")
        if (
            self.triggers is not None
            and self.challenges is not None
            and self.challenges > self.triggers
        ):
            raise EncodingError("k (challenges) cannot exceed N (triggers)")

    @property
    def points(self) -> int:
        """Attack runs per data set and seed."""
        return sum(len(sweep.points()) for sweep in self.sweeps)


_LEARNING_RATES = (1e-4, 1e-3, 1e-2)

DEFAULT_SWEEPS = (
    AttackSweep("finetune_last", _LEARNING_RATES),
    AttackSweep("finetune_all", _LEARNING_RATES),
    AttackSweep("reinit_last", _LEARNING_RATES),
    AttackSweep("reinit_all", _LEARNING_RATES),
    AttackSweep("prune", (0.3, 0.5, 0.7, 0.8, 0.9, 0.95)),
    AttackSweep("fine_prune", (0.5, 0.7, 0.8, 0.9, 0.95)),
    AttackSweep("quantize", (8, 6, 4, 3, 2)),
    AttackSweep("input_noise", (0.05, 0.1, 0.2, 0.4)),
    AttackSweep("distill", (1.0,), (0.1, 0.25, 0.5, 1.0)),
    AttackSweep("overwrite", (1e-4, 1e-3, 2e-3)),
    AttackSweep("ood_background", (0.01, 0.02)),
    AttackSweep("ood_reconstruction", (0.01, 0.02)),
    AttackSweep("disagreement_filter", (1.0,), (0.1, 0.25, 0.5)),
)

QUICK_SWEEPS = (
    AttackSweep("finetune_last", (1e-3,)),
    AttackSweep("finetune_all", (1e-4, 1e-3)),
    AttackSweep("reinit_last", (1e-3,)),
    AttackSweep("reinit_all", (1e-3,)),
    AttackSweep("prune", (0.5, 0.9)),
    AttackSweep("fine_prune", (0.9,)),
    AttackSweep("quantize", (8, 4)),
    AttackSweep("input_noise", (0.1,)),
    AttackSweep("distill", (1.0,), (0.5,)),
    AttackSweep("overwrite", (1e-3,)),
    AttackSweep("ood_background", (0.02,)),
    AttackSweep("ood_reconstruction", (0.02,)),
    AttackSweep("disagreement_filter", (1.0,), (0.25,)),
)


def default_config(
    datasets: tuple[str, ...] = TASK_NAMES, seeds: int = 3, *, family: FamilyName = "noise"
) -> EvaluationConfig:
    """The full grid on ``datasets`` with seeds 1..``seeds`` and the owner's
    trigger ``family``.

    Raises:
        EncodingError: an unknown data set or family, or no seed.
    """
    return EvaluationConfig(
        datasets=datasets, seeds=tuple(range(1, seeds + 1)), sweeps=DEFAULT_SWEEPS, family=family
    )


def quick_config(
    datasets: tuple[str, ...] = TASK_NAMES, seeds: int = 1, *, family: FamilyName = "noise"
) -> EvaluationConfig:
    """A reduced grid (one or two strengths per attack), by default one seed.

    Raises:
        EncodingError: an unknown data set or family, or no seed.
    """
    return EvaluationConfig(
        datasets=datasets, seeds=tuple(range(1, seeds + 1)), sweeps=QUICK_SWEEPS, family=family
    )
