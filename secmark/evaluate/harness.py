"""The evaluation loop: embed, attack, measure, decide.

For every data set and seed, :func:`run_evaluation`

1. derives the owner's N triggers in the configured family (noise, or pool
   or overlay over in-distribution candidates made from training inputs the
   owner holds out of all training) and the thief's own N noise triggers,
   for overwriting, from signed commitments (:mod:`secmark.evaluate.triggers`);
2. trains an unmarked model and, from the same initialisation and data
   order, the watermarked one, with the owner's recipe for the family on
   the owner's training split (without the held-out inputs);
3. draws the arbiter's challenge: k of the N triggers;
4. runs every attack of the grid on the watermarked model, the thief holding
   a seeded share of the training data, and measures the result
   (:func:`secmark.evaluate.scoring.measure`);
5. optionally runs the trigger-safety check (:mod:`secmark.evaluate.safety`).

With a language-model section in the configuration it then runs
:func:`secmark.evaluate.language.run_language_model`.

An attack *removes* the watermark in one seed when the verdict no longer
rejects the null hypothesis (p-value above alpha) while the suspect's clean
score stays within ``max_clean_drop`` of the watermarked model's
(:func:`removes_watermark`). The watermark *survives* an attack setting when
no seed removed it; :meth:`EvaluationResult.summary` aggregates the seeds,
reporting the worst of each.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import numpy as np
import torch
from tqdm import tqdm

from secmark.errors import EncodingError
from secmark.evaluate.attacks import AttackedModel, ThiefData, apply_attack
from secmark.evaluate.config import EvaluationConfig
from secmark.evaluate.datasets import Recipe, Task, load_task
from secmark.evaluate.language import (
    LanguageModelResult,
    check_language_model_libraries,
    run_language_model,
)
from secmark.evaluate.safety import SafetyRecord, check_trigger_safety
from secmark.evaluate.scoring import Measurement, challenge_indices, measure, trigger_matches
from secmark.evaluate.training import fit_by_recipe
from secmark.evaluate.triggers import (
    OwnerTriggers,
    candidate_targets,
    derive_triggers,
    owner_task,
    owner_triggers,
)
from secmark.messages.families import NoiseFamily, OverlayFamily, PoolFamily
from secmark.stats import decision_threshold

__all__ = [
    "AttackRecord",
    "BaselineRecord",
    "EvaluationResult",
    "SummaryRow",
    "TaskInfo",
    "labelled_decoys",
    "prepare_task",
    "removes_watermark",
    "run_evaluation",
    "thief_share",
]

_THIEF_SALT = 0x7468_6965
"""Separates the thief's data draw from every other use of a seed."""


def removes_watermark(*, detected: bool, clean_drop: float, max_clean_drop: float) -> bool:
    """Whether an attack removed the watermark: the verdict no longer holds
    (p-value above alpha) and the clean score fell by at most
    ``max_clean_drop`` (a fraction; 0.05 is 5 points). A suspect that lost the
    watermark together with its usefulness was not *stripped*, it was broken."""
    return not detected and clean_drop <= max_clean_drop


@dataclass(frozen=True)
class TaskInfo:
    """What a reader needs to know about one task as evaluated."""

    name: str
    kind: str
    metric: str
    train_size: int
    test_size: int
    triggers: int
    challenges: int
    p0: str
    threshold: int
    family: str
    recipe: Recipe
    family_name: str = "noise"


@dataclass(frozen=True)
class BaselineRecord:
    """The unmarked and watermarked models of one seed, before any attack.

    For the pool family, ``decoy_accuracy`` holds each model's accuracy on
    the labelled decoys (see :func:`labelled_decoys`) as
    ``{"unmarked": ..., "watermarked": ...}``; empty otherwise.
    """

    dataset: str
    seed: int
    unmarked: Measurement
    watermarked: Measurement
    embed_seconds: float
    decoy_accuracy: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class AttackRecord:
    """One attack at one strength on one seed's watermarked model.

    ``original_score`` is the watermarked model's clean score before the
    attack; ``extra`` holds attack-specific figures (see
    :class:`secmark.evaluate.attacks.AttackedModel`) and, for the pool
    family, ``decoy_accuracy``: the attacked suspect's accuracy on the
    labelled decoys (:func:`labelled_decoys`).
    """

    dataset: str
    attack: str
    strength: float
    data_fraction: float
    seed: int
    original_score: float
    measurement: Measurement
    removed: bool
    seconds: float
    extra: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    family: str = "noise"

    @property
    def clean_drop(self) -> float:
        """Clean score lost to the attack (negative if it rose)."""
        return self.original_score - self.measurement.clean_score


