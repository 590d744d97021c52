"""Is a trigger pattern a universal backdoor? The overlay ("stamping") check.

A watermark must not give anyone who learns a few triggers (an arbiter after
a dispute, a leaked reveal) a way to steer the model on ordinary inputs. The
check stamps revealed triggers onto clean test inputs and measures the
watermarked model's clean score on them, next to an unmarked model's on the
very same stamped inputs (stamping also perturbs the input, which costs any
model something). A *collapse* is a stamped score more than
:data:`COLLAPSE_MARGIN` below the unmarked model's.

Stamps:

``replace``
    a random 10 % of each test input's values replaced by the same positions
    of a random revealed trigger (noise family);
``blend``
    the average of the test input and a random revealed trigger (noise family);
``pattern``
    an overlay trigger's own pattern (the positions where it differs from
    its base pool item, with its values) written onto the test input;
``fresh``
    a fresh random pattern of the same size (a tenth of the values, at
    random positions, uniform over the family's range): no knowledge of any
    trigger. A stamped score that falls as far under ``fresh`` as under a
    revealed pattern shows a model that is fragile to such noise, not a
    backdoor opened by the triggers; only a revealed pattern that does
    much worse than a fresh one is a backdoor.

For the noise family ``replace`` and ``fresh`` have the same distribution
(a noise trigger's values are themselves uniform): revealing noise triggers
gives nothing a random pattern does not.

Contrast: the secmark overlay family draws positions and values per trigger;
a *bad recipe* stamps one shared pattern on every trigger, the classic
backdoor construction, and the check shows it collapsing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from torch import nn

from secmark.errors import EncodingError
from secmark.evaluate.attacks import AttackedModel
from secmark.evaluate.datasets import Task
from secmark.evaluate.scoring import trigger_matches
from secmark.evaluate.training import answers, fit_by_recipe
from secmark.evaluate.triggers import TriggerData, derive_triggers
from secmark.messages.families import OverlayFamily

__all__ = [
    "BLEND_WEIGHT",
    "COLLAPSE_MARGIN",
    "RECIPE_TITLES",
    "STAMP_FRACTION",
    "SafetyRecord",
    "Stamp",
    "check_trigger_safety",
    "overlay_family",
    "shared_pattern",
    "stamp",
]

STAMP_FRACTION = 0.1
"""Share of an input's values a ``replace`` stamp overwrites, and the share
an overlay trigger's pattern covers."""
BLEND_WEIGHT = 0.5
"""Weight of the trigger in a ``blend`` stamp."""
COLLAPSE_MARGIN = 0.10
"""A stamped clean score this far below the unmarked model's is a collapse."""

Stamp = Literal["replace", "blend", "pattern", "fresh"]
Recipe = Literal["noise", "pool", "owner_overlay", "overlay", "shared_overlay"]

RECIPE_TITLES: dict[str, str] = {
    "noise": "noise family (the default)",
    "pool": "pool family over in-distribution candidates (the owner's)",
    "owner_overlay": "overlay family over in-distribution candidates (the owner's)",
    "overlay": "overlay family, a pattern per trigger (secmark)",
    "shared_overlay": "overlay, one pattern shared by all triggers (bad recipe)",
}


@dataclass(frozen=True)
class SafetyRecord:
    """One watermarked model's clean score on stamped test inputs.

    Attributes:
        dataset, seed: which run.
        recipe: the owner's family ("noise", "pool" or "owner_overlay"), or a
            contrast model's ("overlay" or "shared_overlay").
        stamp: how the revealed triggers were stamped.
        watermark_accuracy: the model's accuracy on its own N triggers.
        clean: its clean score on the plain test split.
        stamped: its clean score on the stamped test split.
        unmarked_stamped: an unmarked model's clean score on the same stamped inputs.
    """

    dataset: str
    seed: int
    recipe: Recipe
    stamp: Stamp
    watermark_accuracy: float
    clean: float
    stamped: float
    unmarked_stamped: float

    @property
    def collapsed(self) -> bool:
        return self.stamped < self.unmarked_stamped - COLLAPSE_MARGIN


def overlay_family(task: Task) -> OverlayFamily:
    """The overlay family over the task's training inputs as the pool: a
    tenth of the values replaced, in the task's noise range."""
    shape = tuple(task.train_inputs.shape[1:])
    return OverlayFamily(
        pool_size=len(task.train_inputs),
        item_shape=shape,
        item_dtype="float32",
        pixels=max(1, round(STAMP_FRACTION * math.prod(shape))),
        low=task.family.low,
        high=task.family.high,
    )


