"""Measuring a suspect: clean score, watermark accuracy and the arbiter's verdict.

A trigger matches exactly as in a dispute
(:func:`secmark.protocol.querying.answer_matches`): the same class, or a
regression answer within the committed tolerance, compared on rationals. The
verdict is the exact binomial test of :mod:`secmark.stats` on the k triggers of
one challenge; the watermark accuracy is over all N.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

import numpy as np

from secmark.evaluate.datasets import Task
from secmark.evaluate.triggers import TriggerData
from secmark.protocol.querying import answer_matches
from secmark.stats import binomial_test

__all__ = ["Answering", "Measurement", "challenge_indices", "measure", "trigger_matches"]


class Answering(Protocol):
    """Anything that answers a task's inputs, as an attacked model does."""

    def answer(self, task: Task, inputs: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Measurement:
    """One suspect measured on the clean test split and on the trigger set.

    Attributes:
        clean_score: test accuracy (classification) or R² (regression).
        watermark_accuracy: fraction of all N triggers that match.
        challenged: k, the triggers of the arbiter's challenge.
        matches: m, how many of those matched.
        threshold: the smallest m that rejects the null at alpha.
        detected: the verdict, ``matches >= threshold`` (exact).
        p_value: P[Binomial(k, p0) >= m] (a float; see ``log2_p_value``).
        log2_p_value: log2 of the p-value, accurate however small.
    """

    clean_score: float
    watermark_accuracy: float
    challenged: int
    matches: int
    threshold: int
    detected: bool
    p_value: float
    log2_p_value: float


def trigger_matches(task: Task, answers: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """1 where an answer matches its trigger's label, else 0 (int64, one per trigger)."""
    convert = int if task.kind == "classification" else float
    return np.array(
        [
            answer_matches(task.labels, label, convert(answer))
            for answer, label in zip(answers, labels)
        ],
        dtype=np.int64,
    )


def challenge_indices(task: Task, seed: int) -> np.ndarray:
    """k distinct trigger indices out of N, drawn uniformly with ``seed``: the
    stand-in for the arbiter's VRF-chosen challenge."""
    rng = np.random.default_rng([seed, task.triggers, task.challenges])
    return np.sort(rng.choice(task.triggers, size=task.challenges, replace=False))


def measure(
    task: Task,
    suspect: Answering,
    triggers: TriggerData,
    challenge: np.ndarray,
    alpha: Fraction,
) -> Measurement:
    """Query ``suspect`` with the test split and all N triggers, and judge the
    challenged ones with the exact binomial test at ``alpha``."""
    clean = task.score(suspect.answer(task, task.test_inputs), task.test_targets)
    hits = trigger_matches(task, suspect.answer(task, triggers.inputs), triggers.labels)
    matches = int(hits[challenge].sum())
    test = binomial_test(len(challenge), matches, task.p0, alpha)
    return Measurement(
        clean_score=clean,
        watermark_accuracy=float(hits.mean()),
        challenged=len(challenge),
        matches=matches,
        threshold=test.threshold,
        detected=test.decision,
        p_value=test.p_value,
        log2_p_value=test.log2_p_value,
    )
