"""Smoke test of benchmarks/extraction.py on a tiny configuration.

A student trained on a marking gateway's answers is detected at a weak
level; a model trained on the same inputs with their true labels is not; the
early-stopping thief's students are tested on the same marked inputs.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from fractions import Fraction
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from secmark.stats import decision_threshold

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "extraction.py"
WEAK_ALPHA = Fraction(1, 2**10)


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("extraction_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Dataclasses look their module up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_marked_student_detected_innocent_not(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    result = _load().main(
        [
            "--quick",
            "--tasks",
            "generated",
            "--generated-samples",
            "3000",
            "--seeds",
            "1",
            "--sizes",
            "300",
            "--rates",
            "1/10",
            "--cost-rates",
            "1/10",
            "--counter-base",
            "200",
            "--counter-copies",
            "--no-soft",
            "--out",
            str(out),
        ]
    )
    assert json.loads(out.read_text())["summary"].keys() == {"generated"}
    (run,) = result["runs"]
    rows = {row["variant"]: row for row in run["detection"]}
    assert set(rows) == {"hard", "es-loss", "es-acc"}
    row = rows["hard"]
    student, innocent = row["student"], row["innocent"]
    # The careful thief is tested on the same marked inputs; he picks an epoch
    # he ran, holding out a tenth of his 300 answers.
    for rule in ("es-loss", "es-acc"):
        stopped = rows[rule]
        assert stopped["student"]["k"] == student["k"]
        assert stopped["innocent"] == innocent
        training = stopped["training"]
        assert 1 <= training["best_epoch"] <= training["epochs_run"] <= training["max_epochs"]
        assert (training["holdout"], training["trained_on"]) == (30, 270)
    assert student["k"] == innocent["k"] > 0
    p0 = Fraction(1, 9)
    threshold = decision_threshold(student["k"], p0, WEAK_ALPHA)
    assert student["m"] >= threshold
    assert innocent["m"] < threshold
    # Asking an input again gives the same answer.
    assert run["countermeasures"]["repeat"]["answers_changed"] == 0
