"""``secmark plan`` through a parser of its own."""

from __future__ import annotations

import argparse
import json
import time
from fractions import Fraction

import pytest

from secmark.cli import plan as plan_command
from secmark.cli.family_advice import FAMILY_ADVICE
from secmark.errors import EncodingError
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


# -- the flags to use, and numbers spelt to stall or mislead the parser ----------


def test_the_flags_to_use_are_printed(capsys: pytest.CaptureFixture[str]) -> None:
    expected = plan(Fraction(1, 10), Fraction(9, 10), disputes=2)
    assert expected is not None
    status, out = _run(["plan", "--classes", "10", "--retention", "0.9", "--disputes", "2"], capsys)
    assert status == 0
    assert (
        f"retention 0.9: secmark commit --size {expected.trigger_set_size}; secmark arbiter init "
        f"--challenge-size {expected.k} --alpha-log2 -64"
    ) in out
    _, out = _run(
        ["plan", "--classes", "10", "--retention", "0.9", "--alpha", "1e-20", "--json"], capsys
    )
    (row,) = json.loads(out)["plans"]
    assert row["flags"]["arbiter_init"] == f"--challenge-size {row['k']} --alpha 1e-20"
    assert row["flags"]["commit"] == f"--size {row['trigger_set_size']}"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0.1", Fraction(1, 10)),
        ("1e-20", Fraction(1, 10**20)),
        (".5", Fraction(1, 2)),
        ("1/10", Fraction(1, 10)),
        ("2^-64", Fraction(1, 2**64)),
        (" 3/4 ", Fraction(3, 4)),
    ],
)
def test_numbers_in_every_spelling(text: str, value: Fraction) -> None:
    assert plan_command.parse_number(text, what="--x") == value


HOSTILE = [
    "1e-99999999",
    "1e+99999999",
    "2^-99999999",
    "1/0",
    "0/0",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "-0.1",
    "-1/10",
    "0",
    "1",
    "1.5",
    "3/2",
    "0x1p-3",
    "1_0/3",
    "\u0661/\u0663",  # Arabic-Indic digits, which Fraction itself would take
    "1/3\x1b[2J",
    "",
    "9" * 41,
    "1/" + "7" * 10_000,
    "2^-1025",
    "1e-9999",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_levels_are_refused_quickly(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    from secmark.cli.main import main

    started = time.monotonic()
    status = main(["plan", "--classes", "10", "--retention", "1", f"--alpha={text}"])
    assert time.monotonic() - started < 2.0
    assert status == EncodingError.exit_code
    error = capsys.readouterr().err
    assert error.startswith("secmark: error: --alpha") and error.count("\n") == 1
    assert "\x1b" not in error


@pytest.mark.parametrize("option", ["--p0", "--retention", "--max-revealed"])
@pytest.mark.parametrize("text", [*HOSTILE, "0.1234567", "1/1000001"])
def test_hostile_rates_are_refused_quickly(
    option: str, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if option == "--retention" and text == "1":
        return  # a retention of 1 is the untouched model
    space = [] if option == "--p0" else ["--classes", "10"]
    started = time.monotonic()
    with pytest.raises(SystemExit) as exited:
        _run(["plan", *space, f"{option}={text}"], capsys)
    assert time.monotonic() - started < 2.0
    assert exited.value.code == 2
    assert option in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["--alpha-log2", "-1025"],
        ["--alpha-log2", "-" + "9" * 30],
        ["--miss-log2", "-99999999"],
        ["--disputes", "10001"],
        ["--classes", str(2**31 + 1)],
        ["--alpha", "1e-20", "--alpha-log2", "-64"],
    ],
)
def test_bounds_that_keep_a_plan_quick(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    space = [] if "--classes" in argv else ["--classes", "10"]
    with pytest.raises(SystemExit) as exited:
        _run(["plan", *space, *argv], capsys)
    assert exited.value.code == 2


def test_the_plan_says_which_family_to_commit_against_which_suspect(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Text and JSON carry the same advice: noise against a modified copy,
    pool against a suspect that screens odd queries, none against one that
    serves a clean model of its own."""
    _, out = _run(["plan", "--classes", "10"], capsys)
    for advice in FAMILY_ADVICE:
        assert f"a suspect that {advice.suspect}: {advice.family or 'none holds'}" in out
    assert "--decoy-labels" in out
    _, out = _run(["plan", "--classes", "10", "--json"], capsys)
    families = json.loads(out)["families"]
    assert [entry["family"] for entry in families] == ["noise", "pool", None]
    assert all(entry["suspect"] and entry["reason"] for entry in families)
