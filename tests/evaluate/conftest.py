"""Fixtures of the evaluation tests: one tiny evaluation of every attack on
every data set, run once for the whole package (on one torch thread, as
every test: ``tests/conftest.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from secmark.evaluate import EvaluationConfig, EvaluationResult

pytest.importorskip("torch")
pytest.importorskip("sklearn")


def tiny_config(
    datasets: tuple[str, ...] = ("digits", "breast_cancer", "diabetes"),
) -> EvaluationConfig:
    """Every attack once, at one strength, on small trigger sets and short training."""
    from secmark.evaluate import AttackSettings, AttackSweep, EvaluationConfig

    return EvaluationConfig(
        datasets=datasets,
        seeds=(1,),
        sweeps=(
            AttackSweep("finetune_last", (1e-3,)),
            AttackSweep("finetune_all", (1e-3,)),
            AttackSweep("reinit_last", (1e-3,)),
            AttackSweep("reinit_all", (1e-3,)),
            AttackSweep("prune", (0.5,)),
            AttackSweep("fine_prune", (0.9,)),
            AttackSweep("quantize", (4,)),
            AttackSweep("input_noise", (0.1,)),
            AttackSweep("distill", (0.5,), (0.25,)),
            AttackSweep("overwrite", (1e-3,)),
            AttackSweep("ood_background", (0.02,)),
            AttackSweep("ood_reconstruction", (0.02,)),
            AttackSweep("disagreement_filter", (1.0,), (0.25,)),
        ),
        settings=AttackSettings(finetune_epochs=1, fineprune_epochs=1, overwrite_epochs=1),
        epochs=4,
        triggers=48,
        challenges=24,
    )


@pytest.fixture(scope="package")
def tiny_result() -> EvaluationResult:
    from secmark.evaluate import run_evaluation

    return run_evaluation(tiny_config(), progress=False)
