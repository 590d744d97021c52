"""What an evaluation runs: data sets, seeds, the attack grid and the rules.

:func:`default_config` is the configuration ``secmark evaluate`` and
``benchmarks/robustness.py`` run (about three and a half minutes of CPU time
on one thread for the three data sets and three seeds, 432 training or
measuring runs; the evasion filters take about a sixth of the attack time,
nearly all of it the disagreement filter's clean models; the pool family's
longer embedding recipe takes about twice as long on digits and breast_cancer);
:func:`quick_config` is a reduced grid on one seed (about a minute). Tests
build smaller ones directly.

The language-model section (:class:`LanguageModelConfig`,
:mod:`secmark.evaluate.language`) is opt-in: it needs the ``lm-train`` extra
and minutes of CPU time (about 15 on one thread for three seeds at
:data:`DEFAULT_LANGUAGE_MODEL`'s size; :data:`QUICK_LANGUAGE_MODEL` about
two and a half for its one seed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from fractions import Fraction

from secmark.errors import EncodingError
from secmark.evaluate.attacks import ATTACKS, AttackSettings
from secmark.evaluate.datasets import TASK_NAMES, Recipe
from secmark.evaluate.triggers import FAMILY_NAMES, FamilyName
from secmark.stats import DEFAULT_ALPHA

__all__ = [
    "DEFAULT_DATA_FRACTION",
    "DEFAULT_LANGUAGE_MODEL",
    "DEFAULT_MAX_CLEAN_DROP",
    "QUICK_LANGUAGE_MODEL",
    "AttackSweep",
    "EvaluationConfig",
    "LanguageModelConfig",
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


def _check_count(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EncodingError(f"{name} must be a positive integer, not {value!r}")


def _check_seeds(seeds: tuple[int, ...]) -> None:
    if (
        not seeds
        or len(set(seeds)) != len(seeds)
        or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)
    ):
        raise EncodingError("the seeds must be distinct non-negative integers, at least one")


@dataclass(frozen=True)
class LanguageModelConfig:
    """The language-model section: a fingerprint's survival, null, cost and
    planning (:func:`secmark.evaluate.language.run_language_model`).

    The defaults are ``benchmarks/llm.py``'s: a base model pretrained
    ``pretrain_steps`` steps on the first standard-library sources; per
    seed, N = ``triggers`` prompts of ``prompt_length`` word ids with
    targets of L = ``target_length`` word ids, fingerprinted in
    ``embed_steps`` steps, then fine-tuned by the thief on other text for
    ``attack_steps`` steps at each of ``full_lrs`` (all weights) and
    ``lora_lrs`` (LoRA), rounded to int8, and asked in two untrained
    templates; a dispute challenges k = ``challenges`` of the N.

    Attributes:
        seeds: one commitment, fingerprinting run and set of attacks per
            seed; figures are the worst seed's.
        pretrain_steps: steps of 16 windows of 128 ids that make the base model.
        embed_steps: fingerprinting steps (32 fingerprint sequences and 8
            text windows each).
        attack_steps: steps of 8 windows of the thief's fine-tuning.
        full_lrs: the thief's learning rates on all weights (pretraining
            used 2e-3).
        lora_lrs: the thief's learning rates on LoRA adapters.
        triggers: N.
        challenges: k, at most N.
        prompt_length: P, word ids per prompt.
        target_length: L, word ids per target.
        held_out: held-out chunks of 512 characters for perplexity (None: all).
        null_triggers: triggers of the pooled null commitment.
        plan_lengths: the target lengths L the planning table covers.
        max_planned_triggers: the largest trigger count the planning table tries.
        alpha: the arbiter's significance level.
    """

    seeds: tuple[int, ...] = (1, 2, 3)
    pretrain_steps: int = 600
    embed_steps: int = 300
    attack_steps: int = 300
    full_lrs: tuple[float, ...] = (3e-4, 1e-3)
    lora_lrs: tuple[float, ...] = (1e-3, 3e-3)
    triggers: int = 32
    challenges: int = 16
    prompt_length: int = 8
    target_length: int = 4
    held_out: int | None = None
    null_triggers: int = 1024
    plan_lengths: tuple[int, ...] = (1, 4, 16)
    max_planned_triggers: int = 4096
    alpha: Fraction = DEFAULT_ALPHA

    def __post_init__(self) -> None:
        _check_seeds(self.seeds)
        for name in (
            "pretrain_steps",
            "embed_steps",
            "attack_steps",
            "triggers",
            "challenges",
            "prompt_length",
            "target_length",
            "null_triggers",
            "max_planned_triggers",
        ):
            _check_count(getattr(self, name), name)
        if self.held_out is not None:
            _check_count(self.held_out, "held_out")
        if not self.plan_lengths:
            raise EncodingError("the planning table needs a target length")
        for length in self.plan_lengths:
            _check_count(length, "a planned target length")
        for rate in (*self.full_lrs, *self.lora_lrs):
            if isinstance(rate, bool) or not isinstance(rate, (int, float)):
                raise EncodingError(f"a learning rate must be a number, not {rate!r}")
            if not (math.isfinite(rate) and rate > 0):
                raise EncodingError(f"a learning rate must be positive and finite, not {rate!r}")
        if self.challenges > self.triggers:
            raise EncodingError("k (challenges) cannot exceed N (triggers)")
        if not 0 < self.alpha < 1:
            raise EncodingError("alpha must be in (0, 1)")


DEFAULT_LANGUAGE_MODEL = LanguageModelConfig()
"""``benchmarks/llm.py``'s run: three seeds, 600 pretraining, 300
fingerprinting and 300 attack steps, two learning rates per fine-tuning attack."""

QUICK_LANGUAGE_MODEL = LanguageModelConfig(
    seeds=(1,),
    pretrain_steps=200,
    embed_steps=150,
    attack_steps=100,
    full_lrs=(1e-3,),
    lora_lrs=(3e-3,),
    held_out=100,
    null_triggers=256,
)
"""One seed, a third of the steps, the stronger learning rate of each attack."""


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
        language_model: the language-model section, at the same alpha
            (None: not run). With it, ``datasets`` may be empty.
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
    language_model: LanguageModelConfig | None = None

    def __post_init__(self) -> None:
        if self.family not in FAMILY_NAMES:
            raise EncodingError(
                f"unknown trigger family {self.family!r} (known: {', '.join(FAMILY_NAMES)})"
            )
        unknown = [name for name in self.datasets if name not in TASK_NAMES]
        if unknown or not (self.datasets or self.language_model):
            raise EncodingError(
                f"unknown or no data sets {unknown} (known: {', '.join(TASK_NAMES)})"
            )
        if self.language_model is not None and self.language_model.alpha != self.alpha:
            raise EncodingError("the language-model section must use the evaluation's alpha")
        if any(name not in TASK_NAMES for name, _ in self.recipes):
            raise EncodingError("a recipe override names an unknown data set")
        if len(set(self.datasets)) != len(self.datasets):
            raise EncodingError("a data set is named twice")
        _check_seeds(self.seeds)
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
    datasets: tuple[str, ...] = TASK_NAMES,
    seeds: int = 3,
    *,
    family: FamilyName = "noise",
    language_model: bool = False,
) -> EvaluationConfig:
    """The full grid on ``datasets`` with seeds 1..``seeds`` and the owner's
    trigger ``family``; with ``language_model``, the language-model section
    at :data:`DEFAULT_LANGUAGE_MODEL`'s size on the same seeds.

    Raises:
        EncodingError: an unknown data set or family, no seed, or no data
            set without the language-model section.
    """
    return _config(datasets, seeds, family, DEFAULT_SWEEPS, DEFAULT_LANGUAGE_MODEL, language_model)


def quick_config(
    datasets: tuple[str, ...] = TASK_NAMES,
    seeds: int = 1,
    *,
    family: FamilyName = "noise",
    language_model: bool = False,
) -> EvaluationConfig:
    """A reduced grid (one or two strengths per attack), by default one seed;
    with ``language_model``, the section at :data:`QUICK_LANGUAGE_MODEL`'s
    size on the same seeds.

    Raises:
        EncodingError: as :func:`default_config`.
    """
    return _config(datasets, seeds, family, QUICK_SWEEPS, QUICK_LANGUAGE_MODEL, language_model)


def _config(
    datasets: tuple[str, ...],
    seeds: int,
    family: FamilyName,
    sweeps: tuple[AttackSweep, ...],
    language: LanguageModelConfig,
    language_model: bool,
) -> EvaluationConfig:
    numbered = tuple(range(1, seeds + 1))
    return EvaluationConfig(
        datasets=datasets,
        seeds=numbered,
        sweeps=sweeps,
        family=family,
        language_model=replace(language, seeds=numbered) if language_model else None,
    )