@dataclass(frozen=True)
class SummaryRow:
    """One attack setting over all seeds; every figure is the worst seed's
    unless it says mean.

    ``survives`` is true when no seed's attack removed the watermark;
    ``detected`` counts the seeds whose verdict still held; ``family`` is the
    owner's trigger family.
    """

    dataset: str
    attack: str
    strength: float
    data_fraction: float
    seeds: int
    clean_mean: float
    original_mean: float
    worst_clean_drop: float
    worst_watermark_accuracy: float
    worst_matches: int
    challenged: int
    threshold: int
    worst_p_value: float
    worst_log2_p_value: float
    detected: int
    removed: int
    survives: bool
    extra: Mapping[str, float]
    family: str = "noise"


@dataclass(frozen=True)
class EvaluationResult:
    """Everything one evaluation measured; ``language_model`` is None when
    the configuration has no language-model section."""

    config: EvaluationConfig
    tasks: tuple[TaskInfo, ...]
    baselines: tuple[BaselineRecord, ...]
    attacks: tuple[AttackRecord, ...]
    safety: tuple[SafetyRecord, ...]
    seconds: float
    language_model: LanguageModelResult | None = None

    def summary(self) -> tuple[SummaryRow, ...]:
        """One row per (data set, attack, strength, data fraction), in run order."""
        groups: dict[tuple[str, str, float, float], list[AttackRecord]] = {}
        family = self.config.family
        for record in self.attacks:
            key = (record.dataset, record.attack, record.strength, record.data_fraction)
            groups.setdefault(key, []).append(record)
        rows = []
        for (dataset, attack, strength, fraction), records in groups.items():
            worst = max(records, key=lambda r: r.measurement.log2_p_value)
            extra_keys = sorted({key for r in records for key in r.extra})
            rows.append(
                SummaryRow(
                    dataset=dataset,
                    attack=attack,
                    strength=strength,
                    data_fraction=fraction,
                    seeds=len(records),
                    clean_mean=statistics.fmean(r.measurement.clean_score for r in records),
                    original_mean=statistics.fmean(r.original_score for r in records),
                    worst_clean_drop=max(r.clean_drop for r in records),
                    worst_watermark_accuracy=min(r.measurement.watermark_accuracy for r in records),
                    worst_matches=min(r.measurement.matches for r in records),
                    challenged=worst.measurement.challenged,
                    threshold=worst.measurement.threshold,
                    worst_p_value=worst.measurement.p_value,
                    worst_log2_p_value=worst.measurement.log2_p_value,
                    detected=sum(r.measurement.detected for r in records),
                    removed=sum(r.removed for r in records),
                    survives=not any(r.removed for r in records),
                    extra=MappingProxyType(
                        {
                            key: statistics.fmean(r.extra[key] for r in records if key in r.extra)
                            for key in extra_keys
                        }
                    ),
                    family=family,
                )
            )
        return tuple(rows)


def prepare_task(name: str, config: EvaluationConfig) -> Task:
    """Load task ``name`` with the configuration's overrides applied: a
    recipe override replaces the owner's recipe for the configured family
    (``pool_recipe`` for pool, else ``recipe``), ``epochs`` overrides both
    recipes, then N and k."""
    task = load_task(name)
    for overridden, recipe in config.recipes:
        if overridden == name:
            if config.family == "pool":
                task = replace(task, pool_recipe=recipe)
            else:
                task = replace(task, recipe=recipe)
    if config.epochs is not None:
        task = replace(
            task,
            recipe=replace(task.recipe, epochs=config.epochs),
            pool_recipe=replace(task.pool_recipe, epochs=config.epochs),
        )
    if config.triggers is not None:
        task = replace(
            task, triggers=config.triggers, challenges=min(task.challenges, config.triggers)
        )
    if config.challenges is not None:
        task = replace(task, challenges=config.challenges)
    return task