def shared_pattern(triggers: TriggerData) -> TriggerData:
    """The bad recipe: every trigger gets the pattern of trigger 0 (its
    positions and values) on its own base item; labels are unchanged.

    Raises:
        EncodingError: ``triggers`` has no base items (not an overlay family).
    """
    if triggers.bases is None:
        raise EncodingError("shared_pattern needs overlay triggers with their base items")
    flat_bases = triggers.bases.reshape(len(triggers), -1)
    first = triggers.inputs[0].reshape(-1)
    positions = np.flatnonzero(first != flat_bases[0])
    inputs = flat_bases.copy()
    inputs[:, positions] = first[positions]
    return TriggerData(inputs.reshape(triggers.inputs.shape), triggers.labels, triggers.bases)


def stamp(
    inputs: np.ndarray,
    triggers: TriggerData,
    revealed: np.ndarray,
    how: Stamp,
    seed: int,
    *,
    value_range: tuple[float, float],
) -> np.ndarray:
    """``inputs`` with a random revealed trigger (``revealed`` indices) stamped
    on each, or a fresh pattern with values uniform over ``value_range``.

    Raises:
        EncodingError: a ``pattern`` stamp of triggers without base items.
    """
    rng = np.random.default_rng([seed, len(inputs)])
    flat = inputs.reshape(len(inputs), -1).copy()
    chosen = triggers.inputs[rng.choice(revealed, size=len(inputs))].reshape(len(inputs), -1)
    count = max(1, round(STAMP_FRACTION * flat.shape[1]))
    if how == "fresh":
        low, high = value_range
        for row in range(len(flat)):
            positions = rng.choice(flat.shape[1], size=count, replace=False)
            flat[row, positions] = rng.uniform(low, high, size=count)
    elif how == "blend":
        flat = (1 - BLEND_WEIGHT) * flat + BLEND_WEIGHT * chosen
    elif how == "replace":
        for row in range(len(flat)):
            positions = rng.choice(flat.shape[1], size=count, replace=False)
            flat[row, positions] = chosen[row, positions]
    else:
        if triggers.bases is None:
            raise EncodingError("a pattern stamp needs overlay triggers with their base items")
        picks = rng.choice(revealed, size=len(inputs))
        trigger_flat = triggers.inputs[picks].reshape(len(inputs), -1)
        base_flat = triggers.bases[picks].reshape(len(inputs), -1)
        mask = trigger_flat != base_flat
        flat[mask] = trigger_flat[mask]
    return flat.reshape(inputs.shape).astype(np.float32)


def _record(
    task: Task,
    seed: int,
    recipe: Recipe,
    how: Stamp,
    model: nn.Module,
    unmarked: nn.Module,
    triggers: TriggerData,
    revealed: np.ndarray,
) -> SafetyRecord:
    value_range = (float(task.family.low), float(task.family.high))
    stamped_inputs = stamp(task.test_inputs, triggers, revealed, how, seed, value_range=value_range)
    hits = trigger_matches(task, answers(task, model, triggers.inputs), triggers.labels)
    return SafetyRecord(
        dataset=task.name,
        seed=seed,
        recipe=recipe,
        stamp=how,
        watermark_accuracy=float(hits.mean()),
        clean=task.score(answers(task, model, task.test_inputs), task.test_targets),
        stamped=task.score(answers(task, model, stamped_inputs), task.test_targets),
        unmarked_stamped=task.score(answers(task, unmarked, stamped_inputs), task.test_targets),
    )


def check_trigger_safety(
    task: Task,
    seed: int,
    *,
    marked: AttackedModel,
    unmarked: AttackedModel,
    triggers: TriggerData,
    revealed: np.ndarray,
    overlay: bool,
    owner: Recipe = "noise",
) -> list[SafetyRecord]:
    """Stamp the ``revealed`` triggers of the watermarked model onto the test
    split (``replace``, ``blend``, and ``fresh`` for comparison); with
    ``overlay``, also train two overlay-family models with the task's recipe
    (per-trigger patterns, and the shared-pattern bad recipe) and stamp their
    revealed patterns and fresh ones. ``owner`` names the watermarked
    model's own recipe (its trigger family) in its records."""
    records = [
        _record(task, seed, owner, how, marked.model, unmarked.model, triggers, revealed)
        for how in ("replace", "blend", "fresh")
    ]
    if not overlay:
        return records
    family = overlay_family(task)
    overlay_triggers = derive_triggers(
        task, role="owner", seed=seed, family=family, pool=task.train_inputs
    )
    for name, chosen in (
        ("overlay", overlay_triggers),
        ("shared_overlay", shared_pattern(overlay_triggers)),
    ):
        model = task.new_model(seed)
        fit_by_recipe(task, model, seed, chosen)
        for how in ("pattern", "fresh"):
            records.append(_record(task, seed, name, how, model, unmarked.model, chosen, revealed))  # type: ignore[arg-type]
    return records
