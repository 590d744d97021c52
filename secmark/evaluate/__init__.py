"""Robustness evaluation of secmark watermarks (the ``torch`` extra).

How much does a thief have to do to a watermarked model before an arbiter's
verdict no longer holds, and what does it cost him? On three data sets that
ship with scikit-learn (:mod:`~secmark.evaluate.datasets`), the harness
(:mod:`~secmark.evaluate.harness`) derives the owner's trigger set from a
signed commitment, embeds it, runs the removal and evasion attacks of
:mod:`~secmark.evaluate.attacks` over a grid of strengths and seeds, and
judges every attacked model with the exact binomial test on an arbiter's
challenge (:mod:`~secmark.evaluate.scoring`). It also checks that revealed
triggers do not open a universal backdoor (:mod:`~secmark.evaluate.safety`).
Optionally (:class:`~secmark.evaluate.config.LanguageModelConfig`, the
``lm-train`` extra) it measures a language-model fingerprint's survival of
fine-tuning, int8 weights and other templates (:mod:`~secmark.evaluate.language`).
:mod:`~secmark.evaluate.report` writes the HTML report, ``summary.md`` and
``summary.json``; ``secmark evaluate`` runs it all. ``specs/evaluation.md``
defines every attack and the survival rule.

Typical use::

    config = default_config(("digits",), seeds=3)
    result = run_evaluation(config)
    write_report(result, Path("report"))
"""

from __future__ import annotations

try:
    import torch as _torch  # noqa: F401  (imported only to fail early and clearly)
except ImportError as error:
    raise ImportError(
        "secmark.evaluate needs PyTorch: install the extra with pip install 'secmark[torch]'"
    ) from error

from secmark.evaluate.attacks import (
    ATTACKS,
    Attack,
    AttackedModel,
    AttackSettings,
    BackgroundDetector,
    DisagreementGate,
    RandomAnswerGate,
    ReconstructionDetector,
    ThiefData,
    apply_attack,
    prune_weights,
    quantize_matrices,
    quantize_weights,
)
from secmark.evaluate.config import (
    DEFAULT_DATA_FRACTION,
    DEFAULT_LANGUAGE_MODEL,
    DEFAULT_MAX_CLEAN_DROP,
    QUICK_LANGUAGE_MODEL,
    AttackSweep,
    EvaluationConfig,
    LanguageModelConfig,
    default_config,
    quick_config,
)
from secmark.evaluate.datasets import TASK_NAMES, CandidateRule, Recipe, Task, load_task, perturb
from secmark.evaluate.harness import (
    AttackRecord,
    BaselineRecord,
    EvaluationResult,
    SummaryRow,
    TaskInfo,
    removes_watermark,
    run_evaluation,
)
from secmark.evaluate.language import (
    CONDITIONS,
    LanguageModelMeasure,
    LanguageModelNull,
    LanguageModelResult,
    LanguageModelRow,
    LanguageModelSeed,
    TriggerPlan,
    run_language_model,
    triggers_needed,
    worst_of_seeds,
)
from secmark.evaluate.report import (
    ReportFiles,
    format_p_value,
    language_model_markdown,
    write_report,
)
from secmark.evaluate.safety import SafetyRecord, check_trigger_safety
from secmark.evaluate.scoring import Measurement, measure
from secmark.evaluate.triggers import (
    FAMILY_NAMES,
    FamilyName,
    OwnerTriggers,
    TriggerData,
    candidate_targets,
    derive_triggers,
    draw_decoys,
    owner_task,
    owner_triggers,
    pool_candidates,
    reserved_rows,
)

__all__ = [
    "ATTACKS",
    "CONDITIONS",
    "DEFAULT_DATA_FRACTION",
    "DEFAULT_LANGUAGE_MODEL",
    "DEFAULT_MAX_CLEAN_DROP",
    "FAMILY_NAMES",
    "QUICK_LANGUAGE_MODEL",
    "TASK_NAMES",
    "Attack",
    "AttackRecord",
    "AttackSettings",
    "AttackSweep",
    "AttackedModel",
    "BackgroundDetector",
    "BaselineRecord",
    "CandidateRule",
    "DisagreementGate",
    "EvaluationConfig",
    "EvaluationResult",
    "FamilyName",
    "LanguageModelConfig",
    "LanguageModelMeasure",
    "LanguageModelNull",
    "LanguageModelResult",
    "LanguageModelRow",
    "LanguageModelSeed",
    "Measurement",
    "OwnerTriggers",
    "RandomAnswerGate",
    "Recipe",
    "ReconstructionDetector",
    "ReportFiles",
    "SafetyRecord",
    "SummaryRow",
    "Task",
    "TaskInfo",
    "ThiefData",
    "TriggerData",
    "TriggerPlan",
    "apply_attack",
    "candidate_targets",
    "check_trigger_safety",
    "default_config",
    "derive_triggers",
    "draw_decoys",
    "format_p_value",
    "language_model_markdown",
    "load_task",
    "measure",
    "owner_task",
    "owner_triggers",
    "perturb",
    "pool_candidates",
    "prune_weights",
    "quantize_matrices",
    "quantize_weights",
    "quick_config",
    "removes_watermark",
    "reserved_rows",
    "run_evaluation",
    "run_language_model",
    "triggers_needed",
    "worst_of_seeds",
    "write_report",
]