def thief_share(task: Task, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The thief's ``fraction`` of the training split (pass the owner's
    task, :func:`secmark.evaluate.triggers.owner_task`, so that no reserved
    input is in it): the first
    ``round(fraction * n)`` rows (at least one) of a permutation fixed by the
    seed, so a larger budget holds every row of a smaller one."""
    count = max(1, round(fraction * len(task.train_inputs)))
    order = np.random.default_rng([seed, _THIEF_SALT]).permutation(len(task.train_inputs))
    rows = np.sort(order[:count])
    return task.train_inputs[rows], task.train_targets[rows]


def labelled_decoys(task: Task, owner: OwnerTriggers, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The pool family's decoys with their known labels, as an arbiter scores
    them: every candidate that is no trigger's input (an arbiter's decoys are
    drawn from these), with the target of the reserved input it is a copy
    of (:func:`secmark.evaluate.triggers.candidate_targets`).

    Raises:
        EncodingError: a family without candidates (noise).
    """
    if owner.candidates is None:
        raise EncodingError("labelled decoys need the candidates of a pool or overlay family")
    triggers = {item.tobytes() for item in owner.triggers.inputs}
    free = np.array([item.tobytes() not in triggers for item in owner.candidates], dtype=bool)
    return owner.candidates[free], candidate_targets(task, seed)[free]


def _decoy_accuracy(
    task: Task, suspect: AttackedModel, decoys: tuple[np.ndarray, np.ndarray]
) -> float:
    """The share of labelled ``decoys`` that ``suspect`` answers right."""
    inputs, targets = decoys
    return float(trigger_matches(task, suspect.answer(task, inputs), targets).mean())


def _family_text(task: Task, family: NoiseFamily | PoolFamily | OverlayFamily) -> str:
    if isinstance(family, NoiseFamily):
        return f"noise {list(family.shape)} {family.dtype} on [{family.low:g}, {family.high:g})"
    rule = task.candidates
    what = (
        f"{family.pool_size} in-distribution candidates {list(family.item_shape)} "
        f"({rule.variants} perturbed copies, spread {rule.spread:g}, of each of "
        f"{rule.reserve} training inputs held out of all training)"
    )
    if isinstance(family, PoolFamily):
        return f"pool of {what}"
    return f"overlay of {family.pixels} values on [{family.low:g}, {family.high:g}) over {what}"


def _task_info(task: Task, config: EvaluationConfig) -> TaskInfo:
    # The family's description needs the candidates' count, which the first
    # seed fixes (duplicates dropped); every seed draws as many or nearly so.
    family = owner_triggers(task, config.family, config.seeds[0]).family
    return TaskInfo(
        name=task.name,
        kind=task.kind,
        metric=task.metric,
        train_size=len(owner_task(task, config.family, config.seeds[0]).train_inputs),
        test_size=len(task.test_inputs),
        triggers=task.triggers,
        challenges=task.challenges,
        p0=str(task.p0),
        threshold=decision_threshold(task.challenges, task.p0, config.alpha),
        family=_family_text(task, family),
        recipe=task.owner_recipe(config.family),
        family_name=config.family,
    )


def _units(config: EvaluationConfig) -> int:
    per_seed = 1 + config.points + (1 if config.safety else 0)
    return len(config.datasets) * len(config.seeds) * per_seed


