"""Exact statistics for watermark verdicts.

A model never trained on the trigger set matches each challenged trigger with
a probability p0 fixed by the label space (:mod:`secmark.stats.null`), so its
match count is Binomial(k, p0) and the verdict is an exact one-sided binomial
test (:mod:`secmark.stats.verdict`) whose boundary is decided on rationals
(:mod:`secmark.stats.binomial`). :mod:`secmark.stats.planning` tells an owner
how many triggers to embed and challenge. ``specs/statistics.md`` is the
normative description.
"""

from __future__ import annotations

from secmark.stats.binomial import (
    MAX_TRIALS,
    binomial_tail,
    clopper_pearson,
    decision_threshold,
    exact_binomial_tail,
    log2_binomial_tail,
)
from secmark.stats.null import (
    classification_p0,
    null_match_probability,
    regression_p0,
    token_p0,
)
from secmark.stats.planning import (
    DEFAULT_DISPUTES,
    DEFAULT_MAX_REVEALED_FRACTION,
    DEFAULT_RETENTIONS,
    DEFAULT_TARGET_POWER,
    MAX_CHALLENGES,
    Plan,
    plan,
    plan_table,
)
from secmark.stats.verdict import (
    DEFAULT_ALPHA,
    DEFAULT_CONFIDENCE,
    BinomialTestResult,
    binomial_test,
)

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_CONFIDENCE",
    "DEFAULT_DISPUTES",
    "DEFAULT_MAX_REVEALED_FRACTION",
    "DEFAULT_RETENTIONS",
    "DEFAULT_TARGET_POWER",
    "MAX_CHALLENGES",
    "MAX_TRIALS",
    "BinomialTestResult",
    "Plan",
    "binomial_tail",
    "binomial_test",
    "classification_p0",
    "clopper_pearson",
    "decision_threshold",
    "exact_binomial_tail",
    "log2_binomial_tail",
    "null_match_probability",
    "plan",
    "plan_table",
    "regression_p0",
    "token_p0",
]
