"""What the command-line suspect tests share: a trigger set made through the
command line, and a way to run ``secmark`` in process and see everything it
printed.

The commitment is to 64 noise inputs of 64 features in [0, 16), ten
classes: the shape of scikit-learn's digits, so that a stock scikit-learn
model can be queried with them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from secmark.cli.main import main
from secmark.triggers import read_trigger_set

FAMILY = '{"name":"noise","shape":[64],"dtype":"float32","low":0,"high":16}'
SIZE = 64


@dataclass(frozen=True)
class TriggerSet:
    commitment: Path
    folder: Path
    inputs: np.ndarray
    labels: np.ndarray

    def check(self, *options: str) -> list[str]:
        """The argv of ``secmark check`` on this set with ``options``."""
        return ["check", str(self.folder), "--commitment", str(self.commitment), *options]


@dataclass(frozen=True)
class Run:
    status: int
    out: str
    err: str

    @property
    def data(self) -> dict[str, Any]:
        return json.loads(self.out)  # type: ignore[no-any-return]

    def shows(self, text: str) -> bool:
        return text in self.out or text in self.err


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    """``secmark argv`` in process; never a traceback (a bug exits 70)."""
    capsys.readouterr()
    status = main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return Run(status, captured.out, captured.err)


@pytest.fixture(scope="session")
def trigger_set(tmp_path_factory: pytest.TempPathFactory) -> TriggerSet:
    folder = tmp_path_factory.mktemp("trigger-set")
    key, commitment = folder / "owner.key", folder / "commitment.json"
    steps = [
        ["keygen", "owner", "--out-dir", str(folder), "--unencrypted"],
        [
            "commit",
            "--key",
            str(key),
            "--family",
            FAMILY,
            "--classes",
            "10",
            "--size",
            str(SIZE),
            "--out",
            str(commitment),
        ],
        ["derive", str(commitment), "--key", str(key), "--out", str(folder / "triggers")],
    ]
    for argv in steps:
        assert main([*argv, "--json"]) == 0, argv
    triggers = read_trigger_set(folder / "triggers")
    return TriggerSet(
        commitment, folder / "triggers", np.asarray(triggers.inputs), np.asarray(triggers.labels)
    )


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(json.dumps(config))
    return path