def _run_seed(
    task: Task,
    seed: int,
    config: EvaluationConfig,
    bar: tqdm,
) -> Iterator[BaselineRecord | AttackRecord | SafetyRecord]:
    bar.set_postfix_str(f"{task.name} seed {seed}: embedding")
    drawn = owner_triggers(task, config.family, seed)
    owner = drawn.triggers
    decoys = labelled_decoys(task, drawn, seed) if config.family == "pool" else None
    # The owner's training split: for pool and overlay, without the inputs
    # reserved for the candidates; the thief's share is drawn from it.
    training = owner_task(task, config.family, seed)
    recipe = task.owner_recipe(config.family)
    # The thief overwrites with the task's noise family whatever the owner's:
    # his own watermark has no filter to dodge, and he holds no owner candidates.
    thief_triggers = derive_triggers(task, role="thief", seed=seed)
    challenge = challenge_indices(task, seed)
    unmarked = task.new_model(seed)
    fit_by_recipe(training, unmarked, seed, recipe=recipe)
    marked = task.new_model(seed)
    seconds = fit_by_recipe(training, marked, seed, owner, recipe=recipe)
    watermarked = measure(task, AttackedModel(marked), owner, challenge, config.alpha)
    baseline_decoys = (
        {}
        if decoys is None
        else {
            "unmarked": _decoy_accuracy(task, AttackedModel(unmarked), decoys),
            "watermarked": _decoy_accuracy(task, AttackedModel(marked), decoys),
        }
    )
    yield BaselineRecord(
        dataset=task.name,
        seed=seed,
        unmarked=measure(task, AttackedModel(unmarked), owner, challenge, config.alpha),
        watermarked=watermarked,
        embed_seconds=seconds,
        decoy_accuracy=MappingProxyType(baseline_decoys),
    )
    bar.update()
    for sweep in config.sweeps:
        for strength, fraction in sweep.points():
            bar.set_postfix_str(f"{task.name} seed {seed}: {sweep.attack} {strength:g}")
            inputs, targets = thief_share(training, fraction, seed)
            thief = ThiefData(training, inputs, targets, thief_triggers, config.settings, seed)
            started = time.perf_counter()
            attacked = apply_attack(sweep.attack, marked, thief, strength)
            result = measure(task, attacked, owner, challenge, config.alpha)
            drop = watermarked.clean_score - result.clean_score
            extra = dict(attacked.extra)
            if decoys is not None:
                extra["decoy_accuracy"] = _decoy_accuracy(task, attacked, decoys)
            yield AttackRecord(
                dataset=task.name,
                attack=sweep.attack,
                strength=float(strength),
                data_fraction=float(fraction),
                seed=seed,
                original_score=watermarked.clean_score,
                measurement=result,
                removed=removes_watermark(
                    detected=result.detected, clean_drop=drop, max_clean_drop=config.max_clean_drop
                ),
                seconds=time.perf_counter() - started,
                extra=MappingProxyType(extra),
                family=config.family,
            )
            bar.update()
    if config.safety:
        bar.set_postfix_str(f"{task.name} seed {seed}: trigger safety")
        yield from check_trigger_safety(
            training,
            seed,
            marked=AttackedModel(marked),
            unmarked=AttackedModel(unmarked),
            triggers=owner,
            revealed=challenge,
            overlay=task.name in config.overlay_contrast,
            owner="owner_overlay" if config.family == "overlay" else config.family,
        )
        bar.update()


def run_evaluation(config: EvaluationConfig, *, progress: bool = True) -> EvaluationResult:
    """Run ``config``; a progress bar goes to stderr unless ``progress`` is false.

    The same configuration gives the same figures on the same machine and
    library versions (everything is seeded; training uses deterministic
    kernels on the CPU). Torch's global generator is restored afterwards.

    Raises:
        EncodingError: an attack strength outside its range.
        SecmarkError: a training run diverged, or the configuration has a
            language-model section and the ``lm-train`` extra is missing
            (checked before anything runs).
        ImportError: scikit-learn is not installed.
    """
    if config.language_model is not None:
        check_language_model_libraries()
    started = time.perf_counter()
    tasks: list[TaskInfo] = []
    baselines: list[BaselineRecord] = []
    attacks: list[AttackRecord] = []
    safety: list[SafetyRecord] = []
    with (
        torch.random.fork_rng(devices=[]),
        tqdm(
            total=_units(config),
            desc="evaluating",
            unit="run",
            file=sys.stderr,
            disable=not progress or not config.datasets,
        ) as bar,
    ):
        for name in config.datasets:
            task = prepare_task(name, config)
            tasks.append(_task_info(task, config))
            for seed in config.seeds:
                for record in _run_seed(task, seed, config, bar):
                    if isinstance(record, BaselineRecord):
                        baselines.append(record)
                    elif isinstance(record, AttackRecord):
                        attacks.append(record)
                    else:
                        safety.append(record)
    language = (
        None
        if config.language_model is None
        else run_language_model(config.language_model, progress=progress)
    )
    return EvaluationResult(
        config=config,
        tasks=tuple(tasks),
        baselines=tuple(baselines),
        attacks=tuple(attacks),
        safety=tuple(safety),
        seconds=time.perf_counter() - started,
        language_model=language,
    )
