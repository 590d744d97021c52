"""``secmark plan`` through a parser of its own."""

from __future__ import annotations

import argparse
import json
from fractions import Fraction

import pytest

from secmark.cli import plan as plan_command
from secmark.stats.planning import plan


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="secmark")
    plan_command.register(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    status = args.handler(args)
    return status, capsys.readouterr().out


def test_table_for_ten_classes(capsys: pytest.CaptureFixture[str]) -> None:
    status, out = _run(["plan", "--classes", "10"], capsys)
    assert status == 0
    assert "p0 = 1/10" in out and "2^-64" in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("1 ", "0."))]
    assert [row[0] for row in rows] == ["1", "0.9", "0.75", "0.5", "0.3"]
    for row in rows:
        expected = plan(Fraction(1, 10), Fraction(row[0]))
        assert expected is not None
        assert row[1:4] == [
            str(expected.k),
            str(expected.threshold),
            str(expected.trigger_set_size),
        ]
        assert row[-1] == f"2^{expected.log2_false_claim:.2f}"


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    status, out = _run(
        [
            "plan",
            "--p0",
            "1/2",
            "--retention",
            "1",
            "0.01",
            "--disputes",
            "1",
            "--alpha-log2",
            "-40",
            "--miss-log2",
            "-10",
            "--json",
        ],
        capsys,
    )
    assert status == 0
    data = json.loads(out)
    assert data["p0"] == "1/2"
    assert data["target_power"] == "1023/1024"
    full, hopeless = data["plans"]
    # All k challenges must match at p0 = 1/2: k = 40, power exactly 1.
    assert (full["k"], full["threshold"], full["trigger_set_size"]) == (40, 40, 40)
    assert full["log2_miss"] is None
    assert full["log2_false_claim"] == -40.0
    assert hopeless == {"retention": "1/100", "feasible": False}


def test_infeasible_row_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    _, out = _run(["plan", "--p0", "0.5", "--retention", "0.01"], capsys)
    assert "no k <= 16384 reaches the target power" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["plan"],
        ["plan", "--classes", "10", "--p0", "1/10"],
        ["plan", "--classes", "1"],
        ["plan", "--p0", "1"],
        ["plan", "--p0", "one tenth"],
        ["plan", "--classes", "10", "--alpha-log2", "3"],
        ["plan", "--classes", "10", "--retention", "0"],
        ["plan", "--classes", "10", "--retention", "1.5"],
        ["plan", "--classes", "10", "--disputes", "0"],
        ["plan", "--classes", "10", "--max-revealed", "1"],
    ],
)
def test_bad_arguments_exit_with_usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        _run(argv, capsys)
    assert exited.value.code == 2
